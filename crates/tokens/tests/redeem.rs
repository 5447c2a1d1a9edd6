//! Redemption: one valid path per token type and one distinct error per way to fail.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use base64::Engine as _;
use confide_tokens::keys::{ChallengeConfig, RotationPolicy};
use confide_tokens::{
    Error, IssuerDirectory, IssuerKeySet, MemorySpentStore, Redeemer, SpentId, SpentStore,
    StoreFailure, Token, TokenType,
};
use rand::rngs::OsRng;

const T0: u64 = 1_800_000_000;
const POLICY: RotationPolicy = RotationPolicy {
    issue_secs: 3600,
    overlap_secs: 1800,
};

fn challenge() -> ChallengeConfig {
    ChallengeConfig {
        issuer_name: "issuer.confide.test".into(),
        origin_info: "gateway.confide.test".into(),
    }
}

fn keyset() -> IssuerKeySet {
    IssuerKeySet::generate(challenge(), POLICY, T0, &mut OsRng).unwrap()
}

/// Issue one token of `ty` from `set` for the challenge in `cfg`, as a client would,
/// going through the published directory.
fn issue(set: &IssuerKeySet, cfg: &ChallengeConfig, ty: TokenType, now: u64) -> Token {
    let dir = IssuerDirectory::from_json(
        &serde_json::to_vec(&set.directory("https://i/req", now)).unwrap(),
    )
    .unwrap();
    let key = dir.newest_key(ty, now).unwrap();
    let (req, pending) = key.begin(cfg.digest(ty).unwrap(), &mut OsRng).unwrap();
    let resp = set
        .issue(
            &confide_tokens::TokenRequest::decode(&req.encode()).unwrap(),
            now,
            &mut OsRng,
        )
        .unwrap();
    pending.finalize(resp.encode()).unwrap()
}

fn redeemer(set: &IssuerKeySet) -> Redeemer {
    Redeemer::new(
        set.redemption_keys().unwrap(),
        Arc::new(MemorySpentStore::new()),
    )
}

#[tokio::test]
async fn both_types_redeem_once_then_replay_is_refused() {
    let set = keyset();
    let r = redeemer(&set);
    for ty in [TokenType::Voprf, TokenType::BlindRsa] {
        let tok = issue(&set, &challenge(), ty, T0);
        let red = r.redeem(&tok.to_authorization(), T0 + 10).await.unwrap();
        assert_eq!(red.token_type(), ty);
        assert_eq!(red.key_id(), tok.token_key_id());
        assert_eq!(
            r.redeem(&tok.to_authorization(), T0 + 11)
                .await
                .unwrap_err(),
            Error::Replayed
        );
    }
}

#[tokio::test]
async fn each_failure_is_a_distinct_error() {
    let set = keyset();
    let r = redeemer(&set);
    let now = T0 + 5;
    let good = issue(&set, &challenge(), TokenType::BlindRsa, T0);
    let enc = good.encode();
    let auth = |b: &[u8]| {
        format!(
            "PrivateToken token=\"{}\"",
            base64::engine::general_purpose::URL_SAFE.encode(b)
        )
    };

    // Wrong token type.
    let mut wrong_type = enc.clone();
    wrong_type[1] = 0x05;
    assert_eq!(
        r.redeem(&auth(&wrong_type), now).await.unwrap_err(),
        Error::WrongTokenType(5)
    );
    // Truncated / oversized.
    assert!(matches!(
        r.redeem(&auth(&enc[..enc.len() - 1]), now)
            .await
            .unwrap_err(),
        Error::TruncatedToken { .. }
    ));
    let mut long = enc.clone();
    long.push(0);
    assert!(matches!(
        r.redeem(&auth(&long), now).await.unwrap_err(),
        Error::OversizedToken { .. }
    ));
    // Bad authenticator (last byte of the signature).
    let mut bad = enc.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(
        r.redeem(&auth(&bad), now).await.unwrap_err(),
        Error::BadAuthenticator
    );
    let v = issue(&set, &challenge(), TokenType::Voprf, T0).encode();
    let mut badv = v.clone();
    badv[v.len() - 3] ^= 0x80;
    assert_eq!(
        r.redeem(&auth(&badv), now).await.unwrap_err(),
        Error::BadAuthenticator
    );
    // Wrong challenge: the same issuer, a token made for another origin.
    let other = ChallengeConfig {
        origin_info: "elsewhere.example".into(),
        ..challenge()
    };
    let wc = issue(&set, &other, TokenType::Voprf, T0);
    assert_eq!(
        r.redeem(&wc.to_authorization(), now).await.unwrap_err(),
        Error::WrongChallenge
    );
    // Unknown key id: a different issuer key set with the same challenge.
    let stranger = keyset();
    let uk = issue(&stranger, &challenge(), TokenType::BlindRsa, T0);
    assert_eq!(
        r.redeem(&uk.to_authorization(), now).await.unwrap_err(),
        Error::UnknownKeyId
    );
    // Expired key and not yet valid key.
    assert_eq!(
        r.redeem(&good.to_authorization(), T0 + 3600 + 1800)
            .await
            .unwrap_err(),
        Error::KeyExpired
    );
    assert_eq!(
        r.redeem(&good.to_authorization(), T0 - 1)
            .await
            .unwrap_err(),
        Error::KeyNotYetValid
    );
    // Malformed header.
    assert!(matches!(
        r.redeem("Bearer x", now).await.unwrap_err(),
        Error::MalformedAuthorization(_)
    ));
    // None of the failures above spent the good token.
    r.redeem(&good.to_authorization(), now).await.unwrap();
}

