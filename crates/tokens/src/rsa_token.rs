//! Token type 0x0002: blind RSA, RFC 9578 §6, on RFC 9474 RSABSSA-SHA384-PSS-Deterministic
//! as implemented by `blind-rsa-signatures` 0.18 (RSA arithmetic from `rsa` 0.10 on
//! `crypto-bigint`, constant-time; see docs/adr/0300-privacy-pass-crypto-crates.md).
//!
//! Publicly verifiable: anyone with the issuer's public key checks the authenticator as
//! an RSASSA-PSS signature over `token_authenticator_input` (RFC 9578 §6.4).

use blind_rsa_signatures::{
    BlindSignature, BlindingResult, Deterministic, PSS, PublicKey, SecretKey, Sha384, Signature,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::rng::Bridge;
use crate::wire::{RSA_MODULUS_LEN, Token, TokenRequest, TokenResponse, TokenType};
use crate::{DIGEST_LEN, Error, KEY_ID_LEN, NONCE_LEN, Result};

type Sk = SecretKey<Sha384, PSS, Deterministic>;
type Pk = PublicKey<Sha384, PSS, Deterministic>;

/// RFC 9578 §6 fixes the modulus at 2048 bits.
const MODULUS_BITS: usize = 2048;

/// An issuer secret key for token type 0x0002.
pub struct RsaSecretKey {
    sk: Sk,
    public: RsaPublicKey,
}

impl std::fmt::Debug for RsaSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaSecretKey")
            .field("key_id", &hex::encode(self.public.key_id))
            .finish_non_exhaustive()
    }
}

impl RsaSecretKey {
    /// A fresh 2048-bit key.
    pub fn generate<R: rand_core::RngCore + rand_core::CryptoRng>(rng: &mut R) -> Result<Self> {
        let kp = blind_rsa_signatures::KeyPair::<Sha384, PSS, Deterministic>::generate(
            &mut Bridge(rng),
            MODULUS_BITS,
        )
        .map_err(|_| Error::Crypto("RSA key generation"))?;
        Self::from_sk(kp.sk)
    }

    /// The key from PKCS#8 (or PKCS#1) DER.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let sk = Sk::from_der(der).map_err(|_| Error::InvalidKey("RSA private key DER"))?;
        Self::from_sk(sk)
    }

    /// The key from a PKCS#8 PEM document (the format of the RFC 9578 test vectors).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let sk = Sk::from_pem(pem).map_err(|_| Error::InvalidKey("RSA private key PEM"))?;
        Self::from_sk(sk)
    }

    fn from_sk(sk: Sk) -> Result<Self> {
        let pk = sk
            .public_key()
            .map_err(|_| Error::InvalidKey("RSA public key"))?;
        if pk.components().n().len() != RSA_MODULUS_LEN {
            return Err(Error::InvalidKey("RSA modulus must be 2048 bits"));
        }
        let public = RsaPublicKey::from_pk(pk)?;
        Ok(Self { sk, public })
    }

    /// PKCS#8 DER, for the issuer's key file.
    pub fn to_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        self.sk
            .to_der()
            .map(Zeroizing::new)
            .map_err(|_| Error::Crypto("RSA private key encoding"))
    }

    /// The public key.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// Issuer side, RFC 9578 §6.2: `blind_sig = BlindSign(skI, blinded_msg)`. The RNG
    /// only drives RSA base blinding against timing side channels.
    pub fn issue<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        request: &TokenRequest,
        rng: &mut R,
    ) -> Result<TokenResponse> {
        if request.token_type() != TokenType::BlindRsa {
            return Err(Error::WrongTokenType(request.token_type().code()));
        }
        if request.truncated_token_key_id() != self.public.key_id[KEY_ID_LEN - 1] {
            return Err(Error::MalformedTokenRequest(
                "truncated_token_key_id does not name this key",
            ));
        }
        let sig = self
            .sk
            .blind_sign_with_rng(&mut Bridge(rng), request.blinded_msg())
            .map_err(|_| Error::MalformedTokenRequest("blinded_msg is not a valid RSA input"))?;
        Ok(TokenResponse::new(sig.0))
    }
}

/// A type 0x0002 issuer public key.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    pk: Pk,
    spki: Vec<u8>,
    key_id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("key_id", &hex::encode(self.key_id))
            .finish()
    }
}

