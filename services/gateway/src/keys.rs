//! The gateway's OHTTP keys: one persisted seed, one key per rotation epoch.
//!
//! The key of epoch `e` is derived as HKDF-SHA256(salt = "confide gateway ohttp key
//! v1", ikm = seed, info = I2OSP(e, 8)) and its key identifier is `e mod 256`. Deriving
//! rather than storing each key is what lets several gateway replicas that share the
//! seed (a copied `--dir`, or `--ohttp-key FILE`) agree on every key at every instant
//! without talking to each other, and lets `confide gateway keys` publish future keys
//! for the ledger before they are used. A gateway accepts the current and the previous
//! epoch's key (so a client that fetched the key list just before a rotation is not
//! refused) and publishes both, current first (RFC 9458 §3.2 allows several).

use std::path::Path;
use std::sync::{Arc, RwLock};

use confide_ohttp::{KeyConfig, KeyPair, Server, SymmetricSuite};
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

const SEED_LEN: usize = 32;
const SEED_PREFIX: &str = "confide-ohttp-seed-v1 ";

/// The rotation schedule and the seed it derives keys from.
pub struct KeySchedule {
    seed: Zeroizing<[u8; SEED_LEN]>,
    /// Rotation period in seconds; `None` means one key forever (epoch 0).
    period: Option<u64>,
}

impl std::fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySchedule")
            .field("seed", &"<opaque>")
            .field("period", &self.period)
            .finish()
    }
}

impl KeySchedule {
    /// A schedule over `seed` rotating every `period` seconds (none: never). A zero
    /// period is refused.
    pub fn new(seed: Zeroizing<[u8; SEED_LEN]>, period: Option<u64>) -> Result<Self, Error> {
        if period == Some(0) {
            return Err(Error::Config("rotation period must be positive"));
        }
        Ok(Self { seed, period })
    }

    /// Load the seed file at `path`, creating it from `rng` on first start.
    pub fn load_or_create(
        path: &Path,
        period: Option<u64>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, Error> {
        if !path.exists() {
            let mut seed = Zeroizing::new([0u8; SEED_LEN]);
            rng.fill_bytes(seed.as_mut());
            let text = Zeroizing::new(format!("{SEED_PREFIX}{}\n", hex::encode(seed.as_ref())));
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::KeyFile(format!("cannot create directory: {e}")))?;
            }
            confide_svc::durable::create_new_atomic(path, text.as_bytes())
                .map_err(|e| Error::KeyFile(format!("cannot write seed file: {e}")))?;
            restrict_permissions(path)?;
        }
        Self::load(path, period)
    }

    /// Load an existing seed file.
    pub fn load(path: &Path, period: Option<u64>) -> Result<Self, Error> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::KeyFile(format!("cannot read seed file: {e}")))?,
        );
        let hex_part = text
            .trim()
            .strip_prefix(SEED_PREFIX.trim_end())
            .ok_or_else(|| Error::KeyFile("seed file has no confide-ohttp-seed-v1 header".into()))?
            .trim();
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        hex::decode_to_slice(hex_part, seed.as_mut())
            .map_err(|_| Error::KeyFile("seed file must hold 32 hex-encoded bytes".into()))?;
        Self::new(seed, period)
    }

    /// The epoch at Unix time `now`.
    pub fn epoch(&self, now: u64) -> u64 {
        self.period.map_or(0, |p| now / p)
    }

    /// When the epoch after `now`'s begins (Unix seconds), if keys rotate.
    pub fn next_rotation(&self, now: u64) -> Option<u64> {
        self.period.map(|p| (self.epoch(now) + 1).saturating_mul(p))
    }

    /// The key of epoch `e`.
    pub fn key_for_epoch(&self, e: u64) -> Result<KeyPair, Error> {
        let hk = Hkdf::<Sha256>::new(Some(b"confide gateway ohttp key v1"), self.seed.as_ref());
        let mut sk = Zeroizing::new([0u8; 32]);
        hk.expand(&e.to_be_bytes(), sk.as_mut())
            .map_err(|_| Error::Config("key derivation length"))?;
        Ok(KeyPair::from_secret_bytes(
            (e % 256) as u8,
            sk.as_ref(),
            SymmetricSuite::defaults(),
        )?)
    }

    /// The keys accepted at `now`: the current epoch's, then the previous one's.
    pub fn active(&self, now: u64) -> Result<Vec<KeyPair>, Error> {
        let e = self.epoch(now);
        let mut keys = vec![self.key_for_epoch(e)?];
        if e > 0 {
            keys.push(self.key_for_epoch(e - 1)?);
        }
        Ok(keys)
    }

    /// The public configurations for epochs `e..e+count` starting at `now`'s epoch,
    /// for publishing to the ledger ahead of use.
    pub fn upcoming_configs(&self, now: u64, count: u64) -> Result<Vec<KeyConfig>, Error> {
        let e = self.epoch(now);
        let count = if self.period.is_none() {
            1
        } else {
            count.max(1)
        };
        (e..e.saturating_add(count))
            .map(|i| Ok(self.key_for_epoch(i)?.config().clone()))
            .collect()
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::KeyFile(format!("cannot restrict seed file permissions: {e}")))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<(), Error> {
    Ok(())
}

