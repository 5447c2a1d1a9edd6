//! The gateway's HTTP behaviour, request by request, through its router: every
//! acceptance negative (unknown key, wrong algorithms, truncation, tampering, oversize,
//! replay, media type, non-relay peer, stale date) and both response modes.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::post;
use confide_gateway::inner::{GateFuture, TokenGate, TokenRejection};
use confide_gateway::{Gateway, GatewayConfig, KeyRing, KeySchedule};
use confide_ohttp::bhttp::{Request, Response, ResponseStream, StreamEvent};
use confide_ohttp::{ClientRequest, KeyConfig};
use http::StatusCode;
use http_body_util::BodyExt;
use rand_core::OsRng;
use tower::ServiceExt;
use zeroize::Zeroizing;

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(
        KeySchedule::new(Zeroizing::new([7u8; 32]), Some(3600)).unwrap(),
    ))
}

/// Accepts the token "good" once; anything else is invalid.
struct OneGoodToken(std::sync::Mutex<bool>);

impl TokenGate for OneGoodToken {
    fn redeem<'a>(&'a self, authorization: &'a str, _now: u64) -> GateFuture<'a> {
        let r = if authorization != "PrivateToken token=good" {
            Err(TokenRejection::Invalid)
        } else if std::mem::replace(&mut *self.0.lock().unwrap(), true) {
            Err(TokenRejection::Replayed)
        } else {
            Ok(())
        };
        Box::pin(async move { r })
    }
}

fn router(config: GatewayConfig) -> axum::Router {
    let tokens: Arc<dyn TokenGate> = Arc::new(OneGoodToken(std::sync::Mutex::new(false)));
    // A streaming inner resource, standing in for the node's session routes.
    let streaming = axum::Router::new()
        .route(
            "/v1/test-stream",
            post(|| async {
                let parts = futures::stream::iter(
                    ["one ", "two ", "three"].map(|s| Ok::<_, std::io::Error>(s.to_owned())),
                );
                Body::from_stream(parts)
            }),
        )
        // A node whose stream breaks after the first piece.
        .route(
            "/v1/test-broken",
            post(|| async {
                let parts = futures::stream::iter([
                    Ok("one ".to_owned()),
                    Err(std::io::Error::other("node went away")),
                ]);
                Body::from_stream(parts)
            }),
        );
    Gateway::new(ring(), config, Some(tokens))
        .with_inner_routes(streaming)
        .router()
}

