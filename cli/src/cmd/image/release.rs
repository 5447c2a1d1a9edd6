//! `confide release manifest --image` and `confide release audit`: a release from an
//! image that `scripts/build-image` wrote, and the check that a rebuild of its revision
//! gives the same image (docs/image.md, "Auditing a release").
//!
//! An image directory names what went into it: `inputs.txt` (the source revision, the
//! model's digest, the options, and the build recipe's lines), `recipe.txt` (whose SHA-256
//! is the release's `build_recipe_digest`) and `SHA256SUMS` over every file. An audit
//! compares those, line by line and file by file, so a mismatch names the input or the
//! file that differs, not just "no".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use confide_release::{LedgerEntry, Platform, ReleaseManifest};
use sha2::{Digest, Sha256};

/// Arguments of `confide release manifest`.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// The image directory (`scripts/build-image --out`).
    #[arg(long)]
    pub image: PathBuf,
    /// The model file the image holds (its digest must be the one in `inputs.txt`).
    #[arg(long, value_parser = crate::cmd::engine::parse_model)]
    pub model: PathBuf,
    /// The release's notes.
    #[arg(long, default_value = "")]
    pub notes: String,
}

/// Arguments of `confide release audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The release manifest to audit (TOML, as `confide release publish` takes it).
    pub manifest: PathBuf,
    /// The image the operator published for it.
    #[arg(long)]
    pub image: PathBuf,
    /// The model file (checked against the manifest's model digest).
    #[arg(long, value_parser = crate::cmd::engine::parse_model)]
    pub model: PathBuf,
    /// Compare with this image instead of rebuilding: an image rebuilt earlier, or by
    /// someone else.
    #[arg(long, value_name = "DIR")]
    pub rebuilt: Option<PathBuf>,
    /// Where to rebuild (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR", conflicts_with = "rebuilt")]
    pub work: Option<PathBuf>,
}

/// An image directory, its files checked against its `SHA256SUMS`.
#[derive(Debug)]
pub struct Image {
    dir: PathBuf,
    /// File name to SHA-256 (hex), from `SHA256SUMS`.
    sums: BTreeMap<String, String>,
    /// `inputs.txt`: each input's name to its value.
    inputs: BTreeMap<String, String>,
    recipe_digest: [u8; 32],
}

impl Image {
    /// Reads an image directory and checks every file against `SHA256SUMS`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .with_context(|| format!("{}: no {name} (not an image directory?)", dir.display()))
        };
        let sums_text = String::from_utf8(read("SHA256SUMS")?).context("SHA256SUMS: not UTF-8")?;
        let mut sums = BTreeMap::new();
        for line in sums_text.lines() {
            let (digest, name) = line
                .split_once("  ")
                .with_context(|| format!("SHA256SUMS: malformed line {line:?}"))?;
            if name.contains('/') {
                bail!("SHA256SUMS names {name:?}, outside the image directory");
            }
            // Streamed: the initrd holds the model (over a gigabyte by default).
            let actual = hex::encode(sha256_file(&dir.join(name)).with_context(|| {
                format!("{}: no {name} (not an image directory?)", dir.display())
            })?);
            if actual != digest {
                bail!(
                    "{}/{name} does not match SHA256SUMS (listed {digest}, file {actual})",
                    dir.display()
                );
            }
            sums.insert(name.to_owned(), digest.to_owned());
        }
        for needed in [
            "inputs.txt",
            "recipe.txt",
            "confide",
            "initrd.img",
            "vmlinuz",
        ] {
            if !sums.contains_key(needed) {
                bail!("{}: SHA256SUMS does not list {needed}", dir.display());
            }
        }
        let inputs = parse_inputs(
            &String::from_utf8(read("inputs.txt")?).context("inputs.txt: not UTF-8")?,
        )?;
        // recipe.txt was hashed against SHA256SUMS above: its digest is that entry.
        let recipe_digest = hex::decode(&sums["recipe.txt"])
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .context("SHA256SUMS: recipe.txt's digest is not 64 hex digits")?;
        Ok(Self {
            dir: dir.to_owned(),
            sums,
            inputs,
            recipe_digest,
        })
    }

    fn input(&self, name: &str) -> anyhow::Result<&str> {
        self.inputs
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("{}/inputs.txt has no {name}", self.dir.display()))
    }

    fn platform(&self) -> anyhow::Result<&str> {
        self.input("option platform")
    }
}

/// `inputs.txt` lines as name to value. A line's name is its first word, and for
/// `option` and `library` lines its first two (there are several of each).
pub fn parse_inputs(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split(' ');
        let first = words.next().unwrap_or_default();
        let name = match first {
            "option" | "library" => format!("{first} {}", words.next().unwrap_or_default()),
            _ => first.to_owned(),
        };
        let value = words.collect::<Vec<_>>().join(" ");
        if out.insert(name.clone(), value).is_some() {
            bail!("inputs.txt: {name} appears twice");
        }
    }
    Ok(out)
}

