//! RFC 9162 Merkle tree math: hashes, inclusion and consistency proofs (no I/O).
//!
//! This crate implements the Merkle Tree of RFC 9162 ("Certificate Transparency
//! Version 2.0") section 2.1, which is hash-for-hash identical to RFC 6962 section
//! 2.1 with SHA-256:
//!
//! - [`leaf_hash`] and [`node_hash`]: RFC 9162 §2.1.1 (`0x00` / `0x01` domain
//!   separation prefixes, which stop a leaf from being passed off as an interior node).
//! - [`verify_inclusion`]: the verification algorithm of RFC 9162 §2.1.3.2.
//! - [`verify_consistency`]: the verification algorithm of RFC 9162 §2.1.4.2.
//! - [`inclusion_proof`] / [`consistency_proof`]: generation, RFC 9162 §2.1.3.1 and
//!   §2.1.4.1, expressed over a source of *complete subtree* hashes (a [`HashSource`]),
//!   so that the same code works over an in-memory tree ([`MemoryTree`]) or over
//!   C2SP tlog-tiles fetched from a server (which store exactly those hashes).
//!
//! The crate does no I/O, reads no clock and allocates only proof-sized vectors.
//! Every failure is a distinct [`Error`] variant so that callers (and tests) can tell
//! a truncated proof from a padded one, and a bad index from a root mismatch.

use sha2::{Digest, Sha256};

/// Size of a SHA-256 hash, the only hash RFC 9162 logs use here.
pub const HASH_SIZE: usize = 32;

/// The longest proof any tree of at most 2^64 - 1 leaves can need (one hash per level).
pub const MAX_PROOF_LEN: usize = 64;

/// A SHA-256 Merkle tree hash (leaf, interior node or root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    /// Parse a hash from exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, Error> {
        let a: [u8; HASH_SIZE] = b.try_into().map_err(|_| Error::HashLength(b.len()))?;
        Ok(Self(a))
    }

    /// The bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Everything that can be wrong with a proof or a proof request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hash was not 32 bytes long.
    #[error("a hash must be 32 bytes, got {0}")]
    HashLength(usize),
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked about.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof has fewer hashes than this (index, size) pair requires.
    #[error("proof too short: {got} hashes, {want} required")]
    ProofTooShort {
        /// Hashes supplied.
        got: usize,
        /// Hashes required.
        want: usize,
    },
    /// The proof has more hashes than this (index, size) pair requires.
    #[error("proof too long: {got} hashes, {want} required")]
    ProofTooLong {
        /// Hashes supplied.
        got: usize,
        /// Hashes required.
        want: usize,
    },
    /// Recomputing the root from the leaf and the inclusion proof gave another root.
    #[error("inclusion proof does not lead to the expected root")]
    InclusionRootMismatch,
    /// The consistency proof does not reproduce the old root.
    #[error("consistency proof does not reproduce the old root")]
    ConsistencyOldRootMismatch,
    /// The consistency proof does not reproduce the new root.
    #[error("consistency proof does not reproduce the new root")]
    ConsistencyNewRootMismatch,
    /// The old tree is larger than the new one.
    #[error("old size {old} is larger than new size {new}")]
    OldLargerThanNew {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// A consistency proof from the empty tree was asked for or supplied (RFC 9162
    /// §2.1.4: there is none; every tree is consistent with the empty tree).
    #[error("consistency with the empty tree needs no proof")]
    EmptyOldTree,
    /// Two trees of the same size must have the same root; these do not.
    #[error("same tree size with a different root")]
    SameSizeDifferentRoot,
    /// A hash source could not provide a subtree hash.
    #[error("hash of subtree at level {level}, index {index} is unavailable")]
    MissingHash {
        /// Level (0 = leaves).
        level: u8,
        /// Index at that level.
        index: u64,
    },
}

/// RFC 9162 §2.1.1: the hash of a leaf, `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash(h.finalize().into())
}

