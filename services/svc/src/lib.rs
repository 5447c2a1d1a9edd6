//! Shared plumbing for Confide's services.
//!
//! Every party (ledger, witness, issuer, relay, gateway, node) is an HTTP service on a
//! real socket. What they have in common lives here so that each service crate holds
//! only its own protocol logic:
//!
//! - [`init_tracing`]: one place that decides how logs leave a process (stderr, level
//!   from `RUST_LOG`). The node replaces this with its allow-listed layer.
//! - [`serve`]: bind, print the bound address, serve until SIGINT/SIGTERM, then drain.
//! - [`durable`]: crash-safe file writes (write to a temporary file, fsync, rename,
//!   fsync the directory), so a `kill -9` never leaves a half-written state file.
//! - [`problem`]: RFC 9457 problem details responses.
//! - [`metrics`]: host metrics (OpenMetrics text on a separate listener, ADR 0900).

pub mod durable;
pub mod metrics;
pub mod problem;

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

/// Initialise process-wide logging to stderr. The level comes from `RUST_LOG`
/// (default `info`). Safe to call more than once; later calls are ignored.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Bind `listen`, returning the listener and the address actually bound (useful with
/// port 0 in tests).
pub async fn bind(listen: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    Ok((listener, addr))
}

/// Serve `router` on `listener` until SIGINT or SIGTERM, then stop accepting and let
/// in-flight requests finish. The client's socket address is made available to
/// handlers through `ConnectInfo<SocketAddr>` (the relay needs it for rate limiting;
/// no other party should read it).
pub async fn serve(listener: TcpListener, router: axum::Router) -> anyhow::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server failed")
}

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
