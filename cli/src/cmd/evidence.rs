//! `confide evidence` subcommands: verify hardware evidence, produce simulated evidence,
//! print a trust policy.
//!
//! Input files are taken as they come: reports and quotes as binary or hex, certificates as
//! DER, PEM or PEM bundles, or a whole Confide evidence container (`CFEV...`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use confide_attest::input::{decode_certificates, decode_hex_or_binary};
use confide_attest::{Binding, Evidence, Platform, ReportDataCheck, TrustPolicy, UnixTime};
use confide_attest_sim::{SIMULATED_WARNING, SimulatedVendor};
use confide_attest_verify::Verifiers;

/// `confide evidence` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCmd {
    /// Verify evidence; exit 0 and print the measured values only if it is genuine.
    Verify(VerifyArgs),
    /// Produce SIMULATED evidence (no TEE) signed by a local simulated vendor.
    Simulate(SimulateArgs),
    /// Print a trust policy TOML (production roots; optionally a simulated root).
    Policy(PolicyArgs),
}

/// Arguments of `confide evidence verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// sev-snp, tdx, nvidia or simulated.
    #[arg(long)]
    platform: String,
    /// Report, quote, SPDM exchange (binary or hex) or a Confide evidence container.
    #[arg(long)]
    evidence: PathBuf,
    /// Certificates (DER, PEM or PEM bundle), leaf first; repeat for several files. For
    /// sev-snp the VCEK alone is enough: the policy's pinned ASKs and ARKs complete the chain.
    #[arg(long)]
    certs: Vec<PathBuf>,
    /// TDX collateral (JSON).
    #[arg(long)]
    collateral: Option<PathBuf>,
    /// Expected REPORT_DATA prefix (or all 64 bytes for Confide evidence), or the GPU nonce.
    #[arg(long)]
    nonce: Option<String>,
    /// Verification time (RFC 3339); default: now.
    #[arg(long)]
    at: Option<String>,
    /// Trust policy TOML; default: built-in production roots.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Also trust this simulated vendor's root (prints a warning).
    #[arg(long)]
    simulated_vendor: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `confide evidence simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Simulated vendor directory (created on first use).
    #[arg(long)]
    vendor_dir: PathBuf,
    /// Where to write the evidence container.
    #[arg(long)]
    out: PathBuf,
    /// REPORT_DATA, 64 bytes hex (default: zeros).
    #[arg(long)]
    report_data: Option<String>,
    /// File whose SHA-384 is the measurement (default: this executable).
    #[arg(long)]
    measure: Option<PathBuf>,
    /// Model digest (SHA-256, hex).
    #[arg(long)]
    model_digest: Option<String>,
    /// Configuration digest (SHA-256, hex).
    #[arg(long)]
    config_digest: Option<String>,
}

/// Arguments of `confide evidence policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// Include (and allow) this simulated vendor's root.
    #[arg(long)]
    simulated_vendor: Option<PathBuf>,
}

/// Run a `confide evidence` subcommand.
pub async fn run(cmd: EvidenceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EvidenceCmd::Verify(a) => verify(a),
        EvidenceCmd::Simulate(a) => simulate(a),
        EvidenceCmd::Policy(a) => policy(a),
    }
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

fn parse_time(at: Option<&str>) -> anyhow::Result<UnixTime> {
    match at {
        None => Ok(UnixTime::from_system_time(std::time::SystemTime::now())),
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--at {s:?} is not RFC 3339"))?;
            let secs = u64::try_from(t.unix_timestamp()).context("--at is before 1970")?;
            Ok(UnixTime(secs))
        }
    }
}

fn load_policy(path: Option<&Path>, sim: Option<&Path>) -> anyhow::Result<TrustPolicy> {
    let mut p = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            TrustPolicy::from_toml(&text)?
        }
        None => TrustPolicy::production(),
    };
    if let Some(dir) = sim {
        // The SEV-SNP twin's files sit in DIR, the TDX twin's in DIR/tdx (each written by
        // a node on that twin); pin the root of every twin present, and fail on none.
        let tdx = dir.join("tdx");
        let has_tdx = tdx.join("root.der").exists();
        if !has_tdx || dir.join("ark.der").exists() {
            let v = SimulatedVendor::load(dir)?;
            p = p.with_simulated_root(v.root_der().to_vec());
        }
        if has_tdx {
            let v = confide_attest_sim::SimulatedTdxVendor::load(&tdx)?;
            p = p.with_simulated_tdx_root(v.root_der().to_vec());
        }
        // The simulated H100 (DIR/gpu, written by a node started with `--gpu simulated`).
        let gpu = dir.join("gpu");
        if gpu.join("device.der").exists() {
            let v = confide_attest_sim::SimulatedGpuVendor::load(&gpu)?;
            p = p.with_simulated_gpu_root(v.root_der().to_vec());
        }
    }
    Ok(p)
}