/// RFC 9162 §2.1.1: the hash of an interior node, `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// RFC 9162 §2.1.1: the root of the empty tree, `SHA-256()`.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The root of a tree whose leaf hashes are given (RFC 9162 §2.1.1 MTH). Meant for
/// tests and small trees; services use [`MemoryTree`].
pub fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(
                &root_from_leaf_hashes(&leaves[..k]),
                &root_from_leaf_hashes(&leaves[k..]),
            )
        }
    }
}

/// The largest power of two strictly smaller than `n` (RFC 9162's `k`), for n >= 2.
fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// RFC 9162 §2.1.3.2: verify that `leaf` is the leaf hash at `index` in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), Error> {
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_len(index, size);
    check_len(proof.len(), want)?;
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf;
    for p in proof {
        // s_n == 0 cannot happen here: the length check above guarantees the proof
        // ends exactly when s_n reaches zero.
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        // Unreachable given the length check; kept so a logic slip fails closed.
        return Err(Error::ProofTooShort {
            got: proof.len(),
            want,
        });
    }
    if r != *root {
        return Err(Error::InclusionRootMismatch);
    }
    Ok(())
}

fn check_len(got: usize, want: usize) -> Result<(), Error> {
    if got < want {
        Err(Error::ProofTooShort { got, want })
    } else if got > want {
        Err(Error::ProofTooLong { got, want })
    } else {
        Ok(())
    }
}

/// The number of hashes in an inclusion proof for `index` in a tree of `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let mut f_n = index;
    let mut s_n = size.saturating_sub(1);
    let mut n = 0;
    while s_n != 0 {
        // Same walk as `verify_inclusion`, counting steps instead of hashing.
        if f_n == s_n && f_n & 1 == 0 {
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        }
        f_n >>= 1;
        s_n >>= 1;
        n += 1;
    }
    n
}

/// RFC 9162 §2.1.4.2: verify that the tree of `old_size` with root `old_root` is a
/// prefix of the tree of `new_size` with root `new_root`.
///
/// `old_size == new_size` requires an empty proof and equal roots; `old_size == 0`
/// is rejected with [`Error::EmptyOldTree`] (callers treat the empty tree specially).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), Error> {
    if old_size > new_size {
        return Err(Error::OldLargerThanNew {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(Error::EmptyOldTree);
    }
    if old_size == new_size {
        check_len(proof.len(), 0)?;
        if old_root != new_root {
            return Err(Error::SameSizeDifferentRoot);
        }
        return Ok(());
    }
    let want = consistency_proof_len(old_size, new_size);
    check_len(proof.len(), want)?;
    // Step 2 of §2.1.4.2: if old_size is a power of two, the old root is itself the
    // first hash of the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (fr, sr) = consistency_walk(old_size, new_size, &path, proof.len(), want)?;
    if fr != *old_root {
        return Err(Error::ConsistencyOldRootMismatch);
    }
    if sr != *new_root {
        return Err(Error::ConsistencyNewRootMismatch);
    }
    Ok(())
}

/// Like [`verify_consistency`] but returns the old root the proof implies instead
/// of checking it (useful when, as with the CT fixtures, only the new root is known
/// independently). Only possible when `old_size` is not a power of two (otherwise the
/// old root is not part of the proof).
pub fn old_root_from_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    new_root: &Hash,
) -> Result<Hash, Error> {
    if old_size == 0 {
        return Err(Error::EmptyOldTree);
    }
    if old_size >= new_size || old_size.is_power_of_two() {
        return Err(Error::OldLargerThanNew {
            old: old_size,
            new: new_size,
        });
    }
    let want = consistency_proof_len(old_size, new_size);
    check_len(proof.len(), want)?;
    let (fr, sr) = consistency_walk(old_size, new_size, proof, proof.len(), want)?;
    if sr != *new_root {
        return Err(Error::ConsistencyNewRootMismatch);
    }
    Ok(fr)
}

