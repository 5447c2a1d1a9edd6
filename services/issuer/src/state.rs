//! The issuer directory on disk: key files written crash-safely, the directory itself
//! private to the issuer's user.

use std::path::{Path, PathBuf};

use confide_tokens::IssuerKeySet;
use confide_tokens::keys::{ChallengeConfig, RotationPolicy};

use crate::Error;

const KEYS: &str = "keys.json";
const REDEMPTION_KEYS: &str = "redemption-keys.json";

/// Write a secret file: atomically (temporary file, fsync, rename) and mode 0600. The
/// directory is 0700 (see [`IssuerDir::init`]), so the temporary file is never readable
/// by others either.
pub(crate) fn write_secret(dir: &Path, name: &'static str, bytes: &[u8]) -> Result<(), Error> {
    let path = dir.join(name);
    let io = |e: std::io::Error| Error::Io {
        file: name,
        reason: e.to_string(),
    };
    confide_svc::durable::write_atomic(&path, bytes).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

/// The issuer's state directory.
#[derive(Debug, Clone)]
pub struct IssuerDir {
    path: PathBuf,
}

impl IssuerDir {
    /// Create the directory (0700) with fresh keys of both types valid from `now`.
    /// Refuses to overwrite existing keys.
    pub fn init<R: rand::RngCore + rand::CryptoRng>(
        path: &Path,
        challenge: ChallengeConfig,
        policy: RotationPolicy,
        now: u64,
        rng: &mut R,
    ) -> Result<(Self, IssuerKeySet), Error> {
        let io = |e: std::io::Error| Error::Io {
            file: "directory",
            reason: e.to_string(),
        };
        std::fs::create_dir_all(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        if path.join(KEYS).exists() {
            return Err(Error::AlreadyInitialised);
        }
        let keys = IssuerKeySet::generate(challenge, policy, now, rng)?;
        let dir = Self {
            path: path.to_owned(),
        };
        dir.save(&keys)?;
        Ok((dir, keys))
    }

    /// Open an initialised directory and load its keys.
    pub fn open(path: &Path) -> Result<(Self, IssuerKeySet), Error> {
        let bytes = std::fs::read(path.join(KEYS)).map_err(|e| Error::Io {
            file: KEYS,
            reason: e.to_string(),
        })?;
        let keys = IssuerKeySet::from_json(&bytes)?;
        Ok((
            Self {
                path: path.to_owned(),
            },
            keys,
        ))
    }

    /// Persist the key set and the gateway's redemption keys derived from it.
    pub fn save(&self, keys: &IssuerKeySet) -> Result<(), Error> {
        write_secret(&self.path, KEYS, &keys.to_json()?)?;
        write_secret(&self.path, REDEMPTION_KEYS, &keys.redemption_keys_json()?)?;
        Ok(())
    }

    /// The directory path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `redemption-keys.json` (what a gateway loads).
    pub fn redemption_keys_path(&self) -> PathBuf {
        self.path.join(REDEMPTION_KEYS)
    }

    /// Path of the rate-limit database.
    pub fn ratelimit_path(&self) -> PathBuf {
        self.path.join("ratelimit.redb")
    }
}
