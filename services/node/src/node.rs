//! Starting a node: measure, attest, staple, serve, refresh.
//!
//! [`Node::start`] performs, in order:
//! 1. the stateless check: refuse a writable working directory unless told otherwise;
//! 2. the engine and its model digest: an embedded GGUF model (its file's SHA-256), an
//!    OpenAI-compatible upstream on loopback or a unix socket (the SHA-256 of
//!    `--upstream-model-file`, or the open "not attested" digest), or another attested
//!    node (the model digest that node attests, learned by verifying it: [`crate::peer`]);
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
use confide_attest_sim::{
    SIMULATED_WARNING, SimulatedAttester, SimulatedTdxAttester, SimulatedTdxVendor,
    SimulatedVendor, TdMeasurements,
};
use confide_engine::openai::UpstreamEngine;
use confide_engine::{EmbeddedEngine, Engine, LoadOptions};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{
    CertRefresher, ManualClock, NodeCertResolver, NodeCredential, NodeVerifier, Register,
    UNATTESTED_MODEL_DIGEST, server_config,
};
use confide_release::{Bundle, Platform as LedgerPlatform};

use crate::Error;
use crate::adapters::EvidenceAttester;
use crate::gpu::{GpuAttesters, GpuChoice, SimFault};
use crate::ledger::{Identity, ReleaseChoice, check_bundle_identity, fetch_bundle};
use crate::measure::{NodeConfigDigest, measure_current_exe};
use crate::peer::{PeerError, PeerNodeEngine, load_peer_policy, peer_verifier, probe};
use crate::server::{NodeService, ReleaseFacts, ServiceSettings};

