//! Starting a node: measure, attest, staple, serve, refresh.
//!
//! [`Node::start`] performs, in order:
//! 1. the stateless check: refuse a writable working directory unless told otherwise;
//! 2. the engine (embedded GGUF model or OpenAI-compatible upstream) and its model digest;
//! 3. the configuration digest and the measurement (the executable's SHA-384 on the
//!    simulated platform, the hardware's launch measurement otherwise);
//! 4. the attester (simulated vendor, or configfs-tsm through `confide-attest-tsm`), bound
//!    to model and configuration;
//! 5. the ledger bundle for this release (from the ledger's tiles, or a bundle file),
//!    checked to list this node's measurement and model digest;
//! 6. the first RA-TLS credential (a fresh key whose SPKI digest is in REPORT_DATA);
//! 7. the session service, an idle-expiry task and a refresh task that re-fetches the
//!    bundle and mints a new credential before clients' freshness window runs out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use confide_attest::{Binding, Platform as AttestPlatform};
use confide_attest_sim::{SIMULATED_WARNING, SimulatedAttester, SimulatedVendor};
use confide_engine::openai::UpstreamEngine;
use confide_engine::{EmbeddedEngine, Engine, LoadOptions};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{CertRefresher, ManualClock, NodeCertResolver, NodeCredential, server_config};
use confide_release::{Bundle, Platform as LedgerPlatform};

use crate::Error;
use crate::adapters::EvidenceAttester;
use crate::ledger::{Identity, ReleaseChoice, check_bundle_identity, fetch_bundle};
use crate::measure::{NodeConfigDigest, measure_current_exe};
use crate::server::{NodeService, ReleaseFacts, ServiceSettings};

/// The TEE platform a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePlatform {
    /// The simulated vendor: no protection, for development and tests.
    Simulated,
    /// AMD SEV-SNP through configfs-tsm.
    SevSnp,
    /// Intel TDX through configfs-tsm.
    Tdx,
}

impl NodePlatform {
    /// The platform name used in ledger entries and policies.
    pub fn name(self) -> &'static str {
        match self {
            Self::Simulated => "simulated",
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
        }
    }

    fn ledger(self) -> LedgerPlatform {
        match self {
            Self::Simulated => LedgerPlatform::Simulated,
            Self::SevSnp => LedgerPlatform::SevSnp,
            Self::Tdx => LedgerPlatform::Tdx,
        }
    }
}

/// Where the model runs.
#[derive(Debug, Clone)]
pub enum EngineChoice {
    /// A GGUF file loaded in-process, with how the engine runs (threads, cache,
    /// concurrency: speed and memory only, not part of the measured configuration).
    Embedded(PathBuf, LoadOptions),
    /// An OpenAI-compatible server inside the same TEE, with the model name to request
    /// and the SHA-256 of its weights (the node cannot read them, so the operator states
    /// the digest the release lists).
    Upstream {
        /// Base URL.
        url: String,
        /// Model name.
        model: String,
        /// SHA-256 of the upstream's weights.
        model_digest: [u8; 32],
    },
}

/// Where the stapled ledger bundle comes from.
#[derive(Debug, Clone)]
pub enum BundleSource {
    /// A C2SP tlog-tiles ledger at this URL; re-read at every credential refresh.
    Ledger {
        /// Base URL.
        url: String,
        /// Which release.
        choice: ReleaseChoice,
    },
    /// A bundle file (as `confide ledger proof` writes it); read once.
    File(PathBuf),
}

/// Everything `confide node serve` configures.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node's directory (holds `sim-vendor/` for the simulated platform only).
    pub dir: PathBuf,
    /// Platform.
    pub platform: NodePlatform,
    /// Engine.
    pub engine: EngineChoice,
    /// Bundle source.
    pub bundle: BundleSource,
    /// Shared simulated vendor directory (default `<dir>/sim-vendor`).
    pub sim_vendor: Option<PathBuf>,
    /// Allow a writable working directory (development only).
    pub dev_allow_writable_cwd: bool,
    /// Certificate lifetime (clients' freshness window); refreshed with a quarter left.
    pub cert_lifetime: Duration,
    /// Session settings.
    pub settings: ServiceSettings,
}

