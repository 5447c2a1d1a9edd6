//! `confide release` subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use confide_release::LedgerEntry;

/// `confide release` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReleaseCmd {
    /// Sign and submit a release manifest or a gateway key-config document (TOML or
    /// JSON) to the ledger.
    Publish(PublishArgs),
    /// Revoke the release logged at INDEX: devices that see this entry refuse that
    /// release from then on, whatever its not_after, and `confide verify --explain` and
    /// `confide monitor` show the reason.
    Revoke(RevokeArgs),
    /// Turn NVIDIA's signed reference integrity manifests (a driver RIM and a VBIOS RIM,
    /// or one of them) into the `[gpu_reference]` table of a release manifest. Each RIM's
    /// XML signature, its certificate chain to NVIDIA's RIM root and its validity are
    /// checked first; nothing is fetched from NVIDIA.
    GpuReference(GpuReferenceArgs),
    /// The release manifest of an image `scripts/build-image` wrote: measurement (the
    /// image's own binary measures itself on simulated platforms), model and
    /// configuration digests, source revision and build-recipe digest.
    Manifest(super::image::release::ManifestArgs),
    /// Rebuild a release's image from its source revision (or compare with --rebuilt)
    /// and say "match", or name every input, file and release field that differs.
    Audit(super::image::release::AuditArgs),
}

/// Arguments of `confide release gpu-reference`.
#[derive(Debug, clap::Args)]
pub struct GpuReferenceArgs {
    /// RIM files (SWID XML): one driver RIM and/or one VBIOS RIM of the same GPU.
    #[arg(required = true, num_args = 1..=2)]
    pub rims: Vec<PathBuf>,
    /// Judge validity at this time (RFC 3339) instead of now.
    #[arg(long)]
    pub at: Option<String>,
    /// Trust this RIM root (PEM or DER) instead of NVIDIA's pinned one (for tests).
    #[arg(long)]
    pub rim_root: Option<PathBuf>,
}

/// Arguments of `confide release revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Leaf index of the release (as `release publish` and `confide monitor` print it).
    pub index: u64,
    /// Why it must no longer be used (1 to 1024 bytes; shown to users and auditors).
    #[arg(long)]
    pub reason: String,
    /// Ledger base URL.
    #[arg(long)]
    pub ledger: String,
    /// Operator private key file.
    #[arg(long)]
    pub key: PathBuf,
}

/// Arguments of `confide release publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The manifest: platform, measurement, snp_policy (SEV-SNP) or rtmrs (TDX),
    /// gpu_reference (optional), model_digest, config_digest, source_revision,
    /// build_recipe_digest, not_before, not_after, notes (or a `kind = "key-config"`
    /// document: key_config, not_before, not_after).
    pub manifest: PathBuf,
    /// Ledger base URL.
    #[arg(long)]
    pub ledger: String,
    /// Operator private key file.
    #[arg(long)]
    pub key: PathBuf,
}

/// Run a `confide release` subcommand.
pub async fn run(cmd: ReleaseCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ReleaseCmd::Publish(a) => {
            let text = std::fs::read_to_string(&a.manifest)
                .with_context(|| format!("cannot read {}", a.manifest.display()))?;
            // A release manifest (no `kind`, or `kind = "release"`) or a gateway key
            // config document (`kind = "key-config"`, as `confide gateway keys
            // --entry-out` writes it): both are things devices must find in the log.
            let entry = LedgerEntry::from_document(&text).context("invalid manifest")?;
            let key = super::ledger::read_operator_key(&a.key)?;
            super::ledger::submit(&a.ledger, &key, &entry.encode()?).await
        }
        ReleaseCmd::Revoke(a) => {
            let entry = LedgerEntry::Revocation(confide_release::Revocation {
                index: a.index,
                reason: a.reason.clone(),
            });
            let bytes = entry.encode().context("invalid revocation")?;
            let key = super::ledger::read_operator_key(&a.key)?;
            super::ledger::submit(&a.ledger, &key, &bytes).await
        }
        ReleaseCmd::GpuReference(a) => gpu_reference(&a),
        ReleaseCmd::Manifest(a) => super::image::release::manifest(&a),
        ReleaseCmd::Audit(a) => super::image::release::audit(&a),
    }
}

fn gpu_reference(a: &GpuReferenceArgs) -> anyhow::Result<ExitCode> {
    use confide_rim::{RimKind, RimVerifier};
    let now = match &a.at {
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs(),
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--at {s:?} is not RFC 3339"))?;
            u64::try_from(t.unix_timestamp()).context("--at is before 1970")?
        }
    };
    let verifier = match &a.rim_root {
        None => RimVerifier::nvidia(),
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let der = match pem_der(&bytes) {
                Some(d) => d,
                None => bytes,
            };
            RimVerifier::with_root(der).context("invalid --rim-root")?
        }
    };
    let mut verified = Vec::new();
    for path in &a.rims {
        let xml = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let rim = verifier
            .verify(&xml, now)
            .with_context(|| format!("{}: RIM refused", path.display()))?;
        eprintln!(
            "verified {} RIM {} {} (signed by {}, valid until {})",
            match rim.kind() {
                RimKind::Driver => "driver",
                RimKind::Vbios => "VBIOS",
                _ => "other",
            },
            rim.product(),
            rim.version(),
            rim.signer_subject(),
            time::OffsetDateTime::from_unix_timestamp(i64::try_from(rim.valid_until())?)
                .ok()
                .and_then(|t| t
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok())
                .unwrap_or_else(|| rim.valid_until().to_string())
        );
        verified.push(rim);
    }
    let reference = match verified.as_slice() {
        [one] => one.reference().clone(),
        [x, y] => {
            let (d, v) = if x.kind() == RimKind::Driver {
                (x, y)
            } else {
                (y, x)
            };
            confide_rim::GpuReference::merge(d, v)
                .context("the two RIMs do not describe one GPU")?
                .reference()
                .clone()
        }
        _ => anyhow::bail!("give one driver RIM and/or one VBIOS RIM"),
    };
    print!("{}", gpu_reference_toml(&verified, &reference)?);
    Ok(ExitCode::SUCCESS)
}

/// The `[gpu_reference]` table. RIMs number measurements from 0; SPDM measurement blocks,
/// which evidence carries and releases pin, from 1: RIM index i is block i + 1.
fn gpu_reference_toml(
    rims: &[confide_rim::VerifiedRim],
    reference: &std::collections::BTreeMap<u32, Vec<[u8; 48]>>,
) -> anyhow::Result<String> {
    let mut out = String::from("# From NVIDIA reference integrity manifests (checked offline):\n");
    for r in rims {
        out.push_str(&format!(
            "#   {} {} document digest {}\n",
            r.product(),
            r.version(),
            hex::encode(r.document_digest())
        ));
    }
    out.push_str("# Keys are SPDM measurement indices (RIM index + 1).\n[gpu_reference]\n");
    for (index, values) in reference {
        let block = u8::try_from(index + 1).context("RIM index beyond the SPDM range")?;
        let mut vals: Vec<String> = values.iter().map(hex::encode).collect();
        vals.sort();
        vals.dedup();
        let quoted: Vec<String> = vals.iter().map(|v| format!("\"{v}\"")).collect();
        out.push_str(&format!("\"{block}\" = [{}]\n", quoted.join(", ")));
    }
    Ok(out)
}

/// The DER inside a PEM certificate, if `bytes` is PEM.
fn pem_der(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}
