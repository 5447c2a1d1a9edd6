//! The client half of issuance, driven by the SDK (which does the HTTP): pick a key,
//! build a `TokenRequest`, and turn the `TokenResponse` into a `Token`.

use crate::rsa_token::{RsaPending, RsaPublicKey};
use crate::voprf_token::{VoprfPending, VoprfPublicKey};
use crate::wire::{Token, TokenRequest, TokenResponse, TokenType};
use crate::{DIGEST_LEN, KEY_ID_LEN, Result};

/// An issuer public key of either type, as listed in the issuer directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerPublicKey {
    /// Type 0x0001.
    Voprf(VoprfPublicKey),
    /// Type 0x0002.
    BlindRsa(RsaPublicKey),
}

impl IssuerPublicKey {
    /// Decode a directory `token-key` value (already base64url-decoded) for `token_type`.
    pub fn decode(token_type: TokenType, bytes: &[u8]) -> Result<Self> {
        Ok(match token_type {
            TokenType::Voprf => IssuerPublicKey::Voprf(VoprfPublicKey::from_bytes(bytes)?),
            TokenType::BlindRsa => IssuerPublicKey::BlindRsa(RsaPublicKey::from_spki(bytes)?),
        })
    }

    /// The encoding used in the directory (RFC 9578 §5.5, §6.5).
    pub fn encode(&self) -> &[u8] {
        match self {
            IssuerPublicKey::Voprf(k) => k.as_bytes(),
            IssuerPublicKey::BlindRsa(k) => k.spki(),
        }
    }

    /// The token type of this key.
    pub fn token_type(&self) -> TokenType {
        match self {
            IssuerPublicKey::Voprf(_) => TokenType::Voprf,
            IssuerPublicKey::BlindRsa(_) => TokenType::BlindRsa,
        }
    }

    /// The token key id.
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        match self {
            IssuerPublicKey::Voprf(k) => k.key_id(),
            IssuerPublicKey::BlindRsa(k) => k.key_id(),
        }
    }

    /// Start issuance of one token for the challenge with this digest.
    pub fn begin<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        challenge_digest: [u8; DIGEST_LEN],
        rng: &mut R,
    ) -> Result<(TokenRequest, PendingToken)> {
        Ok(match self {
            IssuerPublicKey::Voprf(k) => {
                let (req, p) = k.begin(challenge_digest, rng)?;
                (req, PendingToken::Voprf(p))
            }
            IssuerPublicKey::BlindRsa(k) => {
                let (req, p) = k.begin(challenge_digest, rng)?;
                (req, PendingToken::BlindRsa(p))
            }
        })
    }
}

/// Client state for one outstanding token request; single use.
pub enum PendingToken {
    /// Type 0x0001.
    Voprf(VoprfPending),
    /// Type 0x0002.
    BlindRsa(RsaPending),
}

impl std::fmt::Debug for PendingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PendingToken::Voprf(_) => "PendingToken::Voprf(..)",
            PendingToken::BlindRsa(_) => "PendingToken::BlindRsa(..)",
        })
    }
}

impl PendingToken {
    /// The token type requested.
    pub fn token_type(&self) -> TokenType {
        match self {
            PendingToken::Voprf(_) => TokenType::Voprf,
            PendingToken::BlindRsa(_) => TokenType::BlindRsa,
        }
    }

    /// Turn the issuer's response body into a token (verifying proof or signature).
    pub fn finalize(self, response_body: &[u8]) -> Result<Token> {
        let response = TokenResponse::decode(self.token_type(), response_body)?;
        match self {
            PendingToken::Voprf(p) => p.finalize(&response),
            PendingToken::BlindRsa(p) => p.finalize(&response),
        }
    }
}
