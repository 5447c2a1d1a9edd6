//! HPKE base mode (RFC 9180) for the one KEM OHTTP deployments use,
//! DHKEM(X25519, HKDF-SHA256), with every RFC 9180 KDF (HKDF-SHA256/384/512) and AEAD
//! (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305).
//!
//! Why our own key schedule rather than the `hpke` crate: OHTTP needs (a) to import a
//! gateway's raw X25519 secret key, (b) to take the sender's ephemeral key from the
//! caller so that RFC 9458 Appendix A can be reproduced byte for byte and so that
//! randomness is passed in (protocol crates do no I/O), and (c) the exporter. The `hpke`
//! crate only generates ephemeral keys internally through `DeriveKeyPair`, so (b) is
//! impossible with it. The primitives are RustCrypto's (`x25519-dalek`, `hkdf`,
//! `aes-gcm`, `chacha20poly1305`); only the RFC 9180 §4-§5 glue is ours, and it is
//! tested against RFC 9458 Appendix A and for interoperability against the `hpke` crate
//! in both directions for every KDF/AEAD pair. See `docs/adr/0400-ohttp-hpke-backend.md`.

use aes_gcm::aead::{Aead as _, KeyInit, Payload};
use hkdf::Hkdf;
use sha2::{Sha256, Sha384, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::Error;

/// A KEM identifier (RFC 9180 §7.1). Only DHKEM(X25519, HKDF-SHA256) is implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kem {
    /// DHKEM(X25519, HKDF-SHA256), `0x0020`.
    X25519HkdfSha256,
}

impl Kem {
    /// The IANA identifier.
    pub const fn id(self) -> u16 {
        match self {
            Self::X25519HkdfSha256 => 0x0020,
        }
    }
    /// Look up an identifier; anything else is [`Error::UnsupportedKem`].
    pub fn from_id(id: u16) -> Result<Self, Error> {
        match id {
            0x0020 => Ok(Self::X25519HkdfSha256),
            other => Err(Error::UnsupportedKem(other)),
        }
    }
    /// Length of an encoded public key and of `enc` (Npk = Nenc = 32 for X25519).
    pub const fn n_pk(self) -> usize {
        32
    }
}

/// A KDF identifier (RFC 9180 §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kdf {
    /// HKDF-SHA256, `0x0001`.
    HkdfSha256,
    /// HKDF-SHA384, `0x0002`.
    HkdfSha384,
    /// HKDF-SHA512, `0x0003`.
    HkdfSha512,
}

impl Kdf {
    /// The IANA identifier.
    pub const fn id(self) -> u16 {
        match self {
            Self::HkdfSha256 => 1,
            Self::HkdfSha384 => 2,
            Self::HkdfSha512 => 3,
        }
    }
    /// Look up an identifier; anything else is [`Error::UnsupportedKdf`].
    pub fn from_id(id: u16) -> Result<Self, Error> {
        match id {
            1 => Ok(Self::HkdfSha256),
            2 => Ok(Self::HkdfSha384),
            3 => Ok(Self::HkdfSha512),
            other => Err(Error::UnsupportedKdf(other)),
        }
    }
    /// Nh, the hash output length.
    pub const fn n_h(self) -> usize {
        match self {
            Self::HkdfSha256 => 32,
            Self::HkdfSha384 => 48,
            Self::HkdfSha512 => 64,
        }
    }

    /// HKDF-Extract (RFC 5869 §2.2).
    pub(crate) fn extract(self, salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
        match self {
            Self::HkdfSha256 => Zeroizing::new(Hkdf::<Sha256>::extract(Some(salt), ikm).0.to_vec()),
            Self::HkdfSha384 => Zeroizing::new(Hkdf::<Sha384>::extract(Some(salt), ikm).0.to_vec()),
            Self::HkdfSha512 => Zeroizing::new(Hkdf::<Sha512>::extract(Some(salt), ikm).0.to_vec()),
        }
    }

