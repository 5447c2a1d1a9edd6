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
            model_digest,
        },
        bundle: BundleSource::File(std::path::PathBuf::new()),
        sim_vendor: None,
        dev_allow_writable_cwd: true,
        cert_lifetime: Duration::from_secs(3600),
        settings: ServiceSettings {
            max_tokens: 24,
            ..ServiceSettings::default()
        },
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
    assert!(a.chunks >= 2, "{} chunks", a.chunks);
    assert!(!a.text.trim().is_empty());
}
