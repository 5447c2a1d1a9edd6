//! Issuer key material, its rotation, the RFC 9578 §4 issuer directory, and the key set a
//! gateway redeems against.
//!
//! Rotation (RFC 9578 §4 leaves the policy to the issuer): every key has three instants,
//! in Unix seconds. From `not_before` it is published and issues; after `issue_until` it
//! no longer issues and leaves the directory; until `expires_at` tokens under it still
//! redeem. `expires_at - issue_until` is the overlap window, during which a device can
//! still spend tokens it fetched ahead of time. Spent-nonce records live exactly as long
//! as their key, since after `expires_at` the key rejects the token anyway.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::client::IssuerPublicKey;
use crate::rsa_token::{RsaPublicKey, RsaSecretKey};
use crate::voprf_token::VoprfSecretKey;
use crate::wire::{TokenChallenge, TokenRequest, TokenResponse, TokenType};
use crate::{DIGEST_LEN, Error, KEY_ID_LEN, Result};

/// Largest key or directory file we parse: many keys fit easily.
const MAX_FILE_LEN: usize = 1 << 20;

/// When a key issues and when it stops redeeming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValidity {
    /// Published and issuing from this instant.
    pub not_before: u64,
    /// Issuing until (exclusive) this instant.
    pub issue_until: u64,
    /// Redeemable until (exclusive) this instant.
    pub expires_at: u64,
}

impl KeyValidity {
    fn check(&self) -> Result<()> {
        if self.not_before < self.issue_until && self.issue_until <= self.expires_at {
            Ok(())
        } else {
            Err(Error::KeyFile(
                "key validity must satisfy not_before < issue_until <= expires_at",
            ))
        }
    }
    /// Whether the key issues at `now`.
    pub fn issues_at(&self, now: u64) -> bool {
        self.not_before <= now && now < self.issue_until
    }
}

/// The fixed, public challenge this deployment redeems against (see docs/tokens.md):
/// the issuer name and origin info, no redemption context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeConfig {
    /// `issuer_name` in the `TokenChallenge` (RFC 9577 §2.1).
    pub issuer_name: String,
    /// `origin_info` in the `TokenChallenge`; empty means "any origin" (RFC 9577 §2.1.1).
    pub origin_info: String,
}

impl ChallengeConfig {
    /// The challenge for one token type.
    pub fn challenge(&self, token_type: TokenType) -> Result<TokenChallenge> {
        TokenChallenge::new(token_type, &self.issuer_name, &[], &self.origin_info)
    }
    /// Its digest.
    pub fn digest(&self, token_type: TokenType) -> Result<[u8; DIGEST_LEN]> {
        Ok(self.challenge(token_type)?.digest())
    }
}

enum SecretKey {
    Voprf(VoprfSecretKey),
    BlindRsa(RsaSecretKey),
}

struct IssuerKey {
    secret: SecretKey,
    public: IssuerPublicKey,
    validity: KeyValidity,
}

/// Rotation parameters, kept in the key file so every restart rotates the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    /// How long a key issues, seconds.
    pub issue_secs: u64,
    /// How long after it stops issuing a key still redeems, seconds.
    pub overlap_secs: u64,
}

/// The issuer's secret keys for both token types, with validity. Serialized as the
/// issuer's `keys.json` (secret; the issuer writes it 0600).
pub struct IssuerKeySet {
    challenge: ChallengeConfig,
    policy: RotationPolicy,
    keys: Vec<IssuerKey>,
}

impl std::fmt::Debug for IssuerKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeySet")
            .field("challenge", &self.challenge)
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    challenge: ChallengeConfig,
    policy: RotationPolicy,
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    token_type: u16,
    /// base64url: the VOPRF scalar, or the RSA key as PKCS#8 DER.
    secret_key: String,
    #[serde(flatten)]
    validity: KeyValidity,
}

