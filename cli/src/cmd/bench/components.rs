//! `confide bench` rows for the protocol parts: attestation verification, the ledger,
//! Privacy Pass. Each row alternates its baseline and its subject round by round (so
//! that drift of a shared CPU or disk hits both), and every round times many
//! operations; medians and p99 are over the rounds.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use confide_attest::{Evidence, GpuEvidence, Platform, ReportDataCheck, TrustPolicy, UnixTime};
use confide_attest_sim::{ReportFields, SimulatedVendor};
use confide_attest_verify::Verifiers;
use confide_tokens::keys::{ChallengeConfig, RotationPolicy};
use confide_tokens::{
    IssuerKeySet, MemorySpentStore, Redeemer, SpentId, SpentStore, Token, TokenType,
};
use der::Decode;
use ed25519_dalek::Signer as _;
use p384::ecdsa::signature::Verifier as _;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use super::{Row, row};

/// How long each side of a row is timed per round, and how many rounds.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    pub rounds: usize,
    pub iters: u32,
}

/// Seconds per operation of `f`, `iters` times after one warm-up call.
fn per_op(iters: u32, f: &mut dyn FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let t = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() / f64::from(iters.max(1)))
}

/// One row: baseline and subject timed alternately, in microseconds per operation, or
/// (with `rate`) in operations per second.
#[allow(clippy::too_many_arguments)]
fn timed_row(
    what: &str,
    baseline_name: &str,
    effort: Effort,
    rate: Option<f64>,
    mut base: impl FnMut() -> anyhow::Result<()>,
    mut subject: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for _ in 0..effort.rounds {
        b.push(per_op(effort.iters, &mut base)?);
        s.push(per_op(effort.iters, &mut subject)?);
    }
    Ok(match rate {
        // `rate` operations per call: report operations per second.
        Some(per_call) => row(
            what,
            "ops/s",
            baseline_name,
            b.iter().map(|t| per_call / t).collect(),
            s.iter().map(|t| per_call / t).collect(),
        ),
        None => row(
            what,
            "µs",
            baseline_name,
            b.iter().map(|t| t * 1e6).collect(),
            s.iter().map(|t| t * 1e6).collect(),
        ),
    })
}