/// The decryption [`Server`] for the current epoch, rebuilt when the epoch changes.
pub struct KeyRing {
    schedule: KeySchedule,
    cache: RwLock<Option<(u64, Arc<Server>)>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A ring over `schedule`.
    pub fn new(schedule: KeySchedule) -> Self {
        Self {
            schedule,
            cache: RwLock::new(None),
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> &KeySchedule {
        &self.schedule
    }

    /// The server holding the keys accepted at `now`.
    pub fn server(&self, now: u64) -> Result<Arc<Server>, Error> {
        let e = self.schedule.epoch(now);
        if let Ok(guard) = self.cache.read()
            && let Some((ce, s)) = guard.as_ref()
            && *ce == e
        {
            return Ok(s.clone());
        }
        let server = Arc::new(Server::new(self.schedule.active(now)?)?);
        if let Ok(mut guard) = self.cache.write() {
            *guard = Some((e, server.clone()));
        }
        Ok(server)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn replicas_with_the_same_seed_agree_and_rotation_keeps_the_previous_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ohttp-seed");
        let a = KeySchedule::load_or_create(&path, Some(3600), &mut rand_core::OsRng).unwrap();
        let b = KeySchedule::load(&path, Some(3600)).unwrap();
        let t = 1_800_000_000;
        let ka: Vec<_> = a
            .active(t)
            .unwrap()
            .iter()
            .map(|k| k.config().clone())
            .collect();
        let kb: Vec<_> = b
            .active(t)
            .unwrap()
            .iter()
            .map(|k| k.config().clone())
            .collect();
        assert_eq!(ka, kb);
        assert_eq!(ka.len(), 2);
        // One period later, the old current key is the accepted previous key.
        let later: Vec<_> = a
            .active(t + 3600)
            .unwrap()
            .iter()
            .map(|k| k.config().clone())
            .collect();
        assert_eq!(later[1], ka[0]);
        assert_ne!(later[0], ka[0]);
        assert_eq!(a.upcoming_configs(t, 3).unwrap()[1], later[0]);
        // The seed file is not recreated and is private.
        let again = KeySchedule::load_or_create(&path, Some(3600), &mut rand_core::OsRng).unwrap();
        assert_eq!(again.active(t).unwrap()[0].config(), &ka[0]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(!format!("{a:?}").contains(&std::fs::read_to_string(&path).unwrap()[22..40]));
    }

    #[test]
    fn bad_seed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seed");
        std::fs::write(&p, "confide-ohttp-seed-v1 abcd\n").unwrap();
        assert!(matches!(
            KeySchedule::load(&p, None),
            Err(Error::KeyFile(_))
        ));
        std::fs::write(&p, "something else").unwrap();
        assert!(matches!(
            KeySchedule::load(&p, None),
            Err(Error::KeyFile(_))
        ));
        assert!(matches!(
            KeySchedule::new(Zeroizing::new([0; 32]), Some(0)),
            Err(Error::Config(_))
        ));
    }
}
