//! A computed measurement plus the release's other fields, as the release manifest
//! `confide release publish` reads.

use confide_release::{LedgerEntry, Platform, ReleaseManifest};

use crate::Error;

/// The fields of a release that are not launch measurements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFields {
    /// SHA-256 of the model weights.
    pub model_digest: [u8; 32],
    /// SHA-256 of the node's canonical configuration.
    pub config_digest: [u8; 32],
    /// Source revision the image was built from.
    pub source_revision: String,
    /// SHA-256 of the build recipe.
    pub build_recipe_digest: [u8; 32],
    /// Start of validity, unix seconds.
    pub not_before: u64,
    /// End of validity, unix seconds.
    pub not_after: u64,
    /// Free-form notes.
    pub notes: String,
}

/// A validated SEV-SNP release manifest for this launch digest and guest POLICY.
pub fn snp_manifest(
    launch_digest: &[u8; 48],
    policy: u64,
    fields: ReleaseFields,
) -> Result<ReleaseManifest, Error> {
    build(
        Platform::SevSnp,
        launch_digest,
        Some(policy),
        Vec::new(),
        fields,
    )
}

/// A validated TDX release manifest for this MRTD and RTMR0..2.
pub fn tdx_manifest(
    mrtd: &[u8; 48],
    rtmrs: &[[u8; 48]; 3],
    fields: ReleaseFields,
) -> Result<ReleaseManifest, Error> {
    let rtmrs = rtmrs.iter().map(|r| r.to_vec()).collect();
    build(Platform::Tdx, mrtd, None, rtmrs, fields)
}

fn build(
    platform: Platform,
    measurement: &[u8; 48],
    snp_policy: Option<u64>,
    rtmrs: Vec<Vec<u8>>,
    f: ReleaseFields,
) -> Result<ReleaseManifest, Error> {
    let m = ReleaseManifest {
        platform,
        measurement: measurement.to_vec(),
        snp_policy,
        rtmrs,
        gpu_reference: Default::default(),
        model_digest: f.model_digest,
        config_digest: f.config_digest,
        source_revision: f.source_revision,
        build_recipe_digest: f.build_recipe_digest,
        not_before: f.not_before,
        not_after: f.not_after,
        notes: f.notes,
    };
    m.validate()?;
    Ok(m)
}

/// The manifest as a TOML document that [`LedgerEntry::from_toml`] (and so
/// `confide release publish`) reads back to the same manifest; checked before it is
/// returned.
pub fn to_toml(m: &ReleaseManifest) -> Result<String, Error> {
    let text = toml::to_string(m).map_err(|e| Error::Toml(e.to_string()))?;
    match LedgerEntry::from_toml(&text)? {
        LedgerEntry::Release(back) if back == *m => Ok(text),
        _ => Err(Error::Toml(
            "the document does not read back as the same release".into(),
        )),
    }
}