impl IssuerKeySet {
    /// A new key set with one key of each type, valid from `now`.
    pub fn generate<R: rand_core::RngCore + rand_core::CryptoRng>(
        challenge: ChallengeConfig,
        policy: RotationPolicy,
        now: u64,
        rng: &mut R,
    ) -> Result<Self> {
        if policy.issue_secs == 0 {
            return Err(Error::KeyFile("issue window must be positive"));
        }
        challenge.challenge(TokenType::Voprf)?;
        let mut set = Self {
            challenge,
            policy,
            keys: Vec::new(),
        };
        set.add_keys(now, rng)?;
        Ok(set)
    }

    fn add_keys<R: rand_core::RngCore + rand_core::CryptoRng>(
        &mut self,
        now: u64,
        rng: &mut R,
    ) -> Result<()> {
        let issue_until = now.saturating_add(self.policy.issue_secs);
        let validity = KeyValidity {
            not_before: now,
            issue_until,
            expires_at: issue_until.saturating_add(self.policy.overlap_secs),
        };
        let v = VoprfSecretKey::generate(rng)?;
        let public = IssuerPublicKey::Voprf(v.public_key());
        self.keys.push(IssuerKey {
            secret: SecretKey::Voprf(v),
            public,
            validity,
        });
        let r = RsaSecretKey::generate(rng)?;
        let public = IssuerPublicKey::BlindRsa(r.public_key().clone());
        self.keys.push(IssuerKey {
            secret: SecretKey::BlindRsa(r),
            public,
            validity,
        });
        Ok(())
    }

    /// Rotate: add a fresh key of each type valid from `now`, stop issuing with the
    /// older keys (they stay redeemable until their `expires_at`), and drop keys that
    /// have expired.
    pub fn rotate<R: rand_core::RngCore + rand_core::CryptoRng>(
        &mut self,
        now: u64,
        rng: &mut R,
    ) -> Result<()> {
        for k in &mut self.keys {
            if k.validity.issue_until > now {
                k.validity.issue_until = now.max(k.validity.not_before.saturating_add(1));
                k.validity.expires_at = k
                    .validity
                    .expires_at
                    .min(now.saturating_add(self.policy.overlap_secs))
                    .max(k.validity.issue_until);
            }
        }
        self.keys.retain(|k| k.validity.expires_at > now);
        self.add_keys(now, rng)
    }

    /// How long before the current keys stop issuing their successors are created:
    /// the successors go into `redemption-keys.json` (not into the directory) this early,
    /// so gateways that reload the file know a key before any client can hold a token
    /// under it.
    pub fn prepublish_secs(&self) -> u64 {
        (self.policy.issue_secs / 2).min(3600)
    }

    /// Scheduled rotation, called periodically. Rotates at once if no key of some type
    /// issues at `now`; otherwise, within [`Self::prepublish_secs`] of the newest keys'
    /// `issue_until`, adds their successors, issuing from that instant. Expired keys are
    /// dropped. Returns whether the key set changed (and must be saved).
    pub fn rotate_if_due<R: rand_core::RngCore + rand_core::CryptoRng>(
        &mut self,
        now: u64,
        rng: &mut R,
    ) -> Result<bool> {
        let types = [TokenType::Voprf, TokenType::BlindRsa];
        let issuing = |keys: &[IssuerKey], t: TokenType, at: u64| {
            keys.iter()
                .any(|k| k.public.token_type() == t && k.validity.issues_at(at))
        };
        if types.iter().any(|t| !issuing(&self.keys, *t, now)) {
            self.rotate(now, rng)?;
            return Ok(true);
        }
        let before = self.keys.len();
        self.keys.retain(|k| k.validity.expires_at > now);
        let mut changed = self.keys.len() != before;
        let newest_end = self
            .keys
            .iter()
            .map(|k| k.validity.issue_until)
            .max()
            .unwrap_or(now);
        let has_successor = types.iter().all(|t| issuing(&self.keys, *t, newest_end));
        if !has_successor && newest_end.saturating_sub(now) <= self.prepublish_secs() {
            // add_keys takes the instant the new keys start issuing.
            self.add_keys(newest_end, rng)?;
            changed = true;
        }
        Ok(changed)
    }

