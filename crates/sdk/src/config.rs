//! The client configuration file, `client.toml`, as `confide up` writes it and as an app
//! ships it.
//!
//! ```toml
//! version = 1
//!
//! [endpoints]
//! relay = "http://127.0.0.1:7001/"               # OHTTP relay (RFC 9458 §2: the only
//!                                                # party the device talks to for requests)
//! # relay_mode = "auto"                          # "chunked" | "plain": does the relay
//!                                                # forward chunked OHTTP? (wire::RelayMode)
//! # key_config_host = "https://cdn.example/ohttp-keys"  # optional mirror (see Endpoints)
//! issuer = "http://127.0.0.1:7003/"              # Privacy Pass issuer (RFC 9578)
//! ledger = "http://127.0.0.1:7004/"              # tlog-tiles ledger (C2SP tlog-tiles)
//!
//! [account]
//! credential_file = "account.secret"             # or: credential = "…"
//!
//! [tokens]                                       # the gateway's token challenge (RFC 9577 §2.1)
//! issuer_name = "issuer.example"
//! origin_info = "gateway.example"
//! token_type = "voprf"                           # or "blind-rsa"
//!
//! # [wallet]                                     # background refills (issuance.rs; all optional)
//! # low_water = 8                                # refill when fewer tokens remain
//! # batch = 16                                   # tokens fetched per refill
//! # refill_delay_secs = [30, 300]                # random delay before a refill (uniform)
//! # wait_for_refill_secs = 0                     # an empty wallet fails at once (WalletEmpty)
//!
//! [state]
//! tokens = "tokens.json"                         # tokens fetched ahead of time
//! checkpoint = "checkpoint.txt"                  # newest ledger checkpoint verified
//! # consent = "consent.json"                     # whether AI features are on (consent.rs)
//! # protected_chats = "protected-chats.json"     # chats AI may never see (protect.rs)
//! # receipts = "receipts"                        # signed processing receipts (receipt.rs)
//! # keep_receipts = true                         # false: verify receipts, keep none
//!
//! [trust]
//! policy_file = "trust-policy.toml"              # a confide-attest TrustPolicy, or inline:
//! # [trust.policy]
//! # version = 1
//! # ...
//! ```
//!
//! Relative paths are resolved against the directory of the configuration file, so a
//! directory written by `confide up` can be moved as a whole. Unknown keys are an error:
//! a misspelt trust setting must not be silently ignored.

use std::path::{Path, PathBuf};

use confide_attest::TrustPolicy;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Why a configuration could not be used. Never carries the account credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file (or a file it names) could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// `configuration file`, `trust policy file`, `account credential file`.
        what: &'static str,
        /// The path tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML or not the expected structure (unknown key, wrong type, missing key).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (keys and positions; the file holds no chat content,
        /// and the credential value is never echoed because it is a plain string field).
        message: String,
    },
    /// `version` is not one this SDK understands.
    #[error("{path}: configuration version {found} is not supported (this SDK reads version 1)")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// An endpoint is not an absolute `http`/`https` URL.
    #[error("{path}: endpoints.{name} must be an absolute http(s) URL")]
    BadEndpoint {
        /// The file.
        path: PathBuf,
        /// Which endpoint.
        name: &'static str,
    },
    /// Both or neither of two alternative keys are given.
    #[error("{path}: give exactly one of {a} and {b}")]
    OneOf {
        /// The file.
        path: PathBuf,
        /// First alternative.
        a: &'static str,
        /// Second alternative.
        b: &'static str,
    },
    /// `[tokens]` names no issuer or an unknown token type.
    #[error(
        "{path}: [tokens] needs a non-empty issuer_name and token_type \"voprf\" or \"blind-rsa\""
    )]
    BadTokenType {
        /// The file.
        path: PathBuf,
    },
    /// `endpoints.relay_mode` is not one of the known modes.
    #[error("{path}: endpoints.relay_mode must be \"auto\", \"chunked\" or \"plain\"")]
    BadRelayMode {
        /// The file.
        path: PathBuf,
    },
    /// The account credential is empty.
    #[error("{path}: the account credential is empty")]
    EmptyCredential {
        /// The file that should hold it.
        path: PathBuf,
    },
    /// `[wallet]` is inconsistent (see [`WalletPolicy`]).
    #[error("{path}: [wallet] {why}")]
    BadWallet {
        /// The file.
        path: PathBuf,
        /// Which rule is broken.
        why: &'static str,
    },
    /// The trust policy was rejected by `confide-attest`.
    #[error("{path}: trust policy rejected: {source}")]
    Policy {
        /// The file holding the policy.
        path: PathBuf,
        /// Why.
        source: confide_attest::Error,
    },
}

