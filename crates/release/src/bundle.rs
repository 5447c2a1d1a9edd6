//! The stapleable inclusion bundle.
//!
//! ```text
//! bundle     = "CFB1" index:u64 entry:u16-len-bytes
//!              proof_len:u8 proof:32*proof_len checkpoint:u16-len-utf8
//! ```
//! `checkpoint` is the complete C2SP signed note (checkpoint text, ledger signature,
//! witness cosignatures). The whole bundle is at most [`Bundle::MAX_ENCODED_LEN`]
//! bytes so it fits in an X.509 extension of the node's RA-TLS certificate.

use confide_tlog::{HASH_SIZE, Hash, MAX_PROOF_LEN};

use crate::Error;
use crate::entry::MAX_ENTRY_LEN;

const MAGIC: &[u8; 4] = b"CFB1";
/// Largest checkpoint note accepted inside a bundle.
const MAX_CHECKPOINT_LEN: usize = 8 * 1024;

/// An entry with its inclusion proof and the cosigned checkpoint it is proven under.
/// Parsing checks only the shape; [`crate::verify_bundle`] checks the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Canonical entry bytes ([`crate::LedgerEntry::encode`]).
    pub entry: Vec<u8>,
    /// Leaf index of the entry.
    pub index: u64,
    /// RFC 9162 §2.1.3 inclusion proof, leaf upwards.
    pub proof: Vec<Hash>,
    /// The cosigned checkpoint, a complete C2SP signed note.
    pub checkpoint: String,
}

impl Bundle {
    /// Upper bound on an encoded bundle.
    pub const MAX_ENCODED_LEN: usize =
        4 + 8 + 2 + MAX_ENTRY_LEN + 1 + MAX_PROOF_LEN * HASH_SIZE + 2 + MAX_CHECKPOINT_LEN;

    /// The binary encoding.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        if self.entry.len() > MAX_ENTRY_LEN {
            return Err(Error::BundleTooLarge("entry"));
        }
        if self.proof.len() > MAX_PROOF_LEN {
            return Err(Error::BundleTooLarge("proof"));
        }
        if self.checkpoint.len() > MAX_CHECKPOINT_LEN {
            return Err(Error::BundleTooLarge("checkpoint"));
        }
        let mut out = Vec::with_capacity(
            4 + 8 + 2 + self.entry.len() + 1 + 32 * self.proof.len() + 2 + self.checkpoint.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&(self.entry.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.entry);
        out.push(self.proof.len() as u8);
        for h in &self.proof {
            out.extend_from_slice(&h.0);
        }
        out.extend_from_slice(&(self.checkpoint.len() as u16).to_be_bytes());
        out.extend_from_slice(self.checkpoint.as_bytes());
        Ok(out)
    }

    /// Parse the binary encoding, enforcing every size limit before allocating.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        if b.len() > Self::MAX_ENCODED_LEN {
            return Err(Error::BundleTooLarge("encoded bundle"));
        }
        let mut r = b;
        let magic = take(&mut r, 4)?;
        if magic != MAGIC {
            return Err(Error::MalformedBundle("not a bundle (bad magic)"));
        }
        let mut idx = [0u8; 8];
        idx.copy_from_slice(take(&mut r, 8)?);
        let index = u64::from_be_bytes(idx);
        let elen = u16_be(take(&mut r, 2)?);
        if elen > MAX_ENTRY_LEN {
            return Err(Error::BundleTooLarge("entry"));
        }
        let entry = take(&mut r, elen)?.to_vec();
        let plen = usize::from(take(&mut r, 1)?[0]);
        if plen > MAX_PROOF_LEN {
            return Err(Error::BundleTooLarge("proof"));
        }
        let mut proof = Vec::with_capacity(plen);
        for _ in 0..plen {
            proof.push(
                Hash::from_slice(take(&mut r, HASH_SIZE)?)
                    .map_err(|_| Error::MalformedBundle("proof hash"))?,
            );
        }
        let clen = u16_be(take(&mut r, 2)?);
        if clen > MAX_CHECKPOINT_LEN {
            return Err(Error::BundleTooLarge("checkpoint"));
        }
        let checkpoint = String::from_utf8(take(&mut r, clen)?.to_vec())
            .map_err(|_| Error::MalformedBundle("checkpoint is not UTF-8"))?;
        if !r.is_empty() {
            return Err(Error::MalformedBundle("trailing bytes"));
        }
        Ok(Self {
            entry,
            index,
            proof,
            checkpoint,
        })
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
    if r.len() < n {
        return Err(Error::MalformedBundle("truncated"));
    }
    let (a, b) = r.split_at(n);
    *r = b;
    Ok(a)
}

fn u16_be(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}
