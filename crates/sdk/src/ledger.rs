//! The device's view of the ledger: the newest cosigned checkpoint, verified and
//! consistent with the last one this device saw, and the entries it covers.
//!
//! The ledger is read as static C2SP `tlog-tiles` files: `<ledger>/checkpoint` (a C2SP
//! signed note, tlog-checkpoint body, tlog-cosignature lines) and the entry bundles
//! `<ledger>/tile/entries/<N>[.p/<W>]` (each entry a big-endian `uint16` length then its
//! bytes). The device recomputes the RFC 9162 §2.1.1 tree from the entries and requires
//! its root to equal the signed one, so every entry it reads is proven included.
//!
//! Uses: the gateway's OHTTP key configs must appear in a `key-config` entry (key
//! consistency, DESIGN.md phase 2), and a node's stapled bundle proven under an older
//! checkpoint is accepted only if that tree is a prefix of this verified one
//! ([`LedgerView::is_prefix`]).

use std::path::Path;

use confide_release::{
    Bundle, LedgerTrust, StoredCheckpoint, VerifiedInclusion, verify_bundle, verify_checkpoint,
};
use confide_tlog::{Hash, MemoryTree};

use crate::error::{Check, Error, Party};

/// Full width of a tlog-tiles entry tile.
const TILE_WIDTH: u64 = 256;
/// Largest log read (entries); a release log holds one entry per build or key.
const MAX_ENTRIES: u64 = 1 << 16;
/// Largest response accepted from the ledger.
const MAX_BODY: usize = 8 << 20;

/// A verified ledger snapshot.
#[derive(Debug)]
pub struct LedgerView {
    note: String,
    checkpoint: StoredCheckpoint,
    cosigners: Vec<String>,
    entries: Vec<Vec<u8>>,
    tree: MemoryTree,
}

fn ledger_check(check: Check, e: confide_release::Error) -> Error {
    Error::Check {
        check,
        detail: e.to_string(),
    }
}

/// Which check a `confide-release` verification error belongs to.
pub(crate) fn classify_release_error(e: &confide_release::Error) -> Check {
    use confide_release::Error as E;
    match e {
        E::TooFewCosignatures { .. } => Check::Witnesses,
        E::MalformedCheckpoint(_)
        | E::UnknownLedgerKey
        | E::BadLedgerSignature
        | E::OriginMismatch
        | E::Fork { .. }
        | E::Rollback { .. }
        | E::ConsistencyProofRequired { .. }
        | E::Inconsistent(_)
        | E::StoredOriginMismatch => Check::Checkpoint,
        _ => Check::LedgerEntry,
    }
}