/// The parties' URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The OHTTP relay: encapsulated requests are POSTed here.
    pub relay: String,
    /// Whether the relay forwards chunked OHTTP (streamed answers); `auto` finds out.
    pub relay_mode: crate::wire::RelayMode,
    /// An optional key-config host (a CDN mirror of the gateway's `application/ohttp-keys`,
    /// RFC 9458 §3). Never the gateway itself: a fetch there would show the gateway the
    /// device's address just before its session opens. Without it the SDK takes the key
    /// configs from the verified ledger view, which logs them anyway; with it, what the
    /// mirror serves must still be in the ledger.
    pub key_config_host: Option<String>,
    /// The Privacy Pass issuer.
    pub issuer: String,
    /// The ledger (tlog-tiles base URL).
    pub ledger: String,
}

/// The account the device authenticates to the issuer with (issuance only; redemption is
/// anonymous). Zeroized on drop, hidden from `Debug`.
#[derive(Clone)]
pub struct Credential(Zeroizing<String>);

impl Credential {
    /// Wrap a credential.
    pub fn new(s: impl Into<String>) -> Self {
        Credential(Zeroizing::new(s.into()))
    }

    /// The credential, for the `Authorization` header of issuance requests.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// The token challenge the gateway accepts (RFC 9577 §2.1), and the token type to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `issuer_name` of the challenge.
    pub issuer_name: String,
    /// `origin_info` of the challenge (the gateway's name).
    pub origin_info: String,
    /// Token type to request.
    pub token_type: confide_tokens::TokenType,
    /// Issuer token key ids (SHA-256 of the key, RFC 9578) this device accepts.
    pub key_ids: Vec<[u8; 32]>,
}

/// When the token wallet is refilled (`crate::issuance`, `docs/tokens.md`).
///
/// Issuance is authenticated with the account credential, so the issuer knows who fetched
/// tokens and when. A fetch right before a request would let the issuer and the gateway
/// link the two by time; so tokens are only ever fetched ahead of need, in the background
/// at a random delay once fewer than `low_water` remain, or by an explicit separate step
/// (`confide wallet refill`), never while a session is being set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletPolicy {
    /// Refill once fewer tokens than this remain. A summary costs two tokens (session and
    /// request), so the default of 8 leaves room for four sessions while a refill waits
    /// out its random delay.
    pub low_water: usize,
    /// Tokens fetched per refill (at least `low_water`, at most 100).
    pub batch: usize,
    /// Shortest random delay between the wallet falling below `low_water` and the refill.
    pub refill_delay_min: std::time::Duration,
    /// Longest such delay; the delay is uniform in `[min, max]`.
    pub refill_delay_max: std::time::Duration,
    /// How long a request waits for a background refill when the wallet is empty before
    /// failing with `Error::WalletEmpty`. 0 (the default): fail at once. When it waits, it
    /// waits a further random delay after the refill lands, so its session does not
    /// follow an issuance by milliseconds.
    pub wait_for_refill: std::time::Duration,
}

impl Default for WalletPolicy {
    fn default() -> Self {
        WalletPolicy {
            low_water: 8,
            batch: 16,
            refill_delay_min: std::time::Duration::from_secs(30),
            refill_delay_max: std::time::Duration::from_secs(300),
            wait_for_refill: std::time::Duration::ZERO,
        }
    }
}

/// The largest `batch` (an issuer's default account limit is 100 a day).
pub const MAX_REFILL_BATCH: usize = 100;

/// How long the SDK waits for a party. Without these a ledger, key-config host, relay or
/// gateway that accepts a connection and then says nothing would hang the client forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To establish a TCP (and TLS) connection.
    pub connect: std::time::Duration,
    /// For a whole ledger or key-config fetch (small static files).
    pub fetch: std::time::Duration,
    /// The longest silence on a connection carrying a session. It must exceed the
    /// longest generation: a relay without chunked OHTTP delivers an answer only once the
    /// node has finished it (ADR 0402).
    pub read: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: std::time::Duration::from_secs(10),
            fetch: std::time::Duration::from_secs(30),
            read: std::time::Duration::from_secs(300),
        }
    }
}