/// Write to stdout without panicking when the reader went away (e.g. `| head`).
pub(crate) fn emit(s: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

fn warn_simulated() {
    eprintln!("{SIMULATED_WARNING}");
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let platform: Platform = a.platform.parse()?;
    let now = parse_time(a.at.as_deref())?;
    let policy = load_policy(a.policy.as_deref(), a.simulated_vendor.as_deref())?;
    if platform.is_simulated() || a.simulated_vendor.is_some() {
        warn_simulated();
    }
    let nonce = a
        .nonce
        .as_deref()
        .map(|h| hex::decode(h.trim()).context("--nonce is not hex"))
        .transpose()?;
    let raw = read(&a.evidence)?;
    let mut certs = Vec::new();
    for c in &a.certs {
        certs
            .extend(decode_certificates(&read(c)?).with_context(|| format!("in {}", c.display()))?);
    }
    let verifiers = Verifiers::uncached();

    if platform == Platform::Nvidia {
        let spdm = decode_hex_or_binary(&raw)?;
        let n: Option<[u8; 32]> = match &nonce {
            None => None,
            Some(n) => Some(
                n.as_slice()
                    .try_into()
                    .context("--nonce for nvidia must be 32 bytes")?,
            ),
        };
        let v = verifiers
            .verify_gpu_only(&spdm, &certs, n.as_ref(), now, &policy)
            .context("evidence rejected")?;
        let m = &v.measurements;
        // Details only: verification does not depend on them (the verifier judges CC mode
        // when a caller asks for it).
        let cc_mode = match v.cc_mode() {
            Ok(mode) => mode.to_string(),
            Err(e) => format!("unreadable ({e})"),
        };
        let trailing = v.ignored_trailing_bytes();
        if a.json {
            let blocks: Vec<_> = m
                .blocks
                .iter()
                .map(|b| serde_json::json!({"index": b.index, "value": hex::encode(&b.value)}))
                .collect();
            let out = serde_json::json!({
                "verified": true,
                "platform": "nvidia",
                "spdm_version": format!("{}.{}", m.version >> 4, m.version & 0xF),
                "nonce": hex::encode(m.request_nonce),
                "nonce_checked": n.is_some(),
                "cc_mode": cc_mode,
                "ignored_trailing_bytes": trailing,
                "measurements": blocks,
            });
            emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
        } else {
            let mut o = format!(
                "verified: nvidia (SPDM {}.{})\n",
                m.version >> 4,
                m.version & 0xF
            );
            o += &format!(
                "nonce: {}{}\n",
                hex::encode(m.request_nonce),
                if n.is_some() {
                    ""
                } else {
                    " (not checked: no --nonce)"
                }
            );
            o += &format!("cc mode (signed feature flag): {cc_mode}\n");
            if trailing > 0 {
                o += &format!(
                    "ignored: {trailing} bytes after the signed SPDM response (not signed, not read)\n"
                );
            }
            for b in &m.blocks {
                o += &format!("measurement[{}]: {}\n", b.index, hex::encode(&b.value));
            }
            emit(&o)?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let evidence = if raw.starts_with(b"CFEV") {
        let e = Evidence::decode(&raw)?;
        if e.platform != platform {
            bail!("evidence container is for {}, not {platform}", e.platform);
        }
        e
    } else {
        let report = decode_hex_or_binary(&raw)?;
        let collateral = match &a.collateral {
            Some(p) => read(p)?,
            None if platform == Platform::Tdx => bail!("--collateral is required for tdx"),
            None => Vec::new(),
        };
        Evidence {
            platform,
            report,
            certs,
            collateral,
            binding: None,
            gpu: None,
        }
    };
    let full: Option<[u8; 64]> = match &nonce {
        Some(n) if n.len() == 64 && raw.starts_with(b"CFEV") => n.as_slice().try_into().ok(),
        _ => None,
    };
    let check = match (&full, &nonce) {
        (Some(rd), _) => ReportDataCheck::Confide(rd),
        (None, Some(n)) => ReportDataCheck::Prefix(n),
        (None, None) => ReportDataCheck::Unchecked,
    };
    let v = verifiers
        .verify(&evidence, check, now, &policy)
        .context("evidence rejected")?;
    if v.is_simulated() {
        warn_simulated();
    }
    let rd_note = match check {
        ReportDataCheck::Confide(_) => "checked (Confide key binding)",
        ReportDataCheck::Prefix(_) => "checked (nonce prefix)",
        _ => "not checked (no --nonce)",
    };
    if a.json {
        let out = serde_json::json!({
            "verified": true,
            "platform": v.platform().name(),
            "simulated": v.is_simulated(),
            "report_version": v.report_version(),
            "measurement": hex::encode(v.measurement()),
            "tcb": v.tcb().to_string(),
            "chip_id": hex::encode(v.chip_id()),
            "debug": v.debug(),
            "report_data": hex::encode(v.report_data()),
            "report_data_check": rd_note,
            "model_digest": v.model_digest().map(hex::encode),
            "config_digest": v.config_digest().map(hex::encode),
            "gpu_evidence_digest": v.gpu_evidence_digest().map(hex::encode),
            "gpu_cc_mode": v.gpu_cc_mode().map(|m| m.name()),
            "gpu_ignored_trailing_bytes": v.gpu_ignored_trailing_bytes(),
            "signed_time": v.signed_time(),
        });
        emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
    } else {
        let mut o = format!(
            "verified: {}{}\n",
            v.platform(),
            if v.is_simulated() {
                " (SIMULATED, NOT A TEE)"
            } else {
                ""
            }
        );
        o += &format!("report version: {}\n", v.report_version());
        o += &format!("measurement: {}\n", hex::encode(v.measurement()));
        o += &format!("tcb: {}\n", v.tcb());
        o += &format!("chip id: {}\n", hex::encode(v.chip_id()));
        o += &format!("debug: {}\n", v.debug());
        o += &format!(
            "report data: {} [{rd_note}]\n",
            hex::encode(v.report_data())
        );
        if let (Some(m), Some(c)) = (v.model_digest(), v.config_digest()) {
            o += &format!("model digest: {}\n", hex::encode(m));
            o += &format!("config digest: {}\n", hex::encode(c));
        }
        if let Some(g) = v.gpu_evidence_digest() {
            o += &format!("gpu evidence digest: {}\n", hex::encode(g));
        }
        if let Some(m) = v.gpu_cc_mode() {
            o += &format!("gpu cc mode: {m}\n");
        }
        if let Some(n) = v.gpu_ignored_trailing_bytes().filter(|n| *n > 0) {
            o += &format!(
                "gpu: ignored {n} bytes after the signed SPDM response (not signed, not read)\n"
            );
        }
        emit(&o)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn hex32(name: &str, h: Option<&str>) -> anyhow::Result<Option<[u8; 32]>> {
    h.map(|h| {
        let v = hex::decode(h.trim()).with_context(|| format!("{name} is not hex"))?;
        <[u8; 32]>::try_from(v.as_slice()).with_context(|| format!("{name} must be 32 bytes"))
    })
    .transpose()
}

fn simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    warn_simulated();
    let vendor = SimulatedVendor::load_or_create(&a.vendor_dir)?;
    let exe = match &a.measure {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot locate this executable")?,
    };
    let measurement = confide_attest_sim::measure_binary(&read(&exe)?);
    let mut rd = [0u8; 64];
    if let Some(h) = &a.report_data {
        let v = hex::decode(h.trim()).context("--report-data is not hex")?;
        rd = v
            .as_slice()
            .try_into()
            .context("--report-data must be 64 bytes")?;
    }
    let binding = match (
        hex32("--model-digest", a.model_digest.as_deref())?,
        hex32("--config-digest", a.config_digest.as_deref())?,
    ) {
        (Some(model_digest), Some(config_digest)) => Some(Binding {
            model_digest,
            config_digest,
        }),
        (None, None) => None,
        _ => bail!("--model-digest and --config-digest go together"),
    };
    let att = confide_attest_sim::SimulatedAttester::new(vendor, measurement);
    let ev = confide_attest::Attester::attest(
        &att,
        &confide_attest::AttestRequest {
            report_data: rd,
            binding,
            gpu: None,
            now: UnixTime::from_system_time(std::time::SystemTime::now()),
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(&a.out, ev.encode())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    emit(&format!(
        "wrote simulated evidence to {}\nmeasurement: {}\n",
        a.out.display(),
        hex::encode(measurement)
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn policy(a: PolicyArgs) -> anyhow::Result<ExitCode> {
    let p = load_policy(None, a.simulated_vendor.as_deref())?;
    if a.simulated_vendor.is_some() {
        warn_simulated();
    }
    emit(&p.to_toml())?;
    Ok(ExitCode::SUCCESS)
}
