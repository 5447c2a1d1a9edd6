//! The node with an OpenAI-compatible upstream engine instead of an embedded model: the
//! upstream (here the embedded engine served by `confide_engine::openai::router` on
//! loopback, as `confide engine serve` does) streams, and the node streams on.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use confide_attest_sim::SimulatedVendor;
use confide_engine::{EmbeddedEngine, Engine, LoadOptions};
use confide_node::ledger::ReleaseChoice;
use confide_node::measure::measure_current_exe;
use confide_node::{BundleSource, EngineChoice, Node, NodeOptions, NodePlatform, ServiceSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_streams_from_an_upstream_engine() {
    let embedded: Arc<dyn Engine> = Arc::new(
        EmbeddedEngine::open(&model_path(), LoadOptions::default())
            .await
            .unwrap(),
    );
    let model_digest = embedded.info().sha256.unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", l.local_addr().unwrap());
    let app = confide_engine::openai::router(embedded);
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOptions {
        dir: dir.path().to_path_buf(),
        platform: NodePlatform::Simulated,
        engine: EngineChoice::Upstream {
            url: upstream,
            model: "default".into(),
            // The node hashes the weights itself; nobody's word is taken for them.
            model_file: Some(model_path()),
        },
        bundle: BundleSource::File(std::path::PathBuf::new()),
        sim_vendor: None,
        gpu: confide_node::GpuChoice::None,
        sim_faults: Vec::new(),
        dev_allow_writable_cwd: true,
        cert_lifetime: Duration::from_secs(3600),
        settings: ServiceSettings {
            max_tokens: 24,
            ..ServiceSettings::default()
        },
        peer_policy: None,
    };
    // The release lists this configuration (upstream URL included).
    let config = confide_node::node::config_digest(&opts).unwrap();
    let ledger = Ledger::new(&[release(
        &measure_current_exe().unwrap(),
        model_digest,
        config,
    )]);
    opts.bundle = BundleSource::Ledger {
        url: ledger.serve().await,
        choice: ReleaseChoice::Auto,
    };
    let node = Node::start(opts).await.unwrap();
    let app = node.router();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let root = SimulatedVendor::load(&dir.path().join("sim-vendor"))
        .unwrap()
        .root_der()
        .to_vec();
    let mut c = Client::new(&url, verifier(&root, &ledger, 3600));
    c.open().await.unwrap();
    assert_eq!(
        c.engine.verified_node().unwrap().model_digest(),
        Some(&model_digest[..])
    );
    let a = c.request(&summarize(24)).await.unwrap();
    assert!(a.end.error.is_none(), "{:?}", a.end);
    // Text leaves on the node's tick: an answer generated within one tick is one chunk.
    assert!(a.chunks >= 1, "{} chunks", a.chunks);
    assert!(!a.text.trim().is_empty());
}

/// Issue 13: an OpenAI-compatible upstream must be on this machine, and a node that
/// cannot measure the upstream's model says so in its evidence and release ("model
/// digest not attested"), which a client refuses unless its policy allows it. (Before,
/// any URL was accepted and the operator's stated digest was attested as if measured.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_must_be_local_and_an_unmeasured_model_is_not_attested() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |url: &str| NodeOptions {
        dir: dir.path().to_path_buf(),
        platform: NodePlatform::Simulated,
        engine: EngineChoice::Upstream {
            url: url.into(),
            model: "default".into(),
            model_file: None,
        },
        bundle: BundleSource::File(std::path::PathBuf::new()),
        sim_vendor: None,
        gpu: confide_node::GpuChoice::None,
        sim_faults: Vec::new(),
        dev_allow_writable_cwd: true,
        cert_lifetime: Duration::from_secs(3600),
        settings: ServiceSettings::default(),
        peer_policy: None,
    };
    for far in [
        "http://10.1.2.3:8000",
        "https://api.example.com/v1",
        "http://localhost:8000",
    ] {
        let e = Node::start(opts(far)).await.unwrap_err();
        assert!(
            matches!(e, confide_node::Error::UpstreamNotLocal(_)),
            "{far}: {e}"
        );
    }

    // On loopback, without the weights: the open "not attested" digest.
    let mut o = opts("http://127.0.0.1:9");
    let m = confide_node::node::measure(&o).await.unwrap();
    assert_eq!(m.model_digest, confide_node::UNATTESTED_MODEL_DIGEST);
    let ledger = Ledger::new(&[release(
        &measure_current_exe().unwrap(),
        m.model_digest,
        m.config_digest,
    )]);
    o.bundle = BundleSource::Ledger {
        url: ledger.serve().await,
        choice: ReleaseChoice::Auto,
    };
    let node = Node::start(o).await.unwrap();
    let app = node.router();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let root = SimulatedVendor::load(&dir.path().join("sim-vendor"))
        .unwrap()
        .root_der()
        .to_vec();

    // A default policy refuses before any request could be sent.
    let mut c = Client::new(&url, verifier(&root, &ledger, 3600));
    let e = c.open().await.unwrap_err();
    assert!(e.to_string().contains("model digest not attested"), "{e}");
    assert!(c.engine.verified_node().is_none());

    // A policy that opts in accepts it, and sees the marker.
    let mut policy = confide_attest::TrustPolicy::production().with_simulated_root(root);
    policy.freshness_secs = 3600;
    policy.allow_unattested_model = true;
    policy.ledger.log_vkey = ledger.key.verifier().to_vkey();
    policy.ledger.witness_vkeys = ledger
        .witnesses
        .iter()
        .map(|w| w.verifier().to_vkey())
        .collect();
    policy.ledger.witness_quorum = 2;
    let mut c = Client::new(&url, confide_node::peer::peer_verifier(&policy).unwrap());
    c.open().await.unwrap();
    assert_eq!(
        c.engine.verified_node().unwrap().model_digest(),
        Some(&confide_node::UNATTESTED_MODEL_DIGEST[..])
    );
}
