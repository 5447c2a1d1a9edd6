//! The REPORT_DATA layout that binds a certificate to TEE evidence.
//!
//! ```text
//! REPORT_DATA[0..32]  = SHA-256(certificate SubjectPublicKeyInfo, DER)
//! REPORT_DATA[32..64] = SHA-256(GPU evidence)   or 32 zero bytes without a GPU
//! ```
//!
//! Hashing the whole SPKI (algorithm identifier included) rather than the raw
//! key means a key of another algorithm with the same bits cannot match. The
//! second half lets one CPU verification cover the GPU: the GPU evidence is
//! accepted only if the hardware-signed CPU report names its digest.

use sha2::{Digest, Sha256};

/// Computes the 64-byte REPORT_DATA for a certificate key and optional GPU evidence.
pub fn report_data(spki_der: &[u8], gpu_evidence: Option<&[u8]>) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(spki_der));
    if let Some(gpu) = gpu_evidence {
        out[32..].copy_from_slice(&Sha256::digest(gpu));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        // SHA-256("abc") from FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let rd = report_data(b"abc", None);
        assert_eq!(hex::encode(&rd[..32]), abc);
        assert_eq!(rd[32..], [0u8; 32]);
        let rd = report_data(b"x", Some(b"abc"));
        assert_eq!(hex::encode(&rd[32..]), abc);
    }
}
