//! Ledger entries (release manifests, OHTTP key-config entries), stapled bundles and client-side VerifiedInclusion.