/// What a node measured about itself (public values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Platform.
    pub platform: NodePlatform,
    /// 48-byte measurement.
    pub measurement: Vec<u8>,
    /// SHA-256 of the model.
    pub model_digest: [u8; 32],
    /// SHA-256 of the canonical configuration.
    pub config_digest: [u8; 32],
}

/// A running node: the HTTP service and its background tasks.
#[derive(Debug)]
pub struct Node {
    service: Arc<NodeService>,
    measured: Measured,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn tls_now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(now_secs()))
}

/// Refuses a writable working directory: a node must have nowhere to put request data.
///
/// The check creates (and removes) an empty probe file, because only an attempt tells
/// the truth about read-only mounts, ACLs and root.
pub fn check_cwd_read_only() -> Result<(), Error> {
    let cwd = std::env::current_dir().map_err(|_| Error::Config("no working directory"))?;
    check_dir_read_only(&cwd)
}

/// [`check_cwd_read_only`] for an explicit directory.
pub fn check_dir_read_only(dir: &Path) -> Result<(), Error> {
    let probe = dir.join(format!(
        ".confide-node-probe-{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Err(Error::WritableCwd)
        }
        Err(_) => Ok(()),
    }
}

/// Loads the engine named by `choice`.
pub async fn load_engine(choice: &EngineChoice) -> Result<(Arc<dyn Engine>, [u8; 32]), Error> {
    match choice {
        EngineChoice::Embedded(path, options) => {
            let e = EmbeddedEngine::open(path, options.clone())
                .await
                .map_err(Error::Engine)?;
            let digest = e
                .info()
                .sha256
                .ok_or(Error::Config("embedded engine reported no model digest"))?;
            Ok((Arc::new(e), digest))
        }
        EngineChoice::Upstream {
            url,
            model,
            model_digest,
        } => {
            let e = UpstreamEngine::new(url, model).map_err(Error::Engine)?;
            Ok((Arc::new(e), *model_digest))
        }
    }
}

/// The configuration digest for `opts`.
pub fn config_digest(opts: &NodeOptions) -> Result<[u8; 32], Error> {
    let (engine, upstream) = match &opts.engine {
        EngineChoice::Embedded(..) => ("embedded", String::new()),
        EngineChoice::Upstream { url, model, .. } => ("upstream", format!("{url}#{model}")),
    };
    NodeConfigDigest {
        platform: opts.platform.name().to_owned(),
        engine: engine.to_owned(),
        upstream,
        max_tokens: opts.settings.max_tokens,
        session_idle_secs: opts.settings.idle_timeout.as_secs(),
        dev_allow_writable_cwd: opts.dev_allow_writable_cwd,
    }
    .digest()
}

/// SEV-SNP MEASUREMENT and HOST_DATA offsets (ABI spec 56860, Table 23).
const SNP_MEASUREMENT: std::ops::Range<usize> = 0x90..0xC0;
const SNP_HOST_DATA: std::ops::Range<usize> = 0xC0..0xE0;
/// TDX quote v4: MRTD and MRCONFIGID in the TD report body after the 48-byte header.
const TDX_MRTD: std::ops::Range<usize> = 184..232;
const TDX_MRCONFIGID: std::ops::Range<usize> = 232..280;

