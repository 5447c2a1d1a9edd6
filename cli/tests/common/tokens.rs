//! Real Privacy Pass tokens for tests that run a gateway in process: a fresh issuer key
//! set, and type-2 (blind RSA) tokens issued by it through the real protocol.
#![allow(clippy::unwrap_used)]

use confide_tokens::keys::{ChallengeConfig, RotationPolicy};
use confide_tokens::{IssuerDirectory, IssuerKeySet, Token, TokenRequest, TokenType};

use super::common::now_secs;

/// A new issuer key set and `n` blind-RSA tokens it issued.
pub fn tokens(n: usize) -> (IssuerKeySet, Vec<Token>) {
    let now = now_secs();
    let set = IssuerKeySet::generate(
        ChallengeConfig {
            issuer_name: "issuer.confide.test".into(),
            origin_info: "gateway.confide.test".into(),
        },
        RotationPolicy {
            issue_secs: 3600,
            overlap_secs: 1800,
        },
        now,
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let dir = IssuerDirectory::from_json(
        &serde_json::to_vec(&set.directory("https://issuer.confide.test/token", now)).unwrap(),
    )
    .unwrap();
    let key = dir.newest_key(TokenType::BlindRsa, now).unwrap();
    let digest = set.challenge().digest(TokenType::BlindRsa).unwrap();
    let toks = (0..n)
        .map(|_| {
            let (req, pending) = key.begin(digest, &mut rand::rngs::OsRng).unwrap();
            let resp = set
                .issue(
                    &TokenRequest::decode(&req.encode()).unwrap(),
                    now,
                    &mut rand::rngs::OsRng,
                )
                .unwrap();
            pending.finalize(resp.encode()).unwrap()
        })
        .collect();
    (set, toks)
}
