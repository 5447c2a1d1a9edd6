//! Ledger benchmarks: durable appends per second and proof verification time, each
//! next to a baseline measured in the same run on the same machine:
//!
//! - durable append (one `EntryLog::append_batch` of one entry, fsynced) against a raw
//!   `write` + `fsync` of the same bytes to a plain file; and a 64-entry batch, which
//!   is what the sequencer does under concurrent load;
//! - RFC 9162 inclusion and consistency proof verification in a 2^20-leaf tree against
//!   raw SHA-256 of the same number of 65-byte node inputs.
//!
//! After the criterion groups, `ratio_summary` prints each ratio (ours / baseline),
//! which is the number to compare across machines.
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

use confide_ledger::store::{EntryLog, record};
use confide_tlog::{
    MemoryTree, consistency_proof, inclusion_proof, leaf_hash, verify_consistency, verify_inclusion,
};
use criterion::{Criterion, black_box, criterion_group};
use sha2::{Digest, Sha256};

const ENTRY: [u8; 200] = [7u8; 200];

fn tree(n: u64) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(leaf_hash(&i.to_be_bytes()));
    }
    t
}

fn appends(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("durable_append");
    g.sample_size(20);
    let raw_path = dir.path().join("raw");
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&raw_path)
        .unwrap();
    let rec = record(&ENTRY);
    g.bench_function("baseline_raw_write_fsync", |b| {
        b.iter(|| {
            raw.write_all(&rec).unwrap();
            raw.sync_data().unwrap();
        })
    });
    let mut log = EntryLog::open(&dir.path().join("entries.log")).unwrap().log;
    g.bench_function("entrylog_1", |b| {
        b.iter(|| log.append_batch(&[&ENTRY[..]]).unwrap())
    });
    let batch: Vec<&[u8]> = vec![&ENTRY[..]; 64];
    g.bench_function("entrylog_batch_64", |b| {
        b.iter(|| log.append_batch(&batch).unwrap())
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let n = 1u64 << 20;
    let t = tree(n);
    let root = t.root();
    let idx = 123_457;
    let p = inclusion_proof(&t, idx, n).unwrap();
    let leaf = t.leaf(idx).unwrap();
    let old = 700_001;
    let cp = consistency_proof(&t, old, n).unwrap();
    let old_root = t.root_at(old).unwrap();
    let input = [1u8; 65];
    let mut g = c.benchmark_group("proof_verification");
    g.bench_function("baseline_sha256_x_proof_len", |b| {
        b.iter(|| {
            for _ in 0..p.len() {
                black_box(Sha256::digest(black_box(&input)));
            }
        })
    });
    g.bench_function("inclusion_2^20", |b| {
        b.iter(|| verify_inclusion(black_box(&leaf), idx, n, &p, &root).unwrap())
    });
    g.bench_function("consistency_2^20", |b| {
        b.iter(|| verify_consistency(old, n, black_box(&cp), &old_root, &root).unwrap())
    });
    g.finish();
}

fn time_per_op(iters: u32, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(iters)
}

/// Median of `rounds` alternating measurements of `a` and `b`, so that slow drift of a
/// shared disk or CPU hits both sides equally.
fn interleaved(rounds: usize, iters: u32, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        ta.push(time_per_op(iters, &mut a));
        tb.push(time_per_op(iters, &mut b));
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    (ta[rounds / 2], tb[rounds / 2])
}

/// Ratios against the baselines, measured in this run.
fn ratio_summary() {
    let dir = tempfile::tempdir().unwrap();
    // The baseline file is opened and written exactly as the entries file is (no
    // O_APPEND, one write then fdatasync), without the record framing and bookkeeping.
    let mut raw = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join("raw"))
        .unwrap();
    let rec = record(&ENTRY);
    let mut log = EntryLog::open(&dir.path().join("entries.log")).unwrap().log;
    let batch: Vec<&[u8]> = vec![&ENTRY[..]; 64];
    let batch_bytes: Vec<u8> = batch.iter().flat_map(|e| record(e)).collect();
    let (base, one) = interleaved(
        9,
        30,
        || {
            raw.write_all(&rec).unwrap();
            raw.sync_data().unwrap();
        },
        || log.append_batch(&[&ENTRY[..]]).unwrap(),
    );
    let (base64, b64) = interleaved(
        9,
        10,
        || {
            raw.write_all(&batch_bytes).unwrap();
            raw.sync_data().unwrap();
        },
        || log.append_batch(&batch).unwrap(),
    );
    println!(
        "durable appends/s: single {:.0} (raw write+fdatasync baseline {:.0}/s), batched(64) {:.0} entries/s (raw baseline {:.0}/s)",
        1.0 / one,
        1.0 / base,
        64.0 / b64,
        64.0 / base64
    );
    println!(
        "ratio EntryLog single append / raw fsync append (time): {:.2}",
        one / base
    );
    println!(
        "ratio EntryLog 64-batch / raw fsync of the same bytes (time): {:.2}",
        b64 / base64
    );
    println!(
        "batching gain: {:.1}x entries/s over one fsync per entry",
        (64.0 / b64) / (1.0 / one)
    );

    let n = 1u64 << 20;
    let t = tree(n);
    let root = t.root();
    let p = inclusion_proof(&t, 123_457, n).unwrap();
    let leaf = t.leaf(123_457).unwrap();
    let input = [1u8; 65];
    let sha = time_per_op(20_000, || {
        for _ in 0..p.len() {
            black_box(Sha256::digest(black_box(&input)));
        }
    });
    let inc = time_per_op(20_000, || {
        verify_inclusion(black_box(&leaf), 123_457, n, &p, &root).unwrap()
    });
    println!(
        "inclusion proof verification (2^20 leaves, {} hashes): {:.2} us; raw SHA-256 x{} baseline {:.2} us; ratio {:.2}",
        p.len(),
        inc * 1e6,
        p.len(),
        sha * 1e6,
        inc / sha
    );
}

criterion_group!(benches, appends, proofs);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio_summary();
}
