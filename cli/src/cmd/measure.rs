//! `confide measure`: the launch measurement a guest image will produce, computed from
//! its parts, and the release manifest that pins it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use confide_measure::manifest::{ReleaseFields, to_toml};
use confide_measure::snp::{SnpInputs, VcpuType, Vmm};

/// `confide measure` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MeasureCmd {
    /// The SEV-SNP launch digest (the report's MEASUREMENT) from OVMF, kernel, initrd,
    /// command line, vCPUs, guest features and VMM. With the release fields
    /// (--model-digest ...), prints a release manifest for `confide release publish`.
    Snp(SnpArgs),
    /// TDX MRTD from the TDVF image, and RTMR0..2 from the firmware configuration
    /// (RTMR0), kernel (RTMR1), command line and initrd (RTMR2), each measured as a whole
    /// blob (the td-shim convention; see docs/releases.md). With the release fields,
    /// prints a release manifest for `confide release publish`.
    Tdx(TdxArgs),
}

/// Arguments of `confide measure tdx`.
#[derive(Debug, clap::Args)]
pub struct TdxArgs {
    /// The TDVF image (an OVMF IntelTdx build).
    #[arg(long)]
    pub tdvf: PathBuf,
    /// A firmware-configuration blob measured into RTMR0 (TD HOB, CFV, ACPI tables, ...);
    /// repeat in the order the firmware measures them.
    #[arg(long)]
    pub firmware_config: Vec<PathBuf>,
    /// The kernel image (RTMR1).
    #[arg(long)]
    pub kernel: PathBuf,
    /// The initrd (RTMR2, after the command line).
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// The kernel command line (RTMR2).
    #[arg(long)]
    pub append: Option<String>,
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Print JSON (registers, inputs, TDVF sections and, with the release fields, the
    /// manifest) instead of TOML.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `confide measure snp`.
#[derive(Debug, clap::Args)]
pub struct SnpArgs {
    /// The OVMF image (an AmdSev build for direct kernel boot).
    #[arg(long)]
    pub ovmf: PathBuf,
    /// Use this OVMF hash (96 hex digits, from `--print-ovmf-hash` or the firmware's
    /// vendor) instead of hashing --ovmf's pages; --ovmf still gives the SEV metadata.
    #[arg(long)]
    pub ovmf_hash: Option<String>,
    /// The directly booted kernel (QEMU -kernel).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// The initrd (QEMU -initrd); needs --kernel.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// The kernel command line (QEMU -append); needs --kernel.
    #[arg(long)]
    pub append: Option<String>,
    /// Number of vCPUs.
    #[arg(long, required_unless_present = "print_ovmf_hash")]
    pub vcpus: Option<u32>,
    /// vCPU model as QEMU names it (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, ...).
    #[arg(long, required_unless_present = "print_ovmf_hash")]
    pub vcpu_type: Option<String>,
    /// The VMSA's SEV features (hex or decimal): 0x1 = SNPActive; KVM on Linux 6.8 and
    /// later also sets DebugSwap (0x21) unless it is turned off.
    #[arg(long, value_parser = parse_u64, required_unless_present = "print_ovmf_hash")]
    pub guest_features: Option<u64>,
    /// The VMM: qemu, ec2 or krun.
    #[arg(long, default_value = "qemu")]
    pub vmm: String,
    /// Print only the OVMF hash of --ovmf and exit.
    #[arg(long, conflicts_with_all = ["ovmf_hash", "kernel"])]
    pub print_ovmf_hash: bool,
    /// The guest POLICY the release requires (hex or decimal, e.g. 0x30000); needed
    /// for a manifest.
    #[arg(long, value_parser = parse_u64)]
    pub policy: Option<u64>,
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Print JSON (the measurement, its inputs, the firmware's sections and, with the
    /// release fields, the manifest) instead of TOML.
    #[arg(long)]
    pub json: bool,
}

/// The release fields that are not measurements. Give all of them (notes optional) to
/// get a manifest, or none to get the measurement alone.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// SHA-256 of the model weights (hex).
    #[arg(long)]
    pub model_digest: Option<String>,
    /// SHA-256 of the node's canonical configuration (hex).
    #[arg(long)]
    pub config_digest: Option<String>,
    /// Source revision the image was built from.
    #[arg(long)]
    pub source_revision: Option<String>,
    /// SHA-256 of the build recipe (hex).
    #[arg(long)]
    pub build_recipe_digest: Option<String>,
    /// Start of validity (unix seconds or RFC 3339).
    #[arg(long)]
    pub not_before: Option<String>,
    /// End of validity (unix seconds or RFC 3339).
    #[arg(long)]
    pub not_after: Option<String>,
    /// Free-form notes.
    #[arg(long, default_value = "")]
    pub notes: String,
}

impl ReleaseArgs {
    /// `None` when no release field is given; an error naming the first one missing when
    /// only some are.
    fn fields(&self) -> anyhow::Result<Option<ReleaseFields>> {
        let given = [
            ("--model-digest", self.model_digest.is_some()),
            ("--config-digest", self.config_digest.is_some()),
            ("--source-revision", self.source_revision.is_some()),
            ("--build-recipe-digest", self.build_recipe_digest.is_some()),
            ("--not-before", self.not_before.is_some()),
            ("--not-after", self.not_after.is_some()),
        ];
        if given.iter().all(|(_, g)| !g) {
            if !self.notes.is_empty() {
                anyhow::bail!("--notes is part of a manifest: give the release fields too");
            }
            return Ok(None);
        }
        if let Some((name, _)) = given.iter().find(|(_, g)| !g) {
            anyhow::bail!("a manifest needs {name} (or leave out every release field)");
        }
        let d32 = |name, v: &Option<String>| -> anyhow::Result<[u8; 32]> {
            Ok(confide_measure::parse_hex(
                name,
                v.as_deref().unwrap_or_default(),
            )?)
        };
        Ok(Some(ReleaseFields {
            model_digest: d32("--model-digest", &self.model_digest)?,
            config_digest: d32("--config-digest", &self.config_digest)?,
            source_revision: self.source_revision.clone().unwrap_or_default(),
            build_recipe_digest: d32("--build-recipe-digest", &self.build_recipe_digest)?,
            not_before: parse_time("--not-before", self.not_before.as_deref())?,
            not_after: parse_time("--not-after", self.not_after.as_deref())?,
            notes: self.notes.clone(),
        }))
    }
}

fn parse_u64(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s:?}: {e}"))
}

fn parse_time(name: &str, s: Option<&str>) -> anyhow::Result<u64> {
    let s = s.unwrap_or_default();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{name} {s:?} is neither unix seconds nor RFC 3339"))?;
    u64::try_from(t.unix_timestamp()).with_context(|| format!("{name} is before 1970"))
}

/// Run a `confide measure` subcommand.
pub fn run(cmd: MeasureCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        MeasureCmd::Snp(a) => snp(&a),
        MeasureCmd::Tdx(a) => tdx(&a),
    }
}

