//! What the node measures about itself: its executable, its configuration and its model.
//!
//! - **Measurement** (48 bytes, SHA-384): on the simulated platform, SHA-384 of the node
//!   executable's bytes (`confide_attest_sim::measure_binary`), the same convention the
//!   ledger lists for simulated releases. On SEV-SNP / TDX the hardware computes the
//!   launch measurement of the whole guest image; the node does not choose it.
//! - **Configuration digest** (SHA-256): over a canonical, versioned text of every flag
//!   that changes what the node does with a request ([`NodeConfigDigest`]). Paths, listen
//!   addresses and directories are not in it: they do not change behaviour.
//! - **Model digest** (SHA-256 of the weights), reported by the engine after loading.
//!
//! Model and configuration digests are bound into the evidence through HOST_DATA /
//! MRCONFIGID as `binding_digest(model, config)` (see `confide_attest::evidence`).

use sha2::{Digest, Sha256, Sha384};

use crate::Error;

/// SHA-384 of the running executable (the simulated platform's measurement).
pub fn measure_current_exe() -> Result<[u8; 48], Error> {
    let path = std::env::current_exe().map_err(|_| Error::Measure("cannot locate executable"))?;
    let bytes = std::fs::read(&path).map_err(|_| Error::Measure("cannot read executable"))?;
    Ok(Sha384::digest(&bytes).into())
}

/// The behaviour-changing configuration of a node, digested canonically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfigDigest {
    /// Platform name (`simulated`, `sev-snp`, `tdx`).
    pub platform: String,
    /// `embedded` or `upstream`.
    pub engine: String,
    /// The upstream URL when the engine is `upstream` (which server gets the plaintext
    /// changes behaviour), else empty.
    pub upstream: String,
    /// Largest number of tokens generated per request.
    pub max_tokens: u32,
    /// Idle session timeout, seconds.
    pub session_idle_secs: u64,
    /// Whether the working-directory check was relaxed for development.
    pub dev_allow_writable_cwd: bool,
    /// SHA-256 (hex) of the peer policy (which other nodes this node trusts, as its
    /// upstream or as callers), or empty when it has none. Written only when set, so
    /// nodes without one keep their digest.
    pub peer_policy: String,
    /// The streaming tick in milliseconds (`docs/sessions.md`, "Traffic shape"), or
    /// `None` for the default. Written only when set, so nodes on the default keep
    /// their digest; a node streaming on a shorter tick shows more timing and must say so.
    pub stream_tick_ms: Option<u64>,
}

impl NodeConfigDigest {
    /// The canonical text: one `key=value` line per field in a fixed order after a
    /// version line. Values never contain newlines (checked), so the text is injective.
    pub fn canonical(&self) -> Result<String, Error> {
        for v in [
            &self.platform,
            &self.engine,
            &self.upstream,
            &self.peer_policy,
        ] {
            if v.contains(['\n', '\r']) {
                return Err(Error::Config("configuration values must be single-line"));
            }
        }
        let mut text = format!(
            "confide-node-config/v1\nplatform={}\nengine={}\nupstream={}\nmax_tokens={}\nsession_idle_secs={}\ndev_allow_writable_cwd={}\n",
            self.platform,
            self.engine,
            self.upstream,
            self.max_tokens,
            self.session_idle_secs,
            self.dev_allow_writable_cwd
        );
        // Last and optional: the text stays injective (fixed order, no newlines in values).
        if !self.peer_policy.is_empty() {
            text.push_str(&format!("peer_policy={}\n", self.peer_policy));
        }
        if let Some(ms) = self.stream_tick_ms {
            text.push_str(&format!("stream_tick_ms={ms}\n"));
        }
        Ok(text)
    }

    /// SHA-256 of [`NodeConfigDigest::canonical`].
    pub fn digest(&self) -> Result<[u8; 32], Error> {
        Ok(Sha256::digest(self.canonical()?.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NodeConfigDigest {
        NodeConfigDigest {
            platform: "simulated".into(),
            engine: "embedded".into(),
            upstream: String::new(),
            max_tokens: 128,
            session_idle_secs: 120,
            dev_allow_writable_cwd: false,
            peer_policy: String::new(),
            stream_tick_ms: None,
        }
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = cfg().digest().unwrap();
        let mut c = cfg();
        c.max_tokens = 129;
        assert_ne!(c.digest().unwrap(), base);
        let mut c = cfg();
        c.dev_allow_writable_cwd = true;
        assert_ne!(c.digest().unwrap(), base);
        let mut c = cfg();
        c.engine = "upstream".into();
        c.upstream = "http://127.0.0.1:1".into();
        assert_ne!(c.digest().unwrap(), base);
        let mut c = cfg();
        c.peer_policy = "ab".repeat(32);
        assert_ne!(c.digest().unwrap(), base);
        let mut c = cfg();
        c.stream_tick_ms = Some(50);
        assert_ne!(c.digest().unwrap(), base);
        assert_eq!(cfg().digest().unwrap(), base);
    }

    #[test]
    fn newlines_are_refused() {
        let mut c = cfg();
        c.upstream = "http://a\nmax_tokens=1".into();
        assert!(matches!(c.digest(), Err(Error::Config(_))));
    }

    #[test]
    fn exe_is_measured() {
        let m = measure_current_exe().unwrap();
        assert_ne!(m, [0u8; 48]);
    }
}