/// What differs between a published image and a rebuilt one: each input by name, then
/// each file. Empty when they are the same.
pub fn differences(published: &Image, rebuilt: &Image) -> Vec<String> {
    let mut out = Vec::new();
    compare(&mut out, "input", &published.inputs, &rebuilt.inputs);
    compare(&mut out, "file", &published.sums, &rebuilt.sums);
    out
}

fn compare(
    out: &mut Vec<String>,
    what: &str,
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) {
    for (k, va) in a {
        match b.get(k) {
            None => out.push(format!(
                "{what} {k}: published {va}, missing from the rebuild"
            )),
            Some(vb) if vb != va => out.push(format!("{what} {k}: published {va}, rebuilt {vb}")),
            Some(_) => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            out.push(format!(
                "{what} {k}: not in the published image, rebuilt {vb}"
            ));
        }
    }
}

/// SHA-256 of a file, read in pieces.
pub(crate) fn sha256_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(h.finalize().into())
}

/// The release manifest of an image (TOML). Simulated platforms: the image's own binary
/// measures itself (`node measure`, with the model and the platform the image was built
/// with). Hardware platforms need the firmware's measurement, which the image's generic
/// OVMF cannot give (docs/image.md).
pub fn manifest_for(image: &Image, model: &Path, notes: &str, now: u64) -> anyhow::Result<String> {
    let model_hex = hex::encode(sha256_file(model)?);
    let listed = image.input("model")?;
    if !listed.ends_with(&model_hex) {
        bail!(
            "model {} has SHA-256 {model_hex}; the image was built with {listed}",
            model.display()
        );
    }
    let platform = image.platform()?;
    if !matches!(platform, "simulated" | "simulated-tdx") {
        bail!(
            "a {platform} release's measurement comes from the firmware, and this image's OVMF \
             (Debian's generic build) has no SEV or TDX metadata: compute it with `confide \
             measure snp|tdx` over {0}/vmlinuz, {0}/initrd.img and {0}/cmdline with the \
             platform's firmware, and give it the fields of inputs.txt (docs/image.md)",
            image.dir.display()
        );
    }
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let out = Command::new(image.dir.join("confide"))
        .args(["node", "measure", "--dir"])
        .arg(tmp.path())
        .args(["--platform", platform, "--model"])
        .arg(model)
        .output()
        .context("running the image's confide")?;
    if !out.status.success() {
        bail!(
            "the image's confide node measure failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let m: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("node measure printed no JSON")?;
    crate::cmd::up::release_manifest(
        &m,
        image.input("source_revision")?,
        &hex::encode(image.recipe_digest),
        now,
        notes,
    )
}

fn now() -> anyhow::Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs())
}

/// `confide release manifest --image`.
pub fn manifest(a: &ManifestArgs) -> anyhow::Result<ExitCode> {
    let image = Image::open(&a.image)?;
    print!("{}", manifest_for(&image, &a.model, &a.notes, now()?)?);
    Ok(ExitCode::SUCCESS)
}