impl Timeouts {
    /// The HTTP client the SDK talks to every party with: these timeouts, no proxy from
    /// the environment is added or removed here (the relay is the device's chosen first
    /// hop), no redirects (a redirect could send an encapsulated request elsewhere).
    pub fn http_client(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.read)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }
}

/// A loaded, validated client configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where it was loaded from (for messages).
    pub path: PathBuf,
    /// The parties' URLs.
    pub endpoints: Endpoints,
    /// The issuer account.
    pub credential: Credential,
    /// The token challenge.
    pub tokens: TokenSettings,
    /// Token store file.
    pub token_store: PathBuf,
    /// When that wallet is refilled.
    pub wallet: WalletPolicy,
    /// The newest verified checkpoint is kept here (rollback / split-view protection).
    pub checkpoint_state: PathBuf,
    /// The person's answer to "use AI features?" ([`crate::consent`]); absent: not asked.
    pub consent_state: PathBuf,
    /// Chats the person has protected from AI ([`crate::protect`]).
    pub protected_chats: PathBuf,
    /// Directory where verified processing receipts are kept ([`crate::receipt`]).
    pub receipts_dir: PathBuf,
    /// Whether receipts are kept on disk (they are always verified).
    pub keep_receipts: bool,
    /// Every trust decision.
    pub policy: TrustPolicy,
    /// Where the policy came from: a file path, or the config file itself when inline.
    pub policy_source: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: u32,
    endpoints: RawEndpoints,
    account: RawAccount,
    tokens: RawTokens,
    #[serde(default)]
    wallet: RawWallet,
    #[serde(default)]
    state: RawState,
    trust: RawTrust,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoints {
    relay: String,
    relay_mode: Option<String>,
    key_config_host: Option<String>,
    issuer: String,
    ledger: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    credential: Option<String>,
    credential_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    issuer_name: String,
    #[serde(default)]
    origin_info: String,
    #[serde(default = "default_token_type")]
    token_type: String,
    key_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWallet {
    low_water: Option<usize>,
    batch: Option<usize>,
    refill_delay_secs: Option<[u64; 2]>,
    wait_for_refill_secs: Option<u64>,
}

impl RawWallet {
    fn policy(&self, path: &Path) -> Result<WalletPolicy, ConfigError> {
        let d = WalletPolicy::default();
        let secs = std::time::Duration::from_secs;
        let p = WalletPolicy {
            low_water: self.low_water.unwrap_or(d.low_water),
            batch: self.batch.unwrap_or(d.batch),
            refill_delay_min: self
                .refill_delay_secs
                .map_or(d.refill_delay_min, |r| secs(r[0])),
            refill_delay_max: self
                .refill_delay_secs
                .map_or(d.refill_delay_max, |r| secs(r[1])),
            wait_for_refill: self.wait_for_refill_secs.map_or(d.wait_for_refill, secs),
        };
        let bad = |why| {
            Err(ConfigError::BadWallet {
                path: path.to_owned(),
                why,
            })
        };
        if p.low_water == 0 {
            return bad("low_water must be at least 1");
        }
        if p.batch < p.low_water || p.batch > MAX_REFILL_BATCH {
            return bad("batch must be at least low_water and at most 100");
        }
        if p.refill_delay_min > p.refill_delay_max {
            return bad("refill_delay_secs must be [min, max] with min <= max");
        }
        Ok(p)
    }
}

fn default_token_type() -> String {
    "voprf".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    #[serde(default = "default_tokens")]
    tokens: PathBuf,
    #[serde(default = "default_checkpoint")]
    checkpoint: PathBuf,
    #[serde(default = "default_consent")]
    consent: PathBuf,
    #[serde(default = "default_protected")]
    protected_chats: PathBuf,
    #[serde(default = "default_receipts")]
    receipts: PathBuf,
    #[serde(default = "default_keep_receipts")]
    keep_receipts: bool,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            tokens: default_tokens(),
            checkpoint: default_checkpoint(),
            consent: default_consent(),
            protected_chats: default_protected(),
            receipts: default_receipts(),
            keep_receipts: default_keep_receipts(),
        }
    }
}

fn default_consent() -> PathBuf {
    PathBuf::from("consent.json")
}

fn default_protected() -> PathBuf {
    PathBuf::from("protected-chats.json")
}