fn testdata(repo: &Path, p: &str) -> anyhow::Result<Vec<u8>> {
    let path = repo.join("testdata").join(p);
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// Attestation verification per platform, cold (every chain checked) and with the
/// certificate chain cached, against one bare P-384 verification of the real SNP report.
pub fn attestation(repo: &Path, effort: Effort) -> anyhow::Result<Vec<Row>> {
    const T0: UnixTime = UnixTime(1_748_736_000);
    const T_TDX: UnixTime = UnixTime(1_750_377_600);
    let report =
        confide_attest::input::decode_hex_or_binary(&testdata(repo, "sev-snp/report_milan.hex")?)?;
    let vcek = testdata(repo, "sev-snp/vcek_milan.der")?;
    let mut certs = vec![vcek.clone()];
    certs.extend(confide_attest::input::decode_certificates(&testdata(
        repo,
        "sev-snp/cert_chain_milan",
    )?)?);
    let cert = x509_cert::Certificate::from_der(&vcek)?;
    let bare_key = p384::ecdsa::VerifyingKey::from_sec1_bytes(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )?;
    // AMD stores R and S little-endian in 72-byte fields at 0x2A0.
    let mut rs = [0u8; 96];
    for i in 0..48 {
        rs[47 - i] = report[0x2A0 + i];
        rs[95 - i] = report[0x2A0 + 72 + i];
    }
    let bare_sig = p384::ecdsa::Signature::from_slice(&rs)?;
    let snp = Evidence {
        platform: Platform::SevSnp,
        report,
        certs,
        collateral: vec![],
        binding: None,
        gpu: None,
    };
    let tdx = Evidence {
        platform: Platform::Tdx,
        report: testdata(repo, "tdx/tdx_quote")?,
        certs: vec![],
        collateral: testdata(repo, "tdx/tdx_quote_collateral.json")?,
        binding: None,
        gpu: None,
    };
    let gpu = GpuEvidence {
        spdm: confide_attest::input::decode_hex_or_binary(&testdata(
            repo,
            "nvidia/hopperAttestationReport.txt",
        )?)?,
        certs: confide_attest::input::decode_certificates(&testdata(
            repo,
            "nvidia/hopperCertChain.txt",
        )?)?,
    };
    let vendor = SimulatedVendor::generate(&mut OsRng, T0)?;
    let sim = Evidence {
        platform: Platform::Simulated,
        report: vendor.report(&ReportFields {
            report_data: [0; 64],
            measurement: [1; 48],
            host_data: confide_attest::binding_digest(&[2; 32], &[3; 32]),
            debug: false,
            now: T0,
        })?,
        certs: vendor.chain(),
        collateral: vec![],
        binding: Some(confide_attest::Binding {
            model_digest: [2; 32],
            config_digest: [3; 32],
        }),
        gpu: None,
    };
    let mut prod = TrustPolicy::production();
    // The Milan fixture (2023) is below the AMD-SB-3019 floor that production enforces; the
    // bench times the full verification, so it lowers the Milan floor to the fixture's TCB.
    prod.sev_snp.tcb_floors.insert(
        confide_attest::SnpGeneration::Milan,
        confide_attest::SnpTcbFloor {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        },
    );
    let sim_policy = TrustPolicy::production().with_simulated_root(vendor.root_der().to_vec());
    let cached = Verifiers::cached();
    let rd0 = [0u8; 64];
    let bare = || -> anyhow::Result<()> {
        bare_key.verify(black_box(&snp.report[..0x2A0]), &bare_sig)?;
        Ok(())
    };
    let base_name = "bare P-384 check of the SNP report";
    let mut rows = Vec::new();
    let mut add = |what: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        rows.push(timed_row(what, base_name, effort, None, bare, f)?);
        Ok(())
    };
    add("verify sev-snp, cold", &mut || {
        Verifiers::uncached().verify(black_box(&snp), ReportDataCheck::Unchecked, T0, &prod)?;
        Ok(())
    })?;
    add("verify sev-snp, chain cached", &mut || {
        cached.verify(black_box(&snp), ReportDataCheck::Unchecked, T0, &prod)?;
        Ok(())
    })?;
    add("verify tdx, cold (collateral checked)", &mut || {
        Verifiers::uncached().verify(black_box(&tdx), ReportDataCheck::Unchecked, T_TDX, &prod)?;
        Ok(())
    })?;
    add("verify nvidia hopper, cold", &mut || {
        Verifiers::uncached().verify_gpu_only(&gpu.spdm, &gpu.certs, None, T0, &prod)?;
        Ok(())
    })?;
    add("verify nvidia hopper, chain cached", &mut || {
        cached.verify_gpu_only(&gpu.spdm, &gpu.certs, None, T0, &prod)?;
        Ok(())
    })?;
    add("verify simulated, cold", &mut || {
        Verifiers::uncached().verify(&sim, ReportDataCheck::Confide(&rd0), T0, &sim_policy)?;
        Ok(())
    })?;
    add("verify simulated, chain cached", &mut || {
        cached.verify(&sim, ReportDataCheck::Confide(&rd0), T0, &sim_policy)?;
        Ok(())
    })?;
    Ok(rows)
}

