//! OHTTP key configurations (RFC 9458 §3) and the gateway's key pairs.
//!
//! A key configuration is what a client needs to encrypt to a gateway: a one-byte key
//! identifier, the KEM and its public key, and the KDF/AEAD pairs the gateway accepts.
//! `application/ohttp-keys` (RFC 9458 §3.2) is a sequence of configurations, each
//! prefixed by its two-byte length, which is how a gateway publishes several keys
//! during rotation.

use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::Error;
use crate::hpke::{Aead, Kdf, Kem};
use crate::varint::Reader;

/// A KDF/AEAD pair offered by a key configuration (RFC 9458 §3.1
/// "HPKE Symmetric Algorithms").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SymmetricSuite {
    /// The key-schedule KDF.
    pub kdf: Kdf,
    /// The AEAD.
    pub aead: Aead,
}

impl SymmetricSuite {
    /// A pair.
    pub const fn new(kdf: Kdf, aead: Aead) -> Self {
        Self { kdf, aead }
    }
    /// The pairs Confide's gateway offers by default, in preference order.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
            Self::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
            Self::new(Kdf::HkdfSha256, Aead::Aes256Gcm),
        ]
    }
}

/// One key configuration (RFC 9458 §3.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyConfig {
    key_id: u8,
    kem: Kem,
    public_key: [u8; 32],
    suites: Vec<SymmetricSuite>,
}

impl KeyConfig {
    /// Build a configuration. It must offer at least one pair (RFC 9458 §3.1 gives
    /// the algorithms list a minimum length of 4).
    pub fn new(
        key_id: u8,
        kem: Kem,
        public_key: [u8; 32],
        suites: Vec<SymmetricSuite>,
    ) -> Result<Self, Error> {
        if suites.is_empty() {
            return Err(Error::KeyConfig("no symmetric algorithms"));
        }
        if suites.len() > 16_383 {
            return Err(Error::KeyConfig("too many symmetric algorithms"));
        }
        Ok(Self {
            key_id,
            kem,
            public_key,
            suites,
        })
    }
    /// The key identifier.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }
    /// The KEM.
    pub fn kem(&self) -> Kem {
        self.kem
    }
    /// The encoded public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }
    /// The offered KDF/AEAD pairs, in the gateway's preference order.
    pub fn suites(&self) -> &[SymmetricSuite] {
        &self.suites
    }

