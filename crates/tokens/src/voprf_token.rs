//! Token type 0x0001: VOPRF(P-384, SHA-384), RFC 9578 §5, on RFC 9497 as implemented by
//! the `voprf` crate (see docs/adr/0300-privacy-pass-crypto-crates.md).
//!
//! Privately verifiable: verifying a token means re-evaluating the PRF on the
//! `token_authenticator_input` with the issuer's secret key (RFC 9578 §5.4), so the
//! gateway holds the same key as the issuer.

use p384::NistP384;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use voprf::{BlindedElement, EvaluationElement, Group, Proof, VoprfClient, VoprfServer};
use zeroize::Zeroizing;

use crate::wire::{
    Token, TokenRequest, TokenResponse, TokenType, VOPRF_ELEMENT_LEN, VOPRF_SCALAR_LEN,
};
use crate::{DIGEST_LEN, Error, KEY_ID_LEN, NONCE_LEN, Result};

/// The key-derivation `info` string RFC 9578 §5.5 gives for issuer keys.
const KEYGEN_INFO: &[u8] = b"PrivacyPass";

/// An issuer (or gateway) secret key for token type 0x0001.
pub struct VoprfSecretKey {
    server: VoprfServer<NistP384>,
    public: [u8; VOPRF_ELEMENT_LEN],
    key_id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for VoprfSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoprfSecretKey")
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl VoprfSecretKey {
    /// A fresh key: DeriveKeyPair(seed, "PrivacyPass") over a random 32-byte seed
    /// (RFC 9578 §5.5).
    pub fn generate<R: rand_core::RngCore + rand_core::CryptoRng>(rng: &mut R) -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        let server = VoprfServer::<NistP384>::new_from_seed(seed.as_ref(), KEYGEN_INFO)
            .map_err(|_| Error::Crypto("VOPRF key derivation"))?;
        Ok(Self::from_server(server))
    }

    /// The key from its serialized scalar (Ns = 48 bytes, big-endian).
    pub fn from_bytes(secret: &[u8]) -> Result<Self> {
        if secret.len() != VOPRF_SCALAR_LEN {
            return Err(Error::InvalidKey("VOPRF secret key must be 48 bytes"));
        }
        let server = VoprfServer::<NistP384>::new_with_key(secret)
            .map_err(|_| Error::InvalidKey("VOPRF secret key is not a valid P-384 scalar"))?;
        Ok(Self::from_server(server))
    }

    fn from_server(server: VoprfServer<NistP384>) -> Self {
        let mut public = [0u8; VOPRF_ELEMENT_LEN];
        public.copy_from_slice(&NistP384::serialize_elem(server.get_public_key()));
        let key_id = Sha256::digest(public).into();
        Self {
            server,
            public,
            key_id,
        }
    }

    /// The serialized scalar, for the issuer's key file.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let both = self.server.serialize();
        Zeroizing::new(both[..VOPRF_SCALAR_LEN].to_vec())
    }

    /// The public key, SerializeElement(pkI) (49 bytes, compressed SEC1).
    pub fn public_key(&self) -> VoprfPublicKey {
        VoprfPublicKey {
            bytes: self.public,
            key_id: self.key_id,
        }
    }

    /// `token_key_id` = SHA-256(SerializeElement(pkI)) (RFC 9578 §5).
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.key_id
    }

    /// Issuer side, RFC 9578 §5.2: BlindEvaluate the request's blinded element and
    /// answer `evaluate_msg || evaluate_proof`.
    pub fn issue<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        request: &TokenRequest,
        rng: &mut R,
    ) -> Result<TokenResponse> {
        if request.token_type() != TokenType::Voprf {
            return Err(Error::WrongTokenType(request.token_type().code()));
        }
        if request.truncated_token_key_id() != self.key_id[KEY_ID_LEN - 1] {
            return Err(Error::MalformedTokenRequest(
                "truncated_token_key_id does not name this key",
            ));
        }
        let blinded = BlindedElement::<NistP384>::deserialize(request.blinded_msg())
            .map_err(|_| Error::MalformedTokenRequest("blinded_msg is not a valid P-384 point"))?;
        let result = self.server.blind_evaluate(rng, &blinded);
        let mut out = result.message.serialize().to_vec();
        out.extend_from_slice(&result.proof.serialize());
        Ok(TokenResponse::new(out))
    }

    /// Verifier side, RFC 9578 §5.4: recompute the PRF over the authenticator input and
    /// compare in constant time. The caller has already matched type and key id.
    pub fn verify(&self, token: &Token) -> Result<()> {
        let output = self
            .server
            .evaluate(&token.authenticator_input())
            .map_err(|_| Error::BadAuthenticator)?;
        if bool::from(output.as_slice().ct_eq(token.authenticator())) {
            Ok(())
        } else {
            Err(Error::BadAuthenticator)
        }
    }
}

