//! Property tests for the network-facing decoders: no input panics, whatever decodes
//! re-encodes to the same bytes, and every strict prefix of a valid token is refused as
//! truncated (the fuzz target `privacy_pass` explores the same space further).
#![allow(clippy::unwrap_used)]

use confide_tokens::{Error, Token, TokenChallenge, TokenRequest, TokenType};
use proptest::prelude::*;

proptest! {
    #[test]
    fn decoders_never_panic_and_round_trip(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(t) = Token::decode(&data) {
            prop_assert_eq!(t.encode(), data.clone());
        }
        if let Ok(r) = TokenRequest::decode(&data) {
            prop_assert_eq!(r.encode(), data.clone());
        }
        if let Ok(c) = TokenChallenge::decode(&data) {
            prop_assert_eq!(c.encode(), data.clone());
        }
        let _ = Token::from_authorization(&String::from_utf8_lossy(&data));
    }

    #[test]
    fn every_truncation_of_a_token_is_refused(
        ty in prop_oneof![Just(TokenType::Voprf), Just(TokenType::BlindRsa)],
        body in proptest::collection::vec(any::<u8>(), 354),
        cut in 0usize..354,
    ) {
        let mut bytes = ty.code().to_be_bytes().to_vec();
        bytes.extend_from_slice(&body[..ty.token_len() - 2]);
        prop_assert!(Token::decode(&bytes).is_ok());
        let cut = cut % bytes.len();
        let err = Token::decode(&bytes[..cut]).unwrap_err();
        let is_truncated = matches!(err, Error::TruncatedToken { .. });
        prop_assert!(is_truncated);
        let mut long = bytes.clone();
        long.push(body[0]);
        let is_oversized = matches!(Token::decode(&long).unwrap_err(), Error::OversizedToken { .. });
        prop_assert!(is_oversized);
    }
}