    /// HKDF-Expand (RFC 5869 §2.3).
    pub(crate) fn expand(
        self,
        prk: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut okm = Zeroizing::new(vec![0u8; len]);
        let r = match self {
            Self::HkdfSha256 => Hkdf::<Sha256>::from_prk(prk)
                .map_err(|_| Error::Crypto("prk length"))?
                .expand(info, &mut okm),
            Self::HkdfSha384 => Hkdf::<Sha384>::from_prk(prk)
                .map_err(|_| Error::Crypto("prk length"))?
                .expand(info, &mut okm),
            Self::HkdfSha512 => Hkdf::<Sha512>::from_prk(prk)
                .map_err(|_| Error::Crypto("prk length"))?
                .expand(info, &mut okm),
        };
        r.map_err(|_| Error::Crypto("expand length"))?;
        Ok(okm)
    }

    /// LabeledExtract (RFC 9180 §4).
    fn labeled_extract(
        self,
        suite_id: &[u8],
        salt: &[u8],
        label: &[u8],
        ikm: &[u8],
    ) -> Zeroizing<Vec<u8>> {
        let mut labeled = Zeroizing::new(Vec::with_capacity(
            7 + suite_id.len() + label.len() + ikm.len(),
        ));
        labeled.extend_from_slice(b"HPKE-v1");
        labeled.extend_from_slice(suite_id);
        labeled.extend_from_slice(label);
        labeled.extend_from_slice(ikm);
        self.extract(salt, &labeled)
    }

    /// LabeledExpand (RFC 9180 §4).
    fn labeled_expand(
        self,
        suite_id: &[u8],
        prk: &[u8],
        label: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let l = u16::try_from(len).map_err(|_| Error::Crypto("expand length"))?;
        let mut labeled = Vec::with_capacity(9 + suite_id.len() + label.len() + info.len());
        labeled.extend_from_slice(&l.to_be_bytes());
        labeled.extend_from_slice(b"HPKE-v1");
        labeled.extend_from_slice(suite_id);
        labeled.extend_from_slice(label);
        labeled.extend_from_slice(info);
        self.expand(prk, &labeled, len)
    }
}

/// An AEAD identifier (RFC 9180 §7.3). The export-only AEAD is not offered: OHTTP
/// always encrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Aead {
    /// AES-128-GCM, `0x0001`.
    Aes128Gcm,
    /// AES-256-GCM, `0x0002`.
    Aes256Gcm,
    /// ChaCha20-Poly1305, `0x0003`.
    ChaCha20Poly1305,
}

