//! The REPORT_DATA layout that binds a certificate to TEE evidence.
//!
//! ```text
//! REPORT_DATA[0..32]  = SHA-256(certificate_binding(SPKI, validity))
//! REPORT_DATA[32..64] = SHA-256(GPU evidence)   or 32 zero bytes without a GPU
//!
//! certificate_binding = "confide-ratls certificate binding v2" 0x00
//!                       || notBefore (u64, big-endian Unix seconds)
//!                       || notAfter  (u64, big-endian Unix seconds)
//!                       || certificate SubjectPublicKeyInfo (DER)
//! ```
//!
//! Hashing the whole SPKI (algorithm identifier included) rather than the raw
//! key means a key of another algorithm with the same bits cannot match. The
//! validity is bound too (issue 13, finding 6): the node attests every new
//! certificate anyway, so the hardware-signed report states when the
//! certificate is valid, and a client judges a certificate's age by dates the
//! evidence commits to (ADR 0602). The fields come before the SPKI, and have a
//! fixed length, so no two (validity, key) pairs share a preimage. The second
//! half lets one CPU verification cover the GPU: the GPU evidence is accepted
//! only if the hardware-signed CPU report names its digest.

use sha2::{Digest, Sha256};

const BINDING_LABEL: &[u8] = b"confide-ratls certificate binding v2\0";

/// A certificate's validity as the node bound it into REPORT_DATA (Unix seconds,
/// X.509 `notBefore` and `notAfter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundValidity {
    /// notBefore.
    pub not_before: u64,
    /// notAfter.
    pub not_after: u64,
}

impl BoundValidity {
    /// The 16-byte encoding: notBefore then notAfter, big-endian.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.not_before.to_be_bytes());
        out[8..].copy_from_slice(&self.not_after.to_be_bytes());
        out
    }

    /// Decodes [`BoundValidity::encode`]'s output; `None` unless exactly 16 bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (nb, na) = bytes.split_at_checked(8)?;
        Some(Self {
            not_before: u64::from_be_bytes(nb.try_into().ok()?),
            not_after: u64::from_be_bytes(na.try_into().ok()?),
        })
    }
}

/// Computes the 64-byte REPORT_DATA for a certificate key, the certificate's
/// validity and optional GPU evidence.
pub fn report_data(
    spki_der: &[u8],
    validity: BoundValidity,
    gpu_evidence: Option<&[u8]>,
) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut h = Sha256::new();
    h.update(BINDING_LABEL);
    h.update(validity.encode());
    h.update(spki_der);
    out[..32].copy_from_slice(&h.finalize());
    if let Some(gpu) = gpu_evidence {
        out[32..].copy_from_slice(&Sha256::digest(gpu));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: BoundValidity = BoundValidity {
        not_before: 1_000,
        not_after: 1_600,
    };

    #[test]
    fn layout() {
        // The first half is SHA-256 over label || validity || SPKI.
        let mut pre = BINDING_LABEL.to_vec();
        pre.extend_from_slice(&1_000u64.to_be_bytes());
        pre.extend_from_slice(&1_600u64.to_be_bytes());
        pre.extend_from_slice(b"spki");
        let rd = report_data(b"spki", V, None);
        assert_eq!(rd[..32], Sha256::digest(&pre)[..]);
        assert_eq!(rd[32..], [0u8; 32]);
        // SHA-256("abc") from FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let rd = report_data(b"x", V, Some(b"abc"));
        assert_eq!(hex::encode(&rd[32..]), abc);
    }

    #[test]
    fn validity_changes_the_binding() {
        let base = report_data(b"spki", V, None);
        for other in [
            BoundValidity {
                not_before: 1_001,
                ..V
            },
            BoundValidity {
                not_after: 1_601,
                ..V
            },
        ] {
            assert_ne!(report_data(b"spki", other, None)[..32], base[..32]);
        }
        assert_eq!(BoundValidity::decode(&V.encode()), Some(V));
        assert_eq!(BoundValidity::decode(&[0; 15]), None);
        assert_eq!(BoundValidity::decode(&[0; 17]), None);
    }
}
