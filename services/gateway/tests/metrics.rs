//! The gateway's own counters, where the events happen: each redemption outcome (with
//! the issuer key only once a token matched a configured key) and decapsulation
//! failures by kind; and nothing of the request (token, key id bytes sent by a client,
//! body) in the exposition.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use confide_gateway::inner::{InnerState, TokenGate, require_token};
use confide_gateway::{Gateway, GatewayConfig, GatewayMetrics, KeyRing, KeySchedule};
use confide_svc::metrics::MetricsRegistry;
use confide_tokens::keys::{ChallengeConfig, RotationPolicy};
use confide_tokens::{IssuerDirectory, IssuerKeySet, MemorySpentStore, Redeemer, TokenType};
use http::{HeaderMap, HeaderValue};
use rand_core::OsRng;
use tower::ServiceExt;
use zeroize::Zeroizing;

const CANARY: &str = "CANARY-3c9d-gateway-metrics";

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(
        KeySchedule::new(Zeroizing::new([7u8; 32]), Some(3600)).unwrap(),
    ))
}

fn auth(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_str(value).unwrap());
    h
}

#[tokio::test]
async fn redemptions_are_counted_per_outcome_and_configured_key() {
    let now = confide_gateway::unix_now();
    let challenge = ChallengeConfig {
        issuer_name: "issuer.confide.test".into(),
        origin_info: "gateway.confide.test".into(),
    };
    let policy = RotationPolicy {
        issue_secs: 3600,
        overlap_secs: 1800,
    };
    let set = IssuerKeySet::generate(challenge.clone(), policy, now, &mut OsRng).unwrap();
    let dir = IssuerDirectory::from_json(
        &serde_json::to_vec(&set.directory("https://i/req", now)).unwrap(),
    )
    .unwrap();
    let key = dir.newest_key(TokenType::Voprf, now).unwrap();
    let (req, pending) = key
        .begin(challenge.digest(TokenType::Voprf).unwrap(), &mut OsRng)
        .unwrap();
    let resp = set
        .issue(
            &confide_tokens::TokenRequest::decode(&req.encode()).unwrap(),
            now,
            &mut OsRng,
        )
        .unwrap();
    let token = pending.finalize(resp.encode()).unwrap();
    let tag = hex::encode(&token.token_key_id()[..4]);

    let mut reg = MetricsRegistry::new();
    let metrics = GatewayMetrics::new(&mut reg);
    let redeemer = Redeemer::new(
        set.redemption_keys().unwrap(),
        Arc::new(MemorySpentStore::new()),
    );
    let state = InnerState {
        ring: ring(),
        tokens: Some(Arc::new(redeemer) as Arc<dyn TokenGate>),
        metrics: metrics.clone(),
    };
    let good = auth(&token.to_authorization());
    assert!(require_token(&state, &good).await.is_ok());
    assert!(require_token(&state, &good).await.is_err(), "double spend");
    assert!(
        require_token(&state, &auth(&format!("PrivateToken token={CANARY}")))
            .await
            .is_err()
    );
    assert!(require_token(&state, &HeaderMap::new()).await.is_err());
    let unconfigured = InnerState {
        ring: ring(),
        tokens: None,
        metrics,
    };
    assert!(require_token(&unconfigured, &good).await.is_err());

    let text = reg.finish().encode().unwrap();
    for line in [
        format!("confide_gateway_token_redemptions_total{{key=\"{tag}\",outcome=\"redeemed\"}} 1"),
        format!(
            "confide_gateway_token_redemptions_total{{key=\"{tag}\",outcome=\"double_spend\"}} 1"
        ),
        "confide_gateway_token_redemptions_total{key=\"none\",outcome=\"invalid\"} 1".into(),
        "confide_gateway_token_redemptions_total{key=\"none\",outcome=\"missing\"} 1".into(),
        "confide_gateway_token_redemptions_total{key=\"none\",outcome=\"not_configured\"} 1".into(),
    ] {
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    assert!(!text.contains(CANARY), "{text}");
    let token_text = token.to_authorization();
    let token_b64 = token_text.split('=').nth(1).unwrap();
    assert!(!text.contains(token_b64), "{text}");
}

#[tokio::test]
async fn decapsulation_failures_are_counted_by_kind_only() {
    let mut reg = MetricsRegistry::new();
    let metrics = GatewayMetrics::new(&mut reg);
    let gw = Gateway::new(
        ring(),
        GatewayConfig {
            metrics,
            ..GatewayConfig::default()
        },
        None,
    )
    .router();
    let post = |body: Vec<u8>, media: &str| {
        let mut r = http::Request::post("/gateway")
            .header("content-type", media)
            .body(Body::from(body))
            .unwrap();
        r.extensions_mut()
            .insert(ConnectInfo("192.0.2.7:4000".parse::<SocketAddr>().unwrap()));
        r
    };
    // An unknown key id (the ring's ids are derived from the epoch; try two so one
    // is certainly not current), a truncated header, a wrong media type.
    let mut unknown = vec![0u8, 0, 0x20, 0, 1, 0, 1];
    unknown.extend_from_slice(CANARY.as_bytes());
    let mut other = unknown.clone();
    other[0] = 0xff;
    for (body, media) in [
        (unknown, "message/ohttp-req"),
        (other, "message/ohttp-req"),
        (CANARY.as_bytes()[..3].to_vec(), "message/ohttp-req"),
        (CANARY.as_bytes().to_vec(), "text/plain"),
    ] {
        let r = gw.clone().oneshot(post(body, media)).await.unwrap();
        assert!(r.status().is_client_error());
    }
    let text = reg.finish().encode().unwrap();
    assert!(!text.contains(CANARY), "{text}");
    assert!(!text.contains("192.0.2.7"), "{text}");
    let count = |kind: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "confide_gateway_decapsulation_failures_total{{kind=\"{kind}\"}} "
                ))
            })
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(count("unknown_key_id") >= 1, "{text}");
    assert_eq!(
        count("unknown_key_id")
            + count("unsupported_suite")
            + count("decryption_failed")
            + count("malformed"),
        3,
        "{text}"
    );
    assert!(
        text.contains(
            "confide_gateway_requests_refused_total{reason=\"unsupported_media_type\"} 1"
        ),
        "{text}"
    );
}