/// A type 0x0001 issuer public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoprfPublicKey {
    bytes: [u8; VOPRF_ELEMENT_LEN],
    key_id: [u8; KEY_ID_LEN],
}

impl VoprfPublicKey {
    /// Parse SerializeElement(pkI): a compressed P-384 point that is not the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; VOPRF_ELEMENT_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidKey("VOPRF public key must be 49 bytes"))?;
        NistP384::deserialize_elem(&arr)
            .map_err(|_| Error::InvalidKey("VOPRF public key is not a valid P-384 point"))?;
        Ok(Self {
            bytes: arr,
            key_id: Sha256::digest(arr).into(),
        })
    }
    /// The encoding (49 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// `token_key_id`.
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.key_id
    }

    /// Client side, RFC 9578 §5.1: pick a nonce, blind the token input.
    pub fn begin<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        challenge_digest: [u8; DIGEST_LEN],
        rng: &mut R,
    ) -> Result<(TokenRequest, VoprfPending)> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let input = Token::new(
            TokenType::Voprf,
            nonce,
            challenge_digest,
            self.key_id,
            Vec::new(),
        )
        .authenticator_input();
        let blind = VoprfClient::<NistP384>::blind(&input, rng)
            .map_err(|_| Error::Crypto("VOPRF blind"))?;
        self.pending(nonce, challenge_digest, blind)
    }

    /// As [`Self::begin`] with a caller-chosen nonce and blind, for the RFC test vectors.
    #[doc(hidden)]
    pub fn begin_deterministic(
        &self,
        nonce: [u8; NONCE_LEN],
        challenge_digest: [u8; DIGEST_LEN],
        blind_result: voprf::VoprfClientBlindResult<NistP384>,
    ) -> Result<(TokenRequest, VoprfPending)> {
        self.pending(nonce, challenge_digest, blind_result)
    }

    fn pending(
        &self,
        nonce: [u8; NONCE_LEN],
        challenge_digest: [u8; DIGEST_LEN],
        blind: voprf::VoprfClientBlindResult<NistP384>,
    ) -> Result<(TokenRequest, VoprfPending)> {
        let request = TokenRequest::new(
            TokenType::Voprf,
            self.key_id[KEY_ID_LEN - 1],
            blind.message.serialize().to_vec(),
        );
        Ok((
            request,
            VoprfPending {
                client: blind.state,
                nonce,
                challenge_digest,
                public: self.clone(),
            },
        ))
    }
}

/// Client state between sending a type 0x0001 request and receiving the response.
/// Consumed by [`VoprfPending::finalize`], so a blind is used once.
pub struct VoprfPending {
    client: VoprfClient<NistP384>,
    nonce: [u8; NONCE_LEN],
    challenge_digest: [u8; DIGEST_LEN],
    public: VoprfPublicKey,
}

impl VoprfPending {
    /// RFC 9578 §5.3: verify the DLEQ proof, unblind, and assemble the token.
    pub fn finalize(self, response: &TokenResponse) -> Result<Token> {
        let bytes = response.encode();
        if bytes.len() != TokenType::Voprf.response_len() {
            return Err(Error::MalformedTokenResponse(
                "wrong length for the token type",
            ));
        }
        let (eval, proof) = bytes.split_at(VOPRF_ELEMENT_LEN);
        let eval = EvaluationElement::<NistP384>::deserialize(eval)
            .map_err(|_| Error::MalformedTokenResponse("evaluate_msg is not a valid point"))?;
        let proof = Proof::<NistP384>::deserialize(proof)
            .map_err(|_| Error::MalformedTokenResponse("evaluate_proof is malformed"))?;
        let pk = NistP384::deserialize_elem(&self.public.bytes)
            .map_err(|_| Error::InvalidKey("VOPRF public key is not a valid P-384 point"))?;
        let template = Token::new(
            TokenType::Voprf,
            self.nonce,
            self.challenge_digest,
            self.public.key_id,
            Vec::new(),
        );
        let input = template.authenticator_input();
        let output = self
            .client
            .finalize(&input, &eval, &proof, pk)
            .map_err(|_| Error::MalformedTokenResponse("VOPRF proof does not verify"))?;
        Ok(Token::new(
            TokenType::Voprf,
            self.nonce,
            self.challenge_digest,
            self.public.key_id,
            output.to_vec(),
        ))
    }
}