async fn key_config(r: &axum::Router) -> KeyConfig {
    let resp = r
        .clone()
        .oneshot(
            http::Request::get("/ohttp-keys")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/ohttp-keys");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let list = KeyConfig::decode_list(&body).unwrap();
    assert_eq!(list.len(), 2, "current and previous key during rotation");
    list[0].clone()
}

fn post_gateway(media: &str, body: Vec<u8>, peer: &str) -> http::Request<Body> {
    post_to("/gateway", media, body, peer)
}

fn post_to(path: &str, media: &str, body: Vec<u8>, peer: &str) -> http::Request<Body> {
    let mut req = http::Request::post(path)
        .header("content-type", media)
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    req
}

async fn problem_type(resp: axum::response::Response) -> (StatusCode, String) {
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (status, v["type"].as_str().unwrap().to_owned())
}

async fn exchange(r: &axum::Router, cfg: &KeyConfig, req: &Request) -> Response {
    let (enc, pending) = ClientRequest::new(cfg)
        .unwrap()
        .encapsulate(&req.encode(), &mut OsRng)
        .unwrap();
    let resp = r
        .clone()
        .oneshot(post_gateway("message/ohttp-req", enc, "10.0.0.1:1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "message/ohttp-res");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Response::decode(&pending.decapsulate(&body).unwrap()).unwrap()
}

#[tokio::test]
async fn health_through_ohttp() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    let resp = exchange(
        &r,
        &cfg,
        &Request::new("GET", "https", "gateway", "/v1/health"),
    )
    .await;
    assert_eq!(resp.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&resp.content).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["ohttp_key_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sessions_need_a_valid_unspent_token_then_report_no_node() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    let inner_problem = |resp: Response| {
        let v: serde_json::Value = serde_json::from_slice(&resp.content).unwrap();
        (resp.status, v["type"].as_str().unwrap().to_owned())
    };
    let mut req = Request::new("POST", "https", "gateway", "/v1/sessions");
    let got = inner_problem(exchange(&r, &cfg, &req).await);
    assert_eq!(got, (401, "urn:confide:problem:token-required".into()));
    req.headers
        .append("authorization", b"PrivateToken token=forged".to_vec());
    let got = inner_problem(exchange(&r, &cfg, &req).await);
    assert_eq!(got, (401, "urn:confide:problem:token-invalid".into()));
    let mut good = Request::new("POST", "https", "gateway", "/v1/sessions");
    good.headers
        .append("authorization", b"PrivateToken token=good".to_vec());
    let got = inner_problem(exchange(&r, &cfg, &good).await);
    assert_eq!(got, (503, "urn:confide:problem:no-node-available".into()));
    let got = inner_problem(exchange(&r, &cfg, &good).await);
    assert_eq!(got, (401, "urn:confide:problem:token-replayed".into()));
}

#[tokio::test]
async fn unknown_key_id_gets_the_ohttp_key_problem() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    let (mut enc, _) = ClientRequest::new(&cfg)
        .unwrap()
        .encapsulate(b"x", &mut OsRng)
        .unwrap();
    enc[0] = enc[0].wrapping_add(100);
    let resp = r
        .clone()
        .oneshot(post_gateway("message/ohttp-req", enc, "10.0.0.1:1"))
        .await
        .unwrap();
    let (status, t) = problem_type(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        t,
        "https://iana.org/assignments/http-problem-types#ohttp-key"
    );
}

#[tokio::test]
async fn wrong_algorithms_truncation_and_tampering_are_refused() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    let (enc, _) = ClientRequest::new(&cfg)
        .unwrap()
        .encapsulate(
            &Request::new("GET", "https", "g", "/v1/health").encode(),
            &mut OsRng,
        )
        .unwrap();
    for (offset, value, expect) in [
        (
            1,
            0x0011u16,
            "https://iana.org/assignments/http-problem-types#ohttp-key",
        ), // KEM P-256: not offered
        (
            3,
            0x0003,
            "https://iana.org/assignments/http-problem-types#ohttp-key",
        ), // KDF not offered
        (
            5,
            0x00ff,
            "https://iana.org/assignments/http-problem-types#ohttp-key",
        ), // unknown AEAD
    ] {
        let mut m = enc.clone();
        m[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
        let resp = r
            .clone()
            .oneshot(post_gateway("message/ohttp-req", m, "10.0.0.1:1"))
            .await
            .unwrap();
        assert_eq!(
            problem_type(resp).await,
            (StatusCode::BAD_REQUEST, expect.to_owned())
        );
    }
    for cut in [0, 1, 6, 7, 20, 39, enc.len() - 1] {
        let resp = r
            .clone()
            .oneshot(post_gateway(
                "message/ohttp-req",
                enc[..cut].to_vec(),
                "10.0.0.1:1",
            ))
            .await
            .unwrap();
        let (status, t) = problem_type(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "cut at {cut}");
        assert!(
            t.ends_with("malformed-encapsulation") || t.ends_with("decryption-failed"),
            "cut at {cut}: {t}"
        );
    }
    let mut tampered = enc.clone();
    let last = tampered.len() - 5;
    tampered[last] ^= 1;
    let resp = r
        .clone()
        .oneshot(post_gateway("message/ohttp-req", tampered, "10.0.0.1:1"))
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (
            StatusCode::BAD_REQUEST,
            "urn:confide:problem:decryption-failed".into()
        )
    );
}

/// A fresh encapsulated health check, as a device would send it.
fn health_encapsulation(cfg: &KeyConfig) -> Vec<u8> {
    ClientRequest::new(cfg)
        .unwrap()
        .encapsulate(
            &Request::new("GET", "https", "g", "/v1/health").encode(),
            &mut OsRng,
        )
        .unwrap()
        .0
}

