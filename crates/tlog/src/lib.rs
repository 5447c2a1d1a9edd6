//! RFC 9162 Merkle tree math: hashes, inclusion and consistency proofs (no I/O).
