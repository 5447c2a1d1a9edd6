#![allow(clippy::unwrap_used)]
//! Node to node with real processes: `confide up --platform sim-snp --model-node sim-tdx`
//! runs the front node on the SEV-SNP twin and the model on a separate node on the TDX
//! twin; the front node reaches it over mutual RA-TLS (each verifies the other's evidence
//! and ledger release under `peer-policy.toml`). A device verifies the front node, sees
//! the model node's model digest in its evidence, and gets a summary through relay,
//! gateway, front node and model node.
//!
//! Then a model node whose MRTD the ledger does not list (real simulated-TDX evidence
//! for another image, stapling the real model node's release): a front node started
//! against it refuses to start, naming the register, and the impostor never saw a
//! session past its own half of the handshake nor passed anything to its model.
//!
//! Model: `CONFIDE_MODEL` or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod stack;
use confide_attest::{Binding, TrustPolicy};
use confide_attest_sim::{SimulatedTdxAttester, SimulatedTdxVendor, TdMeasurements};
use confide_engine::Engine;
use confide_node::adapters::EvidenceAttester;
use confide_node::{NodeService, ReleaseFacts, ServiceSettings};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{ManualClock, NodeCertResolver, NodeCredential};
use confide_release::{Bundle, LedgerEntry, Platform};
use sha2::Digest as _;
use stack::{Up, confide, model, sample_chat, summarize_last, text, verify_all_passed};

fn tls_now() -> UnixTime {
    UnixTime::since_unix_epoch(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
    )
}

/// The ledger bundle of the model node's (simulated-tdx) release.
fn model_node_bundle(ledger: &str, dir: &Path) -> Bundle {
    for i in 0..8 {
        let out_file = dir.join(format!("bundle-{i}"));
        let out = confide(&[
            "ledger",
            "proof",
            "--ledger",
            ledger,
            "--index",
            &i.to_string(),
            "--out",
            out_file.to_str().unwrap(),
        ]);
        if !out.status.success() {
            break;
        }
        let b = Bundle::decode(&std::fs::read(&out_file).unwrap()).unwrap();
        if let Ok(LedgerEntry::Release(m)) = LedgerEntry::decode(&b.entry)
            && m.platform == Platform::SimulatedTdx
        {
            return b;
        }
    }
    panic!("no simulated-tdx release in the ledger");
}

/// A node-to-node listener presenting real simulated-TDX evidence for an image whose
/// MRTD no release lists, stapling the model node's genuine release. Its engine is an
/// OpenAI upstream at `upstream` (a socket nobody answers): any prompt it ran would show
/// up there as a connection.
fn impostor(
    rt: &tokio::runtime::Runtime,
    sys: &Path,
    bundle: &Bundle,
    policy: &TrustPolicy,
    upstream: &str,
) -> (String, Arc<NodeService>) {
    let LedgerEntry::Release(m) = LedgerEntry::decode(&bundle.entry).unwrap() else {
        unreachable!()
    };
    let vendor = SimulatedTdxVendor::load(&sys.join("sim-vendor/tdx")).unwrap();
    let binding = Binding {
        model_digest: m.model_digest,
        config_digest: m.config_digest,
    };
    let attester = EvidenceAttester::new(
        Arc::new(SimulatedTdxAttester::new(
            vendor,
            TdMeasurements::from_mr_td([0x66; 48]),
        )),
        binding,
    );
    let cred = NodeCredential::issue(
        &attester,
        None,
        &bundle.encode().unwrap(),
        tls_now(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let engine: Arc<dyn Engine> =
        Arc::new(confide_engine::openai::UpstreamEngine::new(upstream, "default").unwrap());
    let svc = NodeService::new(
        Arc::new(NodeCertResolver::new(&cred)),
        ManualClock::new(tls_now()),
        engine,
        ServiceSettings::default(),
        "simulated-tdx",
        bundle.index,
        ReleaseFacts {
            measurement: vec![0x66; 48],
            model_digest: Some(m.model_digest.to_vec()),
            config_digest: Some(m.config_digest.to_vec()),
        },
    );
    assert!(svc.set_peer_verifier(confide_node::peer::peer_verifier(policy).unwrap()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = svc.peer_router();
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, svc)
}

#[test]
fn front_node_on_sim_snp_uses_an_attested_model_node_on_sim_tdx() {
    let tmp = tempfile::tempdir().unwrap();
    let sys = tmp.path().join("sys");
    let up = Up::start_with(&sys, 1, "sim-snp", &["--model-node", "sim-tdx"]);
    let cfg = up.config();
    let cfg_s = cfg.to_str().unwrap();

    // The device verifies the front node (SEV-SNP twin), which attests the model node's
    // model: the digest of the very file the model node loaded.
    let report = verify_all_passed(cfg_s);
    assert_eq!(report["platform"], "simulated");
    let digest = report["model_digest"].as_str().unwrap().to_owned();
    let file = hex::encode(sha2::Sha256::digest(std::fs::read(model()).unwrap()));
    assert_eq!(digest, file);
    let model_release = std::fs::read_to_string(sys.join("model-node/release.toml")).unwrap();
    assert!(
        model_release.contains("platform = \"simulated-tdx\""),
        "{model_release}"
    );
    assert!(model_release.contains(&format!("model_digest = \"{digest}\"")));

    // A private summary: relay, gateway, front node, and over mutual RA-TLS the model node.
    let verified_before = up.events("model-node", "peer_verified");
    let out = summarize_last(cfg_s, &sample_chat(), 3);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());
    assert!(up.events("model-node", "peer_verified") > verified_before);
    assert!(up.events("model-node", "generation_finished") >= 1);
    assert_eq!(up.events("model-node", "peer_refused"), 0);
    // No device ever reached the model node: it only has node-to-node sessions.
    assert_eq!(up.sessions_opened("model-node"), 0);

    // A model node whose MRTD the ledger does not list.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ledger = up.url("ledger");
    let bundle = model_node_bundle(&ledger, tmp.path());
    let peer_policy = sys.join("peer-policy.toml");
    let policy = TrustPolicy::from_toml(&std::fs::read_to_string(&peer_policy).unwrap()).unwrap();
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}", sink.local_addr().unwrap());
    let (impostor_url, svc) = impostor(&rt, &sys, &bundle, &policy, &upstream);

    let front_dir = sys.join("front-2");
    std::fs::create_dir_all(&front_dir).unwrap();
    let out = confide(&[
        "node",
        "serve",
        "--dir",
        front_dir.to_str().unwrap(),
        "--platform",
        "simulated",
        "--upstream-node",
        &impostor_url,
        "--peer-policy",
        peer_policy.to_str().unwrap(),
        "--sim-vendor",
        sys.join("sim-vendor").to_str().unwrap(),
        "--dev-allow-writable-cwd",
        "--max-tokens",
        "12",
        "--listen",
        "127.0.0.1:0",
        "--ledger",
        &ledger,
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "error: the upstream node failed verification: MRTD is not the value the ledger \
             entry lists"
        ),
        "{err}"
    );
    // The impostor kept no session (the front node only read its certificate) and its
    // model was never asked for anything.
    assert_eq!(svc.session_count(), 0);
    sink.set_nonblocking(true).unwrap();
    assert_eq!(
        sink.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock)
    );
}
