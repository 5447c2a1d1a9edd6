//! Client-side verification: ledger trust, stored checkpoints, [`VerifiedInclusion`].

use confide_note::{Checkpoint, KeyType, Note, VerifierKey};
use confide_tlog::Hash;

use crate::{Bundle, Error, LedgerEntry};

/// What a device trusts about the ledger: the ledger's signed-note key (whose name
/// is the log's origin), the witnesses' `cosignature/v1` keys, and how many distinct
/// witnesses must have cosigned a checkpoint.
#[derive(Debug, Clone)]
pub struct LedgerTrust {
    ledger: VerifierKey,
    witnesses: Vec<VerifierKey>,
    quorum: usize,
}

impl LedgerTrust {
    /// Build from C2SP vkey strings. The ledger key must be an Ed25519 note key
    /// (type 0x01), witness keys `cosignature/v1` keys (type 0x04), all distinct, and
    /// `quorum <= witnesses.len()`. A quorum of 0 disables witness checks and should
    /// only be configured deliberately (development).
    pub fn new<S: AsRef<str>>(
        ledger_vkey: &str,
        witness_vkeys: &[S],
        quorum: usize,
    ) -> Result<Self, Error> {
        let ledger = VerifierKey::parse(ledger_vkey.trim()).map_err(Error::TrustKey)?;
        if ledger.key_type() != KeyType::Ed25519 {
            return Err(Error::TrustKeyType(ledger.name().to_owned()));
        }
        let mut witnesses: Vec<VerifierKey> = Vec::with_capacity(witness_vkeys.len());
        for w in witness_vkeys {
            let k = VerifierKey::parse(w.as_ref().trim()).map_err(Error::TrustKey)?;
            if k.key_type() != KeyType::CosignatureV1 {
                return Err(Error::TrustKeyType(k.name().to_owned()));
            }
            if witnesses
                .iter()
                // The same public key under another name is the same witness: counting
                // it twice would let one signer meet a quorum of two on its own.
                .any(|o| o.name() == k.name() || o.public_key() == k.public_key())
            {
                return Err(Error::DuplicateWitness(k.name().to_owned()));
            }
            witnesses.push(k);
        }
        if quorum > witnesses.len() {
            return Err(Error::QuorumTooLarge {
                quorum,
                witnesses: witnesses.len(),
            });
        }
        Ok(Self {
            ledger,
            witnesses,
            quorum,
        })
    }

    /// The log origin (the ledger key's name).
    pub fn origin(&self) -> &str {
        self.ledger.name()
    }

    /// The ledger key.
    pub fn ledger_key(&self) -> &VerifierKey {
        &self.ledger
    }

    /// The witness keys.
    pub fn witness_keys(&self) -> &[VerifierKey] {
        &self.witnesses
    }

    /// The quorum.
    pub fn quorum(&self) -> usize {
        self.quorum
    }
}

/// The newest checkpoint a device has verified: origin, size and root. Stored as the
/// checkpoint note text (`origin\nsize\nbase64(root)\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    origin: String,
    size: u64,
    root: Hash,
}

impl StoredCheckpoint {
    /// Build from parts (e.g. an operator pinning a known-good checkpoint). The
    /// origin must be a valid checkpoint origin line.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, Error> {
        Checkpoint::new(origin, size, root).map_err(Error::MalformedCheckpoint)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    fn from_checkpoint(c: &Checkpoint) -> Self {
        Self {
            origin: c.origin().to_owned(),
            size: c.size(),
            root: *c.root(),
        }
    }

    /// Parse the stored text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let c = Checkpoint::parse(text).map_err(Error::MalformedCheckpoint)?;
        Ok(Self::from_checkpoint(&c))
    }

    /// The text to store.
    pub fn encode(&self) -> String {
        // The origin was validated at construction, so this cannot fail.
        Checkpoint::new(&self.origin, self.size, self.root)
            .map(|c| c.to_text())
            .unwrap_or_default()
    }

    /// Origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Root hash.
    pub fn root(&self) -> &Hash {
        &self.root
    }
}

/// A checkpoint signed by the trusted ledger, cosigned by a quorum of trusted
/// witnesses, and consistent with the device's stored checkpoint. Only
/// [`verify_checkpoint`] builds one.
#[derive(Debug, Clone)]
pub struct VerifiedCheckpoint {
    checkpoint: StoredCheckpoint,
    cosigners: Vec<String>,
    newest_cosignature: Option<u64>,
    note: String,
}