/// The hash walk of RFC 9162 §2.1.4.2 steps 3-6 over `path` (the proof, preceded by
/// the old root when `old_size` is a power of two): returns the old and new roots the
/// path implies. `got`/`want` are the proof's length and the length it must have, for
/// the errors; the callers check lengths first, so the guards here only fail closed.
fn consistency_walk(
    old_size: u64,
    new_size: u64,
    path: &[Hash],
    got: usize,
    want: usize,
) -> Result<(Hash, Hash), Error> {
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (first, rest) = path
        .split_first()
        .ok_or(Error::ProofTooShort { got, want })?;
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if s_n == 0 {
            return Err(Error::ProofTooLong { got, want });
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(Error::ProofTooShort { got, want });
    }
    Ok((fr, sr))
}

/// A half-open range `[start, end)` of leaf indices naming the subtree whose hash
/// (MTH of those leaves) is one element of a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subtree {
    /// First leaf index.
    pub start: u64,
    /// One past the last leaf index.
    pub end: u64,
}

/// The subtrees whose hashes make up the inclusion proof for `index` in a tree of
/// `size` leaves (RFC 9162 §2.1.3.1 `PATH`), in proof order (leaf upwards).
pub fn inclusion_proof_subtrees(index: u64, size: u64) -> Result<Vec<Subtree>, Error> {
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path_rec(index, 0, size, &mut out);
    out.reverse();
    Ok(out)
}

// PATH(m, D[start:end]) of §2.1.3.1, collecting siblings top-down (reversed later).
fn path_rec(m: u64, start: u64, end: u64, out: &mut Vec<Subtree>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = largest_power_of_two_below(n);
    if m < k {
        out.push(Subtree {
            start: start + k,
            end,
        });
        path_rec(m, start, start + k, out);
    } else {
        out.push(Subtree {
            start,
            end: start + k,
        });
        path_rec(m - k, start + k, end, out);
    }
}

/// The subtrees whose hashes make up the consistency proof between `old_size` and
/// `new_size` (RFC 9162 §2.1.4.1 `PROOF`/`SUBPROOF`), in proof order.
pub fn consistency_proof_subtrees(old_size: u64, new_size: u64) -> Result<Vec<Subtree>, Error> {
    if old_size > new_size {
        return Err(Error::OldLargerThanNew {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(Error::EmptyOldTree);
    }
    let mut out = Vec::new();
    if old_size < new_size {
        subproof_rec(old_size, 0, new_size, true, &mut out);
    }
    Ok(out)
}

// SUBPROOF(m, D[start:end], b) of §2.1.4.1.
fn subproof_rec(m: u64, start: u64, end: u64, b: bool, out: &mut Vec<Subtree>) {
    let n = end - start;
    if m == n {
        if !b {
            out.push(Subtree { start, end });
        }
        return;
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        subproof_rec(m, start, start + k, b, out);
        out.push(Subtree {
            start: start + k,
            end,
        });
    } else {
        subproof_rec(m - k, start + k, end, false, out);
        out.push(Subtree {
            start,
            end: start + k,
        });
    }
}

/// The number of hashes in a consistency proof from `old_size` to `new_size`
/// (0 < old_size < new_size).
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    consistency_proof_subtrees(old_size, new_size).map_or(0, |v| v.len())
}

/// A source of hashes of *complete* subtrees: the subtree at `level` and `index`
/// covers leaves `[index << level, (index + 1) << level)`. Level 0 is the leaf hashes.
/// This is exactly what C2SP tlog-tiles store, and what [`MemoryTree`] keeps.
pub trait HashSource {
    /// The hash of the complete subtree at (`level`, `index`).
    fn complete_subtree(&self, level: u8, index: u64) -> Result<Hash, Error>;
}

/// Decompose `[start, end)` into complete subtrees (level, index), left to right.
/// `start` must be a multiple of the largest power of two not exceeding `end - start`,
/// which holds for every subtree RFC 9162 proofs name.
pub fn complete_subtrees(start: u64, end: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let remaining = end - s;
        // Largest power of two that fits in the remaining range and keeps alignment.
        let mut level = 63 - remaining.leading_zeros();
        if s != 0 {
            level = level.min(s.trailing_zeros());
        }
        out.push((level as u8, s >> level));
        s += 1u64 << level;
    }
    out
}