async fn post_encapsulated(r: &axum::Router, enc: Vec<u8>) -> axum::response::Response {
    r.clone()
        .oneshot(post_gateway("message/ohttp-req", enc, "10.0.0.1:1"))
        .await
        .unwrap()
}

/// `enc` is served by `first`, then the same bytes sent to `second` (the same gateway,
/// or another replica) are refused as a replay.
async fn assert_replay_refused(first: &axum::Router, second: &axum::Router, enc: Vec<u8>) {
    let served = post_encapsulated(first, enc.clone()).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(
        problem_type(post_encapsulated(second, enc).await).await,
        (
            StatusCode::BAD_REQUEST,
            "urn:confide:problem:replayed-request".into()
        )
    );
}

#[tokio::test]
async fn replayed_encapsulation_is_refused() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    assert_replay_refused(&r, &r, health_encapsulation(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_refuse_a_replay_seen_by_the_other() {
    let server = confide_token_store::testing::RedisServer::start().unwrap();
    let shared = || async {
        confide_token_store::RedisShared::connect(&server.url(), "confide:ohttp-enc:")
            .await
            .unwrap()
    };
    // Two replicas: the same key seed (as `--ohttp-key` shares it), each its own
    // process state and its own Redis connection.
    let a = router(GatewayConfig {
        shared_replay: Some(shared().await),
        ..GatewayConfig::default()
    });
    let b = router(GatewayConfig {
        shared_replay: Some(shared().await),
        ..GatewayConfig::default()
    });
    let cfg = key_config(&a).await;
    // Captured on its way to A, replayed to B: refused.
    assert_replay_refused(&a, &b, health_encapsulation(&cfg)).await;
    // A fresh request is served by B.
    let fresh = post_encapsulated(&b, health_encapsulation(&cfg)).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    // With the shared store gone, a request is refused, never let through unchecked.
    drop(server);
    let refused = post_encapsulated(&a, health_encapsulation(&cfg)).await;
    assert_eq!(
        problem_type(refused).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:confide:problem:replay-check-unavailable".into()
        )
    );
}

#[tokio::test]
async fn stale_inner_date_gets_the_date_problem_encapsulated() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    let mut req = Request::new("GET", "https", "g", "/v1/health");
    req.headers
        .append("date", b"Sun, 06 Nov 1994 08:49:37 GMT".to_vec());
    let resp = exchange(&r, &cfg, &req).await;
    assert_eq!(resp.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&resp.content).unwrap();
    assert_eq!(
        v["type"],
        "https://iana.org/assignments/http-problem-types#date"
    );
    assert!(
        resp.headers.get("date").is_some(),
        "the gateway's Date lets the client correct its clock"
    );
}

#[tokio::test]
async fn wrong_media_type_oversize_and_non_relay_peers_are_refused() {
    let r = router(GatewayConfig {
        max_request_body: 256,
        allowed_relays: Some(vec!["10.0.0.1".parse().unwrap()]),
        ..GatewayConfig::default()
    });
    let resp = r
        .clone()
        .oneshot(post_gateway("application/json", vec![1; 10], "10.0.0.1:1"))
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "urn:confide:problem:unsupported-media-type".into()
        )
    );
    let resp = r
        .clone()
        .oneshot(post_gateway(
            "message/ohttp-req",
            vec![1; 257],
            "10.0.0.1:1",
        ))
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:confide:problem:request-too-large".into()
        )
    );
    let resp = r
        .clone()
        .oneshot(post_gateway("message/ohttp-req", vec![1; 10], "10.9.9.9:1"))
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (
            StatusCode::FORBIDDEN,
            "urn:confide:problem:relay-required".into()
        )
    );
}