/// The fields an audit compares between the manifest and the rebuilt image's release
/// (validity and notes are the operator's choice, not the build's).
fn release_fields(m: &ReleaseManifest) -> Vec<(&'static str, String)> {
    vec![
        ("platform", format!("{:?}", m.platform)),
        ("measurement", hex::encode(&m.measurement)),
        ("snp_policy", format!("{:?}", m.snp_policy)),
        (
            "rtmrs",
            m.rtmrs
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("model_digest", hex::encode(m.model_digest)),
        ("config_digest", hex::encode(m.config_digest)),
        ("source_revision", m.source_revision.clone()),
        ("build_recipe_digest", hex::encode(m.build_recipe_digest)),
    ]
}

fn parse_manifest(text: &str) -> anyhow::Result<ReleaseManifest> {
    match LedgerEntry::from_document(text).context("invalid manifest")? {
        LedgerEntry::Release(m) => Ok(m),
        _ => bail!("the manifest is not a release"),
    }
}

/// `confide release audit`.
pub fn audit(a: &AuditArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("cannot read {}", a.manifest.display()))?;
    let manifest = parse_manifest(&text)?;
    let published = Image::open(&a.image)?;
    let mut diffs = Vec::new();
    // The manifest must describe the published image before a rebuild means anything.
    if published.input("source_revision")? != manifest.source_revision {
        diffs.push(format!(
            "manifest source_revision {}, published image built from {}",
            manifest.source_revision,
            published.input("source_revision")?
        ));
    }
    if published.recipe_digest != manifest.build_recipe_digest {
        diffs.push(format!(
            "manifest build_recipe_digest {}, published recipe.txt has {}",
            hex::encode(manifest.build_recipe_digest),
            hex::encode(published.recipe_digest)
        ));
    }
    let model_digest = sha256_file(&a.model)?;
    if model_digest != manifest.model_digest {
        bail!(
            "model {} has SHA-256 {}; the manifest names {}",
            a.model.display(),
            hex::encode(model_digest),
            hex::encode(manifest.model_digest)
        );
    }

    let (rebuilt, _work) = match &a.rebuilt {
        Some(dir) => (Image::open(dir)?, None),
        None => {
            let (dir, work) = rebuild(&published, &a.model, a.work.as_deref())?;
            (Image::open(&dir)?, work)
        }
    };
    diffs.extend(differences(&published, &rebuilt));
    if matches!(
        manifest.platform,
        Platform::Simulated | Platform::SimulatedTdx
    ) {
        let again = parse_manifest(&manifest_for(&rebuilt, &a.model, "", now()?)?)?;
        for ((name, want), (_, got)) in release_fields(&manifest)
            .into_iter()
            .zip(release_fields(&again))
        {
            if want != got {
                diffs.push(format!(
                    "release field {name}: manifest {want}, rebuilt {got}"
                ));
            }
        }
    } else {
        eprintln!(
            "note: a {:?} release's measurement is the firmware's; recompute it with `confide measure` (the image files compared equal or not, below)",
            manifest.platform
        );
    }
    if diffs.is_empty() {
        println!(
            "match: the rebuild of {} gives the published image ({} files, {} inputs) and the manifest's release",
            manifest.source_revision,
            published.sums.len(),
            published.inputs.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("MISMATCH: {} difference(s)", diffs.len());
        for d in &diffs {
            println!("  {d}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Rebuilds the published image's revision with its options: a detached git worktree of
/// that revision (this command must run in a clone that has it), and that revision's own
/// `scripts/build-image`.
fn rebuild(
    published: &Image,
    model: &Path,
    work: Option<&Path>,
) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    let rev = published
        .input("source_revision")?
        .strip_prefix("git:")
        .context("source_revision is not git:COMMIT")?
        .to_owned();
    let (root, guard) = match work {
        Some(w) => (w.to_owned(), None),
        None => {
            let t = tempfile::tempdir().context("temporary directory")?;
            (t.path().to_owned(), Some(t))
        }
    };
    let tree = root.join("tree");
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let st = Command::new("git")
            .args(args)
            .status()
            .context("running git")?;
        if !st.success() {
            bail!("git {} failed", args.join(" "));
        }
        Ok(())
    };
    let tree_s = tree.to_str().context("work directory not UTF-8")?;
    git(&["worktree", "add", "--detach", tree_s, &rev])
        .with_context(|| format!("checking out {rev} (run the audit in a clone that has it)"))?;
    let out = root.join("image");
    let status = Command::new(tree.join("scripts/build-image"))
        .arg("--out")
        .arg(&out)
        .arg("--model")
        .arg(model)
        .args(["--platform", published.platform()?])
        .args(["--ledger", published.input("option ledger")?])
        .status()
        .context("running scripts/build-image");
    let _ = git(&["worktree", "remove", "--force", tree_s]);
    if !status?.success() {
        bail!("the rebuild of {rev} failed");
    }
    Ok((out, guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUTS: &str = "source_revision git:abc\nmodel model.gguf 11\noption platform simulated\n\
        option ledger http://l\nconfide-build-recipe/v1\nrustc rustc_1.95.0\n\
        library /lib/a libc6_2.36 22\nlibrary /lib/b libc6_2.36 33\n";

    fn image(inputs: &str, sums: &[(&str, &str)]) -> Image {
        Image {
            dir: PathBuf::from("x"),
            sums: sums
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            inputs: parse_inputs(inputs).unwrap(),
            recipe_digest: [0; 32],
        }
    }

    #[test]
    fn inputs_are_named_by_kind_and_what() {
        let i = parse_inputs(INPUTS).unwrap();
        assert_eq!(i["source_revision"], "git:abc");
        assert_eq!(i["option ledger"], "http://l");
        assert_eq!(i["library /lib/b"], "libc6_2.36 33");
        assert_eq!(i["confide-build-recipe/v1"], "");
        let e = parse_inputs("rustc a\nrustc b\n").unwrap_err();
        assert!(e.to_string().contains("rustc appears twice"), "{e}");
    }

    #[test]
    fn a_difference_names_its_input_or_file() {
        let a = image(INPUTS, &[("initrd.img", "aa"), ("vmlinuz", "bb")]);
        assert!(
            differences(
                &a,
                &image(INPUTS, &[("initrd.img", "aa"), ("vmlinuz", "bb")])
            )
            .is_empty()
        );
        let b = image(
            &INPUTS.replace("rustc_1.95.0", "rustc_1.96.0"),
            &[("initrd.img", "cc"), ("vmlinuz", "bb")],
        );
        assert_eq!(
            differences(&a, &b),
            [
                "input rustc: published rustc_1.95.0, rebuilt rustc_1.96.0",
                "file initrd.img: published aa, rebuilt cc"
            ]
        );
        let c = image(
            &INPUTS.replace("library /lib/b libc6_2.36 33\n", ""),
            &[("initrd.img", "aa")],
        );
        assert_eq!(
            differences(&a, &c),
            [
                "input library /lib/b: published libc6_2.36 33, missing from the rebuild",
                "file vmlinuz: published bb, missing from the rebuild"
            ]
        );
    }
}