fn default_receipts() -> PathBuf {
    PathBuf::from("receipts")
}

fn default_keep_receipts() -> bool {
    true
}

fn default_tokens() -> PathBuf {
    PathBuf::from("tokens.json")
}

fn default_checkpoint() -> PathBuf {
    PathBuf::from("checkpoint.txt")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    policy_file: Option<PathBuf>,
    policy: Option<toml::Table>,
}

/// The configuration file format version this SDK writes and reads.
pub const CONFIG_VERSION: u32 = 1;

impl ClientConfig {
    /// Read and validate `path` (and the files it names).
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            what: "configuration file",
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path, &|p: &Path, what| {
            std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                what,
                path: p.to_owned(),
                source,
            })
        })
    }

    /// Parse configuration `text` that was read from `path`; `read` fetches the files it
    /// names (the trust policy, the credential), so tests need no file system.
    pub fn from_toml(
        text: &str,
        path: &Path,
        read: &dyn Fn(&Path, &'static str) -> Result<String, ConfigError>,
    ) -> Result<ClientConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: toml_message(&e, text),
        })?;
        if raw.version != CONFIG_VERSION {
            return Err(ConfigError::Version {
                path: path.to_owned(),
                found: raw.version,
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let check = |name: &'static str, url: String| -> Result<String, ConfigError> {
            if is_http_url(&url) {
                Ok(url)
            } else {
                Err(ConfigError::BadEndpoint {
                    path: path.to_owned(),
                    name,
                })
            }
        };
        let endpoints = Endpoints {
            relay: check("relay", raw.endpoints.relay)?,
            relay_mode: match raw.endpoints.relay_mode.as_deref() {
                None => crate::wire::RelayMode::Auto,
                Some(m) => {
                    crate::wire::RelayMode::parse(m).ok_or_else(|| ConfigError::BadRelayMode {
                        path: path.to_owned(),
                    })?
                }
            },
            key_config_host: raw
                .endpoints
                .key_config_host
                .map(|u| check("key_config_host", u))
                .transpose()?,
            issuer: check("issuer", raw.endpoints.issuer)?,
            ledger: check("ledger", raw.endpoints.ledger)?,
        };
        let (credential, cred_path) = match (raw.account.credential, raw.account.credential_file) {
            (Some(c), None) => (Zeroizing::new(c), path.to_owned()),
            (None, Some(f)) => {
                let p = resolve(&f);
                (Zeroizing::new(read(&p, "account credential file")?), p)
            }
            _ => {
                return Err(ConfigError::OneOf {
                    path: path.to_owned(),
                    a: "account.credential",
                    b: "account.credential_file",
                });
            }
        };
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(ConfigError::EmptyCredential { path: cred_path });
        }
        let token_type = match raw.tokens.token_type.as_str() {
            "voprf" => confide_tokens::TokenType::Voprf,
            "blind-rsa" => confide_tokens::TokenType::BlindRsa,
            _ => {
                return Err(ConfigError::BadTokenType {
                    path: path.to_owned(),
                });
            }
        };
        if raw.tokens.issuer_name.trim().is_empty() {
            return Err(ConfigError::BadTokenType {
                path: path.to_owned(),
            });
        }
        let mut key_ids = Vec::with_capacity(raw.tokens.key_ids.len());
        for k in &raw.tokens.key_ids {
            let id = hex::decode(k.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| ConfigError::BadTokenType {
                    path: path.to_owned(),
                })?;
            key_ids.push(id);
        }
        if key_ids.is_empty() {
            return Err(ConfigError::BadTokenType {
                path: path.to_owned(),
            });
        }
        let wallet = raw.wallet.policy(path)?;
        let tokens = TokenSettings {
            issuer_name: raw.tokens.issuer_name,
            origin_info: raw.tokens.origin_info,
            token_type,
            key_ids,
        };
        let (policy_text, policy_source) = match (raw.trust.policy_file, raw.trust.policy) {
            (Some(f), None) => {
                let p = resolve(&f);
                (read(&p, "trust policy file")?, p)
            }
            (None, Some(table)) => (
                toml::to_string(&table).map_err(|e| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: format!("trust.policy: {e}"),
                })?,
                path.to_owned(),
            ),
            _ => {
                return Err(ConfigError::OneOf {
                    path: path.to_owned(),
                    a: "trust.policy_file",
                    b: "[trust.policy]",
                });
            }
        };
        let policy =
            TrustPolicy::from_toml(&policy_text).map_err(|source| ConfigError::Policy {
                path: policy_source.clone(),
                source,
            })?;
        Ok(ClientConfig {
            path: path.to_owned(),
            endpoints,
            credential: Credential::new(credential),
            tokens,
            token_store: resolve(&raw.state.tokens),
            wallet,
            checkpoint_state: resolve(&raw.state.checkpoint),
            consent_state: resolve(&raw.state.consent),
            protected_chats: resolve(&raw.state.protected_chats),
            receipts_dir: resolve(&raw.state.receipts),
            keep_receipts: raw.state.keep_receipts,
            policy,
            policy_source,
        })
    }
}