/// Builds the attester and learns the measurement.
fn attester(
    opts: &NodeOptions,
    binding: Binding,
) -> Result<(Arc<dyn confide_attest::Attester>, Vec<u8>), Error> {
    match opts.platform {
        NodePlatform::Simulated => {
            let dir = opts
                .sim_vendor
                .clone()
                .unwrap_or_else(|| opts.dir.join("sim-vendor"));
            let vendor = SimulatedVendor::load_or_create(&dir).map_err(Error::SimulatedVendor)?;
            let m = measure_current_exe()?;
            Ok((Arc::new(SimulatedAttester::new(vendor, m)), m.to_vec()))
        }
        NodePlatform::SevSnp | NodePlatform::Tdx => {
            let p = if opts.platform == NodePlatform::Tdx {
                AttestPlatform::Tdx
            } else {
                AttestPlatform::SevSnp
            };
            let a = confide_attest_tsm::TsmAttester::open(confide_attest_tsm::DEFAULT_ROOT)
                .map_err(|_| Error::Attestation("configfs-tsm is not available"))?;
            if confide_attest::Attester::platform(&a) != p {
                return Err(Error::Attestation(
                    "configfs-tsm provider is not the requested platform",
                ));
            }
            // One report up front: the hardware, not the node, knows the launch
            // measurement, and the host must have set HOST_DATA / MRCONFIGID to this
            // node's model+config binding at launch or every client would refuse it.
            let ev = confide_attest::Attester::attest(
                &a,
                &confide_attest::AttestRequest {
                    report_data: [0; 64],
                    binding: Some(binding),
                    gpu: None,
                    now: confide_attest::UnixTime(now_secs()),
                },
            )
            .map_err(|_| Error::Attestation("configfs-tsm did not produce a report"))?;
            let (mr, field) = if p == AttestPlatform::Tdx {
                (TDX_MRTD, TDX_MRCONFIGID)
            } else {
                (SNP_MEASUREMENT, SNP_HOST_DATA)
            };
            let measurement = ev
                .report
                .get(mr)
                .ok_or(Error::Attestation("report too short"))?
                .to_vec();
            let want =
                confide_attest::binding_digest(&binding.model_digest, &binding.config_digest);
            let got = ev
                .report
                .get(field)
                .ok_or(Error::Attestation("report too short"))?;
            if got.get(..32) != Some(&want[..]) {
                return Err(Error::Attestation(
                    "HOST_DATA/MRCONFIGID does not hold this node's model and config binding",
                ));
            }
            Ok((Arc::new(a), measurement))
        }
    }
}

async fn get_bundle(source: &BundleSource, id: &Identity) -> Result<Bundle, Error> {
    match source {
        BundleSource::Ledger { url, choice } => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .map_err(|_| Error::Ledger("cannot build an HTTP client"))?;
            fetch_bundle(&client, url, id, *choice, now_secs()).await
        }
        BundleSource::File(path) => {
            let bytes =
                std::fs::read(path).map_err(|_| Error::Ledger("cannot read bundle file"))?;
            let b =
                Bundle::decode(&bytes).map_err(|_| Error::Ledger("bundle file is malformed"))?;
            check_bundle_identity(&b, id, now_secs())?;
            Ok(b)
        }
    }
}

/// Measures the node described by `opts` without serving (for `confide node measure`).
pub async fn measure(opts: &NodeOptions) -> Result<Measured, Error> {
    let (_, model_digest) = load_engine(&opts.engine).await?;
    let config_digest = config_digest(opts)?;
    let measurement = match opts.platform {
        NodePlatform::Simulated => measure_current_exe()?.to_vec(),
        _ => {
            let binding = Binding {
                model_digest,
                config_digest,
            };
            attester(opts, binding)?.1
        }
    };
    Ok(Measured {
        platform: opts.platform,
        measurement,
        model_digest,
        config_digest,
    })
}