impl RsaPublicKey {
    fn from_pk(pk: Pk) -> Result<Self> {
        let spki = pk
            .to_spki()
            .map_err(|_| Error::InvalidKey("RSA public key encoding"))?;
        let key_id = Sha256::digest(&spki).into();
        Ok(Self { pk, spki, key_id })
    }

    /// Parse the RFC 9578 §6.5 encoding: a DER SubjectPublicKeyInfo with the
    /// RSASSA-PSS OID and SHA-384/MGF1-SHA-384/48-byte-salt parameters. The key id is
    /// the SHA-256 of exactly these bytes, so the encoding is also re-derived and must
    /// match byte for byte (no alternative encodings of the same key).
    pub fn from_spki(spki: &[u8]) -> Result<Self> {
        let pk = Pk::from_spki(spki).map_err(|_| Error::InvalidKey("RSA-PSS SPKI"))?;
        if pk.components().n().len() != RSA_MODULUS_LEN {
            return Err(Error::InvalidKey("RSA modulus must be 2048 bits"));
        }
        let key = Self::from_pk(pk)?;
        if key.spki != spki {
            return Err(Error::InvalidKey(
                "RSA-PSS SPKI is not in the RFC 9578 encoding",
            ));
        }
        Ok(key)
    }

    /// The SPKI encoding.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }
    /// `token_key_id` = SHA-256(SPKI).
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.key_id
    }

    /// Verifier side, RFC 9578 §6.4.
    pub fn verify(&self, token: &Token) -> Result<()> {
        self.pk
            .verify(
                &Signature(token.authenticator().to_vec()),
                None,
                token.authenticator_input(),
            )
            .map_err(|_| Error::BadAuthenticator)
    }

    /// Client side, RFC 9578 §6.1: pick a nonce and blind the token input.
    pub fn begin<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        challenge_digest: [u8; DIGEST_LEN],
        rng: &mut R,
    ) -> Result<(TokenRequest, RsaPending)> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.begin_with_nonce(nonce, challenge_digest, rng)
    }

    /// As [`Self::begin`] with a caller-chosen nonce; the RNG then supplies the PSS salt
    /// and the blind. Used by the RFC test vectors.
    #[doc(hidden)]
    pub fn begin_with_nonce<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        nonce: [u8; NONCE_LEN],
        challenge_digest: [u8; DIGEST_LEN],
        rng: &mut R,
    ) -> Result<(TokenRequest, RsaPending)> {
        let input = Token::new(
            TokenType::BlindRsa,
            nonce,
            challenge_digest,
            self.key_id,
            Vec::new(),
        )
        .authenticator_input();
        let blinding = self
            .pk
            .blind(&mut Bridge(rng), &input)
            .map_err(|_| Error::Crypto("RSA blind"))?;
        let request = TokenRequest::new(
            TokenType::BlindRsa,
            self.key_id[KEY_ID_LEN - 1],
            blinding.blind_message.0.clone(),
        );
        Ok((
            request,
            RsaPending {
                blinding,
                nonce,
                challenge_digest,
                public: self.clone(),
            },
        ))
    }
}

/// Client state between a type 0x0002 request and its response; consumed by
/// [`RsaPending::finalize`].
pub struct RsaPending {
    blinding: BlindingResult,
    nonce: [u8; NONCE_LEN],
    challenge_digest: [u8; DIGEST_LEN],
    public: RsaPublicKey,
}

impl RsaPending {
    /// RFC 9578 §6.3: unblind and verify the signature, assemble the token.
    pub fn finalize(self, response: &TokenResponse) -> Result<Token> {
        let bytes = response.encode();
        if bytes.len() != RSA_MODULUS_LEN {
            return Err(Error::MalformedTokenResponse(
                "wrong length for the token type",
            ));
        }
        let template = Token::new(
            TokenType::BlindRsa,
            self.nonce,
            self.challenge_digest,
            self.public.key_id,
            Vec::new(),
        );
        let input = template.authenticator_input();
        let sig = self
            .public
            .pk
            .finalize(&BlindSignature(bytes.to_vec()), &self.blinding, &input)
            .map_err(|_| Error::MalformedTokenResponse("blind signature does not verify"))?;
        Ok(Token::new(
            TokenType::BlindRsa,
            self.nonce,
            self.challenge_digest,
            self.public.key_id,
            sig.0,
        ))
    }
}