    /// The fixed challenge.
    pub fn challenge(&self) -> &ChallengeConfig {
        &self.challenge
    }

    /// Issue one token (RFC 9578 §5.2 / §6.2) with the key named by the request's
    /// truncated key id among the keys that issue at `now`.
    pub fn issue<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        request: &TokenRequest,
        now: u64,
        rng: &mut R,
    ) -> Result<TokenResponse> {
        let mut last_err =
            Error::MalformedTokenRequest("no issuing key matches truncated_token_key_id");
        for k in self.keys.iter().filter(|k| {
            k.validity.issues_at(now)
                && k.public.token_type() == request.token_type()
                && k.public.key_id()[KEY_ID_LEN - 1] == request.truncated_token_key_id()
        }) {
            // A one-byte truncated id can collide; try each candidate.
            let r = match &k.secret {
                SecretKey::Voprf(s) => s.issue(request, rng),
                SecretKey::BlindRsa(s) => s.issue(request, rng),
            };
            match r {
                Ok(resp) => return Ok(resp),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// The RFC 9578 §4 directory: the keys that issue at `now`, newest first.
    pub fn directory(&self, request_uri: &str, now: u64) -> IssuerDirectory {
        let mut keys: Vec<&IssuerKey> = self
            .keys
            .iter()
            .filter(|k| k.validity.issues_at(now))
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.validity.not_before));
        IssuerDirectory {
            issuer_request_uri: request_uri.to_owned(),
            token_keys: keys
                .iter()
                .map(|k| DirectoryKey {
                    token_type: k.public.token_type().code(),
                    token_key: URL_SAFE.encode(k.public.encode()),
                    not_before: Some(k.validity.not_before),
                })
                .collect(),
        }
    }

    /// What a gateway needs to redeem: VOPRF secret keys, RSA public keys, validity and
    /// the challenge, as the `redemption-keys.json` document.
    pub fn redemption_keys_json(&self) -> Result<Vec<u8>> {
        let doc = RedemptionFile {
            version: 1,
            challenge: self.challenge.clone(),
            keys: self
                .keys
                .iter()
                .map(|k| match &k.secret {
                    SecretKey::Voprf(s) => Ok(RedemptionEntry {
                        token_type: 1,
                        secret_key: Some(URL_SAFE_NO_PAD.encode(s.to_bytes().as_slice())),
                        public_key: None,
                        validity: k.validity,
                    }),
                    SecretKey::BlindRsa(s) => Ok(RedemptionEntry {
                        token_type: 2,
                        secret_key: None,
                        public_key: Some(URL_SAFE_NO_PAD.encode(s.public_key().spki())),
                        validity: k.validity,
                    }),
                })
                .collect::<Result<Vec<_>>>()?,
        };
        serde_json::to_vec_pretty(&doc).map_err(|_| Error::KeyFile("cannot encode redemption keys"))
    }

    /// The redemption key set for this issuer's keys.
    pub fn redemption_keys(&self) -> Result<RedemptionKeys> {
        RedemptionKeys::from_json(&self.redemption_keys_json()?)
    }

    /// Serialize the secret key file.
    pub fn to_json(&self) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let keys = self
            .keys
            .iter()
            .map(|k| {
                let (token_type, secret) = match &k.secret {
                    SecretKey::Voprf(s) => (1, s.to_bytes()),
                    SecretKey::BlindRsa(s) => (2, s.to_der()?),
                };
                Ok(KeyEntry {
                    token_type,
                    secret_key: URL_SAFE_NO_PAD.encode(secret.as_slice()),
                    validity: k.validity,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let file = KeyFile {
            version: 1,
            challenge: self.challenge.clone(),
            policy: self.policy,
            keys,
        };
        serde_json::to_vec_pretty(&file)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| Error::KeyFile("cannot encode key file"))
    }

    /// Parse the secret key file.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(Error::KeyFile("key file too large"));
        }
        let file: KeyFile = serde_json::from_slice(bytes)
            .map_err(|_| Error::KeyFile("key file is not valid JSON of the expected shape"))?;
        if file.version != 1 {
            return Err(Error::KeyFile("unsupported key file version"));
        }
        file.challenge.challenge(TokenType::Voprf)?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for e in file.keys {
            e.validity.check()?;
            let secret = zeroize::Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(e.secret_key.trim_end_matches('='))
                    .map_err(|_| Error::KeyFile("secret_key is not base64url"))?,
            );
            let (secret, public) = match TokenType::from_code(e.token_type)? {
                TokenType::Voprf => {
                    let s = VoprfSecretKey::from_bytes(&secret)?;
                    let p = IssuerPublicKey::Voprf(s.public_key());
                    (SecretKey::Voprf(s), p)
                }
                TokenType::BlindRsa => {
                    let s = RsaSecretKey::from_der(&secret)?;
                    let p = IssuerPublicKey::BlindRsa(s.public_key().clone());
                    (SecretKey::BlindRsa(s), p)
                }
            };
            keys.push(IssuerKey {
                secret,
                public,
                validity: e.validity,
            });
        }
        Ok(Self {
            challenge: file.challenge,
            policy: file.policy,
            keys,
        })
    }
}

