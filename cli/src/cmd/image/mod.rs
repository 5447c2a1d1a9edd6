//! `confide image`: the pieces of the node image that need more than a shell script
//! (docs/image.md). `initrd` packs a staged directory into a deterministic initramfs;
//! [`guest`] is what the same binary does when the kernel starts it as `/init`.

pub mod guest;
mod netlink;
pub mod release;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use confide_cpio::Archive;
use sha2::{Digest, Sha256};

/// `confide image` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCmd {
    /// Pack a directory into an initramfs (cpio "newc") that is the same bytes wherever
    /// it is built: entries in path order, owner 0, one timestamp, normalised
    /// permissions, and a `dev/console` device for the kernel to give `/init`.
    Initrd(InitrdArgs),
}

/// `confide image initrd`.
#[derive(Debug, clap::Args)]
pub struct InitrdArgs {
    /// The staged root: its contents become the initramfs's `/`.
    #[arg(long)]
    root: PathBuf,
    /// Where to write the archive.
    #[arg(long)]
    out: PathBuf,
    /// Timestamp of every entry, in seconds since the epoch.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    mtime: u32,
}

/// Runs a `confide image` subcommand.
pub fn run(cmd: ImageCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCmd::Initrd(a) => {
            let archive = pack(&a.root, a.mtime)?;
            let bytes = archive.to_bytes()?;
            // Written next to the target and renamed: a reader never sees half an image.
            let tmp = a.out.with_extension("partial");
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &a.out)
                .with_context(|| format!("renaming to {}", a.out.display()))?;
            println!(
                "{}  {} ({} entries, {} bytes)",
                hex::encode(Sha256::digest(&bytes)),
                a.out.display(),
                archive.len(),
                bytes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The archive of everything under `root`, plus `dev/console`.
pub fn pack(root: &Path, mtime: u32) -> anyhow::Result<Archive> {
    let mut archive = Archive::new(mtime);
    let meta =
        std::fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    add_tree(&mut archive, root, "")?;
    if archive.is_empty() {
        bail!("{} is empty", root.display());
    }
    // The kernel opens /dev/console for init's stdin, stdout and stderr before it mounts
    // anything; without the node there, the node's messages would go nowhere.
    if std::fs::symlink_metadata(root.join("dev")).is_err() {
        archive.directory("dev", 0o755)?;
    }
    archive.char_device("dev/console", 0o600, 5, 1)?;
    Ok(archive)
}

fn add_tree(archive: &mut Archive, dir: &Path, prefix: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| anyhow::anyhow!("{}: not UTF-8: {n:?}", dir.display()))?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            archive.directory(&rel, 0o755)?;
            add_tree(archive, &path, &rel)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)
                .with_context(|| format!("reading link {}", path.display()))?;
            let target = target
                .to_str()
                .with_context(|| format!("{}: link target not UTF-8", path.display()))?;
            archive.symlink(&rel, target)?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            // Only "executable or not" survives: umask and the build machine's habits
            // must not reach the image.
            let perm = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let data =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            archive.file(&rel, perm, data)?;
        } else {
            bail!(
                "{}: only directories, files and symbolic links can be staged",
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stage(dir: &Path, umask_like: u32) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("etc/confide")).unwrap();
        std::fs::write(dir.join("bin/confide"), b"\x7fELF...").unwrap();
        std::fs::set_permissions(
            dir.join("bin/confide"),
            std::fs::Permissions::from_mode(0o777 & !umask_like),
        )
        .unwrap();
        std::fs::write(dir.join("etc/confide/guest.toml"), b"x = 1\n").unwrap();
        std::fs::set_permissions(
            dir.join("etc/confide/guest.toml"),
            std::fs::Permissions::from_mode(0o666 & !umask_like),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/confide", dir.join("init")).unwrap();
    }

    #[test]
    fn same_tree_in_two_places_with_two_umasks_packs_to_the_same_bytes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        stage(a.path(), 0o022);
        stage(b.path(), 0o077);
        let x = pack(a.path(), 1_700_000_000).unwrap().to_bytes().unwrap();
        let y = pack(b.path(), 1_700_000_000).unwrap().to_bytes().unwrap();
        assert_eq!(x, y);
        // bin, bin/confide, dev, dev/console, etc, etc/confide, etc/confide/guest.toml, init
        assert_eq!(pack(a.path(), 0).unwrap().len(), 8);
        // Any change of content is a different image.
        std::fs::write(b.path().join("etc/confide/guest.toml"), b"x = 2\n").unwrap();
        let z = pack(b.path(), 1_700_000_000).unwrap().to_bytes().unwrap();
        assert_ne!(x, z);
    }

    #[test]
    fn what_cannot_be_packed_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = pack(d.path(), 0).unwrap_err();
        assert!(format!("{e:#}").contains("is empty"), "{e:#}");
        let f = d.path().join("file");
        std::fs::write(&f, b"").unwrap();
        let e = pack(&f, 0).unwrap_err();
        assert!(format!("{e:#}").contains("not a directory"), "{e:#}");
        let e = pack(&d.path().join("missing"), 0).unwrap_err();
        assert!(format!("{e:#}").contains("reading"), "{e:#}");
    }
}