/// The hash of subtree `[start, end)` (MTH of those leaves) from complete subtrees.
pub fn subtree_hash<S: HashSource + ?Sized>(src: &S, st: Subtree) -> Result<Hash, Error> {
    let parts = complete_subtrees(st.start, st.end);
    // RFC 9162 splits at the largest power of two, so the MTH of a range is its
    // complete subtrees combined right to left.
    let mut acc: Option<Hash> = None;
    for &(level, index) in parts.iter().rev() {
        let h = src.complete_subtree(level, index)?;
        acc = Some(match acc {
            None => h,
            Some(r) => node_hash(&h, &r),
        });
    }
    Ok(acc.unwrap_or_else(empty_root))
}

/// RFC 9162 §2.1.3.1: the inclusion proof for `index` in the tree of `size`.
pub fn inclusion_proof<S: HashSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, Error> {
    inclusion_proof_subtrees(index, size)?
        .into_iter()
        .map(|st| subtree_hash(src, st))
        .collect()
}

/// RFC 9162 §2.1.4.1: the consistency proof from `old_size` to `new_size`.
pub fn consistency_proof<S: HashSource + ?Sized>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, Error> {
    consistency_proof_subtrees(old_size, new_size)?
        .into_iter()
        .map(|st| subtree_hash(src, st))
        .collect()
}

/// The root of the tree of `size` leaves, from complete subtrees.
pub fn root<S: HashSource + ?Sized>(src: &S, size: u64) -> Result<Hash, Error> {
    subtree_hash(
        src,
        Subtree {
            start: 0,
            end: size,
        },
    )
}

/// An append-only Merkle tree held in memory: every complete subtree hash, per level.
///
/// Memory is about 2 × 32 bytes per leaf. Used by the ledger service (which rebuilds
/// it from its entries file at start) and by monitors that recompute a whole log.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Append a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let mut h = leaf;
        let mut level = 0usize;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
            let len = self.levels[level].len();
            if len % 2 == 1 {
                break;
            }
            h = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            level += 1;
        }
        index
    }

    /// The root of the current tree.
    pub fn root(&self) -> Hash {
        root(self, self.size()).unwrap_or_else(|_| empty_root())
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        if size > self.size() {
            return Err(Error::IndexOutOfRange {
                index: size,
                size: self.size(),
            });
        }
        root(self, size)
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Result<Hash, Error> {
        self.complete_subtree(0, index)
    }
}