    /// Encode as RFC 9458 §3.1 `Key Config`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(7 + 32 + 4 * self.suites.len());
        out.push(self.key_id);
        out.extend_from_slice(&self.kem.id().to_be_bytes());
        out.extend_from_slice(&self.public_key);
        // At most 16,383 suites (checked in `new`), so the length fits.
        let len = (self.suites.len() * 4) as u16;
        out.extend_from_slice(&len.to_be_bytes());
        for s in &self.suites {
            out.extend_from_slice(&s.kdf.id().to_be_bytes());
            out.extend_from_slice(&s.aead.id().to_be_bytes());
        }
        out
    }

    /// Decode exactly one `Key Config`, strictly: unknown algorithms are errors and
    /// trailing bytes are rejected.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let cfg = Self::read(&mut r, true)?;
        if !r.is_empty() {
            return Err(Error::KeyConfig("trailing bytes after key configuration"));
        }
        cfg.ok_or(Error::KeyConfig("no supported symmetric algorithms"))
    }

    /// Read one configuration. With `strict` false, unknown KDF/AEAD pairs are skipped
    /// (RFC 9458 §3.2: clients ignore what they do not support); a configuration with
    /// nothing usable left comes back as `None`.
    fn read(r: &mut Reader<'_>, strict: bool) -> Result<Option<Self>, Error> {
        let key_id = r
            .u8("key id")
            .map_err(|_| Error::KeyConfig("truncated key id"))?;
        let kem = Kem::from_id(
            r.u16("kem id")
                .map_err(|_| Error::KeyConfig("truncated KEM id"))?,
        )?;
        let pk = r
            .bytes(kem.n_pk(), "public key")
            .map_err(|_| Error::KeyConfig("truncated public key"))?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(pk);
        let len = usize::from(
            r.u16("algorithms length")
                .map_err(|_| Error::KeyConfig("truncated algorithms length"))?,
        );
        if len < 4 || len % 4 != 0 {
            return Err(Error::KeyConfig(
                "symmetric algorithms length must be a non-zero multiple of 4",
            ));
        }
        let algs = r
            .bytes(len, "algorithms")
            .map_err(|_| Error::KeyConfig("truncated symmetric algorithms"))?;
        let mut suites = Vec::new();
        for pair in algs.chunks_exact(4) {
            let kdf = Kdf::from_id(u16::from_be_bytes([pair[0], pair[1]]));
            let aead = Aead::from_id(u16::from_be_bytes([pair[2], pair[3]]));
            match (kdf, aead) {
                (Ok(kdf), Ok(aead)) => suites.push(SymmetricSuite { kdf, aead }),
                (Err(e), _) | (_, Err(e)) if strict => return Err(e),
                _ => {}
            }
        }
        if suites.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            key_id,
            kem,
            public_key,
            suites,
        }))
    }

    /// Encode a list as `application/ohttp-keys` (RFC 9458 §3.2).
    pub fn encode_list(configs: &[KeyConfig]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in configs {
            let enc = c.encode();
            // A config is at most 7 + 32 + 4 * 16,383 bytes, which fits in u16.
            out.extend_from_slice(&(enc.len() as u16).to_be_bytes());
            out.extend_from_slice(&enc);
        }
        out
    }

    /// Decode `application/ohttp-keys`. Configurations with an unknown KEM, or whose
    /// pairs are all unknown, are skipped as RFC 9458 §3.2 asks; an empty result, a
    /// malformed entry or a truncated list is an error.
    pub fn decode_list(bytes: &[u8]) -> Result<Vec<KeyConfig>, Error> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while !r.is_empty() {
            let len = usize::from(
                r.u16("config length")
                    .map_err(|_| Error::KeyConfig("truncated config length"))?,
            );
            let body = r
                .bytes(len, "config")
                .map_err(|_| Error::KeyConfig("truncated key configuration"))?;
            let mut inner = Reader::new(body);
            match Self::read(&mut inner, false) {
                Ok(Some(cfg)) if inner.is_empty() => out.push(cfg),
                Ok(Some(_)) => {
                    return Err(Error::KeyConfig("trailing bytes inside key configuration"));
                }
                Ok(None) | Err(Error::UnsupportedKem(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if out.is_empty() {
            return Err(Error::KeyConfig("no supported key configuration"));
        }
        Ok(out)
    }
}

/// A gateway key: its configuration and the X25519 secret. `Debug` never prints the
/// secret, and the secret is zeroized on drop (by `x25519-dalek`).
#[derive(Clone)]
pub struct KeyPair {
    config: KeyConfig,
    secret: StaticSecret,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("config", &self.config)
            .field("secret", &"<opaque>")
            .finish()
    }
}

impl KeyPair {
    /// Import a raw X25519 secret key (RFC 7748 §5 scalar bytes), as RFC 9458
    /// Appendix A and persisted gateway keys need.
    pub fn from_secret_bytes(
        key_id: u8,
        secret: &[u8],
        suites: Vec<SymmetricSuite>,
    ) -> Result<Self, Error> {
        let raw: [u8; 32] = secret
            .try_into()
            .map_err(|_| Error::KeyConfig("secret key must be 32 bytes"))?;
        let raw = Zeroizing::new(raw);
        let secret = StaticSecret::from(*raw);
        let public = PublicKey::from(&secret).to_bytes();
        let config = KeyConfig::new(key_id, Kem::X25519HkdfSha256, public, suites)?;
        Ok(Self { config, secret })
    }

    /// A fresh key from the caller's randomness.
    pub fn generate(
        key_id: u8,
        suites: Vec<SymmetricSuite>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, Error> {
        let mut raw = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(raw.as_mut());
        Self::from_secret_bytes(key_id, raw.as_ref(), suites)
    }

    /// The public configuration.
    pub fn config(&self) -> &KeyConfig {
        &self.config
    }

    /// The raw secret, for persisting to the gateway's key file only.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}