/// Render a `client.toml` naming the policy and credential files (what `confide up`
/// writes). Paths are written as given; relative ones resolve against the file's directory.
pub fn render(
    endpoints: &Endpoints,
    tokens: &TokenSettings,
    credential_file: &Path,
    policy_file: &Path,
    token_store: &Path,
    checkpoint: &Path,
) -> String {
    let mut t = toml::Table::new();
    t.insert(
        "version".into(),
        toml::Value::Integer(CONFIG_VERSION.into()),
    );
    let mut e = toml::Table::new();
    e.insert("relay".into(), endpoints.relay.clone().into());
    if endpoints.relay_mode != crate::wire::RelayMode::Auto {
        e.insert(
            "relay_mode".into(),
            endpoints.relay_mode.as_str().to_owned().into(),
        );
    }
    if let Some(host) = &endpoints.key_config_host {
        e.insert("key_config_host".into(), host.clone().into());
    }
    e.insert("issuer".into(), endpoints.issuer.clone().into());
    e.insert("ledger".into(), endpoints.ledger.clone().into());
    t.insert("endpoints".into(), e.into());
    let path_value = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned());
    let mut a = toml::Table::new();
    a.insert("credential_file".into(), path_value(credential_file));
    t.insert("account".into(), a.into());
    let mut tk = toml::Table::new();
    tk.insert("issuer_name".into(), tokens.issuer_name.clone().into());
    tk.insert("origin_info".into(), tokens.origin_info.clone().into());
    tk.insert(
        "token_type".into(),
        match tokens.token_type {
            confide_tokens::TokenType::BlindRsa => "blind-rsa",
            _ => "voprf",
        }
        .into(),
    );
    tk.insert(
        "key_ids".into(),
        toml::Value::Array(
            tokens
                .key_ids
                .iter()
                .map(|k| toml::Value::String(hex::encode(k)))
                .collect(),
        ),
    );
    t.insert("tokens".into(), tk.into());
    let mut s = toml::Table::new();
    s.insert("tokens".into(), path_value(token_store));
    s.insert("checkpoint".into(), path_value(checkpoint));
    // Written out (with their defaults) so a person reading the file sees where consent,
    // the protected-chats list and receipts are kept.
    s.insert("consent".into(), path_value(&default_consent()));
    s.insert("protected_chats".into(), path_value(&default_protected()));
    s.insert("receipts".into(), path_value(&default_receipts()));
    t.insert("state".into(), s.into());
    let mut tr = toml::Table::new();
    tr.insert("policy_file".into(), path_value(policy_file));
    t.insert("trust".into(), tr.into());
    format!(
        "# Confide client configuration (docs/sdk.md).\n{}",
        toml::to_string(&t).unwrap_or_default()
    )
}

/// A TOML error as one line with its line number. Messages about keys (unknown, missing,
/// duplicate) are kept; others ("invalid type: string `…`") quote the value, which may be
/// the credential, so only their position is reported.
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message();
    let keep = [
        "unknown field",
        "missing field",
        "duplicate key",
        "unknown variant",
    ]
    .iter()
    .any(|p| msg.starts_with(p));
    let what = if keep {
        msg.trim_end_matches('\n').to_owned()
    } else {
        "invalid TOML or a value of the wrong type".to_owned()
    };
    match e.span() {
        Some(span) => {
            let line = 1 + text
                .get(..span.start)
                .unwrap_or(text)
                .bytes()
                .filter(|b| *b == b'\n')
                .count();
            format!("line {line}: {what}")
        }
        None => what,
    }
}

