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
    LedgerTrust, StoredCheckpoint, VerifiedCheckpoint, VerifiedInclusion, verify_checkpoint,
    verify_entry_under,
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
    /// The checkpoint as verified (signatures, quorum, consistency): checked once, here.
    verified: VerifiedCheckpoint,
    checkpoint: StoredCheckpoint,
    cosigners: Vec<String>,
    entries: Vec<Vec<u8>>,
    tree: MemoryTree,
    /// Newest verified witness cosignature time (unix seconds).
    newest_cosignature: Option<u64>,
    /// Revoked release index -> reason (the first revocation of each).
    revoked: std::collections::BTreeMap<u64, String>,
}

/// [`LedgerView::check_fresh`] on the newest verified cosignature time.
fn cosignature_fresh(newest: Option<u64>, now: u64, max_age: u64) -> Result<(), Error> {
    match newest {
        Some(t) if now.saturating_sub(t) <= max_age => Ok(()),
        newest => {
            let e = confide_release::Error::StaleCheckpoint {
                newest,
                now,
                max_age,
            };
            Err(ledger_check(classify_release_error(&e), e))
        }
    }
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
        E::StaleCheckpoint { .. } | E::ReleaseTooOld { .. } => Check::Freshness,
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

/// Record `new` (a verified checkpoint) as the last seen one in `path`, only ever moving it
/// forward, safely when several clients share the file (issue 13, finding 7).
///
/// Under an exclusive lock on `path` + `.lock` (the state file itself is replaced by rename,
/// so it cannot carry the lock), the stored checkpoint is read again: one at least as large
/// as `new` is kept (another client got further; the next fetch is checked against it), a
/// smaller one is replaced only if `is_prefix(size, root)` says the verified log extends it.
/// A stored checkpoint that the verified log does not extend — same size, other root; or a
/// smaller tree that is not a prefix — is a fork: two views of the log, an error.
pub fn advance_last_seen(
    path: &Path,
    new: &StoredCheckpoint,
    is_prefix: impl Fn(u64, &Hash) -> bool,
) -> Result<(), Error> {
    let _lock = lock_state(path)?;
    if let Some(stored) = load_last_seen(path)? {
        if stored.size() > new.size() {
            return Ok(());
        }
        if !is_prefix(stored.size(), stored.root()) {
            return Err(Error::Check {
                check: Check::Checkpoint,
                detail: format!(
                    "the stored checkpoint (size {}) is not a prefix of the verified log (size \
                     {}): the ledger showed different logs",
                    stored.size(),
                    new.size()
                ),
            });
        }
        if stored.size() == new.size() {
            return Ok(());
        }
    }
    store_last_seen(path, new)
}

/// An exclusive lock held until the returned file is dropped (`std::fs::File::lock`: an
/// advisory `flock` on Unix, `LockFileEx` on Windows).
fn lock_state(path: &Path) -> Result<std::fs::File, Error> {
    let lock_path = path.with_extension("lock");
    let state_error = |e: std::io::Error| Error::State {
        path: lock_path.clone(),
        detail: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(state_error)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(state_error)?;
    f.lock().map_err(state_error)?;
    Ok(f)
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
        let revoked = revocations(&entries);
        Ok(LedgerView {
            newest_cosignature: unchecked.newest_cosignature(),
            revoked,
            cosigners: unchecked.cosigners().to_vec(),
            verified: unchecked,
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

    /// Every entry, each proven by a [`VerifiedInclusion`] under the checkpoint. The
    /// checkpoint's signatures were verified once, by [`LedgerView::fetch`]; each entry costs
    /// only its inclusion proof (before, every entry re-verified the ledger signature and every
    /// cosignature: O(entries × witnesses) signature checks per session).
    pub fn inclusions(&self) -> Result<Vec<VerifiedInclusion>, Error> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            let index = i as u64;
            let proof = confide_tlog::inclusion_proof(&self.tree, index, self.checkpoint.size())
                .map_err(|e| Error::Check {
                    check: Check::LedgerEntry,
                    detail: e.to_string(),
                })?;
            out.push(
                verify_entry_under(&self.verified, entry, index, &proof)
                    .map_err(|e| ledger_check(classify_release_error(&e), e))?,
            );
        }
        Ok(out)
    }

    /// The newest verified witness cosignature time (unix seconds).
    pub fn newest_cosignature(&self) -> Option<u64> {
        self.newest_cosignature
    }

    /// Require a trusted witness to have cosigned this view's checkpoint within
    /// `max_age` seconds of `now` (the trust policy's `max_cosignature_age_secs`).
    pub fn check_fresh(&self, now: u64, max_age: u64) -> Result<(), Error> {
        cosignature_fresh(self.newest_cosignature, now, max_age)
    }

    /// Why the release at leaf `index` was revoked, if an entry of this view revokes it.
    pub fn revocation(&self, index: u64) -> Option<&str> {
        self.revoked.get(&index).map(String::as_str)
    }

    /// Every revocation in this view: revoked release index and reason.
    pub fn revocations(&self) -> impl Iterator<Item = (u64, &str)> {
        self.revoked.iter().map(|(i, r)| (*i, r.as_str()))
    }

    /// Whether a (verified) checkpoint of `size` with `root` describes a prefix of this
    /// view's tree: the log did not fork between the two.
    pub fn is_prefix(&self, size: u64, root: &Hash) -> bool {
        size <= self.checkpoint.size() && self.tree.root_at(size).is_ok_and(|r| r == *root)
    }
}

/// The revocations among `entries` that count: each must come after the entry it
/// revokes, and that entry must be a release (a revocation of anything else, or of a
/// later index, names nothing this log could have meant and is ignored).
pub(crate) fn revocations(entries: &[Vec<u8>]) -> std::collections::BTreeMap<u64, String> {
    use confide_release::LedgerEntry;
    let mut out = std::collections::BTreeMap::new();
    for (at, bytes) in entries.iter().enumerate() {
        let Ok(LedgerEntry::Revocation(r)) = LedgerEntry::decode(bytes) else {
            continue;
        };
        let Ok(target) = usize::try_from(r.index) else {
            continue;
        };
        if target >= at {
            continue;
        }
        if matches!(
            LedgerEntry::decode(&entries[target]),
            Ok(LedgerEntry::Release(_))
        ) {
            out.entry(r.index).or_insert(r.reason);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(n: u8) -> Vec<u8> {
        confide_release::LedgerEntry::Release(confide_release::ReleaseManifest {
            platform: confide_release::Platform::Simulated,
            measurement: vec![n; 48],
            snp_policy: Some(0x30000),
            rtmrs: Vec::new(),
            gpu_reference: Default::default(),
            model_digest: [n; 32],
            config_digest: [n; 32],
            source_revision: format!("r{n}"),
            build_recipe_digest: [n; 32],
            not_before: 1,
            not_after: 2,
            notes: String::new(),
        })
        .encode()
        .unwrap_or_default()
    }

    fn revoke(index: u64, reason: &str) -> Vec<u8> {
        confide_release::LedgerEntry::Revocation(confide_release::Revocation {
            index,
            reason: reason.into(),
        })
        .encode()
        .unwrap_or_default()
    }

    #[test]
    fn a_view_with_old_cosignatures_is_stale() {
        assert!(cosignature_fresh(Some(1_000), 1_600, 600).is_ok());
        let err = cosignature_fresh(Some(1_000), 1_601, 600).expect_err("stale");
        assert!(
            matches!(&err, Error::Check { check: Check::Freshness, detail } if detail.contains("stale checkpoint")),
            "{err:?}"
        );
        assert!(cosignature_fresh(None, 0, 1 << 40).is_err());
    }

    #[test]
    fn only_revocations_of_earlier_releases_count() {
        let entries = vec![
            release(0),
            release(1),
            revoke(0, "kernel CVE"),
            revoke(0, "second reason is ignored"),
            revoke(2, "a revocation is not a release"),
            revoke(9, "a later index"),
            revoke(6, "itself"),
        ];
        let r = revocations(&entries);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r.get(&0).map(String::as_str), Some("kernel CVE"));
        assert!(!r.contains_key(&1));
    }

    fn cp(size: u64, root: u8) -> StoredCheckpoint {
        StoredCheckpoint::new("ledger.test", size, Hash([root; 32])).unwrap()
    }

    /// Two clients sharing `checkpoint.txt` never roll it back: a client that verified an
    /// older checkpoint leaves a newer stored one alone, also when many race; a stored
    /// checkpoint the verified log does not extend is a fork (before, the last writer won,
    /// and a slower client could store its older checkpoint over a newer one).
    #[test]
    fn last_seen_only_advances_under_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.txt");
        // Roots stand for trees: a log of size n has root n (every smaller size a prefix).
        let prefix = |size: u64, root: &Hash| root.0 == [size as u8; 32];
        advance_last_seen(&path, &cp(10, 10), prefix).unwrap();
        advance_last_seen(&path, &cp(5, 5), prefix).unwrap();
        assert_eq!(load_last_seen(&path).unwrap().unwrap().size(), 10);
        advance_last_seen(&path, &cp(12, 12), prefix).unwrap();
        assert_eq!(load_last_seen(&path).unwrap().unwrap().size(), 12);
        // Same size, other root; or a stored size the new log does not extend: a fork.
        let other = |_: u64, _: &Hash| false;
        assert!(matches!(
            advance_last_seen(&path, &cp(12, 99), other),
            Err(Error::Check {
                check: Check::Checkpoint,
                ..
            })
        ));
        assert!(advance_last_seen(&path, &cp(20, 20), other).is_err());
        assert_eq!(load_last_seen(&path).unwrap().unwrap().size(), 12);

        // Racing clients: whatever the interleaving, the largest checkpoint stays.
        let path = std::sync::Arc::new(dir.path().join("shared.txt"));
        let threads: Vec<_> = (1..=16u64)
            .map(|n| {
                let path = std::sync::Arc::clone(&path);
                std::thread::spawn(move || {
                    for round in 0..5u64 {
                        let size = if (n + round) % 2 == 0 { n } else { 17 - n };
                        advance_last_seen(&path, &cp(size, size as u8), prefix).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(load_last_seen(&path).unwrap().unwrap().size(), 16);
    }

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