#[tokio::test]
async fn chunked_response_streams_the_inner_body() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    let req = Request::new("POST", "https", "g", "/v1/test-stream");
    let (mut body, sealer) = ClientRequest::new(&cfg)
        .unwrap()
        .encapsulate_chunked(&mut OsRng)
        .unwrap();
    let (last, pending) = sealer.finish(&req.encode()).unwrap();
    body.extend(last);
    let resp = r
        .clone()
        .oneshot(post_gateway(
            "message/ohttp-chunked-req",
            body,
            "10.0.0.1:1",
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "message/ohttp-chunked-res");
    let mut opener = pending.decoder(1 << 16);
    let mut parser = ResponseStream::new(1 << 16);
    let mut events = Vec::new();
    let mut body = resp.into_body();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        frames += 1;
        for plain in opener.push(&data).unwrap() {
            events.extend(parser.push(&plain).unwrap());
        }
    }
    events.extend(parser.push(&opener.finish().unwrap()).unwrap());
    events.extend(parser.finish().unwrap());
    assert!(
        frames >= 4,
        "nonce, head, data and final chunk arrive as separate frames"
    );
    assert!(matches!(events[0], StreamEvent::Head { status: 200, .. }));
    let text: Vec<u8> = events
        .iter()
        .filter_map(|e| {
            if let StreamEvent::Data(d) = e {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    assert_eq!(text, b"one two three");
    assert!(matches!(events.last(), Some(StreamEvent::End(_))));
}

async fn get_bytes(r: &axum::Router, path: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = r
        .clone()
        .oneshot(http::Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ctype, body)
}

/// A plain RFC 9458 request for `req`, POSTed to the RFC 9540 resource.
async fn post_well_known(
    r: &axum::Router,
    cfg: &KeyConfig,
    req: &Request,
) -> (axum::response::Response, confide_ohttp::ClientResponse) {
    let (enc, pending) = ClientRequest::new(cfg)
        .unwrap()
        .encapsulate(&req.encode(), &mut OsRng)
        .unwrap();
    let resp = r
        .clone()
        .oneshot(post_to(
            "/.well-known/ohttp-gateway",
            "message/ohttp-req",
            enc,
            "10.0.0.1:1",
        ))
        .await
        .unwrap();
    (resp, pending)
}

/// RFC 9540 §4-§5: a standard relay appends `/.well-known/ohttp-gateway` to the gateway's
/// origin, and key configurations are fetched from the same resource. It must behave
/// exactly like the historical paths, including the plain-message answer to a request for
/// a streamed resource (what a relay without chunked OHTTP gets).
#[tokio::test]
async fn rfc9540_well_known_resource_serves_keys_and_requests() {
    let r = router(GatewayConfig::default());
    let (status, ctype, well_known) = get_bytes(&r, "/.well-known/ohttp-gateway").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, "application/ohttp-keys");
    let (_, _, legacy) = get_bytes(&r, "/ohttp-keys").await;
    assert_eq!(well_known, legacy, "one key list, two paths");
    let cfg = KeyConfig::decode_list(&well_known).unwrap()[0].clone();

    // A plain RFC 9458 request to a resource the node would stream: one whole answer.
    let req = Request::new("POST", "https", "gateway", "/v1/test-stream");
    let (resp, pending) = post_well_known(&r, &cfg, &req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "message/ohttp-res");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let answer = Response::decode(&pending.decapsulate(&body).unwrap()).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content, b"one two three");

    // The same negatives as `/gateway`.
    let resp = r
        .clone()
        .oneshot(post_to(
            "/.well-known/ohttp-gateway",
            "text/plain",
            vec![0; 64],
            "10.0.0.1:1",
        ))
        .await
        .unwrap();
    assert_eq!(
        problem_type(resp).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "urn:confide:problem:unsupported-media-type".into()
        )
    );
    let resp = r
        .clone()
        .oneshot(
            http::Request::put("/.well-known/ohttp-gateway")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// A plain answer to a streamed resource is collected whole (ADR 0402); when the node's
/// stream breaks part-way, the problem says so rather than "too large", and no partial
/// answer is sealed.
#[tokio::test]
async fn a_broken_inner_stream_collected_for_a_plain_answer_is_named() {
    let r = router(GatewayConfig::default());
    let cfg = key_config(&r).await;
    let req = Request::new("POST", "https", "gateway", "/v1/test-broken");
    let (resp, _pending) = post_well_known(&r, &cfg, &req).await;
    assert_eq!(
        problem_type(resp).await,
        (
            StatusCode::BAD_GATEWAY,
            "urn:confide:problem:inner-response-failed".into()
        )
    );
}
