//! Privacy Pass client with key consistency (RFC 9576 §4.3 / RFC 9578 §4): fetch the
//! issuer directory, accept its key only if it is in a pinned configuration, fetch a batch
//! of tokens over HTTP (RFC 9578 §5, §6), keep unspent tokens, spend one per request
//! (RFC 9577 §2.2.2 `Authorization: PrivateToken`).
//!
//! Pinning is what stops an issuer from handing one device a key of its own: a token
//! under a per-device key would identify the device at redemption. The device therefore
//! only blinds toward keys whose ids it got from a channel every device shares (its
//! configuration, or the transparency ledger).
//!
//! The challenge is the deployment's fixed public one (docs/tokens.md), so tokens can be
//! fetched ahead of time and spent later.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use confide_tokens::keys::ChallengeConfig;
use confide_tokens::{IssuerDirectory, IssuerPublicKey, Token, TokenType};
use zeroize::Zeroizing;

/// RFC 9578 §4 well-known directory path.
pub const DIRECTORY_PATH: &str = "/.well-known/private-token-issuer-directory";
const MEDIA_REQUEST: &str = "application/private-token-request";
const MEDIA_RESPONSE: &str = "application/private-token-response";
const MAX_BODY: usize = 64 * 1024;

/// Token client failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenClientError {
    /// The issuer could not be reached.
    #[error("issuer unreachable: {0}")]
    Unreachable(String),
    /// The issuer answered with an unexpected status.
    #[error("issuer answered HTTP {0}")]
    Status(u16),
    /// The issuer refused the account credential (missing or wrong).
    #[error("issuer refused the account credential")]
    Credential,
    /// The account's issuance limit is reached for now.
    #[error("issuance limit reached")]
    RateLimited,
    /// The directory's key is not one this client pins (key consistency failure).
    #[error("issuer key {0} is not in the pinned configuration")]
    KeyNotPinned(String),
    /// A Privacy Pass protocol check failed (directory, response, proof).
    #[error(transparent)]
    Protocol(#[from] confide_tokens::Error),
    /// The token wallet file could not be read or written.
    #[error("token wallet {path}: {detail}")]
    Wallet {
        /// The wallet file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// What a client trusts about one issuer.
#[derive(Debug, Clone)]
pub struct IssuerPin {
    /// Base URL of the issuer (`https://issuer.example`).
    pub issuer_url: String,
    /// The fixed challenge of the deployment.
    pub challenge: ChallengeConfig,
    /// The token type to fetch.
    pub token_type: TokenType,
    /// Token key ids the client accepts; the directory's key must be one of them.
    pub key_ids: Vec<[u8; 32]>,
}

/// Fetches tokens from one pinned issuer with an account credential.
pub struct TokenClient {
    http: reqwest::Client,
    pin: IssuerPin,
    credential: Zeroizing<String>,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient")
            .field("issuer", &self.pin.issuer_url)
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// A client for `pin`, authenticating issuance with the bearer `credential`.
    pub fn new(pin: IssuerPin, credential: &str) -> Result<Self, TokenClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| TokenClientError::Unreachable(e.to_string()))?;
        Ok(Self {
            http,
            pin,
            credential: Zeroizing::new(credential.to_owned()),
        })
    }

    /// The issuer's base URL.
    pub fn issuer_url(&self) -> &str {
        &self.pin.issuer_url
    }

    async fn body(resp: reqwest::Response) -> Result<Vec<u8>, TokenClientError> {
        let mut resp = resp;
        let mut out = Vec::new();
        while let Some(c) = resp
            .chunk()
            .await
            .map_err(|e| TokenClientError::Unreachable(e.without_url().to_string()))?
        {
            if out.len() + c.len() > MAX_BODY {
                return Err(TokenClientError::Protocol(
                    confide_tokens::Error::Directory("response too large"),
                ));
            }
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// Fetch the directory and return the newest key of the pinned type, after checking
    /// it against the pins, with the absolute request URL.
    pub async fn fetch_key(&self, now: u64) -> Result<(IssuerPublicKey, String), TokenClientError> {
        let base = self.pin.issuer_url.trim_end_matches('/');
        let resp = self
            .http
            .get(format!("{base}{DIRECTORY_PATH}"))
            .send()
            .await
            .map_err(|e| TokenClientError::Unreachable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(TokenClientError::Status(resp.status().as_u16()));
        }
        let dir = IssuerDirectory::from_json(&Self::body(resp).await?)?;
        let key = dir.newest_key(self.pin.token_type, now)?;
        if !self.pin.key_ids.iter().any(|k| k == key.key_id()) {
            return Err(TokenClientError::KeyNotPinned(hex::encode(key.key_id())));
        }
        let uri = dir.issuer_request_uri;
        let url = if uri.starts_with("https://") || uri.starts_with("http://") {
            uri
        } else {
            format!("{base}/{}", uri.trim_start_matches('/'))
        };
        Ok((key, url))
    }

    /// Fetch up to `n` tokens into `wallet`. Stops early (returning how many it got) if
    /// the account's limit is reached after at least one token.
    pub async fn fetch_batch(
        &self,
        n: usize,
        wallet: &TokenWallet,
        now: u64,
    ) -> Result<usize, TokenClientError> {
        let (key, url) = self.fetch_key(now).await?;
        let digest = self.pin.challenge.digest(self.pin.token_type)?;
        let mut got = 0;
        for _ in 0..n {
            let (request, pending) = key.begin(digest, &mut rand_core::OsRng)?;
            let resp = self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, MEDIA_REQUEST)
                .header(reqwest::header::ACCEPT, MEDIA_RESPONSE)
                .bearer_auth(self.credential.as_str())
                .body(request.encode())
                .send()
                .await
                .map_err(|e| TokenClientError::Unreachable(e.without_url().to_string()))?;
            match resp.status().as_u16() {
                200 => {}
                401 | 403 => return Err(TokenClientError::Credential),
                429 if got > 0 => break,
                429 => return Err(TokenClientError::RateLimited),
                s => return Err(TokenClientError::Status(s)),
            }
            let token = pending.finalize(&Self::body(resp).await?)?;
            wallet.add(token)?;
            got += 1;
        }
        Ok(got)
    }
}

/// Unspent tokens, optionally persisted (0600 JSON list of base64url tokens) so that a
/// restart neither loses them nor spends one twice.
///
/// A persisted wallet may be shared by several processes: the one that refills it in the
/// background (an app's refiller, `confide up`) and the ones that spend from it (each
/// `confide summarize`). Every change therefore happens under an exclusive lock on
/// `<path>.lock` and starts from the file as it is now, not from a copy read earlier: a
/// refill never resurrects a token another process spent, and a spend never drops a token
/// another process just added.
#[derive(Debug)]
pub struct TokenWallet {
    tokens: Mutex<VecDeque<Token>>,
    path: Option<PathBuf>,
}

impl TokenWallet {
    /// A wallet that lives in memory only.
    pub fn in_memory() -> Self {
        Self {
            tokens: Mutex::new(VecDeque::new()),
            path: None,
        }
    }

    /// A wallet persisted at `path` (created on first save). The file is read now, so a
    /// corrupt wallet is reported here rather than at the first request.
    pub fn open(path: &Path) -> Result<Self, TokenClientError> {
        let tokens = Self::read(path)?;
        Ok(Self {
            tokens: Mutex::new(tokens),
            path: Some(path.to_owned()),
        })
    }

    fn read(path: &Path) -> Result<VecDeque<Token>, TokenClientError> {
        let err = |detail: String| TokenClientError::Wallet {
            path: path.to_owned(),
            detail,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let list: Vec<String> =
                    serde_json::from_slice(&bytes).map_err(|_| err("not a JSON list".into()))?;
                list.iter()
                    .map(|s| {
                        use base64::Engine as _;
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(s.trim_end_matches('='))
                            .map_err(|_| err("entry is not base64url".into()))
                            .and_then(|b| Token::decode(&b).map_err(|e| err(e.to_string())))
                    })
                    .collect::<Result<VecDeque<_>, _>>()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VecDeque::new()),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// An exclusive advisory lock on `<path>.lock`, held until the file is dropped (the
    /// wallet itself is replaced by rename, so it cannot carry the lock).
    fn lock_file(path: &Path) -> Result<std::fs::File, TokenClientError> {
        let lock_path = path.with_extension("lock");
        let err = |e: std::io::Error| TokenClientError::Wallet {
            path: lock_path.clone(),
            detail: e.to_string(),
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(err)?;
        f.lock().map_err(err)?;
        Ok(f)
    }

    /// Run `change` on the current contents under the lock, then save them.
    fn update<R>(
        &self,
        change: impl FnOnce(&mut VecDeque<Token>) -> R,
    ) -> Result<R, TokenClientError> {
        let mut q = self.tokens.lock().map_err(|_| TokenClientError::Wallet {
            path: self.path.clone().unwrap_or_default(),
            detail: "lock poisoned".into(),
        })?;
        let Some(path) = &self.path else {
            return Ok(change(&mut q));
        };
        let _lock = Self::lock_file(path)?;
        *q = Self::read(path)?;
        let before = q.len();
        let out = change(&mut q);
        if q.len() != before {
            self.save(&q)?;
        }
        Ok(out)
    }

    fn save(&self, tokens: &VecDeque<Token>) -> Result<(), TokenClientError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        use base64::Engine as _;
        let list: Vec<String> = tokens
            .iter()
            .map(|t| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t.encode()))
            .collect();
        let bytes = Zeroizing::new(serde_json::to_vec(&list).unwrap_or_default());
        let err = |e: std::io::Error| TokenClientError::Wallet {
            path: path.clone(),
            detail: e.to_string(),
        };
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write as _;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(err)?;
            f.write_all(&bytes).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }

    fn add(&self, token: Token) -> Result<(), TokenClientError> {
        self.update(|q| q.push_back(token))
    }

    /// The wallet file, unless it lives in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Unspent tokens held (for a persisted wallet: in the file now, which other
    /// processes may change; 0 if it cannot be read).
    pub fn len(&self) -> usize {
        match &self.path {
            // Renames are atomic, so an unlocked read sees a whole list.
            Some(path) => Self::read(path).map(|q| q.len()).unwrap_or(0),
            None => self.tokens.lock().map(|q| q.len()).unwrap_or(0),
        }
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take one token as an `Authorization` header value, removing it first (and from
    /// the file, before it is handed out): a token is never offered twice.
    pub fn spend(&self) -> Result<Option<Zeroizing<String>>, TokenClientError> {
        Ok(self
            .update(|q| q.pop_front())?
            .map(|t| Zeroizing::new(t.to_authorization())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use confide_tokens::TokenType;

    fn token(i: u8) -> Token {
        let mut b = vec![0u8; TokenType::Voprf.token_len()];
        b[1] = 1;
        b[2] = i;
        Token::decode(&b).unwrap()
    }

    /// A background refiller and a spender holding the same wallet file (`confide up` and
    /// `confide summarize`): each change starts from the file as it is, so no token is
    /// lost, and none comes back after it was spent.
    #[test]
    fn two_handles_on_one_file_never_lose_or_repeat_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let refiller = TokenWallet::open(&path).unwrap();
        let spender = TokenWallet::open(&path).unwrap();
        refiller.add(token(1)).unwrap();
        refiller.add(token(2)).unwrap();
        // The spender opened the file while it was empty, and still sees both.
        assert_eq!(spender.len(), 2);
        let a = spender.spend().unwrap().unwrap();
        // A refill after the spend does not resurrect the spent token.
        refiller.add(token(3)).unwrap();
        assert_eq!(spender.len(), 2);
        let b = refiller.spend().unwrap().unwrap();
        let c = spender.spend().unwrap().unwrap();
        assert!(spender.spend().unwrap().is_none());
        assert!(refiller.is_empty());
        let mut all = vec![a.to_string(), b.to_string(), c.to_string()];
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 3, "each token handed out exactly once");
    }
}
