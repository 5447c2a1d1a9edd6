//! The relay on real sockets: it passes a streamed response through piece by piece
//! (the second piece is only produced after the client has received the first, so a
//! relay that buffered whole responses would never deliver), and forwards nothing of
//! the client's request but the media type and the body.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::post;
use confide_relay::{Relay, RelayConfig};
use http::HeaderMap;

/// The headers and body the fake gateway received.
type Forwarded = (HeaderMap, Vec<u8>);

async fn serve(router: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            l,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

#[tokio::test]
async fn streamed_responses_pass_through_without_buffering() {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let go_rx = Arc::new(Mutex::new(Some(go_rx)));
    let seen: Arc<Mutex<Option<Forwarded>>> = Arc::default();
    let seen2 = seen.clone();
    let upstream = axum::Router::new().route(
        "/gateway",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let go_rx = go_rx.lock().unwrap().take().unwrap();
            *seen2.lock().unwrap() = Some((headers, body.to_vec()));
            async move {
                let first =
                    futures::stream::once(async { Ok::<_, std::io::Error>(b"first".to_vec()) });
                let second = futures::stream::once(async move {
                    go_rx.await.unwrap();
                    Ok::<_, std::io::Error>(b"second".to_vec())
                });
                use futures::StreamExt;
                let mut r = http::Response::new(Body::from_stream(first.chain(second)));
                r.headers_mut()
                    .insert("content-type", "message/ohttp-chunked-res".parse().unwrap());
                r.headers_mut()
                    .insert("x-gateway-internal", "secret".parse().unwrap());
                r
            }
        }),
    );
    let gw = serve(upstream).await;
    let relay = serve(
        Relay::new(RelayConfig::new(format!("http://{gw}/gateway")))
            .unwrap()
            .router(),
    )
    .await;

    let client = reqwest::Client::builder()
        .user_agent("identifying-agent")
        .build()
        .unwrap();
    let mut resp = client
        .post(format!("http://{relay}/any/path"))
        .header("content-type", "message/ohttp-chunked-req")
        .header("cookie", "sid=1")
        .header("x-forwarded-for", "198.51.100.7")
        .body(b"encapsulated".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "message/ohttp-chunked-res");
    assert!(resp.headers().get("x-gateway-internal").is_none());
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("the first piece arrived before the gateway finished")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first");
    go_tx.send(()).unwrap();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second");

    let (headers, body) = seen.lock().unwrap().take().unwrap();
    assert_eq!(body, b"encapsulated");
    let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "content-length", "content-type", "host"]);
    assert_eq!(headers["content-type"], "message/ohttp-chunked-req");
}