struct BrokenStore;
impl SpentStore for BrokenStore {
    fn spend(&self, _: SpentId, _: u64, _: u64) -> confide_tokens::redeem::StoreFuture<'_> {
        Box::pin(async {
            Err(StoreFailure {
                backend: "broken",
                reason: "connection refused".into(),
            })
        })
    }
    fn backend(&self) -> &'static str {
        "broken"
    }
}

#[tokio::test]
async fn store_failure_refuses_the_token() {
    let set = keyset();
    let r = Redeemer::new(set.redemption_keys().unwrap(), Arc::new(BrokenStore));
    let tok = issue(&set, &challenge(), TokenType::Voprf, T0);
    assert!(matches!(
        r.redeem(&tok.to_authorization(), T0).await.unwrap_err(),
        Error::Store(_)
    ));
}

#[tokio::test]
async fn rotation_keeps_old_keys_redeemable_through_the_overlap() {
    let mut set = keyset();
    let old = issue(&set, &challenge(), TokenType::BlindRsa, T0);
    let old_id = *old.token_key_id();
    let t1 = T0 + 100;
    set.rotate(t1, &mut OsRng).unwrap();
    // The directory now offers only the new keys; issuance with the old key is refused.
    let dir = set.directory("https://i/req", t1);
    assert_eq!(dir.token_keys.len(), 2);
    let newest = dir.newest_key(TokenType::BlindRsa, t1).unwrap();
    assert_ne!(newest.key_id(), &old_id);
    let new = issue(&set, &challenge(), TokenType::BlindRsa, t1);
    assert_ne!(new.token_key_id(), &old_id);
    // Both redeem during the overlap; the old one expires after it.
    let r = redeemer(&set);
    r.redeem(&new.to_authorization(), t1 + 1).await.unwrap();
    r.verify(&old.to_authorization(), t1 + POLICY.overlap_secs - 1)
        .unwrap();
    assert_eq!(
        r.verify(&old.to_authorization(), t1 + POLICY.overlap_secs)
            .unwrap_err(),
        Error::KeyExpired
    );
    // rotate_if_due does nothing while keys issue, and rotates when they stop.
    assert!(!set.rotate_if_due(t1 + 10, &mut OsRng).unwrap());
    assert!(
        set.rotate_if_due(t1 + POLICY.issue_secs, &mut OsRng)
            .unwrap()
    );
}

#[test]
fn key_file_round_trips_and_rejects_garbage() {
    let set = keyset();
    let json = set.to_json().unwrap();
    let back = IssuerKeySet::from_json(&json).unwrap();
    assert_eq!(
        serde_json::to_string(&back.directory("u", T0)).unwrap(),
        serde_json::to_string(&set.directory("u", T0)).unwrap()
    );
    assert!(matches!(
        IssuerKeySet::from_json(b"{}"),
        Err(Error::KeyFile(_))
    ));
    assert!(matches!(
        confide_tokens::RedemptionKeys::from_json(b"[1]"),
        Err(Error::KeyFile(_))
    ));
}

