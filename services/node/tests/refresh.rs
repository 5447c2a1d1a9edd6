//! `Node::start` end to end in-process: it measures itself, reads its release from a
//! tlog-tiles ledger, serves attested sessions, reports health, and mints a new key,
//! evidence and certificate before the old one's lifetime runs out.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use confide_attest_sim::SimulatedVendor;
use confide_node::ledger::ReleaseChoice;
use confide_node::measure::measure_current_exe;
use confide_node::{BundleSource, EngineChoice, Node, NodeOptions, NodePlatform, ServiceSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_starts_from_the_ledger_and_refreshes_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let model_digest: [u8; 32] = hex::decode(confide_engine::models::TINY.sha256)
        .unwrap()
        .try_into()
        .unwrap();
    // The test binary is "the node executable" here: its SHA-384 is the measurement.
    let measurement = measure_current_exe().unwrap();
    let options = |url: String, settings: ServiceSettings| NodeOptions {
        dir: dir.path().to_path_buf(),
        platform: NodePlatform::Simulated,
        engine: EngineChoice::Embedded(model_path(), confide_engine::LoadOptions::default()),
        bundle: BundleSource::Ledger {
            url,
            choice: ReleaseChoice::Auto,
        },
        sim_vendor: None,
        gpu: confide_node::GpuChoice::None,
        sim_faults: Vec::new(),
        dev_allow_writable_cwd: true,
        cert_lifetime: Duration::from_secs(8),
        settings,
        peer_policy: None,
    };
    let config =
        confide_node::node::config_digest(&options(String::new(), ServiceSettings::default()))
            .unwrap();
    let ledger = Ledger::new(&[
        release(&measurement, [0x44; 32], config), // same binary, another model: not ours
        release(&measurement, model_digest, config),
    ]);
    let ledger_url = ledger.serve().await;

    // The same binary and model under a configuration no release lists: the node
    // finds no release to staple and refuses to start.
    let other = ServiceSettings {
        max_tokens: ServiceSettings::default().max_tokens + 1,
        ..ServiceSettings::default()
    };
    assert!(matches!(
        Node::start(options(ledger_url.clone(), other)).await,
        Err(confide_node::Error::ReleaseNotFound(_))
    ));

    let node = Node::start(options(ledger_url, ServiceSettings::default()))
        .await
        .unwrap();
    assert_eq!(node.measured().config_digest, config);
    assert_eq!(node.measured().measurement, measurement.to_vec());
    assert_eq!(node.measured().model_digest, model_digest);
    let app = node.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let health: serde_json::Value = reqwest::get(format!("{url}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["platform"], "simulated");
    assert_eq!(health["release_index"], 1);

    let root = SimulatedVendor::load(&dir.path().join("sim-vendor"))
        .unwrap()
        .root_der()
        .to_vec();
    let mut first = Client::new(&url, verifier(&root, &ledger, 3600));
    first.open().await.unwrap();
    let cert1 = *first.engine.verified_node().unwrap().certificate_sha256();
    assert_eq!(first.engine.verified_node().unwrap().ledger_index(), 1);

    // Lifetime 8 s: a new credential is due with a quarter left (after 6 s).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut second = Client::new(&url, verifier(&root, &ledger, 3600));
    second.open().await.unwrap();
    let cert2 = *second.engine.verified_node().unwrap().certificate_sha256();
    assert_ne!(cert1, cert2, "the node must have refreshed its certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_without_a_listed_release_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::new(&[release(&[0x12; 48], [0x34; 32], [0x56; 32])]);
    let ledger_url = ledger.serve().await;
    let err = Node::start(NodeOptions {
        dir: dir.path().to_path_buf(),
        platform: NodePlatform::Simulated,
        engine: EngineChoice::Embedded(model_path(), confide_engine::LoadOptions::default()),
        bundle: BundleSource::Ledger {
            url: ledger_url,
            choice: ReleaseChoice::Auto,
        },
        sim_vendor: None,
        gpu: confide_node::GpuChoice::None,
        sim_faults: Vec::new(),
        dev_allow_writable_cwd: true,
        cert_lifetime: Duration::from_secs(3600),
        settings: ServiceSettings::default(),
        peer_policy: None,
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, confide_node::Error::ReleaseNotFound(_)),
        "{err}"
    );
}
