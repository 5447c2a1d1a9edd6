//! Fetching the node's stapled ledger bundle.
//!
//! The node needs an entry (its release manifest), the RFC 9162 section 2.1.3 inclusion
//! proof of that entry, and the cosigned checkpoint the proof leads to, all packed as a
//! `confide_release::Bundle` that goes into its RA-TLS certificate. Devices then verify
//! without contacting the ledger.
//!
//! The ledger is read as a C2SP `tlog-tiles` log (static files): `<url>/checkpoint`
//! (the cosigned C2SP signed note) and `<url>/tile/entries/<N>[.p/<W>]` (entry bundles:
//! each entry a big-endian `uint16` length followed by the entry bytes). The node reads
//! every entry, recomputes the RFC 9162 tree from the leaf hashes, checks that its root
//! equals the checkpoint's (the ledger cannot staple a proof for a tree it did not sign),
//! picks its release, and derives the inclusion proof itself. Reading every entry is
//! linear in the log size; a release log holds one entry per build, so this stays small,
//! and it needs nothing from the ledger but its public static files.
//!
//! [`select_release`] and [`build_bundle`] are pure; [`fetch_bundle`] does the HTTP.

use confide_release::{Bundle, LedgerEntry, Platform, StoredCheckpoint};
use confide_tlog::MemoryTree;

use crate::Error;

/// Full width of a tlog-tiles tile (C2SP tlog-tiles: 256 entries per tile).
const TILE_WIDTH: u64 = 256;
/// Largest log the node will read (entries); far above any release log.
const MAX_ENTRIES: u64 = 1 << 20;

/// What the node is, to match against release manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The platform.
    pub platform: Platform,
    /// The 48-byte measurement.
    pub measurement: Vec<u8>,
    /// SHA-256 of the model file.
    pub model_digest: [u8; 32],
    /// SHA-256 of the node's canonical configuration (a release approves one).
    pub config_digest: [u8; 32],
}

/// Which release to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseChoice {
    /// The newest entry matching the node's identity and valid now.
    Auto,
    /// Exactly this leaf index (it must match the identity).
    Index(u64),
}

/// The C2SP tlog-tiles path of entry tile `n` (e.g. 1234067 → `x001/x234/067`), with
/// the `.p/<W>` suffix for a partial tile of width `w` < 256.
pub fn entries_tile_path(n: u64, width: u64) -> String {
    let mut groups = Vec::new();
    let mut v = n;
    loop {
        groups.push(v % 1000);
        v /= 1000;
        if v == 0 {
            break;
        }
    }
    groups.reverse();
    let last = groups.len() - 1;
    let mut path = String::from("tile/entries/");
    for (i, g) in groups.iter().enumerate() {
        if i < last {
            path.push_str(&format!("x{g:03}/"));
        } else {
            path.push_str(&format!("{g:03}"));
        }
    }
    if width < TILE_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// Splits a tlog-tiles entry bundle into entries; `want` must be the exact count.
pub fn split_entry_bundle(bytes: &[u8], want: u64) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::new();
    let mut r = bytes;
    while !r.is_empty() {
        let (len, rest) = r
            .split_at_checked(2)
            .ok_or(Error::Ledger("entry bundle truncated in a length"))?;
        let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (e, rest) = rest
            .split_at_checked(n)
            .ok_or(Error::Ledger("entry bundle truncated in an entry"))?;
        out.push(e.to_vec());
        r = rest;
    }
    if out.len() as u64 != want {
        return Err(Error::Ledger(
            "entry bundle has the wrong number of entries",
        ));
    }
    Ok(out)
}

fn matches(m: &LedgerEntry, id: &Identity) -> bool {
    match m {
        LedgerEntry::Release(r) => {
            r.platform == id.platform
                && r.measurement == id.measurement
                && r.model_digest == id.model_digest
                && r.config_digest == id.config_digest
        }
        _ => false,
    }
}

/// Picks the entry index to staple.
pub fn select_release(
    entries: &[Vec<u8>],
    id: &Identity,
    choice: ReleaseChoice,
    now: u64,
) -> Result<u64, Error> {
    let valid_now = |e: &LedgerEntry| matches!(e, LedgerEntry::Release(r) if r.is_valid_at(now));
    match choice {
        ReleaseChoice::Index(i) => {
            let bytes = usize::try_from(i)
                .ok()
                .and_then(|i| entries.get(i))
                .ok_or(Error::ReleaseNotFound("release index is beyond the log"))?;
            let e = LedgerEntry::decode(bytes)
                .map_err(|_| Error::ReleaseNotFound("entry at that index does not decode"))?;
            if !matches(&e, id) {
                return Err(Error::ReleaseNotFound(
                    "entry at that index does not list this node's measurement and model",
                ));
            }
            if !valid_now(&e) {
                return Err(Error::ReleaseNotFound(
                    "release at that index is not valid now",
                ));
            }
            Ok(i)
        }
        ReleaseChoice::Auto => entries
            .iter()
            .enumerate()
            .rev()
            .find(|(_, b)| {
                LedgerEntry::decode(b)
                    .map(|e| matches(&e, id) && valid_now(&e))
                    .unwrap_or(false)
            })
            .map(|(i, _)| i as u64)
            .ok_or(Error::ReleaseNotFound(
                "no valid release lists this node's measurement and model digest",
            )),
    }
}