impl VerifiedCheckpoint {
    /// The checkpoint to store as the new `last_seen`.
    pub fn checkpoint(&self) -> &StoredCheckpoint {
        &self.checkpoint
    }

    /// Names of the witnesses whose cosignatures verified.
    pub fn cosigners(&self) -> &[String] {
        &self.cosigners
    }

    /// The complete signed note that was verified.
    pub fn note(&self) -> &str {
        &self.note
    }

    /// The newest verified cosignature time among the trusted witnesses (unix seconds),
    /// `None` when no trusted witness cosigned.
    pub fn newest_cosignature(&self) -> Option<u64> {
        self.newest_cosignature
    }

    /// Require a trusted witness to have cosigned this checkpoint within `max_age`
    /// seconds of `now` (unix seconds, passed in). Witnesses cosign the log's latest
    /// checkpoint again and again, even when it has not grown, so an old newest
    /// cosignature means the device is being shown a frozen view of the log.
    pub fn check_fresh(&self, now: u64, max_age: u64) -> Result<(), Error> {
        match self.newest_cosignature {
            Some(t) if now.saturating_sub(t) <= max_age => Ok(()),
            newest => Err(Error::StaleCheckpoint {
                newest,
                now,
                max_age,
            }),
        }
    }
}

/// An entry proven to be in the ledger under a verified checkpoint. Only
/// [`verify_bundle`] builds one.
#[derive(Debug, Clone)]
pub struct VerifiedInclusion {
    entry: LedgerEntry,
    leaf_hash: Hash,
    index: u64,
    checkpoint: VerifiedCheckpoint,
}

impl VerifiedInclusion {
    /// The logged entry.
    pub fn entry(&self) -> &LedgerEntry {
        &self.entry
    }

    /// Its leaf hash.
    pub fn leaf_hash(&self) -> &Hash {
        &self.leaf_hash
    }

    /// Its index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The checkpoint to store as the new `last_seen`.
    pub fn checkpoint(&self) -> &StoredCheckpoint {
        &self.checkpoint.checkpoint
    }

    /// The verified checkpoint (cosigners, note text).
    pub fn verified_checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
}

/// Verify a cosigned checkpoint note against `trust` and the device's `last_seen`.
///
/// Checks, in order: note syntax (C2SP signed-note), the ledger signature, the
/// checkpoint body (C2SP tlog-checkpoint) and its origin, a quorum of distinct
/// witness cosignatures (C2SP tlog-cosignature), then against `last_seen`: same
/// size with another root is [`Error::Fork`], a smaller size is [`Error::Rollback`],
/// a larger size needs an RFC 9162 §2.1.4 `consistency_proof` from `last_seen`.
pub fn verify_checkpoint(
    note_text: &str,
    trust: &LedgerTrust,
    last_seen: Option<&StoredCheckpoint>,
    consistency_proof: Option<&[Hash]>,
) -> Result<VerifiedCheckpoint, Error> {
    let note = Note::parse(note_text).map_err(Error::MalformedCheckpoint)?;
    match trust.ledger.verify(&note) {
        Ok(_) => {}
        Err(confide_note::Error::UnknownKey(_)) => return Err(Error::UnknownLedgerKey),
        Err(confide_note::Error::BadSignature(_)) => return Err(Error::BadLedgerSignature),
        Err(e) => return Err(Error::MalformedCheckpoint(e)),
    }
    let cp = Checkpoint::parse(note.text()).map_err(Error::MalformedCheckpoint)?;
    if cp.origin() != trust.origin() {
        return Err(Error::OriginMismatch);
    }
    // Each trusted witness counts once; lines by unknown keys are ignored (C2SP
    // tlog-cosignature) and a line that fails to verify does not count.
    let mut cosigners = Vec::new();
    let mut newest_cosignature = None;
    for w in &trust.witnesses {
        if let Ok(time) = w.verify(&note) {
            cosigners.push(w.name().to_owned());
            // Witness keys are cosignature/v1 keys, whose verified line carries the
            // (signed) time the witness cosigned at.
            newest_cosignature = newest_cosignature.max(time);
        }
    }
    if cosigners.len() < trust.quorum {
        return Err(Error::TooFewCosignatures {
            valid: cosigners.len(),
            required: trust.quorum,
        });
    }
    let new = StoredCheckpoint::from_checkpoint(&cp);
    if let Some(old) = last_seen {
        check_consistent(old, &new, consistency_proof)?;
    }
    Ok(VerifiedCheckpoint {
        checkpoint: new,
        cosigners,
        newest_cosignature,
        note: note_text.to_owned(),
    })
}

