//! Every Privacy Pass parser that faces the network: the gateway's `Authorization`
//! header and token decoder, the issuer's token-request decoder, challenge decoding, and
//! the client's directory and response handling. Never panics; whatever decodes
//! re-encodes to the same bytes.
#![no_main]

use confide_tokens::{
    IssuerDirectory, Token, TokenChallenge, TokenRequest, TokenResponse, TokenType,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Token::from_authorization(text);
    }
    if let Ok(t) = Token::decode(data) {
        assert_eq!(t.encode(), data);
    }
    if let Ok(r) = TokenRequest::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(c) = TokenChallenge::decode(data) {
        assert_eq!(c.encode(), data);
    }
    for ty in [TokenType::Voprf, TokenType::BlindRsa] {
        let _ = TokenResponse::decode(ty, data);
    }
    if let Ok(dir) = IssuerDirectory::from_json(data) {
        for ty in [TokenType::Voprf, TokenType::BlindRsa] {
            let _ = dir.newest_key(ty, u64::MAX);
        }
    }
});
