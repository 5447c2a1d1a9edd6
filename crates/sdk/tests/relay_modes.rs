//! Streamed answers through relays that do and do not forward chunked OHTTP
//! (`wire::RelayMode`), on real sockets: a real gateway with a streaming inner resource,
//! Confide's own relay (forwards `message/ohttp-chunked-req`), and a strict RFC 9458 relay
//! that, like payjoin's `ohttp-relay`, forwards only `message/ohttp-req` to the gateway's
//! RFC 9540 well-known resource and answers `415` to anything else.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use confide_gateway::{Gateway, GatewayConfig, KeyRing, KeySchedule};
use confide_ohttp::KeyConfig;
use confide_ohttp::bhttp::Request;
use confide_sdk::wire::{Answer, RelayMode, RelayState, WireClient, WireError};
use zeroize::Zeroizing;

/// What the node would stream, piece by piece.
const PIECES: [&str; 3] = ["one ", "two ", "three"];

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// A real gateway whose inner resource `/v1/stream` streams [`PIECES`].
async fn gateway() -> (SocketAddr, KeyConfig) {
    let ring = Arc::new(KeyRing::new(
        KeySchedule::new(Zeroizing::new([3u8; 32]), None).unwrap(),
    ));
    let inner = axum::Router::new().route(
        "/v1/stream",
        post(|| async {
            let parts =
                futures::stream::iter(PIECES.map(|s| Ok::<_, std::io::Error>(s.to_owned())));
            Body::from_stream(parts)
        }),
    );
    let router = Gateway::new(ring, GatewayConfig::default(), None)
        .with_inner_routes(inner)
        .router();
    let addr = serve(router).await;
    let keys = reqwest::get(format!("http://{addr}/.well-known/ohttp-gateway"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    (addr, KeyConfig::decode_list(&keys).unwrap()[0].clone())
}

/// A strict RFC 9458 relay: `message/ohttp-req` is forwarded to
/// `<gateway>/.well-known/ohttp-gateway` (RFC 9540 §4); any other media type gets `415`.
#[derive(Clone)]
struct Strict {
    gateway: SocketAddr,
    refused: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
}

async fn strict_relay(
    State(s): State<Strict>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let media = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if media != "message/ohttp-req" {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    s.forwarded.fetch_add(1, Ordering::SeqCst);
    let resp = reqwest::Client::new()
        .post(format!("http://{}/.well-known/ohttp-gateway", s.gateway))
        .header("content-type", media)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = resp.bytes().await.unwrap();
    (status, [("content-type", ctype)], body).into_response()
}

async fn start_strict(gateway: SocketAddr) -> (String, Strict) {
    let state = Strict {
        gateway,
        refused: Arc::default(),
        forwarded: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/", post(strict_relay))
        .with_state(state.clone());
    (format!("http://{}/", serve(router).await), state)
}

fn request() -> Request {
    Request::new("POST", "https", "gateway", "/v1/stream")
}

/// Every piece of an answer, and whether it arrived streamed.
async fn read(mut a: Answer) -> (bool, Vec<String>) {
    assert_eq!(a.status(), 200);
    let streamed = a.is_streamed();
    let mut pieces = Vec::new();
    while let Some(d) = a.next_data().await.unwrap() {
        pieces.push(String::from_utf8(d).unwrap());
    }
    (streamed, pieces)
}

#[tokio::test]
async fn auto_mode_falls_back_once_on_415_and_remembers() {
    let (gw, key) = gateway().await;
    let (relay, counts) = start_strict(gw).await;
    let learnt = RelayState::default();
    let client = || {
        WireClient::new_without_ledger_check(reqwest::Client::new(), relay.clone(), key.clone())
            .with_relay_mode(RelayMode::Auto, learnt.clone())
    };

    let (streamed, pieces) = read(client().send_for_stream(&request()).await.unwrap()).await;
    assert!(!streamed, "a strict relay cannot stream");
    assert_eq!(
        pieces.concat(),
        PIECES.concat(),
        "the whole answer, in one piece"
    );
    assert_eq!(pieces.len(), 1);
    assert!(learnt.plain_only(), "the 415 was remembered");
    assert_eq!(counts.refused.load(Ordering::SeqCst), 1);
    assert_eq!(counts.forwarded.load(Ordering::SeqCst), 1);

    // A new wire client (a new session) for the same relay: no second 415.
    let (streamed, pieces) = read(client().send_for_stream(&request()).await.unwrap()).await;
    assert!(!streamed);
    assert_eq!(pieces.concat(), PIECES.concat());
    assert_eq!(counts.refused.load(Ordering::SeqCst), 1, "detected once");
    assert_eq!(counts.forwarded.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn plain_mode_never_tries_chunked_and_chunked_mode_reports_the_415() {
    let (gw, key) = gateway().await;
    let (relay, counts) = start_strict(gw).await;

    let plain =
        WireClient::new_without_ledger_check(reqwest::Client::new(), relay.clone(), key.clone())
            .with_relay_mode(RelayMode::Plain, RelayState::default());
    let (streamed, pieces) = read(plain.send_for_stream(&request()).await.unwrap()).await;
    assert!(!streamed);
    assert_eq!(pieces.concat(), PIECES.concat());
    assert_eq!(
        counts.refused.load(Ordering::SeqCst),
        0,
        "no chunked attempt"
    );

    // Configured as chunked, a 415 is the relay's refusal, reported as such.
    let learnt = RelayState::default();
    let chunked = WireClient::new_without_ledger_check(reqwest::Client::new(), relay, key)
        .with_relay_mode(RelayMode::Chunked, learnt.clone());
    match chunked.send_for_stream(&request()).await {
        Err(WireError::Status { status: 415, .. }) => {}
        other => panic!("expected the relay's 415, got {other:?}"),
    }
    assert!(!learnt.plain_only(), "chunked mode never switches");
    assert_eq!(counts.refused.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn confides_relay_streams_in_auto_mode() {
    let (gw, key) = gateway().await;
    let relay = confide_relay::Relay::new(confide_relay::RelayConfig::new(format!(
        "http://{gw}/.well-known/ohttp-gateway"
    )))
    .unwrap();
    let relay = format!("http://{}/", serve(relay.router()).await);
    let learnt = RelayState::default();
    let client = WireClient::new_without_ledger_check(reqwest::Client::new(), relay, key)
        .with_relay_mode(RelayMode::Auto, learnt.clone());
    let (streamed, pieces) = read(client.send_for_stream(&request()).await.unwrap()).await;
    assert!(streamed, "chunked OHTTP through a relay that forwards it");
    assert_eq!(pieces, PIECES, "piece by piece, as the node produced them");
    assert!(!learnt.plain_only());
}
