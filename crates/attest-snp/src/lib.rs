//! AMD SEV-SNP attestation report verifier.