/// RFC 9578 §4 issuer directory (`application/private-token-issuer-directory`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerDirectory {
    /// Where token requests go.
    #[serde(rename = "issuer-request-uri")]
    pub issuer_request_uri: String,
    /// The issuer's current keys.
    #[serde(rename = "token-keys")]
    pub token_keys: Vec<DirectoryKey>,
}

/// One `token-keys` entry (RFC 9578 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryKey {
    /// The token type code.
    #[serde(rename = "token-type")]
    pub token_type: u16,
    /// base64url of the key encoding, with padding (clients accept either).
    #[serde(rename = "token-key")]
    pub token_key: String,
    /// Unix seconds from which the key is in use.
    #[serde(
        rename = "not-before",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<u64>,
}

impl IssuerDirectory {
    /// Parse a directory document.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(Error::Directory("directory too large"));
        }
        serde_json::from_slice(bytes).map_err(|_| Error::Directory("not a valid issuer directory"))
    }

    /// The newest usable key of `token_type`: entries of unknown types are skipped (RFC
    /// 9578 §4 lets a directory list types a client does not speak); a malformed key of
    /// the wanted type is an error, not silently skipped.
    pub fn newest_key(&self, token_type: TokenType, now: u64) -> Result<IssuerPublicKey> {
        let mut best: Option<(u64, IssuerPublicKey)> = None;
        for entry in &self.token_keys {
            if entry.token_type != token_type.code() {
                continue;
            }
            let nb = entry.not_before.unwrap_or(0);
            if nb > now {
                continue;
            }
            let bytes = URL_SAFE_NO_PAD
                .decode(entry.token_key.trim_end_matches('='))
                .map_err(|_| Error::Directory("token-key is not base64url"))?;
            let key = IssuerPublicKey::decode(token_type, &bytes)?;
            if best.as_ref().is_none_or(|(b, _)| nb >= *b) {
                best = Some((nb, key));
            }
        }
        best.map(|(_, k)| k).ok_or(Error::Directory(
            "no usable key of the requested token type",
        ))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedemptionFile {
    version: u32,
    challenge: ChallengeConfig,
    keys: Vec<RedemptionEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedemptionEntry {
    token_type: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(flatten)]
    validity: KeyValidity,
}

pub(crate) enum Verifier {
    Voprf(VoprfSecretKey),
    BlindRsa(RsaPublicKey),
}

pub(crate) struct RedemptionKey {
    pub(crate) token_type: TokenType,
    pub(crate) key_id: [u8; KEY_ID_LEN],
    pub(crate) verifier: Verifier,
    pub(crate) validity: KeyValidity,
}

/// The keys a gateway redeems against, with the fixed challenge. Loaded from the
/// issuer's `redemption-keys.json` (see docs/tokens.md, "Gateway integration").
pub struct RedemptionKeys {
    pub(crate) challenge: ChallengeConfig,
    pub(crate) digests: [(TokenType, [u8; DIGEST_LEN]); 2],
    pub(crate) keys: Vec<RedemptionKey>,
}

impl std::fmt::Debug for RedemptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedemptionKeys")
            .field("challenge", &self.challenge)
            .field(
                "key_ids",
                &self
                    .keys
                    .iter()
                    .map(|k| hex::encode(k.key_id))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RedemptionKeys {
    /// Parse a `redemption-keys.json` document.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(Error::KeyFile("redemption key file too large"));
        }
        let file: RedemptionFile = serde_json::from_slice(bytes).map_err(|_| {
            Error::KeyFile("redemption key file is not valid JSON of the expected shape")
        })?;
        if file.version != 1 {
            return Err(Error::KeyFile("unsupported redemption key file version"));
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for e in file.keys {
            e.validity.check()?;
            let token_type = TokenType::from_code(e.token_type)?;
            let decode = |s: &str| {
                URL_SAFE_NO_PAD
                    .decode(s.trim_end_matches('='))
                    .map(zeroize::Zeroizing::new)
                    .map_err(|_| Error::KeyFile("key is not base64url"))
            };
            let (verifier, key_id) =
                match (token_type, e.secret_key.as_deref(), e.public_key.as_deref()) {
                    (TokenType::Voprf, Some(sk), None) => {
                        let k = VoprfSecretKey::from_bytes(&decode(sk)?)?;
                        let id = *k.key_id();
                        (Verifier::Voprf(k), id)
                    }
                    (TokenType::BlindRsa, None, Some(pk)) => {
                        let k = RsaPublicKey::from_spki(&decode(pk)?)?;
                        let id = *k.key_id();
                        (Verifier::BlindRsa(k), id)
                    }
                    _ => {
                        return Err(Error::KeyFile(
                            "type 1 keys need secret_key only, type 2 keys need public_key only",
                        ));
                    }
                };
            keys.push(RedemptionKey {
                token_type,
                key_id,
                verifier,
                validity: e.validity,
            });
        }
        let digests = [
            (TokenType::Voprf, file.challenge.digest(TokenType::Voprf)?),
            (
                TokenType::BlindRsa,
                file.challenge.digest(TokenType::BlindRsa)?,
            ),
        ];
        Ok(Self {
            challenge: file.challenge,
            digests,
            keys,
        })
    }

    /// The fixed challenge tokens must be issued for.
    pub fn challenge(&self) -> &ChallengeConfig {
        &self.challenge
    }

    /// The `WWW-Authenticate` value a gateway sends with a 401 (RFC 9577 §2.1): one
    /// `PrivateToken` challenge per token type, with the fixed challenge and the key that
    /// currently issues, both base64url (padded) in quoted strings.
    pub fn www_authenticate(&self, now: u64) -> String {
        let mut parts = Vec::new();
        for ty in [TokenType::Voprf, TokenType::BlindRsa] {
            let key = self
                .keys
                .iter()
                .filter(|k| k.token_type == ty && k.validity.issues_at(now))
                .max_by_key(|k| k.validity.not_before);
            let (Some(key), Ok(challenge)) = (key, self.challenge.challenge(ty)) else {
                continue;
            };
            let public = match &key.verifier {
                Verifier::Voprf(k) => k.public_key().as_bytes().to_vec(),
                Verifier::BlindRsa(k) => k.spki().to_vec(),
            };
            parts.push(format!(
                "PrivateToken challenge=\"{}\", token-key=\"{}\"",
                URL_SAFE.encode(challenge.encode()),
                URL_SAFE.encode(public)
            ));
        }
        parts.join(", ")
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
