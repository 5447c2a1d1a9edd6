//! Node to node in one process: a model node on the simulated TDX twin (embedded model,
//! node-to-node route) and a front node on the simulated SEV-SNP twin whose engine is
//! that model node, over mutual RA-TLS. A device session on the front node gets a
//! streamed summary, and sees the model node's model digest in the front node's
//! evidence; a caller without a certificate is refused by the model node.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use confide_attest::TrustPolicy;
use confide_attest_sim::{SimulatedTdxVendor, SimulatedVendor};
use confide_node::ledger::ReleaseChoice;
use confide_node::{
    BundleSource, EngineChoice, Measured, Node, NodeOptions, NodePlatform, ServiceSettings,
};
use confide_release::{LedgerEntry, Platform, ReleaseManifest};

fn release_for(m: &Measured) -> LedgerEntry {
    let now = now_secs();
    LedgerEntry::Release(ReleaseManifest {
        platform: match m.platform {
            NodePlatform::SimulatedTdx => Platform::SimulatedTdx,
            _ => Platform::Simulated,
        },
        measurement: m.measurement.clone(),
        snp_policy: m.snp_policy(),
        rtmrs: m.rtmrs(),
        gpu_reference: Default::default(),
        model_digest: m.model_digest,
        config_digest: m.config_digest,
        source_revision: "test".into(),
        build_recipe_digest: [7; 32],
        not_before: now - 86_400,
        not_after: now + 86_400,
        notes: String::new(),
    })
}

fn options(dir: &Path, platform: NodePlatform, engine: EngineChoice, policy: &Path) -> NodeOptions {
    NodeOptions {
        dir: dir.to_path_buf(),
        platform,
        engine,
        bundle: BundleSource::File(std::path::PathBuf::new()),
        sim_vendor: Some(dir.join("sim-vendor")),
        gpu: confide_node::GpuChoice::None,
        sim_faults: Vec::new(),
        dev_allow_writable_cwd: true,
        cert_lifetime: Duration::from_secs(3600),
        settings: ServiceSettings {
            max_tokens: 24,
            ..ServiceSettings::default()
        },
        peer_policy: Some(policy.to_path_buf()),
    }
}

async fn serve(router: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_node_answers_through_an_attested_model_node() {
    let dir = tempfile::tempdir().unwrap();
    let vendors = dir.path().join("sim-vendor");
    let snp = SimulatedVendor::load_or_create(&vendors).unwrap();
    let tdx = SimulatedTdxVendor::load_or_create(&vendors.join("tdx")).unwrap();
    // Both nodes trust the same roots and ledger keys (the device policy format).
    let keys = Ledger::new(&[]);
    let mut policy = TrustPolicy::production()
        .with_simulated_root(snp.root_der().to_vec())
        .with_simulated_tdx_root(tdx.root_der().to_vec());
    policy.freshness_secs = 3600;
    policy.ledger.log_vkey = keys.key.verifier().to_vkey();
    policy.ledger.witness_vkeys = keys
        .witnesses
        .iter()
        .map(|w| w.verifier().to_vkey())
        .collect();
    policy.ledger.witness_quorum = 2;
    let policy_file = dir.path().join("peer-policy.toml");
    std::fs::write(&policy_file, policy.to_toml()).unwrap();

    // The model node: TDX twin, embedded model, node-to-node route.
    let mut model_opts = options(
        dir.path(),
        NodePlatform::SimulatedTdx,
        EngineChoice::Embedded(model_path(), confide_engine::LoadOptions::default()),
        &policy_file,
    );
    let model_release = release_for(&confide_node::node::measure(&model_opts).await.unwrap());
    let first = Ledger::new(std::slice::from_ref(&model_release));
    model_opts.bundle = BundleSource::Ledger {
        url: first.serve().await,
        choice: ReleaseChoice::Auto,
    };
    let model_node = Node::start(model_opts).await.unwrap();
    let peer_url = serve(model_node.peer_router()).await;

    // The front node learns its model digest by verifying the model node.
    let mut front_opts = options(
        dir.path(),
        NodePlatform::Simulated,
        EngineChoice::PeerNode {
            url: peer_url.clone(),
            model_digest: None,
        },
        &policy_file,
    );
    let front_measured = confide_node::node::measure(&front_opts).await.unwrap();
    assert_eq!(
        front_measured.model_digest,
        model_node.measured().model_digest
    );
    let ledger = Ledger::new(&[model_release, release_for(&front_measured)]);
    front_opts.bundle = BundleSource::Ledger {
        url: ledger.serve().await,
        choice: ReleaseChoice::Auto,
    };
    let front = Node::start(front_opts).await.unwrap();
    let front_url = serve(front.router()).await;

    // A device verifies the front node and is answered by the model node's model.
    let mut c = Client::new(&front_url, verifier(snp.root_der(), &ledger, 3600));
    c.open().await.unwrap();
    assert_eq!(
        c.engine.verified_node().unwrap().model_digest(),
        Some(&model_node.measured().model_digest[..])
    );
    let a = c.request(&summarize(24)).await.unwrap();
    assert!(a.end.error.is_none(), "{:?}", a.end);
    assert!(!a.text.trim().is_empty());

    // A front node configured with another model digest refuses to start.
    let mut wrong = options(
        dir.path(),
        NodePlatform::Simulated,
        EngineChoice::PeerNode {
            url: peer_url.clone(),
            model_digest: Some([9; 32]),
        },
        &policy_file,
    );
    wrong.bundle = BundleSource::File(dir.path().join("unused"));
    let e = Node::start(wrong).await.unwrap_err();
    assert!(
        e.to_string().contains("is not the one this node attests"),
        "{e}"
    );

    // A caller without a certificate: the model node verifies nothing it cannot see and
    // answers the request with the certificate_required alert.
    let mut anon = Client::new(
        &peer_url,
        confide_node::peer::peer_verifier(&policy).unwrap(),
    );
    anon.open().await.unwrap();
    let e = anon.request(&summarize(8)).await.err().unwrap();
    assert!(e.to_string().contains("CertificateRequired"), "{e}");
    // Every session is gone: refused ones at once, the front node's when it finished.
    for _ in 0..50 {
        if model_node.service().session_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(model_node.service().session_count(), 0);
}