#[test]
fn debug_output_never_carries_token_bytes() {
    let set = keyset();
    let tok = issue(&set, &challenge(), TokenType::Voprf, T0);
    let dbg = format!("{tok:?}");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok.encode());
    assert!(
        !dbg.contains(&hex::encode(tok.nonce())) && !dbg.contains(&b64[..20]),
        "{dbg}"
    );
    let key = set
        .directory("u", T0)
        .newest_key(TokenType::Voprf, T0)
        .unwrap();
    let (req, pending) = key.begin([0; 32], &mut OsRng).unwrap();
    let dbg = format!("{req:?} {pending:?}");
    assert!(!dbg.contains(&hex::encode(&req.encode()[3..10])), "{dbg}");
}

#[tokio::test]
async fn successors_are_prepublished_to_gateways_before_they_issue() {
    let mut set = keyset();
    let lead = set.prepublish_secs();
    assert!(
        !set.rotate_if_due(T0 + 10, &mut OsRng).unwrap(),
        "nothing due early on"
    );
    let t = T0 + POLICY.issue_secs - lead;
    assert!(set.rotate_if_due(t, &mut OsRng).unwrap());
    assert!(
        !set.rotate_if_due(t + 1, &mut OsRng).unwrap(),
        "successors added once"
    );
    // The gateway loads keys now, before the successors issue.
    let gateway = redeemer(&set);
    let dir = set.directory("u", t);
    assert_eq!(
        dir.token_keys.len(),
        2,
        "the directory does not show successors early"
    );
    // At the switch, clients get the successor and the earlier snapshot redeems both.
    let switch = T0 + POLICY.issue_secs;
    for ty in [TokenType::Voprf, TokenType::BlindRsa] {
        let old = issue(&set, &challenge(), ty, T0);
        let new = issue(&set, &challenge(), ty, switch);
        assert_ne!(old.token_key_id(), new.token_key_id());
        gateway
            .redeem(&new.to_authorization(), switch)
            .await
            .unwrap();
        gateway
            .redeem(&old.to_authorization(), switch)
            .await
            .unwrap();
        // Before its not_before, a successor's token is refused as not yet valid.
        let early = issue(&set, &challenge(), ty, switch);
        assert_eq!(
            gateway.verify(&early.to_authorization(), t).unwrap_err(),
            Error::KeyNotYetValid
        );
    }
    assert!(!set.rotate_if_due(switch + 1, &mut OsRng).unwrap());
}

#[test]
fn www_authenticate_names_the_fixed_challenge_and_issuing_keys() {
    use base64::engine::general_purpose::URL_SAFE;
    let set = keyset();
    let value = set.redemption_keys().unwrap().www_authenticate(T0 + 1);
    let dir = set.directory("u", T0 + 1);
    let parts: Vec<&str> = value
        .split("PrivateToken ")
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(parts.len(), 2, "{value}");
    for (part, ty) in parts.iter().zip([TokenType::Voprf, TokenType::BlindRsa]) {
        let field = |name: &str| {
            let start = part.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let len = part[start..].find('"').unwrap();
            URL_SAFE.decode(&part[start..start + len]).unwrap()
        };
        let challenge = confide_tokens::TokenChallenge::decode(&field("challenge")).unwrap();
        assert_eq!(challenge, challenge_cfg_for(ty));
        let key = confide_tokens::IssuerPublicKey::decode(ty, &field("token-key")).unwrap();
        assert_eq!(&key, &dir.newest_key(ty, T0 + 1).unwrap());
    }
    // After the keys stop issuing, no challenge names them.
    assert_eq!(
        set.redemption_keys()
            .unwrap()
            .www_authenticate(T0 + POLICY.issue_secs),
        ""
    );
}

fn challenge_cfg_for(ty: TokenType) -> confide_tokens::TokenChallenge {
    challenge().challenge(ty).unwrap()
}