fn snp(a: &SnpArgs) -> anyhow::Result<ExitCode> {
    if a.print_ovmf_hash {
        let h = confide_measure::snp::ovmf_hash(&a.ovmf)?;
        super::evidence::emit(&format!("{}\n", hex::encode(h)))?;
        return Ok(ExitCode::SUCCESS);
    }
    let fields = a.release.fields()?;
    if fields.is_some() && a.policy.is_none() {
        anyhow::bail!("a SEV-SNP manifest needs --policy (the guest POLICY the launch must use)");
    }
    let inputs = SnpInputs {
        ovmf: a.ovmf.clone(),
        ovmf_hash: a
            .ovmf_hash
            .as_deref()
            .map(|h| confide_measure::parse_hex("--ovmf-hash", h))
            .transpose()?,
        kernel: a.kernel.clone(),
        initrd: a.initrd.clone(),
        cmdline: a.append.clone(),
        vcpus: a.vcpus.context("--vcpus is required")?,
        vcpu_type: a
            .vcpu_type
            .as_deref()
            .context("--vcpu-type is required")?
            .parse::<VcpuType>()?,
        guest_features: a.guest_features.context("--guest-features is required")?,
        vmm: a.vmm.parse::<Vmm>()?,
    };
    let m = confide_measure::snp::launch_digest(&inputs)?;
    let manifest = match (fields, a.policy) {
        (Some(f), Some(p)) => Some(confide_measure::manifest::snp_manifest(
            &m.launch_digest,
            p,
            f,
        )?),
        _ => None,
    };
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    if a.json {
        let out = serde_json::json!({
            "platform": "sev-snp",
            "measurement": hex::encode(m.launch_digest),
            "inputs": {
                "ovmf": a.ovmf.display().to_string(),
                "ovmf_hash": inputs.ovmf_hash.map(hex::encode),
                "kernel": path(&inputs.kernel),
                "initrd": path(&inputs.initrd),
                "append": inputs.cmdline,
                "vcpus": inputs.vcpus,
                "vcpu_type": inputs.vcpu_type.name(),
                "guest_features": format!("{:#x}", inputs.guest_features),
                "vmm": inputs.vmm.name(),
            },
            "ovmf": {
                "len": m.ovmf.len,
                "reset_eip": format!("{:#x}", m.ovmf.reset_eip),
                "hashes_table_gpa": m.ovmf.hashes_table_gpa.map(|g| format!("{g:#x}")),
                "sections": m.ovmf.sections.iter().map(|s| serde_json::json!({
                    "kind": s.kind, "gpa": format!("{:#x}", s.gpa), "size": s.size,
                })).collect::<Vec<_>>(),
            },
            "manifest": manifest,
        });
        super::evidence::emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text =
        String::from("# SEV-SNP launch measurement computed by `confide measure snp` from:\n");
    text.push_str(&format!(
        "#   ovmf {} ({} bytes{})\n",
        a.ovmf.display(),
        m.ovmf.len,
        match &inputs.ovmf_hash {
            Some(h) => format!(", given OVMF hash {}", hex::encode(h)),
            None => String::new(),
        }
    ));
    for (name, v) in [
        ("kernel", path(&inputs.kernel)),
        ("initrd", path(&inputs.initrd)),
    ] {
        if let Some(v) = v {
            text.push_str(&format!("#   {name} {v}\n"));
        }
    }
    if let Some(c) = &inputs.cmdline {
        text.push_str(&format!("#   append {c:?}\n"));
    }
    text.push_str(&format!(
        "#   {} x {}, guest features {:#x}, vmm {}\n",
        inputs.vcpus,
        inputs.vcpu_type.name(),
        inputs.guest_features,
        inputs.vmm.name()
    ));
    match manifest {
        Some(m) => text.push_str(&to_toml(&m)?),
        None => text.push_str(&format!(
            "platform = \"sev-snp\"\nmeasurement = \"{}\"\n",
            hex::encode(m.launch_digest)
        )),
    }
    super::evidence::emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn read(p: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

fn tdx(a: &TdxArgs) -> anyhow::Result<ExitCode> {
    use confide_measure::tdx;
    let fields = a.release.fields()?;
    let image = read(&a.tdvf)?;
    let sections = tdx::tdvf_sections(&image)?;
    let mrtd = tdx::mrtd(&image)?;
    drop(image);
    let config = a
        .firmware_config
        .iter()
        .map(read)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kernel = read(&a.kernel)?;
    let initrd = a.initrd.as_ref().map(read).transpose()?;
    let rtmrs = tdx::rtmrs(&tdx::TdxBoot {
        firmware_config: config.iter().map(Vec::as_slice).collect(),
        kernel: &kernel,
        cmdline: a.append.as_deref(),
        initrd: initrd.as_deref(),
    })?;
    let manifest = fields
        .map(|f| confide_measure::manifest::tdx_manifest(&mrtd, &rtmrs, f))
        .transpose()?;
    if a.json {
        let out = serde_json::json!({
            "platform": "tdx",
            "mrtd": hex::encode(mrtd),
            "rtmrs": rtmrs.iter().map(hex::encode).collect::<Vec<_>>(),
            "inputs": {
                "tdvf": a.tdvf.display().to_string(),
                "firmware_config": a.firmware_config.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "kernel": a.kernel.display().to_string(),
                "initrd": a.initrd.as_ref().map(|p| p.display().to_string()),
                "append": a.append,
            },
            "tdvf_sections": sections,
            "manifest": manifest,
        });
        super::evidence::emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "# TDX measurements computed by `confide measure tdx` from:\n#   tdvf {} ({} sections)\n",
        a.tdvf.display(),
        sections.len()
    );
    for p in &a.firmware_config {
        text.push_str(&format!("#   firmware config {}\n", p.display()));
    }
    text.push_str(&format!("#   kernel {}\n", a.kernel.display()));
    if let Some(c) = &a.append {
        text.push_str(&format!("#   append {c:?}\n"));
    }
    if let Some(p) = &a.initrd {
        text.push_str(&format!("#   initrd {}\n", p.display()));
    }
    match manifest {
        Some(m) => text.push_str(&to_toml(&m)?),
        None => text.push_str(&format!(
            "platform = \"tdx\"\nmeasurement = \"{}\"\nrtmrs = [\"{}\", \"{}\", \"{}\"]\n",
            hex::encode(mrtd),
            hex::encode(rtmrs[0]),
            hex::encode(rtmrs[1]),
            hex::encode(rtmrs[2])
        )),
    }
    super::evidence::emit(&text)?;
    Ok(ExitCode::SUCCESS)
}
