//! Shared by the ledger's integration tests: a real ledger on a loopback socket.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use confide_ledger::server::{Ledger, LedgerConfig};

/// Open a ledger in `dir` for `origin` (no witnesses, no extra operators) and serve it on
/// 127.0.0.1; returns its base URL, the ledger and the server task.
pub async fn serve(dir: &Path, origin: &str) -> (String, Ledger, tokio::task::JoinHandle<()>) {
    let ledger = Ledger::open(LedgerConfig {
        dir: dir.to_owned(),
        origin: origin.into(),
        witnesses: vec![],
        operators: vec![],
        recosign_every: None,
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = ledger.router();
    let h = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (format!("http://{addr}"), ledger, h)
}