/// `http://host[:port]/…` or `https://…`, with a non-empty host and no whitespace.
fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    match rest {
        Some(r) => {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_toml() -> String {
        TrustPolicy::production().to_toml()
    }

    const ENDPOINTS: &str = r#"
[endpoints]
relay = "http://127.0.0.1:7001/"
key_config_host = "http://127.0.0.1:7002/ohttp-keys"
issuer = "http://127.0.0.1:7003"
ledger = "https://ledger.example/log/"

[tokens]
issuer_name = "issuer.example"
origin_info = "gateway.example"
key_ids = ["0101010101010101010101010101010101010101010101010101010101010101"]
"#;

    fn files(name: &Path, _what: &'static str) -> Result<String, ConfigError> {
        match name.file_name().and_then(|n| n.to_str()) {
            Some("policy.toml") => Ok(policy_toml()),
            Some("account.secret") => Ok("acct-123\n".into()),
            Some("empty.secret") => Ok("  \n".into()),
            _ => Err(ConfigError::Read {
                what: _what,
                path: name.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
        }
    }

    fn load(text: &str) -> Result<ClientConfig, ConfigError> {
        ClientConfig::from_toml(text, Path::new("/srv/confide/client.toml"), &files)
    }

    #[test]
    fn file_references_resolve_against_the_config_dir() {
        let text = format!(
            "version = 1\n{ENDPOINTS}\n[account]\ncredential_file = \"account.secret\"\n\
             [trust]\npolicy_file = \"policy.toml\"\n"
        );
        let c = load(&text).unwrap();
        assert_eq!(c.credential.expose(), "acct-123");
        assert_eq!(c.token_store, Path::new("/srv/confide/tokens.json"));
        assert_eq!(c.checkpoint_state, Path::new("/srv/confide/checkpoint.txt"));
        assert_eq!(c.policy_source, Path::new("/srv/confide/policy.toml"));
        assert_eq!(c.policy, TrustPolicy::production());
        assert_eq!(c.endpoints.issuer, "http://127.0.0.1:7003");
        assert!(!format!("{c:?}").contains("acct-123"));
    }

    #[test]
    fn inline_policy_and_credential() {
        let mut text = format!(
            "version = 1\n{ENDPOINTS}\n[account]\ncredential = \"abc\"\n\
             [state]\ntokens = \"/var/tok.json\"\n[trust.policy]\n"
        );
        text.push_str(&policy_toml().replace("\n[", "\n[trust.policy."));
        let c = load(&text).unwrap();
        assert_eq!(c.policy, TrustPolicy::production());
        assert_eq!(c.token_store, Path::new("/var/tok.json"));
        assert_eq!(c.policy_source, Path::new("/srv/confide/client.toml"));
    }

    #[test]
    fn render_roundtrips() {
        let e = Endpoints {
            relay: "http://127.0.0.1:1/".into(),
            relay_mode: crate::wire::RelayMode::Plain,
            key_config_host: Some("http://127.0.0.1:2/ohttp-keys".into()),
            issuer: "http://127.0.0.1:3/".into(),
            ledger: "http://127.0.0.1:4/".into(),
        };
        let tk = TokenSettings {
            issuer_name: "i".into(),
            origin_info: "g".into(),
            token_type: confide_tokens::TokenType::BlindRsa,
            key_ids: vec![[7; 32], [9; 32]],
        };
        let text = render(
            &e,
            &tk,
            Path::new("account.secret"),
            Path::new("policy.toml"),
            Path::new("tokens.json"),
            Path::new("cp.txt"),
        );
        let c = load(&text).unwrap();
        assert_eq!(c.endpoints, e);
        assert_eq!(c.tokens, tk);
        assert_eq!(c.checkpoint_state, Path::new("/srv/confide/cp.txt"));
    }

    #[test]
    fn errors_are_specific() {
        let base = |account: &str, trust: &str| {
            format!("version = 1\n{ENDPOINTS}\n[account]\n{account}\n[trust]\n{trust}\n")
        };
        let good_acct = "credential = \"x\"";
        let good_trust = "policy_file = \"policy.toml\"";
        assert!(matches!(
            load(&base(good_acct, good_trust).replace("version = 1", "version = 2")),
            Err(ConfigError::Version { found: 2, .. })
        ));
        assert!(matches!(
            load(&base(good_acct, good_trust).replace("http://127.0.0.1:7001/", "ftp://x/")),
            Err(ConfigError::BadEndpoint { name: "relay", .. })
        ));
        let with_mode = |m: &str| {
            base(good_acct, good_trust).replace(
                "relay = \"http://127.0.0.1:7001/\"",
                &format!("relay = \"http://127.0.0.1:7001/\"\nrelay_mode = \"{m}\""),
            )
        };
        assert!(matches!(
            load(&with_mode("streaming")),
            Err(ConfigError::BadRelayMode { .. })
        ));
        assert_eq!(
            load(&with_mode("plain")).unwrap().endpoints.relay_mode,
            crate::wire::RelayMode::Plain
        );
        assert_eq!(
            load(&base(good_acct, good_trust))
                .unwrap()
                .endpoints
                .relay_mode,
            crate::wire::RelayMode::Auto,
            "auto when unset"
        );
        assert!(matches!(
            load(&base(good_acct, good_trust).replace("https://ledger.example/log/", "https:///")),
            Err(ConfigError::BadEndpoint { name: "ledger", .. })
        ));
        // [wallet]: defaults when absent; inconsistent values refused by name.
        let c = load(&base(good_acct, good_trust)).unwrap();
        assert_eq!(c.wallet, WalletPolicy::default());
        let with_wallet = |w: &str| format!("{}\n[wallet]\n{w}\n", base(good_acct, good_trust));
        let c = load(&with_wallet(
            "low_water = 2\nbatch = 3\nrefill_delay_secs = [1, 2]\nwait_for_refill_secs = 9",
        ))
        .unwrap();
        assert_eq!(
            (
                c.wallet.low_water,
                c.wallet.batch,
                c.wallet.wait_for_refill.as_secs()
            ),
            (2, 3, 9)
        );
        for bad in [
            "low_water = 0",
            "low_water = 20\nbatch = 10",
            "batch = 101",
            "refill_delay_secs = [9, 1]",
        ] {
            assert!(
                matches!(load(&with_wallet(bad)), Err(ConfigError::BadWallet { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            load(&with_wallet("refill_now = true")),
            Err(ConfigError::Syntax { .. })
        ));
        assert!(matches!(
            load(&base("", good_trust)),
            Err(ConfigError::OneOf {
                a: "account.credential",
                ..
            })
        ));
        assert!(matches!(
            load(&base(
                "credential = \"x\"\ncredential_file = \"account.secret\"",
                good_trust
            )),
            Err(ConfigError::OneOf { .. })
        ));
        assert!(matches!(
            load(&base("credential_file = \"empty.secret\"", good_trust)),
            Err(ConfigError::EmptyCredential { .. })
        ));
        assert!(matches!(
            load(&base("credential_file = \"missing.secret\"", good_trust)),
            Err(ConfigError::Read {
                what: "account credential file",
                ..
            })
        ));
        assert!(matches!(
            load(&base(good_acct, "")),
            Err(ConfigError::OneOf {
                a: "trust.policy_file",
                ..
            })
        ));
        assert!(matches!(
            load(&base(good_acct, "policy_file = \"nope.toml\"")),
            Err(ConfigError::Read {
                what: "trust policy file",
                ..
            })
        ));
        // A typo in a trust setting is an error, not ignored.
        let e = load(&base(
            good_acct,
            "policy_file = \"policy.toml\"\nalow_simulated = true",
        ))
        .unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        assert!(e.to_string().contains("alow_simulated"));
        // The policy itself is validated by confide-attest.
        let e = load(&base(good_acct, "[trust.policy]\nversion = 7")).unwrap_err();
        assert!(matches!(e, ConfigError::Policy { .. }), "{e:?}");
        assert!(matches!(
            load(
                &base(good_acct, good_trust)
                    .replace("origin_info", "token_type = \"x\"\norigin_info")
            ),
            Err(ConfigError::BadTokenType { .. })
        ));
        assert!(matches!(
            load(&base(good_acct, good_trust).replace("\"0101", "\"zz01")),
            Err(ConfigError::BadTokenType { .. })
        ));
        // Not TOML.
        assert!(matches!(
            load("version = "),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn credential_is_not_echoed_by_type_errors() {
        let text = format!(
            "version = 1\n{ENDPOINTS}\n[account]\ncredential = 12345678\n[trust]\npolicy_file = \"policy.toml\"\n"
        );
        let e = load(&text).unwrap_err();
        assert!(!e.to_string().contains("12345678"), "{e}");
    }
}