async fn get(
    http: &reqwest::Client,
    url: &str,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, Error> {
    let unreachable = |e: reqwest::Error| Error::Unreachable {
        party: Party::Ledger,
        url: url.to_owned(),
        detail: e.without_url().to_string(),
    };
    // The timeout covers the body too: a ledger that sends headers and then stalls is
    // as unreachable as one that never answers.
    let mut resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(unreachable)?;
    if !resp.status().is_success() {
        return Err(Error::Protocol {
            party: Party::Ledger,
            detail: format!("{url} answered {}", resp.status()),
        });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(Error::Protocol {
                party: Party::Ledger,
                detail: format!("{url} is larger than {MAX_BODY} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The tlog-tiles path of entry tile `n` of width `w` (`x001/x234/067`, `.p/W` if partial).
fn entries_tile_path(n: u64, width: u64) -> String {
    let mut groups = vec![n % 1000];
    let mut v = n / 1000;
    while v > 0 {
        groups.push(v % 1000);
        v /= 1000;
    }
    let mut path = String::from("tile/entries");
    for (i, g) in groups.iter().rev().enumerate() {
        let last = i + 1 == groups.len();
        path.push_str(&if last {
            format!("/{g:03}")
        } else {
            format!("/x{g:03}")
        });
    }
    if width < TILE_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

fn split_entries(bytes: &[u8], want: u64) -> Result<Vec<Vec<u8>>, Error> {
    let bad = |d: &str| Error::Protocol {
        party: Party::Ledger,
        detail: d.to_owned(),
    };
    let mut out = Vec::new();
    let mut r = bytes;
    while !r.is_empty() {
        let (len, rest) = r
            .split_at_checked(2)
            .ok_or_else(|| bad("entry tile truncated"))?;
        let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (e, rest) = rest
            .split_at_checked(n)
            .ok_or_else(|| bad("entry tile truncated"))?;
        out.push(e.to_vec());
        r = rest;
    }
    if out.len() as u64 != want {
        return Err(bad("entry tile has the wrong number of entries"));
    }
    Ok(out)
}

/// Read the last-seen checkpoint state (absent file: none seen yet).
pub fn load_last_seen(path: &Path) -> Result<Option<StoredCheckpoint>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => StoredCheckpoint::parse(&text)
            .map(Some)
            .map_err(|e| Error::State {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::State {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
    }
}

/// Persist the newest verified checkpoint (crash-safe replace, see
/// [`crate::state::write_durable`]).
pub fn store_last_seen(path: &Path, cp: &StoredCheckpoint) -> Result<(), Error> {
    crate::state::write_durable(path, cp.encode().as_bytes())
}

impl LedgerView {
    /// Fetch and verify the ledger at `base_url` under `trust`, consistent with `last_seen`.
    ///
    /// Each file fetched (checkpoint, entry tiles) must arrive within `timeout`.
    pub async fn fetch(
        http: &reqwest::Client,
        base_url: &str,
        trust: &LedgerTrust,
        last_seen: Option<&StoredCheckpoint>,
        timeout: std::time::Duration,
    ) -> Result<LedgerView, Error> {
        let base = base_url.trim_end_matches('/');
        let note = String::from_utf8(get(http, &format!("{base}/checkpoint"), timeout).await?)
            .map_err(|_| Error::Protocol {
                party: Party::Ledger,
                detail: "checkpoint is not UTF-8".into(),
            })?;
        // Signature, origin and witness quorum first, without the consistency check (the
        // proof is computed below from the entries themselves).
        let unchecked = verify_checkpoint(&note, trust, None, None)
            .map_err(|e| ledger_check(classify_release_error(&e), e))?;
        let cp = unchecked.checkpoint().clone();
        if cp.size() > MAX_ENTRIES {
            return Err(Error::Protocol {
                party: Party::Ledger,
                detail: format!(
                    "the log has {} entries, more than this client reads",
                    cp.size()
                ),
            });
        }
        let mut entries = Vec::new();
        let mut n = 0u64;
        while n * TILE_WIDTH < cp.size() {
            let width = (cp.size() - n * TILE_WIDTH).min(TILE_WIDTH);
            let bytes = get(
                http,
                &format!("{base}/{}", entries_tile_path(n, width)),
                timeout,
            )
            .await?;
            entries.extend(split_entries(&bytes, width)?);
            n += 1;
        }
        let mut tree = MemoryTree::new();
        for e in &entries {
            tree.push(confide_tlog::leaf_hash(e));
        }
        if tree.root() != *cp.root() {
            return Err(Error::Check {
                check: Check::Checkpoint,
                detail: "the ledger's entries do not hash to its signed root".into(),
            });
        }
        // Consistency with what this device saw before (RFC 9162 §2.1.4), with a proof we
        // derive from the verified entries.
        if let Some(old) = last_seen {
            let proof = if old.size() > 0 && old.size() < cp.size() {
                Some(
                    confide_tlog::consistency_proof(&tree, old.size(), cp.size()).map_err(|e| {
                        Error::Check {
                            check: Check::Checkpoint,
                            detail: e.to_string(),
                        }
                    })?,
                )
            } else {
                None
            };
            verify_checkpoint(&note, trust, Some(old), proof.as_deref())
                .map_err(|e| ledger_check(classify_release_error(&e), e))?;
        }
        Ok(LedgerView {
            cosigners: unchecked.cosigners().to_vec(),
            note,
            checkpoint: cp,
            entries,
            tree,
        })
    }

    /// The verified checkpoint.
    pub fn checkpoint(&self) -> &StoredCheckpoint {
        &self.checkpoint
    }

    /// The witnesses whose cosignatures verified.
    pub fn cosigners(&self) -> &[String] {
        &self.cosigners
    }

    /// Every entry, each proven by a [`VerifiedInclusion`] under the checkpoint.
    pub fn inclusions(&self, trust: &LedgerTrust) -> Result<Vec<VerifiedInclusion>, Error> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            let index = i as u64;
            let proof = confide_tlog::inclusion_proof(&self.tree, index, self.checkpoint.size())
                .map_err(|e| Error::Check {
                    check: Check::LedgerEntry,
                    detail: e.to_string(),
                })?;
            let bundle = Bundle {
                entry: entry.clone(),
                index,
                proof,
                checkpoint: self.note.clone(),
            };
            out.push(
                verify_bundle(&bundle, trust, None, None)
                    .map_err(|e| ledger_check(classify_release_error(&e), e))?,
            );
        }
        Ok(out)
    }

    /// Whether a (verified) checkpoint of `size` with `root` describes a prefix of this
    /// view's tree: the log did not fork between the two.
    pub fn is_prefix(&self, size: u64, root: &Hash) -> bool {
        size <= self.checkpoint.size() && self.tree.root_at(size).is_ok_and(|r| r == *root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths() {
        assert_eq!(entries_tile_path(0, 5), "tile/entries/000.p/5");
        assert_eq!(entries_tile_path(1, 256), "tile/entries/001");
        assert_eq!(
            entries_tile_path(1234067, 256),
            "tile/entries/x001/x234/067"
        );
    }

    #[test]
    fn entry_tiles_split_exactly() {
        let t = [0u8, 2, b'a', b'b', 0, 1, b'c'];
        assert_eq!(
            split_entries(&t, 2).unwrap(),
            vec![b"ab".to_vec(), b"c".to_vec()]
        );
        assert!(split_entries(&t, 3).is_err());
        assert!(split_entries(&t[..6], 2).is_err());
        assert!(split_entries(&[0], 1).is_err());
    }
}