/// The TEE platform a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePlatform {
    /// The simulated SEV-SNP vendor: no protection, for development and tests.
    Simulated,
    /// The simulated TDX vendor (DCAP quotes under a local root): no protection either.
    SimulatedTdx,
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
            Self::SimulatedTdx => "simulated-tdx",
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
        }
    }

    /// Whether this is one of the simulated twins (no hardware protection at all).
    pub fn is_simulated(self) -> bool {
        matches!(self, Self::Simulated | Self::SimulatedTdx)
    }

    fn ledger(self) -> LedgerPlatform {
        match self {
            Self::Simulated => LedgerPlatform::Simulated,
            Self::SimulatedTdx => LedgerPlatform::SimulatedTdx,
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
    /// An OpenAI-compatible server inside the same TEE (loopback or a unix socket, see
    /// [`check_upstream_local`]), with the model name to request.
    Upstream {
        /// Base URL (`http://127.0.0.1:PORT`, `unix:/PATH`).
        url: String,
        /// Model name.
        model: String,
        /// The weights the upstream serves, readable by the node: it hashes them and
        /// attests that digest. Without it the node attests
        /// [`UNATTESTED_MODEL_DIGEST`] ("model digest not attested"), which clients
        /// refuse unless their policy allows it; an operator's bare word never counts.
        model_file: Option<PathBuf>,
    },
    /// Another attested node, reached over mutual RA-TLS ([`crate::peer`]); needs
    /// [`NodeOptions::peer_policy`].
    PeerNode {
        /// Base URL of the other node's node-to-node listener.
        url: String,
        /// The model digest the configuration expects; the verified peer must attest
        /// exactly this. Without it, the digest the peer attests at start is used.
        model_digest: Option<[u8; 32]>,
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
    /// The confidential GPU attested next to the CPU, if any.
    pub gpu: GpuChoice,
    /// Hostile-host behaviour to reproduce (simulated platforms only; tests).
    pub sim_faults: Vec<SimFault>,
    /// Allow a writable working directory (development only).
    pub dev_allow_writable_cwd: bool,
    /// Certificate lifetime (clients' freshness window); refreshed with a quarter left.
    pub cert_lifetime: Duration,
    /// Session settings.
    pub settings: ServiceSettings,
    /// The trust policy (devices' TOML format, `[ledger]` included) for other nodes: the
    /// upstream node of [`EngineChoice::PeerNode`], and callers of the node-to-node
    /// route ([`Node::peer_router`]). Its digest is part of the configuration digest.
    pub peer_policy: Option<PathBuf>,
}

/// What a node measured about itself (public values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Platform.
    pub platform: NodePlatform,
    /// The 48-byte primary measurement (SEV-SNP MEASUREMENT, TDX MRTD).
    pub measurement: Vec<u8>,
    /// Every register the hardware reports, by name (`confide_verify::registers`).
    pub registers: Vec<Register>,
    /// SHA-256 of the model.
    pub model_digest: [u8; 32],
    /// SHA-256 of the canonical configuration.
    pub config_digest: [u8; 32],
}

impl Measured {
    fn new(
        platform: NodePlatform,
        registers: Vec<Register>,
        model_digest: [u8; 32],
        config_digest: [u8; 32],
    ) -> Self {
        // The first register is the primary one on every layout (MEASUREMENT, MRTD).
        let measurement = registers
            .first()
            .map(|r| r.value.clone())
            .unwrap_or_default();
        Measured {
            platform,
            measurement,
            registers,
            model_digest,
            config_digest,
        }
    }

    fn register(&self, name: &str) -> Option<&[u8]> {
        self.registers
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.value.as_slice())
    }

    /// The SEV-SNP guest policy a release for this node pins (SEV-SNP layouts only).
    pub fn snp_policy(&self) -> Option<u64> {
        let p: [u8; 8] = self.register("POLICY")?.try_into().ok()?;
        Some(u64::from_le_bytes(p))
    }

    /// RTMR0..2 a release for this node pins (TDX layouts only; RTMR3 is extended at
    /// run time, so a release leaves it open unless its operator pins it on purpose).
    pub fn rtmrs(&self) -> Vec<Vec<u8>> {
        ["RTMR0", "RTMR1", "RTMR2"]
            .iter()
            .filter_map(|n| self.register(n).map(<[u8]>::to_vec))
            .collect()
    }

    /// The GPU's SPDM measurements (`gpu.N` registers) by block index: the reference
    /// values a release for this node lists (empty without a GPU). For a real GPU, take
    /// them from NVIDIA's signed RIMs instead (`confide release gpu-reference`), so the
    /// release states what NVIDIA shipped rather than what this GPU happens to report.
    pub fn gpu_reference(&self) -> std::collections::BTreeMap<u8, Vec<u8>> {
        self.registers
            .iter()
            .filter_map(|r| {
                let i = r.name.strip_prefix("gpu.")?.parse().ok()?;
                Some((i, r.value.clone()))
            })
            .collect()
    }
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

/// Refuses an OpenAI-compatible upstream that is not on this machine: a literal
/// loopback address or `unix:/PATH` only. A host name is refused too, even `localhost`:
/// what it resolves to is the host's to decide, and plaintext must not leave the TEE.
/// (Another machine is reached as an attested node, [`EngineChoice::PeerNode`].)
pub fn check_upstream_local(url: &str) -> Result<(), Error> {
    if confide_engine::openai::unix_socket_path(url)
        .map_err(Error::Engine)?
        .is_some()
    {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| Error::UpstreamNotLocal(url.to_owned()))?;
    let host = parsed.host_str().unwrap_or_default();
    // IPv6 literals come bracketed; a name does not parse as an address at all.
    let local = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if local {
        Ok(())
    } else {
        Err(Error::UpstreamNotLocal(
            parsed.host_str().unwrap_or(url).to_owned(),
        ))
    }
}

/// SHA-256 of a model file the node can read (an upstream's weights).
fn hash_model_file(path: &Path) -> Result<[u8; 32], Error> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)
        .map_err(|_| Error::Config("cannot open --upstream-model-file"))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|_| Error::Config("cannot read --upstream-model-file"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// The peer policy's verifier and digest, if the node has one.
fn peer_policy(opts: &NodeOptions) -> Result<Option<(NodeVerifier, [u8; 32])>, Error> {
    let Some(path) = &opts.peer_policy else {
        return Ok(None);
    };
    let (policy, digest) = load_peer_policy(path)?;
    Ok(Some((peer_verifier(&policy)?, digest)))
}

/// A loaded engine and the model digest the node attests for it.
pub struct LoadedEngine {
    /// The engine.
    pub engine: Arc<dyn Engine>,
    /// The model digest to bind into evidence (and that the release must list).
    pub model_digest: [u8; 32],
    /// For an upstream node: the engine, to hand it the node's credential once issued.
    pub peer: Option<Arc<PeerNodeEngine>>,
}

/// Loads the engine `opts` names. For an upstream node this verifies it (evidence and
/// release under the peer policy) and takes the model digest it attests.
pub async fn load_engine(opts: &NodeOptions) -> Result<LoadedEngine, Error> {
    match &opts.engine {
        EngineChoice::Embedded(path, options) => {
            let e = EmbeddedEngine::open(path, options.clone())
                .await
                .map_err(Error::Engine)?;
            let digest = e
                .info()
                .sha256
                .ok_or(Error::Config("embedded engine reported no model digest"))?;
            Ok(LoadedEngine {
                engine: Arc::new(e),
                model_digest: digest,
                peer: None,
            })
        }
        EngineChoice::Upstream {
            url,
            model,
            model_file,
        } => {
            check_upstream_local(url)?;
            let e = UpstreamEngine::new(url, model).map_err(Error::Engine)?;
            let model_digest = match model_file {
                Some(path) => hash_model_file(path)?,
                None => UNATTESTED_MODEL_DIGEST,
            };
            Ok(LoadedEngine {
                engine: Arc::new(e),
                model_digest,
                peer: None,
            })
        }
        EngineChoice::PeerNode { url, model_digest } => {
            let (verifier, _) = peer_policy(opts)?.ok_or(Error::Config(
                "an upstream node needs a peer policy (--peer-policy)",
            ))?;
            // The model digest comes from the verified peer, never from the operator:
            // a configured digest is only a check on it.
            let node = probe(url, verifier.clone()).await?;
            let attested = node
                .model_digest()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
                .ok_or(PeerError::NoModelDigest)?;
            if let Some(want) = model_digest
                && *want != attested
            {
                return Err(PeerError::ModelDigestMismatch {
                    expected: hex::encode(want),
                    got: hex::encode(attested),
                }
                .into());
            }
            tracing::info!(event = "peer_verified", kind = "peer");
            let e = Arc::new(PeerNodeEngine::new(url, verifier, attested)?);
            Ok(LoadedEngine {
                engine: Arc::clone(&e) as Arc<dyn Engine>,
                model_digest: attested,
                peer: Some(e),
            })
        }
    }
}

/// The configuration digest for `opts`.
pub fn config_digest(opts: &NodeOptions) -> Result<[u8; 32], Error> {
    let (engine, upstream) = match &opts.engine {
        EngineChoice::Embedded(..) => ("embedded", String::new()),
        EngineChoice::Upstream { url, model, .. } => ("upstream", format!("{url}#{model}")),
        EngineChoice::PeerNode { url, .. } => ("peer-node", url.clone()),
    };
    let peer_policy = match &opts.peer_policy {
        Some(path) => hex::encode(load_peer_policy(path)?.1),
        None => String::new(),
    };
    NodeConfigDigest {
        platform: opts.platform.name().to_owned(),
        engine: engine.to_owned(),
        upstream,
        max_tokens: opts.settings.max_tokens,
        session_idle_secs: opts.settings.idle_timeout.as_secs(),
        dev_allow_writable_cwd: opts.dev_allow_writable_cwd,
        peer_policy,
        stream_tick_ms: {
            let tick = opts.settings.effective_stream_tick();
            (tick != crate::DEFAULT_STREAM_TICK)
                .then(|| u64::try_from(tick.as_millis()).unwrap_or(u64::MAX))
        },
    }
    .digest()
}

/// SEV-SNP HOST_DATA offset (ABI spec 56860, Table 23).
const SNP_HOST_DATA: std::ops::Range<usize> = 0xC0..0xE0;
/// TDX quote v4: MRCONFIGID in the TD report body after the 48-byte header.
const TDX_MRCONFIGID: std::ops::Range<usize> = 232..280;

/// What the simulated TDX twin measures. Real TDVF puts the firmware in MRTD and the
/// firmware configuration, kernel and initrd/command line in RTMR0..2; the twin has one
/// binary, so MRTD is its SHA-384 and each RTMR a labelled digest of it. Every register
/// differs and every one depends on the binary, so a release must list all of them.
fn sim_td_measurements(exe: [u8; 48]) -> TdMeasurements {
    use sha2::{Digest, Sha384};
    let mut m = TdMeasurements::from_mr_td(exe);
    for (i, r) in m.rtmr.iter_mut().take(3).enumerate() {
        let mut h = Sha384::new();
        h.update(format!("confide simulated-tdx RTMR{i}\n").as_bytes());
        h.update(exe);
        r.copy_from_slice(&h.finalize());
    }
    m
}

fn sim_vendor_dir(opts: &NodeOptions) -> PathBuf {
    opts.sim_vendor
        .clone()
        .unwrap_or_else(|| opts.dir.join("sim-vendor"))
}

/// What [`attester`] sets up: the CPU attester, the GPU's (if any) and the registers
/// the node's release must pin.
struct Attesters {
    cpu: Arc<dyn confide_attest::Attester>,
    gpu: Option<GpuAttesters>,
    registers: Vec<Register>,
}

/// Builds the attesters and learns the node's registers from one report of its own
/// hardware (CPU, and GPU when it has one), through the same register layout clients use
/// (`confide_verify::registers`).
fn attester(opts: &NodeOptions, binding: Binding) -> Result<Attesters, Error> {
    if opts.platform == NodePlatform::Simulated && opts.gpu != GpuChoice::None {
        // The SEV-SNP twin installs its vendor directory atomically into an empty place;
        // create it before the GPU twin puts its own directory inside.
        SimulatedVendor::load_or_create(&sim_vendor_dir(opts)).map_err(Error::SimulatedVendor)?;
    }
    let gpu = crate::gpu::open(
        opts.gpu,
        &sim_vendor_dir(opts),
        opts.platform.is_simulated(),
        &opts.sim_faults,
    )?;
    // The honest GPU's answer to the start-up request (nonce of no certificate).
    let gpu_evidence = gpu
        .as_ref()
        .map(|g| {
            g.honest
                .gpu_evidence(&[0; 32])
                .map_err(|_| Error::Attestation("the GPU did not produce a report"))
        })
        .transpose()?;
    let gpu_measurements = gpu_evidence
        .as_ref()
        .map(crate::gpu::measurements)
        .transpose()?;
    let first_report = |a: &dyn confide_attest::Attester| {
        let mut report_data = [0; 64];
        if let Some(g) = &gpu_evidence {
            report_data[32..].copy_from_slice(&g.digest());
        }
        confide_attest::Attester::attest(
            a,
            &confide_attest::AttestRequest {
                report_data,
                binding: Some(binding),
                gpu: gpu_evidence.clone(),
                now: confide_attest::UnixTime(now_secs()),
            },
        )
        .map_err(|_| Error::Attestation("the platform did not produce a report"))
    };
    let registers_of = |ev: &confide_attest::Evidence| {
        confide_verify::registers(ev.platform.name(), &ev.report, gpu_measurements.as_deref())
            .map_err(|_| Error::Attestation("report too short for its registers"))
    };
    let (cpu, registers): (Arc<dyn confide_attest::Attester>, _) = match opts.platform {
        NodePlatform::Simulated => {
            let vendor = SimulatedVendor::load_or_create(&sim_vendor_dir(opts))
                .map_err(Error::SimulatedVendor)?;
            let a = SimulatedAttester::new(vendor, measure_current_exe()?);
            let registers = registers_of(&first_report(&a)?)?;
            (Arc::new(a), registers)
        }
        NodePlatform::SimulatedTdx => {
            // Beside the SEV-SNP twin's files, in its own directory: the two vendors
            // are separate roots.
            let vendor = SimulatedTdxVendor::load_or_create(&sim_vendor_dir(opts).join("tdx"))
                .map_err(Error::SimulatedVendor)?;
            let a = SimulatedTdxAttester::new(vendor, sim_td_measurements(measure_current_exe()?));
            let registers = registers_of(&first_report(&a)?)?;
            (Arc::new(a), registers)
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
            let ev = first_report(&a)?;
            let field = if p == AttestPlatform::Tdx {
                TDX_MRCONFIGID
            } else {
                SNP_HOST_DATA
            };
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
            let registers = registers_of(&ev)?;
            (Arc::new(a), registers)
        }
    };
    Ok(Attesters {
        cpu,
        gpu,
        registers,
    })
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
    let model_digest = load_engine(opts).await?.model_digest;
    let config_digest = config_digest(opts)?;
    let binding = Binding {
        model_digest,
        config_digest,
    };
    let a = attester(opts, binding)?;
    Ok(Measured::new(
        opts.platform,
        a.registers,
        model_digest,
        config_digest,
    ))
}

impl Node {
    /// Starts a node (see the module docs for the steps).
    pub async fn start(opts: NodeOptions) -> Result<Self, Error> {
        tracing::info!(event = "node_starting");
        if !opts.dev_allow_writable_cwd {
            check_cwd_read_only()?;
        }
        if opts.platform.is_simulated() {
            eprintln!("{SIMULATED_WARNING}");
        }
        let loaded = load_engine(&opts).await?;
        let (engine, model_digest) = (loaded.engine, loaded.model_digest);
        let config_digest = config_digest(&opts)?;
        let binding = Binding {
            model_digest,
            config_digest,
        };
        let Attesters {
            cpu,
            gpu,
            registers,
        } = attester(&opts, binding)?;
        let mut attester = EvidenceAttester::new(cpu, binding);
        if let Some(g) = gpu {
            attester = attester.with_gpu(g.served).swapping_gpu_evidence(g.swap);
        }
        if !opts.sim_faults.is_empty() {
            eprintln!(
                "WARNING: this node reproduces a HOSTILE HOST ({:?}) for tests: clients must refuse it.",
                opts.sim_faults
            );
        }
        let attester = Arc::new(attester);
        let measured = Measured::new(opts.platform, registers, model_digest, config_digest);
        let measurement = measured.measurement.clone();
        let id = Identity {
            platform: opts.platform.ledger(),
            measurement: measurement.clone(),
            registers: measured.registers.clone(),
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
        // An upstream node sees this node's current credential at every session.
        if let Some(peer) = &loaded.peer {
            peer.set_identity(Arc::clone(&resolver));
        }
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
        if let Some((verifier, _)) = peer_policy(&opts)? {
            service.set_peer_verifier(verifier);
        }
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
            measured,
            tasks,
        })
    }

    /// The HTTP router to serve.
    pub fn router(&self) -> axum::Router {
        self.service.router()
    }

    /// The node-to-node router (mutual RA-TLS, callers verified under the peer policy;
    /// without one it refuses every session). Serve it on its own listener.
    pub fn peer_router(&self) -> axum::Router {
        self.service.peer_router()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_unix_sockets_are_local_upstreams() {
        for ok in [
            "http://127.0.0.1:8000",
            "http://127.8.9.10:1/v1",
            "https://[::1]:8443",
            "unix:/run/vllm.sock",
            "unix:///run/vllm.sock",
        ] {
            assert!(check_upstream_local(ok).is_ok(), "{ok}");
        }
        for far in [
            "http://10.0.0.1:8000",
            "http://localhost:8000",
            "https://api.example.com",
            "http://[2001:db8::1]:80",
            "http://0.0.0.0:8000",
        ] {
            assert!(
                matches!(check_upstream_local(far), Err(Error::UpstreamNotLocal(_))),
                "{far}"
            );
        }
        assert!(matches!(
            check_upstream_local("unix:relative.sock"),
            Err(Error::Engine(_))
        ));
    }
}
