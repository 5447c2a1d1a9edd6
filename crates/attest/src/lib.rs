//! Platform-neutral evidence model, trust policy and the VerifiedEvidence proof type.
