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
//! picks its release, and derives the inclusion proof itself (tile paths and the bundle
//! format from `confide-tiles`, as the ledger serves them). Reading every entry is
//! linear in the log size; a release log holds one entry per build, so this stays small,
//! and it needs nothing from the ledger but its public static files.
//!
//! [`select_release`] and [`build_bundle`] are pure; [`fetch_bundle`] does the HTTP.

use confide_ratls::{CheckpointRef, EvidenceClaims, RatlsError, Register};
use confide_release::{Bundle, LedgerEntry, Platform, ReleaseManifest, StoredCheckpoint};
use confide_tlog::MemoryTree;

use crate::Error;

/// Largest log the node will read (entries); far above any release log.
const MAX_ENTRIES: u64 = 1 << 20;

/// What the node is, to match against release manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The platform.
    pub platform: Platform,
    /// The 48-byte primary measurement (SEV-SNP MEASUREMENT, TDX MRTD).
    pub measurement: Vec<u8>,
    /// Every register of the node's own report (`confide_verify::registers`).
    pub registers: Vec<Register>,
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

/// The same comparison a device makes (`confide_verify::match_release`), on the node's
/// own registers: a node whose image is not the release finds out, with the register
/// that differs, before it serves anyone.
fn release_matches(r: &ReleaseManifest, id: &Identity) -> Result<(), RatlsError> {
    if r.platform != id.platform {
        return Err(RatlsError::PlatformMismatch);
    }
    let claims = EvidenceClaims {
        platform: id.platform.name().to_owned(),
        measurement: id.measurement.clone(),
        registers: id.registers.clone(),
        model_digest: Some(id.model_digest.to_vec()),
        config_digest: Some(id.config_digest.to_vec()),
        report_data: [0; 64],
        collected_at: None,
    };
    let unproven = CheckpointRef {
        origin: String::new(),
        size: 0,
        root_hash: [0; 32],
    };
    confide_verify::match_release(&claims, &confide_verify::manifest_claims(r, 0, unproven))
}

fn entry_matches(e: &LedgerEntry, id: &Identity) -> Result<(), Error> {
    match e {
        LedgerEntry::Release(r) => release_matches(r, id).map_err(Error::ReleaseMismatch),
        _ => Err(Error::ReleaseNotFound(
            "the entry is not a release manifest",
        )),
    }
}

fn matches(e: &LedgerEntry, id: &Identity) -> bool {
    entry_matches(e, id).is_ok()
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
            entry_matches(&e, id)?;
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
    entry_matches(&e, id)?;
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
    // Tile paths and the entry-bundle format come from confide-tiles, the same code the
    // ledger serves them with.
    let mut entries = Vec::new();
    let mut leaf = 0u64;
    while leaf < size {
        let tile = confide_tiles::TileId::for_entry(leaf, size)
            .map_err(|_| Error::Ledger("cannot name the entry tile"))?;
        let bytes = get(client, &format!("{base}/{}", tile.path())).await?;
        entries.extend(
            confide_tiles::decode_entry_bundle(&bytes, tile.width)
                .map_err(|_| Error::Ledger("entry bundle is malformed"))?,
        );
        leaf += u64::from(tile.width);
    }
    let index = select_release(&entries, id, choice, now)?;
    build_bundle(&entries, index, &note_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, byte: u8, must_be_pinned: bool) -> Register {
        Register {
            name: name.into(),
            value: vec![byte; 48],
            must_be_pinned,
        }
    }

    fn tdx_identity() -> Identity {
        Identity {
            platform: Platform::Tdx,
            measurement: vec![1; 48],
            registers: vec![
                reg("MRTD", 1, true),
                reg("RTMR0", 2, true),
                reg("RTMR1", 3, true),
                reg("RTMR2", 4, true),
                reg("RTMR3", 0, false),
            ],
            model_digest: [5; 32],
            config_digest: [6; 32],
        }
    }

    fn tdx_release(rtmr1: u8) -> Vec<u8> {
        LedgerEntry::Release(ReleaseManifest {
            platform: Platform::Tdx,
            measurement: vec![1; 48],
            snp_policy: None,
            rtmrs: vec![vec![2; 48], vec![rtmr1; 48], vec![4; 48]],
            gpu_reference: Default::default(),
            model_digest: [5; 32],
            config_digest: [6; 32],
            source_revision: "r".into(),
            build_recipe_digest: [0; 32],
            not_before: 10,
            not_after: 20,
            notes: String::new(),
        })
        .encode()
        .unwrap()
    }

    #[test]
    fn release_selection_compares_every_register() {
        let entries = vec![tdx_release(3), tdx_release(9)];
        let id = tdx_identity();
        // The newest valid matching entry is index 0: index 1 differs in RTMR1.
        assert_eq!(
            select_release(&entries, &id, ReleaseChoice::Auto, 15).unwrap(),
            0
        );
        match select_release(&entries, &id, ReleaseChoice::Index(1), 15) {
            Err(Error::ReleaseMismatch(RatlsError::MeasurementNotListed { register })) => {
                assert_eq!(register, "RTMR1")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            select_release(&entries[1..], &id, ReleaseChoice::Auto, 15),
            Err(Error::ReleaseNotFound(_))
        ));
        // Outside the validity window.
        assert!(select_release(&entries, &id, ReleaseChoice::Auto, 21).is_err());
    }
}