fn check_consistent(
    old: &StoredCheckpoint,
    new: &StoredCheckpoint,
    proof: Option<&[Hash]>,
) -> Result<(), Error> {
    if old.origin != new.origin {
        return Err(Error::StoredOriginMismatch);
    }
    if new.size < old.size {
        return Err(Error::Rollback {
            stored: old.size,
            got: new.size,
        });
    }
    if new.size == old.size {
        if new.root != old.root {
            return Err(Error::Fork { size: new.size });
        }
        return Ok(());
    }
    if old.size == 0 {
        // Every tree extends the empty tree (RFC 9162 §2.1.4).
        return Ok(());
    }
    let proof = proof.ok_or(Error::ConsistencyProofRequired {
        from: old.size,
        to: new.size,
    })?;
    confide_tlog::verify_consistency(old.size, new.size, proof, &old.root, &new.root)
        .map_err(Error::Inconsistent)
}

/// Verify a stapled [`Bundle`]: the checkpoint as in [`verify_checkpoint`], the
/// entry's canonical encoding, and its RFC 9162 §2.1.3.2 inclusion proof.
pub fn verify_bundle(
    bundle: &Bundle,
    trust: &LedgerTrust,
    last_seen: Option<&StoredCheckpoint>,
    consistency_proof: Option<&[Hash]>,
) -> Result<VerifiedInclusion, Error> {
    let checkpoint = verify_checkpoint(&bundle.checkpoint, trust, last_seen, consistency_proof)?;
    verify_entry_under(&checkpoint, &bundle.entry, bundle.index, &bundle.proof)
}

/// Verify that `entry` (its canonical encoding) sits at `index` under an already verified
/// checkpoint, by its RFC 9162 §2.1.3.2 inclusion proof. For many entries under one
/// checkpoint (a device's whole ledger view) this checks the checkpoint's signatures once,
/// where [`verify_bundle`] per entry would check them once per entry.
pub fn verify_entry_under(
    checkpoint: &VerifiedCheckpoint,
    entry: &[u8],
    index: u64,
    proof: &[Hash],
) -> Result<VerifiedInclusion, Error> {
    let decoded = LedgerEntry::decode(entry)?;
    let leaf_hash = confide_tlog::leaf_hash(entry);
    let cp = &checkpoint.checkpoint;
    confide_tlog::verify_inclusion(&leaf_hash, index, cp.size, proof, &cp.root).map_err(
        |e| match e {
            confide_tlog::Error::IndexOutOfRange { index, size } => {
                Error::IndexOutOfRange { index, size }
            }
            confide_tlog::Error::ProofTooShort { got, want } => Error::TruncatedProof { got, want },
            confide_tlog::Error::ProofTooLong { got, want } => Error::PaddedProof { got, want },
            _ => Error::NotIncluded,
        },
    )?;
    Ok(VerifiedInclusion {
        entry: decoded,
        leaf_hash,
        index,
        checkpoint: checkpoint.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_note::SignerKey;

    #[test]
    fn one_witness_key_under_two_names_is_a_duplicate() {
        let ledger = SignerKey::from_seed("ledger.test", KeyType::Ed25519, &[1; 32]).unwrap();
        let a = SignerKey::from_seed("w-a.test", KeyType::CosignatureV1, &[7; 32]).unwrap();
        let b = SignerKey::from_seed("w-b.test", KeyType::CosignatureV1, &[7; 32]).unwrap();
        let other = SignerKey::from_seed("w-c.test", KeyType::CosignatureV1, &[8; 32]).unwrap();
        let ledger_vkey = ledger.verifier().to_vkey();
        let same_key = [a.verifier().to_vkey(), b.verifier().to_vkey()];
        assert!(matches!(
            LedgerTrust::new(&ledger_vkey, &same_key, 2),
            Err(Error::DuplicateWitness(name)) if name == "w-b.test"
        ));
        let distinct = [a.verifier().to_vkey(), other.verifier().to_vkey()];
        assert!(LedgerTrust::new(&ledger_vkey, &distinct, 2).is_ok());
    }
}
