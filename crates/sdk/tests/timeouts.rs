//! A party that accepts a connection and then says nothing must not hang the client
//! (issue 13, finding 7): the ledger fetch gives up after `Timeouts::fetch`, a session
//! request through a silent relay after `Timeouts::read`. The test's own timeout only
//! guards against a hang; it asserts no duration.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use confide_attest::TrustPolicy;
use confide_note::{KeyType, SignerKey};
use confide_ohttp::bhttp::Request;
use confide_ohttp::{KeyPair, SymmetricSuite};
use confide_sdk::config::{ClientConfig, Timeouts};
use confide_sdk::error::Party;
use confide_sdk::issuance::IssuerTokens;
use confide_sdk::wire::{WireClient, WireError};
use confide_sdk::{Client, Error};

/// A loopback listener that accepts every connection, reads, and never answers.
fn silent() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(s) = s else { break };
            held.push(s); // kept open, never written to
        }
    });
    url
}

const SHORT: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    fetch: Duration::from_secs(1),
    read: Duration::from_secs(1),
};

/// Fails the test if `f` has not finished long after the timeouts under test.
async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the client hung on a silent party")
}

#[tokio::test]
async fn a_silent_ledger_is_unreachable_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SignerKey::from_seed("ledger.test", KeyType::Ed25519, &[3; 32]).unwrap();
    let mut policy = TrustPolicy::production();
    policy.ledger.log_vkey = ledger.verifier().to_vkey();
    policy.ledger.allow_no_witness_quorum = true;
    std::fs::write(dir.path().join("policy.toml"), policy.to_toml()).unwrap();
    let quiet = silent();
    let text = format!(
        "version = 1\n[endpoints]\nrelay = \"{quiet}/\"\nissuer = \"{quiet}\"\nledger = \"{quiet}\"\n\
         [account]\ncredential = \"acct\"\n[tokens]\nissuer_name = \"i\"\norigin_info = \"g\"\n\
         key_ids = [\"{}\"]\n[trust]\npolicy_file = \"policy.toml\"\n",
        "01".repeat(32)
    );
    let path = dir.path().join("client.toml");
    std::fs::write(&path, text).unwrap();
    let config = ClientConfig::load(&path).unwrap();
    let tokens = Arc::new(IssuerTokens::new(&config).unwrap());
    let client = Client::with_timeouts(config, tokens, SHORT).unwrap();
    match guarded(client.verify()).await {
        Err(Error::Unreachable {
            party: Party::Ledger,
            ..
        }) => {}
        other => panic!("expected the ledger to be unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_relay_ends_the_request() {
    let key = KeyPair::from_secret_bytes(1, &[9; 32], SymmetricSuite::defaults())
        .unwrap()
        .config()
        .clone();
    let wire = WireClient::new_without_ledger_check(
        SHORT.http_client().unwrap(),
        format!("{}/", silent()),
        key,
    );
    let req = Request::new("GET", "https", "gateway", "/v1/health");
    match guarded(wire.send(&req)).await {
        Err(WireError::Transport(_)) => {}
        other => panic!("expected a transport error, got {other:?}"),
    }
}
