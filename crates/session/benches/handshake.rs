//! What RA-TLS costs: a full in-memory TLS 1.3 handshake between the engines
//! with every verification step (simulated SEV-SNP evidence chain, ledger
//! bundle with witness cosignatures, TLS signature), and the two verifications
//! on their own.
#![allow(clippy::unwrap_used)]

#[path = "../tests/real/mod.rs"]
mod real;

use std::sync::Arc;

use confide_ratls::{
    EvidenceVerifier, InclusionVerifier, ManualClock, NodeCertResolver, NodeCredential,
    server_config,
};
use confide_session::{ClientEngine, ServerEngine, SessionLimits};
use criterion::{Criterion, criterion_group, criterion_main};
use real::*;

fn bench(c: &mut Criterion) {
    let ledger = Ledger::new(&[release(MEASUREMENT, MODEL)]);
    let bundle = ledger.bundle(0);
    let attester = honest_attester();

    // The node's credential and config exist before sessions (refreshed on a schedule).
    let cred = NodeCredential::issue(&attester, None, &bundle, at(T0), WINDOW).unwrap();
    let clock = ManualClock::new(at(T0));
    let config = server_config(Arc::new(NodeCertResolver::new(&cred)), Arc::clone(&clock)).unwrap();
    c.bench_function("ratls_handshake_with_verification", |b| {
        b.iter(|| {
            let mut s = ServerEngine::new(
                Arc::clone(&config),
                Arc::clone(&clock),
                SessionLimits::default(),
            )
            .unwrap();
            let mut cl =
                ClientEngine::new(ledger.verifier(), SessionLimits::default(), at(T0 + 60))
                    .unwrap();
            pump(&mut cl, &mut s).unwrap();
            assert!(cl.verified_node().is_some());
        })
    });

    // Node side: key generation, evidence and certificate (once per refresh, not per session).
    c.bench_function("ratls_issue_credential", |b| {
        b.iter(|| NodeCredential::issue(&attester, None, &bundle, at(T0), WINDOW).unwrap())
    });

    let evidence = {
        use confide_ratls::Attester as _;
        attester.attest(&[0; 64]).unwrap()
    };
    let ev = ledger.evidence_verifier();
    c.bench_function("verify_simulated_snp_evidence", |b| {
        b.iter(|| {
            ev.verify_evidence(MEDIA_TYPE, &evidence, at(T0 + 60))
                .unwrap()
        })
    });
    let iv = ledger.inclusion_verifier();
    c.bench_function("verify_ledger_bundle", |b| {
        b.iter(|| iv.verify_inclusion(&bundle, at(T0 + 60)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