impl Aead {
    /// The IANA identifier.
    pub const fn id(self) -> u16 {
        match self {
            Self::Aes128Gcm => 1,
            Self::Aes256Gcm => 2,
            Self::ChaCha20Poly1305 => 3,
        }
    }
    /// Look up an identifier; anything else is [`Error::UnsupportedAead`].
    pub fn from_id(id: u16) -> Result<Self, Error> {
        match id {
            1 => Ok(Self::Aes128Gcm),
            2 => Ok(Self::Aes256Gcm),
            3 => Ok(Self::ChaCha20Poly1305),
            other => Err(Error::UnsupportedAead(other)),
        }
    }
    /// Nk, the key length.
    pub const fn n_k(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm | Self::ChaCha20Poly1305 => 32,
        }
    }
    /// Nn, the nonce length (12 for all three).
    pub const fn n_n(self) -> usize {
        12
    }
    /// Nt, the tag length (16 for all three).
    pub const fn n_t(self) -> usize {
        16
    }

    pub(crate) fn seal(
        self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        pt: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let payload = Payload { msg: pt, aad };
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| Error::Crypto("nonce length"))?;
        let nonce = &aes_gcm::Nonce::from(nonce);
        let r = match self {
            Self::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(key)
                .map_err(|_| Error::Crypto("aead key length"))?
                .encrypt(nonce, payload),
            Self::Aes256Gcm => aes_gcm::Aes256Gcm::new_from_slice(key)
                .map_err(|_| Error::Crypto("aead key length"))?
                .encrypt(nonce, payload),
            Self::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
                .map_err(|_| Error::Crypto("aead key length"))?
                .encrypt(nonce, payload),
        };
        r.map_err(|_| Error::Crypto("seal"))
    }

    pub(crate) fn open(
        self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ct: &[u8],
    ) -> Result<Vec<u8>, Error> {
        if ct.len() < self.n_t() {
            return Err(Error::Truncated("ciphertext shorter than the AEAD tag"));
        }
        let payload = Payload { msg: ct, aad };
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| Error::Crypto("nonce length"))?;
        let nonce = &aes_gcm::Nonce::from(nonce);
        let r = match self {
            Self::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(key)
                .map_err(|_| Error::Crypto("aead key length"))?
                .decrypt(nonce, payload),
            Self::Aes256Gcm => aes_gcm::Aes256Gcm::new_from_slice(key)
                .map_err(|_| Error::Crypto("aead key length"))?
                .decrypt(nonce, payload),
            Self::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
                .map_err(|_| Error::Crypto("aead key length"))?
                .decrypt(nonce, payload),
        };
        r.map_err(|_| Error::Decrypt)
    }
}

/// A full HPKE ciphersuite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suite {
    /// The KEM.
    pub kem: Kem,
    /// The KDF of the key schedule.
    pub kdf: Kdf,
    /// The AEAD.
    pub aead: Aead,
}

impl Suite {
    fn hpke_suite_id(self) -> [u8; 10] {
        let mut id = [0u8; 10];
        id[..4].copy_from_slice(b"HPKE");
        id[4..6].copy_from_slice(&self.kem.id().to_be_bytes());
        id[6..8].copy_from_slice(&self.kdf.id().to_be_bytes());
        id[8..10].copy_from_slice(&self.aead.id().to_be_bytes());
        id
    }
}

/// The DHKEM's own suite id, `"KEM" || I2OSP(kem_id, 2)` (RFC 9180 §4.1).
fn kem_suite_id(kem: Kem) -> [u8; 5] {
    let mut id = [0u8; 5];
    id[..3].copy_from_slice(b"KEM");
    id[3..].copy_from_slice(&kem.id().to_be_bytes());
    id
}

/// DHKEM ExtractAndExpand (RFC 9180 §4.1); the DHKEM(X25519) KDF is always HKDF-SHA256.
fn extract_and_expand(
    kem: Kem,
    dh: &[u8],
    kem_context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let sid = kem_suite_id(kem);
    let prk = Kdf::HkdfSha256.labeled_extract(&sid, b"", b"eae_prk", dh);
    Kdf::HkdfSha256.labeled_expand(&sid, &prk, b"shared_secret", kem_context, 32)
}

