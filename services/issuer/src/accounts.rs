//! Account authentication for issuance (RFC 9576 §4: the issuer's attester role is played
//! by the messaging service's account system). A device presents
//! `Authorization: Bearer <credential>`; the store maps it to an account.
//!
//! The embedded store keeps only SHA-256 of each credential, so a leaked `accounts.json`
//! does not let anyone fetch tokens. Credentials are 32 random bytes, so a plain hash is
//! enough (no password stretching is needed for high-entropy secrets).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// An authenticated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account id (only used as the rate-limit key; never logged).
    pub id: String,
    /// A per-account issuance limit per window, overriding the default.
    pub limit: Option<u32>,
}

/// Where accounts come from: the embedded file by default, or an adapter to the
/// messaging service's own account system.
pub trait AccountStore: Send + Sync {
    /// The account holding this bearer credential, if any.
    fn authenticate(&self, credential: &str) -> Option<Account>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    id: String,
    /// Hex SHA-256 of the credential.
    credential_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    accounts: Vec<AccountEntry>,
}

/// The embedded account store: `accounts.json` in the issuer directory.
pub struct FileAccountStore {
    by_hash: HashMap<[u8; 32], Account>,
}

impl std::fmt::Debug for FileAccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileAccountStore")
            .field("accounts", &self.by_hash.len())
            .finish()
    }
}

fn accounts_path(dir: &Path) -> PathBuf {
    dir.join("accounts.json")
}

fn read_file(dir: &Path) -> Result<AccountsFile, Error> {
    let path = accounts_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|_| Error::Accounts("not valid accounts JSON"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AccountsFile::default()),
        Err(e) => Err(Error::Io {
            file: "accounts.json",
            reason: e.to_string(),
        }),
    }
}

fn write_file(dir: &Path, file: &AccountsFile) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(file).map_err(|_| Error::Accounts("cannot encode"))?;
    crate::state::write_secret(dir, "accounts.json", &bytes)
}

impl FileAccountStore {
    /// Load `accounts.json` from the issuer directory (no file: no accounts).
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let file = read_file(dir)?;
        let mut by_hash = HashMap::with_capacity(file.accounts.len());
        for e in file.accounts {
            let h: [u8; 32] = hex::decode(&e.credential_sha256)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(Error::Accounts("credential_sha256 must be 64 hex digits"))?;
            by_hash.insert(
                h,
                Account {
                    id: e.id,
                    limit: e.limit,
                },
            );
        }
        Ok(Self { by_hash })
    }

    /// Create an account and return its new bearer credential (shown once, not stored).
    pub fn add_account<R: rand::RngCore + rand::CryptoRng>(
        dir: &Path,
        id: &str,
        limit: Option<u32>,
        rng: &mut R,
    ) -> Result<String, Error> {
        if id.is_empty() || id.len() > 256 {
            return Err(Error::Accounts("account id must be 1-256 bytes"));
        }
        let mut file = read_file(dir)?;
        if file.accounts.iter().any(|a| a.id == id) {
            return Err(Error::AccountExists);
        }
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let credential = URL_SAFE_NO_PAD.encode(secret);
        file.accounts.push(AccountEntry {
            id: id.to_owned(),
            credential_sha256: hex::encode(Sha256::digest(credential.as_bytes())),
            limit,
        });
        write_file(dir, &file)?;
        Ok(credential)
    }
}

impl AccountStore for FileAccountStore {
    fn authenticate(&self, credential: &str) -> Option<Account> {
        // Look up by the hash of the presented credential: the map probe depends only on
        // a hash the attacker cannot steer toward a stored one, so it leaks nothing useful.
        let h: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        self.by_hash.get(&h).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_authenticate_only_their_account() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::OsRng;
        let a = FileAccountStore::add_account(dir.path(), "alice", None, &mut rng).unwrap();
        let b = FileAccountStore::add_account(dir.path(), "bob", Some(5), &mut rng).unwrap();
        assert!(matches!(
            FileAccountStore::add_account(dir.path(), "alice", None, &mut rng),
            Err(Error::AccountExists)
        ));
        let store = FileAccountStore::load(dir.path()).unwrap();
        assert_eq!(store.authenticate(&a).unwrap().id, "alice");
        assert_eq!(store.authenticate(&b).unwrap().limit, Some(5));
        assert!(store.authenticate("").is_none());
        assert!(store.authenticate(&a[1..]).is_none());
        // The file holds hashes, not credentials.
        let file = std::fs::read_to_string(dir.path().join("accounts.json")).unwrap();
        assert!(!file.contains(&a) && !file.contains(&b));
        std::fs::write(
            dir.path().join("accounts.json"),
            b"{\"accounts\":[{\"id\":\"x\",\"credential_sha256\":\"zz\"}]}",
        )
        .unwrap();
        assert!(matches!(
            FileAccountStore::load(dir.path()),
            Err(Error::Accounts(_))
        ));
    }
}