/// Builds the bundle for `index` from all `entries` of the tree `checkpoint_note` signs.
pub fn build_bundle(
    entries: &[Vec<u8>],
    index: u64,
    checkpoint_note: &str,
) -> Result<Bundle, Error> {
    let note = confide_note::Note::parse(checkpoint_note)
        .map_err(|_| Error::Ledger("checkpoint is not a signed note"))?;
    let cp = StoredCheckpoint::parse(note.text())
        .map_err(|_| Error::Ledger("checkpoint body is malformed"))?;
    if cp.size() != entries.len() as u64 {
        return Err(Error::Ledger(
            "entry count differs from the checkpoint size",
        ));
    }
    let mut tree = MemoryTree::new();
    for e in entries {
        tree.push(confide_tlog::leaf_hash(e));
    }
    if tree.root() != *cp.root() {
        return Err(Error::Ledger(
            "entries do not hash to the checkpoint's root hash",
        ));
    }
    let proof = confide_tlog::inclusion_proof(&tree, index, cp.size())
        .map_err(|_| Error::Ledger("cannot build the inclusion proof"))?;
    let entry = usize::try_from(index)
        .ok()
        .and_then(|i| entries.get(i))
        .ok_or(Error::Ledger("index beyond the log"))?
        .clone();
    Ok(Bundle {
        entry,
        index,
        proof,
        checkpoint: checkpoint_note.to_owned(),
    })
}

/// Checks that a bundle (for example one given on the command line) is for this node.
pub fn check_bundle_identity(bundle: &Bundle, id: &Identity, now: u64) -> Result<(), Error> {
    let e = LedgerEntry::decode(&bundle.entry)
        .map_err(|_| Error::ReleaseNotFound("bundle entry does not decode"))?;
    if !matches(&e, id) {
        return Err(Error::ReleaseNotFound(
            "bundle entry does not list this node's measurement, model and config digests",
        ));
    }
    if !matches!(&e, LedgerEntry::Release(r) if r.is_valid_at(now)) {
        return Err(Error::ReleaseNotFound("bundle entry is not valid now"));
    }
    Ok(())
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, Error> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|_| Error::Ledger("ledger unreachable"))?;
    if !resp.status().is_success() {
        return Err(Error::Ledger("ledger answered with an error status"));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|_| Error::Ledger("ledger response body failed"))?;
    Ok(body.to_vec())
}

/// Reads the log at `base_url` and returns the bundle for this node's release.
pub async fn fetch_bundle(
    client: &reqwest::Client,
    base_url: &str,
    id: &Identity,
    choice: ReleaseChoice,
    now: u64,
) -> Result<Bundle, Error> {
    let base = base_url.trim_end_matches('/');
    let note_bytes = get(client, &format!("{base}/checkpoint")).await?;
    let note_text =
        String::from_utf8(note_bytes).map_err(|_| Error::Ledger("checkpoint is not UTF-8"))?;
    let note = confide_note::Note::parse(&note_text)
        .map_err(|_| Error::Ledger("checkpoint is not a signed note"))?;
    let size = StoredCheckpoint::parse(note.text())
        .map_err(|_| Error::Ledger("checkpoint body is malformed"))?
        .size();
    if size > MAX_ENTRIES {
        return Err(Error::Ledger("log is larger than the node reads"));
    }
    let mut entries = Vec::new();
    let mut n = 0u64;
    while n * TILE_WIDTH < size {
        let width = (size - n * TILE_WIDTH).min(TILE_WIDTH);
        let bytes = get(client, &format!("{base}/{}", entries_tile_path(n, width))).await?;
        entries.extend(split_entry_bundle(&bytes, width)?);
        n += 1;
    }
    let index = select_release(&entries, id, choice, now)?;
    build_bundle(&entries, index, &note_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_follow_c2sp() {
        // Examples from C2SP tlog-tiles.
        assert_eq!(
            entries_tile_path(1_234_067, 256),
            "tile/entries/x001/x234/067"
        );
        assert_eq!(entries_tile_path(0, 256), "tile/entries/000");
        assert_eq!(entries_tile_path(0, 3), "tile/entries/000.p/3");
        assert_eq!(entries_tile_path(1000, 7), "tile/entries/x001/000.p/7");
    }

    #[test]
    fn entry_bundles_split_exactly() {
        let b = [0, 2, b'h', b'i', 0, 0, 0, 1, b'x'];
        let e = split_entry_bundle(&b, 3).unwrap();
        assert_eq!(e, vec![b"hi".to_vec(), vec![], b"x".to_vec()]);
        assert!(split_entry_bundle(&b, 2).is_err());
        assert!(split_entry_bundle(&b[..8], 3).is_err());
        assert!(split_entry_bundle(&[0], 1).is_err());
    }
}
