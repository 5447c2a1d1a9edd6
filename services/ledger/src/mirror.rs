//! A static mirror of the ledger: the C2SP tlog-tiles layout written to a directory that
//! any static web server, CDN or object store can serve.
//!
//! Devices, monitors and nodes read only `checkpoint` and `tile/...` (see
//! [`crate::client`]), so a copy of those files is a complete read-only ledger. The
//! mirror is made from what the ledger serves over HTTP, which is all a third-party
//! mirror operator has, and it is checked before anything is published:
//!
//! - every entry bundle is fetched and the RFC 9162 §2.1.1 tree is recomputed; its root
//!   must be the checkpoint's root, and every hash tile must equal the one computed from
//!   the entries (so a mirror never publishes a tile that disagrees with its entries);
//! - with the ledger's verifier key, the checkpoint's signature (and witness quorum) is
//!   verified too;
//! - against an earlier export in the same directory: the new tree must extend the old
//!   one (the old root is recomputed from the new entries) and every tile already
//!   published must be byte-identical. A ledger that forked or rolled back is refused
//!   and the mirror is left as it was.
//!
//! Tiles are written first and the checkpoint last (each file atomically), so at no
//! moment does the mirror's checkpoint name a tile it does not hold. `_headers` gives
//! the caching rules in the format Netlify and Cloudflare Pages read (tiles immutable,
//! the checkpoint `no-cache`); for other servers `docs/ledger.md` gives the same rules.

use std::path::{Path, PathBuf};

use confide_note::{Checkpoint, Note};
use confide_release::{LedgerTrust, verify_checkpoint};
use confide_tiles::TileId;
use confide_tlog::{MemoryTree, leaf_hash};

use crate::Error;
use crate::client::LedgerClient;

/// Caching rules for the mirror's files, in the `_headers` format of Netlify and
/// Cloudflare Pages. Tiles never change once published (C2SP tlog-tiles); the checkpoint
/// changes with every new entry and must be revalidated.
pub const HEADERS_FILE: &str = "\
# Written by `confide ledger export`. C2SP tlog-tiles caching rules.
/tile/*
  Cache-Control: public, max-age=31536000, immutable
  Content-Type: application/octet-stream
/checkpoint
  Cache-Control: no-cache
  Content-Type: text/plain; charset=utf-8
";

/// What one export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Tree size of the mirrored checkpoint.
    pub size: u64,
    /// Tree size the mirror held before (0 for a new mirror).
    pub previous_size: u64,
    /// Tile files written by this export.
    pub tiles_written: usize,
    /// Tile files already present with the same content.
    pub tiles_unchanged: usize,
}

fn read_previous(out: &Path) -> Result<Option<Checkpoint>, Error> {
    match std::fs::read_to_string(out.join("checkpoint")) {
        Ok(text) => Ok(Some(Checkpoint::parse(Note::parse(&text)?.text())?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Mirror the ledger that `client` reads into `out`. With `trust`, the checkpoint's
/// signatures are verified as a device would (without it, only the Merkle structure is).
pub async fn export(
    client: &LedgerClient,
    out: &Path,
    trust: Option<&LedgerTrust>,
) -> Result<ExportSummary, Error> {
    let note = client.checkpoint().await?;
    let cp = LedgerClient::parse_checkpoint(&note)?;
    if let Some(trust) = trust {
        verify_checkpoint(&note, trust, None, None)?;
    }
    let size = cp.size();
    let previous = read_previous(out)?;
    if let Some(prev) = &previous {
        if prev.origin() != cp.origin() {
            return Err(Error::MirrorFork(format!(
                "the mirror holds origin {:?}, the ledger serves {:?}",
                prev.origin(),
                cp.origin()
            )));
        }
        if prev.size() > size {
            return Err(Error::MirrorRollback {
                mirrored: prev.size(),
                ledger: size,
            });
        }
    }

    // Fetch everything, recompute, and compare before writing a single file.
    let tiles = confide_tiles::tiles_for_size(size);
    let mut tree = MemoryTree::new();
    let mut files: Vec<(TileId, Vec<u8>)> = Vec::with_capacity(tiles.len());
    for id in tiles.iter().filter(|t| t.level.is_none()) {
        let data = client.tile(id).await?;
        for entry in confide_tiles::decode_entry_bundle(&data, id.width)? {
            tree.push(leaf_hash(&entry));
        }
        files.push((*id, data));
    }
    if tree.size() != size {
        return Err(Error::TileMismatch(format!(
            "the entry bundles hold {} entries, the checkpoint says {size}",
            tree.size()
        )));
    }
    if tree.root() != *cp.root() {
        return Err(Error::TileMismatch(format!(
            "the root recomputed from the entries differs from the checkpoint's (size {size})"
        )));
    }
    for id in tiles.iter().filter(|t| t.level.is_some()) {
        let data = client.tile(id).await?;
        if data != confide_tiles::hash_tile(&tree, id)? {
            return Err(Error::TileMismatch(format!(
                "hash tile {} does not match the entries",
                id.path()
            )));
        }
        files.push((*id, data));
    }
    let previous_size = previous.as_ref().map_or(0, Checkpoint::size);
    if let Some(prev) = &previous
        && prev.size() > 0
        && tree.root_at(prev.size())? != *prev.root()
    {
        return Err(Error::MirrorFork(format!(
            "the ledger's entries do not reproduce the mirrored checkpoint of size {}",
            prev.size()
        )));
    }
    // A tile already published must not change (immutable): check all before writing.
    let mut writes: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut unchanged = 0usize;
    for (id, data) in files {
        let path = out.join(id.path());
        match std::fs::read(&path) {
            Ok(existing) if existing == data => unchanged += 1,
            Ok(_) => {
                return Err(Error::MirrorFork(format!(
                    "published tile {} would change",
                    id.path()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => writes.push((path, data)),
            Err(e) => return Err(e.into()),
        }
    }
    let written = writes.len();
    for (path, data) in writes {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        confide_svc::durable::write_atomic(&path, &data)?;
    }
    confide_svc::durable::write_atomic(&out.join("_headers"), HEADERS_FILE.as_bytes())?;
    // Last: the checkpoint, once every tile it covers is in place.
    confide_svc::durable::write_atomic(&out.join("checkpoint"), note.as_bytes())?;
    Ok(ExportSummary {
        size,
        previous_size,
        tiles_written: written,
        tiles_unchanged: unchanged,
    })
}
