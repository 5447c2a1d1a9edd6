//! `confide issuer` subcommands: set up, manage and serve a Privacy Pass issuer
//! (RFC 9578). See docs/tokens.md.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use confide_issuer::server::{IssuerConfig, IssuerState, REQUEST_PATH, ROUTES};
use confide_issuer::{FileAccountStore, IssuerDir, IssuerMetrics, RateLimiter, router, unix_now};
use confide_svc::metrics::{HttpMetrics, MetricsRegistry};
use confide_tokens::keys::{ChallengeConfig, RotationPolicy};

/// `confide issuer` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IssuerCmd {
    /// Create an issuer directory with fresh keys of both token types.
    Init(InitArgs),
    /// Add an account; prints its bearer credential once on stdout.
    AddAccount(AddAccountArgs),
    /// Rotate keys now: new keys issue, old keys redeem until their overlap ends.
    Rotate(DirArgs),
    /// Serve the issuer directory and issuance over HTTP.
    Serve(ServeArgs),
}

/// Arguments of `confide issuer init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Issuer state directory (created, mode 0700).
    #[arg(long)]
    pub dir: PathBuf,
    /// `issuer_name` of the fixed token challenge.
    #[arg(long)]
    pub issuer_name: String,
    /// `origin_info` of the fixed token challenge: the gateway's name.
    #[arg(long, default_value = "")]
    pub origin_info: String,
    /// How long each key issues, seconds.
    #[arg(long, default_value_t = 7 * 86_400)]
    pub issue_secs: u64,
    /// How long a key still redeems after it stops issuing, seconds.
    #[arg(long, default_value_t = 86_400)]
    pub overlap_secs: u64,
}

/// Arguments of `confide issuer add-account`.
#[derive(Debug, clap::Args)]
pub struct AddAccountArgs {
    /// Issuer state directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Account id.
    #[arg(long)]
    pub id: String,
    /// Issuance limit per window for this account (default: the server's).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// A command that only needs the directory.
#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// Issuer state directory.
    #[arg(long)]
    pub dir: PathBuf,
}

/// Arguments of `confide issuer serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Issuer state directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// Tokens per account per window.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Rate-limit window, seconds.
    #[arg(long, default_value_t = 86_400)]
    pub window_secs: u64,
    /// Shared rate-limit counts (`redis://host:port/`); required when several issuer
    /// replicas serve the same accounts. Default: an embedded store, `DIR/ratelimit.redb`.
    #[arg(long)]
    pub redis: Option<String>,
    /// `issuer-request-uri` published in the directory (absolute or relative).
    #[arg(long, default_value = REQUEST_PATH)]
    pub request_uri: String,
    /// Serve `GET /metrics` (OpenMetrics) on this separate address, never on the
    /// public one (ADR 0900). Off when not given.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

/// Run a `confide issuer` subcommand.
pub async fn run(cmd: IssuerCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        IssuerCmd::Init(a) => {
            let challenge = ChallengeConfig {
                issuer_name: a.issuer_name,
                origin_info: a.origin_info,
            };
            let policy = RotationPolicy {
                issue_secs: a.issue_secs,
                overlap_secs: a.overlap_secs,
            };
            let (dir, keys) = IssuerDir::init(
                &a.dir,
                challenge,
                policy,
                unix_now(),
                &mut rand::rngs::OsRng,
            )?;
            println!("initialised {}", dir.path().display());
            println!("gateway keys {}", dir.redemption_keys_path().display());
            println!(
                "{}",
                serde_json::to_string_pretty(&keys.directory(REQUEST_PATH, unix_now()))?
            );
            Ok(ExitCode::SUCCESS)
        }
        IssuerCmd::AddAccount(a) => {
            IssuerDir::open(&a.dir)
                .context("not an issuer directory (run `confide issuer init`)")?;
            let cred =
                FileAccountStore::add_account(&a.dir, &a.id, a.limit, &mut rand::rngs::OsRng)?;
            // The credential goes to stdout only, once; it is not stored anywhere.
            println!("{cred}");
            Ok(ExitCode::SUCCESS)
        }
        IssuerCmd::Rotate(a) => {
            let (dir, mut keys) = IssuerDir::open(&a.dir)?;
            keys.rotate(unix_now(), &mut rand::rngs::OsRng)?;
            dir.save(&keys)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&keys.directory(REQUEST_PATH, unix_now()))?
            );
            Ok(ExitCode::SUCCESS)
        }
        IssuerCmd::Serve(a) => serve(a).await,
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    confide_svc::init_tracing();
    let (dir, keys) =
        IssuerDir::open(&a.dir).context("not an issuer directory (run `confide issuer init`)")?;
    let accounts = Arc::new(FileAccountStore::load(&a.dir)?);
    let limiter = match &a.redis {
        Some(url) => RateLimiter::connect_redis(url, a.window_secs)
            .await
            .context("connecting to the Redis rate-limit store")?,
        None => RateLimiter::open(&dir.ratelimit_path(), a.window_secs)?,
    };
    let mut reg = MetricsRegistry::new();
    let http = HttpMetrics::new(&mut reg, ROUTES);
    let config = IssuerConfig {
        request_uri: a.request_uri,
        default_limit: a.limit,
        metrics: IssuerMetrics::new(&mut reg),
    };
    let state = IssuerState::new(keys, dir, accounts, limiter, config);
    state.rotate_if_due(unix_now())?;
    let rotator = Arc::clone(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = rotator.rotate_if_due(unix_now()) {
                tracing::error!(error = %e, "key rotation failed");
            }
        }
    });
    if let Some(m) = &a.metrics_listen {
        confide_svc::metrics::spawn_endpoint(m, reg.finish()).await?;
    }
    let (listener, addr) = confide_svc::bind(&a.listen).await?;
    // On stdout (not the log) so scripts and tests can find the port.
    println!("listening on http://{addr}");
    std::io::stdout().flush().ok();
    confide_svc::serve(listener, http.instrument(router(state))).await?;
    Ok(ExitCode::SUCCESS)
}