impl Node {
    /// Starts a node (see the module docs for the steps).
    pub async fn start(opts: NodeOptions) -> Result<Self, Error> {
        tracing::info!(event = "node_starting");
        if !opts.dev_allow_writable_cwd {
            check_cwd_read_only()?;
        }
        if opts.platform == NodePlatform::Simulated {
            eprintln!("{SIMULATED_WARNING}");
        }
        let (engine, model_digest) = load_engine(&opts.engine).await?;
        let config_digest = config_digest(&opts)?;
        let binding = Binding {
            model_digest,
            config_digest,
        };
        let (platform_attester, measurement) = attester(&opts, binding)?;
        let attester = Arc::new(EvidenceAttester::new(platform_attester, binding));
        let id = Identity {
            platform: opts.platform.ledger(),
            measurement: measurement.clone(),
            model_digest,
            config_digest,
        };
        let bundle = get_bundle(&opts.bundle, &id).await?;
        tracing::info!(event = "bundle_fetched", index = bundle.index);
        let first_index = bundle.index;
        let bundle_bytes = bundle
            .encode()
            .map_err(|_| Error::Ledger("bundle does not encode"))?;

        let refresher = CertRefresher::new(opts.cert_lifetime);
        let cred = NodeCredential::issue(
            attester.as_ref(),
            None,
            &bundle_bytes,
            tls_now(),
            refresher.lifetime(),
        )
        .map_err(Error::Ratls)?;
        tracing::info!(
            event = "credential_issued",
            not_after = cred.not_after().as_secs()
        );
        let resolver = Arc::new(NodeCertResolver::new(&cred));
        let clock = ManualClock::new(tls_now());
        // Fail at start, not at the first session, if the TLS configuration cannot be built.
        server_config(Arc::clone(&resolver), Arc::clone(&clock)).map_err(Error::Tls)?;
        let service = NodeService::new(
            Arc::clone(&resolver),
            clock,
            engine,
            opts.settings,
            opts.platform.name(),
            bundle.index,
            ReleaseFacts {
                measurement: measurement.clone(),
                model_digest: Some(model_digest.to_vec()),
                config_digest: Some(config_digest.to_vec()),
            },
        );
        let mut tasks = vec![service.spawn_expiry()];

        // Refresh: re-read the ledger (newer checkpoint, same release) and mint a new
        // key + evidence + certificate with a quarter of the lifetime left.
        let svc = Arc::clone(&service);
        let source = opts.bundle.clone();
        tasks.push(tokio::spawn(async move {
            let mut current = cred;
            let mut stapled = bundle_bytes;
            let mut stapled_index = first_index;
            loop {
                let due = refresher.refresh_at(&current).as_secs();
                let wait = due.saturating_sub(now_secs()).max(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                if let BundleSource::Ledger { .. } = source {
                    match get_bundle(&source, &id).await.and_then(|b| {
                        let idx = b.index;
                        b.encode()
                            .map(|e| (idx, e))
                            .map_err(|_| Error::Ledger("bundle does not encode"))
                    }) {
                        Ok((idx, b)) => {
                            stapled_index = idx;
                            stapled = b;
                            tracing::info!(event = "bundle_fetched", index = idx);
                        }
                        Err(_) => tracing::warn!(event = "bundle_fetch_failed", kind = "ledger"),
                    }
                }
                match NodeCredential::issue(
                    attester.as_ref(),
                    None,
                    &stapled,
                    tls_now(),
                    refresher.lifetime(),
                ) {
                    Ok(c) => {
                        resolver.install(&c);
                        // /health reports what new sessions are now stapled with.
                        svc.set_release_index(stapled_index);
                        tracing::info!(
                            event = "credential_issued",
                            not_after = c.not_after().as_secs()
                        );
                        current = c;
                    }
                    Err(_) => {
                        tracing::warn!(event = "credential_refresh_failed", kind = "attestation");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        }));

        Ok(Self {
            service,
            measured: Measured {
                platform: opts.platform,
                measurement,
                model_digest,
                config_digest,
            },
            tasks,
        })
    }

    /// The HTTP router to serve.
    pub fn router(&self) -> axum::Router {
        self.service.router()
    }

    /// The session service.
    pub fn service(&self) -> &Arc<NodeService> {
        &self.service
    }

    /// What the node measured about itself.
    pub fn measured(&self) -> &Measured {
        &self.measured
    }
}