fn dh(sk: &StaticSecret, pk: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let shared = sk.diffie_hellman(&PublicKey::from(*pk));
    // RFC 9180 §7.1.4: an all-zero X25519 output (small-order peer key) must abort.
    if !shared.was_contributory() {
        return Err(Error::InvalidPublicKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// An HPKE encryption context (RFC 9180 §5.2): a key, a base nonce, a sequence number
/// and the exporter secret. `Debug` prints no key material.
pub(crate) struct Context {
    suite: Suite,
    key: Zeroizing<Vec<u8>>,
    base_nonce: Zeroizing<Vec<u8>>,
    exporter_secret: Zeroizing<Vec<u8>>,
    seq: u64,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// KeySchedule for mode_base (RFC 9180 §5.1): no PSK.
    fn key_schedule(suite: Suite, shared_secret: &[u8], info: &[u8]) -> Result<Self, Error> {
        let sid = suite.hpke_suite_id();
        let kdf = suite.kdf;
        let psk_id_hash = kdf.labeled_extract(&sid, b"", b"psk_id_hash", b"");
        let info_hash = kdf.labeled_extract(&sid, b"", b"info_hash", info);
        let mut ctx = Vec::with_capacity(1 + psk_id_hash.len() + info_hash.len());
        ctx.push(0u8); // mode_base
        ctx.extend_from_slice(&psk_id_hash);
        ctx.extend_from_slice(&info_hash);
        let secret = kdf.labeled_extract(&sid, shared_secret, b"secret", b"");
        Ok(Self {
            suite,
            key: kdf.labeled_expand(&sid, &secret, b"key", &ctx, suite.aead.n_k())?,
            base_nonce: kdf.labeled_expand(&sid, &secret, b"base_nonce", &ctx, suite.aead.n_n())?,
            exporter_secret: kdf.labeled_expand(&sid, &secret, b"exp", &ctx, kdf.n_h())?,
            seq: 0,
        })
    }

    fn nonce(&self) -> Vec<u8> {
        let mut n = self.base_nonce.to_vec();
        let seq = self.seq.to_be_bytes();
        let off = n.len() - seq.len();
        for (a, b) in n[off..].iter_mut().zip(seq) {
            *a ^= b;
        }
        n
    }

    fn advance(&mut self) -> Result<(), Error> {
        self.seq = self.seq.checked_add(1).ok_or(Error::SequenceOverflow)?;
        Ok(())
    }

    /// ContextS.Seal (RFC 9180 §5.2).
    pub(crate) fn seal(&mut self, aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, Error> {
        let ct = self.suite.aead.seal(&self.key, &self.nonce(), aad, pt)?;
        self.advance()?;
        Ok(ct)
    }

    /// ContextR.Open (RFC 9180 §5.2).
    pub(crate) fn open(&mut self, aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, Error> {
        let pt = self.suite.aead.open(&self.key, &self.nonce(), aad, ct)?;
        self.advance()?;
        Ok(pt)
    }

    /// Context.Export (RFC 9180 §5.3).
    pub(crate) fn export(
        &self,
        exporter_context: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.suite.kdf.labeled_expand(
            &self.suite.hpke_suite_id(),
            &self.exporter_secret,
            b"sec",
            exporter_context,
            len,
        )
    }
}

/// SetupBaseS (RFC 9180 §5.1.1) with the ephemeral secret key `sk_e` supplied by the
/// caller. Returns `enc` and the sender context.
pub(crate) fn setup_base_s(
    suite: Suite,
    pk_r: &[u8; 32],
    info: &[u8],
    sk_e: &Zeroizing<[u8; 32]>,
) -> Result<([u8; 32], Context), Error> {
    let sk_e = StaticSecret::from(**sk_e);
    let enc = PublicKey::from(&sk_e).to_bytes();
    let dh = dh(&sk_e, pk_r)?;
    let mut kem_context = [0u8; 64];
    kem_context[..32].copy_from_slice(&enc);
    kem_context[32..].copy_from_slice(pk_r);
    let shared = extract_and_expand(suite.kem, dh.as_ref(), &kem_context)?;
    Ok((enc, Context::key_schedule(suite, &shared, info)?))
}

/// SetupBaseR (RFC 9180 §5.1.1).
pub(crate) fn setup_base_r(
    suite: Suite,
    sk_r: &StaticSecret,
    enc: &[u8; 32],
    info: &[u8],
) -> Result<Context, Error> {
    let pk_r = PublicKey::from(sk_r).to_bytes();
    let dh = dh(sk_r, enc)?;
    let mut kem_context = [0u8; 64];
    kem_context[..32].copy_from_slice(enc);
    kem_context[32..].copy_from_slice(&pk_r);
    let shared = extract_and_expand(suite.kem, dh.as_ref(), &kem_context)?;
    Context::key_schedule(suite, &shared, info)
}