impl HashSource for MemoryTree {
    fn complete_subtree(&self, level: u8, index: u64) -> Result<Hash, Error> {
        self.levels
            .get(usize::from(level))
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(Error::MissingHash { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn known_answer_hashes() {
        // SHA-256 of the empty string (RFC 9162 §2.1.1 MTH({})).
        assert_eq!(
            format!("{:?}", empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // SHA-256(0x00): the leaf hash of an empty entry.
        assert_eq!(
            format!("{:?}", leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // SHA-256(0x01 || 32 zero bytes || 32 zero bytes).
        let z = Hash([0; 32]);
        assert_eq!(
            format!("{:?}", node_hash(&z, &z)),
            "ae0798d0ecaed2b778eddebf18f071a561c53658c05e76cedecc27cafbdbc577"
        );
        // The two-leaf tree ["a", "b"].
        assert_eq!(
            format!(
                "{:?}",
                root_from_leaf_hashes(&[leaf_hash(b"a"), leaf_hash(b"b")])
            ),
            "b137985ff484fb600db93107c77b0365c80d78f5b429ded0fd97361d077999eb"
        );
    }

    #[test]
    fn memory_tree_matches_recursive_definition() {
        for n in 0..70u64 {
            let l = leaves(n);
            let mut t = MemoryTree::new();
            for h in &l {
                t.push(*h);
            }
            assert_eq!(t.root(), root_from_leaf_hashes(&l), "size {n}");
            for m in 0..=n {
                assert_eq!(
                    t.root_at(m).unwrap(),
                    root_from_leaf_hashes(&l[..m as usize])
                );
            }
        }
    }

    #[test]
    fn all_inclusion_and_consistency_proofs_verify_up_to_64() {
        let l = leaves(64);
        let mut t = MemoryTree::new();
        for h in &l {
            t.push(*h);
        }
        for n in 1..=64u64 {
            let r = t.root_at(n).unwrap();
            for i in 0..n {
                let p = inclusion_proof(&t, i, n).unwrap();
                assert_eq!(p.len(), inclusion_proof_len(i, n));
                verify_inclusion(&l[i as usize], i, n, &p, &r).unwrap();
            }
            for m in 1..=n {
                let p = consistency_proof(&t, m, n).unwrap();
                verify_consistency(m, n, &p, &t.root_at(m).unwrap(), &r).unwrap();
            }
        }
    }

    #[test]
    fn inclusion_failures_are_distinct() {
        let l = leaves(13);
        let mut t = MemoryTree::new();
        for h in &l {
            t.push(*h);
        }
        let r = t.root();
        let p = inclusion_proof(&t, 5, 13).unwrap();
        assert_eq!(
            verify_inclusion(&l[6], 5, 13, &p, &r),
            Err(Error::InclusionRootMismatch)
        );
        assert_eq!(
            verify_inclusion(&l[5], 6, 13, &p, &r),
            Err(Error::InclusionRootMismatch)
        );
        assert_eq!(
            verify_inclusion(&l[5], 13, 13, &p, &r),
            Err(Error::IndexOutOfRange {
                index: 13,
                size: 13
            })
        );
        assert!(matches!(
            verify_inclusion(&l[5], 5, 13, &p[..p.len() - 1], &r),
            Err(Error::ProofTooShort { .. })
        ));
        let mut padded = p.clone();
        padded.push(Hash([0; 32]));
        assert!(matches!(
            verify_inclusion(&l[5], 5, 13, &padded, &r),
            Err(Error::ProofTooLong { .. })
        ));
    }

    #[test]
    fn consistency_failures_are_distinct() {
        let l = leaves(20);
        let mut t = MemoryTree::new();
        for h in &l {
            t.push(*h);
        }
        let (o, n) = (7, 20);
        let p = consistency_proof(&t, o, n).unwrap();
        let or = t.root_at(o).unwrap();
        let nr = t.root_at(n).unwrap();
        assert_eq!(
            verify_consistency(o, n, &p, &nr, &nr),
            Err(Error::ConsistencyOldRootMismatch)
        );
        assert_eq!(
            verify_consistency(o, n, &p, &or, &or),
            Err(Error::ConsistencyNewRootMismatch)
        );
        assert!(matches!(
            verify_consistency(n, o, &p, &or, &nr),
            Err(Error::OldLargerThanNew { .. })
        ));
        assert_eq!(
            verify_consistency(n, n, &[], &or, &nr),
            Err(Error::SameSizeDifferentRoot)
        );
        assert!(matches!(
            verify_consistency(o, n, &p[1..], &or, &nr),
            Err(Error::ProofTooShort { .. })
        ));
        let mut padded = p.clone();
        padded.push(nr);
        assert!(matches!(
            verify_consistency(o, n, &padded, &or, &nr),
            Err(Error::ProofTooLong { .. })
        ));
        assert_eq!(old_root_from_consistency(o, n, &p, &nr).unwrap(), or);
    }

    #[test]
    fn complete_subtree_decomposition() {
        assert_eq!(complete_subtrees(0, 13), vec![(3, 0), (2, 2), (0, 12)]);
        assert_eq!(complete_subtrees(8, 13), vec![(2, 2), (0, 12)]);
        assert_eq!(complete_subtrees(12, 14), vec![(1, 6)]);
        assert!(complete_subtrees(5, 5).is_empty());
    }
}