/// Durable ledger appends against a raw write + fdatasync of the same bytes, and RFC 9162
/// inclusion proof verification in a 2^20-leaf tree against raw SHA-256 of as many
/// 65-byte inputs as the proof has hashes.
pub fn ledger(effort: Effort) -> anyhow::Result<Vec<Row>> {
    use confide_ledger::store::{EntryLog, record};
    use confide_tlog::{MemoryTree, inclusion_proof, leaf_hash, verify_inclusion};
    const ENTRY: [u8; 200] = [7u8; 200];
    let dir = tempfile::tempdir()?;
    let mut raw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join("raw"))?;
    let rec = record(&ENTRY);
    let mut log = EntryLog::open(&dir.path().join("entries.log"))?.log;
    let batch: Vec<&[u8]> = vec![&ENTRY[..]; 64];
    let batch_bytes: Vec<u8> = batch.iter().flat_map(|e| record(e)).collect();
    let fsync_effort = Effort {
        rounds: effort.rounds,
        iters: (effort.iters / 50).max(5),
    };
    let mut rows = vec![timed_row(
        "ledger durable appends, one entry per fsync",
        "raw write + fdatasync",
        fsync_effort,
        Some(1.0),
        || {
            raw.write_all(&rec)?;
            raw.sync_data()?;
            Ok(())
        },
        || {
            log.append_batch(&[&ENTRY[..]])?;
            Ok(())
        },
    )?];
    rows.push(timed_row(
        "ledger durable appends, 64 entries per fsync",
        "raw write + fdatasync of the same bytes",
        fsync_effort,
        Some(64.0),
        || {
            raw.write_all(&batch_bytes)?;
            raw.sync_data()?;
            Ok(())
        },
        || {
            log.append_batch(&batch)?;
            Ok(())
        },
    )?);
    let n = 1u64 << 20;
    let mut tree = MemoryTree::new();
    for i in 0..n {
        tree.push(leaf_hash(&i.to_be_bytes()));
    }
    let root = tree.root();
    let idx = 123_457;
    let proof = inclusion_proof(&tree, idx, n)?;
    let leaf = tree.leaf(idx).context("leaf")?;
    let input = [1u8; 65];
    rows.push(timed_row(
        "inclusion proof verification, 2^20 leaves",
        "raw SHA-256 x proof length",
        effort,
        None,
        || {
            for _ in 0..proof.len() {
                black_box(Sha256::digest(black_box(&input)));
            }
            Ok(())
        },
        || {
            verify_inclusion(black_box(&leaf), idx, n, &proof, &root)?;
            Ok(())
        },
    )?);
    Ok(rows)
}

/// Privacy Pass issuance (issuer side) and redemption verification (gateway side) per
/// token type against one Ed25519 signature over a 98-byte input, and one double-spend
/// check on the embedded store against the in-memory store.
pub fn tokens(effort: Effort) -> anyhow::Result<Vec<Row>> {
    const NOW: u64 = 1_800_000_000;
    let challenge = ChallengeConfig {
        issuer_name: "issuer.bench".into(),
        origin_info: "gw.bench".into(),
    };
    let policy = RotationPolicy {
        issue_secs: 86_400,
        overlap_secs: 86_400,
    };
    let set = IssuerKeySet::generate(challenge.clone(), policy, NOW, &mut OsRng)?;
    let redeemer = Redeemer::new(set.redemption_keys()?, Arc::new(MemorySpentStore::new()));
    let directory = set.directory("/r", NOW);
    let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let input = [0x5au8; 98];
    let sign = || -> anyhow::Result<()> {
        black_box(signing.sign(&input));
        Ok(())
    };
    let mut rows = Vec::new();
    for (ty, name) in [
        (TokenType::Voprf, "type 0x0001 (VOPRF P-384)"),
        (TokenType::BlindRsa, "type 0x0002 (blind RSA 2048)"),
    ] {
        let key = directory.newest_key(ty, NOW).context("no issuer key")?;
        let (req, pending) = key.begin(challenge.digest(ty)?, &mut OsRng)?;
        let resp = set.issue(&req, NOW, &mut OsRng)?;
        let token: Token = pending.finalize(resp.encode())?;
        let auth = token.to_authorization();
        rows.push(timed_row(
            &format!("token issuance, {name}"),
            "one Ed25519 signature",
            effort,
            None,
            sign,
            || {
                set.issue(&req, NOW, &mut OsRng)?;
                Ok(())
            },
        )?);
        rows.push(timed_row(
            &format!("token redemption check, {name}"),
            "one Ed25519 signature",
            effort,
            None,
            sign,
            || {
                redeemer.verify(&auth, NOW)?;
                Ok(())
            },
        )?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let memory = MemorySpentStore::new();
    let redb = confide_token_store::RedbSpentStore::open(&dir.path().join("spent.redb"))?;
    let counter = AtomicU64::new(0);
    let fresh = || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        SpentId::from_bytes(b)
    };
    rows.push(timed_row(
        "double-spend check, embedded redb store",
        "in-memory store",
        Effort {
            rounds: effort.rounds,
            iters: (effort.iters / 10).max(5),
        },
        None,
        || {
            rt.block_on(memory.spend(fresh(), NOW + 3600, NOW))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        },
        || {
            rt.block_on(redb.spend(fresh(), NOW + 3600, NOW))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        },
    )?);
    Ok(rows)
}
