//! Issue 13, "traffic shape hides content": what the relay and the gateway see of an
//! attested session depends on buckets and the node's tick, not on the text.
//!
//! In-process on loopback, with the real servers: a node (`NodeService`, simulated TEE,
//! RA-TLS, receipts), the gateway (OHTTP, Privacy Pass redemption, session routing) and
//! the relay, driven by the SDK's `WireClient` and a `confide-session` client engine.
//! Two TCP taps record every byte: one between the relay and the gateway (what the relay
//! sees: encapsulated requests and the chunked-OHTTP answer), one between the gateway
//! and the node (what the gateway forwards: TLS records each way). Each tap's bytes are
//! parsed as HTTP/1.1, so a size sequence is the body length of each request and the
//! HTTP chunk lengths of each streamed answer, independent of TCP segmentation.
//!
//! The node generates with a scripted engine: an `Engine` implementation whose pieces
//! the test chooses, so that two answers can differ only in token lengths or token
//! counts. It stands in for the model only; everything after it (sentence gate, tick,
//! padding, TLS, HTTP, OHTTP) is the production path.
//!
//! Without padding (the code before issue 13) every streamed piece was its own frame,
//! TLS record and OHTTP chunk and requests were not padded: every comparison below
//! then differs.
#![allow(clippy::unwrap_used)]

#[path = "../../services/node/tests/common/mod.rs"]
mod common;
#[path = "common/tokens.rs"]
mod test_tokens;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use confide_attest::Binding;
use confide_attest_sim::{SimulatedAttester, SimulatedVendor};
use confide_engine::features::{SuggestRequest, Tone};
use confide_engine::{
    ChatMessage, Completion, Engine, EngineError, FinishReason, GenerateParams, ModelInfo,
    StreamEvent, TokenStream,
};
use confide_gateway::sessions::SessionRouter;
use confide_gateway::{Gateway, GatewayConfig, GatewayMetrics, InnerState, KeyRing, KeySchedule};
use confide_node::adapters::EvidenceAttester;
use confide_node::frames::{AppRequest, EndInfo, Feature};
use confide_node::{NodeService, ReleaseFacts, ServiceSettings};
use confide_ohttp::bhttp::Request;
use confide_ratls::{ManualClock, NodeCertResolver, NodeCredential};
use confide_sdk::wire::WireClient;
use confide_session::{ClientEngine, FrameKind, SessionLimits};
use confide_tokens::{MemorySpentStore, Redeemer, Token};
use futures::future::BoxFuture;
use test_tokens::tokens;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use zeroize::Zeroizing;

const MEASUREMENT: [u8; 48] = [0x5a; 48];
const MODEL: [u8; 32] = [0x4d; 32];
const CONFIG: [u8; 32] = [3; 32];

// ---------------------------------------------------------------- scripted engine

enum Script {
    /// Every piece and the end are ready before the node reads the first: the whole
    /// answer is there before the first tick, whatever the scheduling.
    Ready(Vec<&'static str>),
    /// `first`, then, once the device has received `units` records of this answer,
    /// `then` and the end: the answer spans several ticks, some without new text.
    Paced {
        first: &'static str,
        then: &'static str,
        units: usize,
    },
}

struct Scripted {
    info: ModelInfo,
    scripts: Mutex<VecDeque<Script>>,
    /// Records the device received of the current answer.
    seen: watch::Receiver<usize>,
}

fn text(s: &str) -> Result<StreamEvent, EngineError> {
    Ok(StreamEvent::Text(Zeroizing::new(s.to_owned())))
}

fn done(tokens: usize) -> Result<StreamEvent, EngineError> {
    Ok(StreamEvent::Done(Completion {
        finish_reason: FinishReason::Stop,
        prompt_tokens: None,
        completion_tokens: Some(u32::try_from(tokens).unwrap()),
    }))
}

impl Engine for Scripted {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate(
        &self,
        _messages: Vec<ChatMessage>,
        _params: GenerateParams,
    ) -> BoxFuture<'_, Result<TokenStream, EngineError>> {
        let script = self.scripts.lock().unwrap().pop_front().unwrap();
        let mut seen = self.seen.clone();
        Box::pin(async move {
            let (tx, stream) = TokenStream::channel();
            match script {
                Script::Ready(pieces) => {
                    assert!(pieces.len() < TokenStream::CHANNEL_CAPACITY);
                    for p in &pieces {
                        tx.try_send(text(p)).unwrap();
                    }
                    tx.try_send(done(pieces.len())).unwrap();
                }
                Script::Paced { first, then, units } => {
                    tx.try_send(text(first)).unwrap();
                    tokio::spawn(async move {
                        seen.wait_for(|n| *n >= units).await.unwrap();
                        let _ = tx.send(text(then)).await;
                        let _ = tx.send(done(2)).await;
                    });
                }
            }
            Ok(stream)
        })
    }
}

// ---------------------------------------------------------------- TCP taps

/// Bytes of one direction of one connection, with when each read arrived.
#[derive(Default)]
struct Flow {
    bytes: Vec<u8>,
    /// (offset of a read's first byte, when it arrived)
    reads: Vec<(usize, Instant)>,
}

impl Flow {
    fn at(&self, offset: usize) -> Instant {
        self.reads
            .iter()
            .take_while(|(o, _)| *o <= offset)
            .last()
            .map(|(_, t)| *t)
            .unwrap()
    }
}

/// (client → server, server → client) of one connection.
type Conn = Arc<Mutex<(Flow, Flow)>>;

/// A loopback TCP proxy recording both directions of every connection.
#[derive(Clone, Default)]
struct Tap {
    conns: Arc<Mutex<Vec<Conn>>>,
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    conn: Conn,
    upstream: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut c = conn.lock().unwrap();
            let f = if upstream { &mut c.0 } else { &mut c.1 };
            f.reads.push((f.bytes.len(), Instant::now()));
            f.bytes.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Tap {
    async fn start(target: SocketAddr) -> (SocketAddr, Tap) {
        let tap = Tap::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let t = tap.clone();
        tokio::spawn(async move {
            loop {
                let (inbound, _) = l.accept().await.unwrap();
                let outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let conn: Conn = Arc::new(Mutex::new((Flow::default(), Flow::default())));
                t.conns.lock().unwrap().push(Arc::clone(&conn));
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                tokio::spawn(pipe(ir, ow, Arc::clone(&conn), true));
                tokio::spawn(pipe(or, iw, conn, false));
            }
        });
        (addr, tap)
    }

    /// Every complete `POST` exchange whose path starts with `prefix`, in the order the
    /// requests started.
    fn exchanges(&self, prefix: &str) -> Vec<Exchange> {
        let mut out = Vec::new();
        for conn in self.conns.lock().unwrap().iter() {
            let c = conn.lock().unwrap();
            let requests = parse_messages(&c.0.bytes, true);
            let responses = parse_messages(&c.1.bytes, false);
            for (req, resp) in requests.iter().zip(responses) {
                if req.start_line.starts_with(&format!("POST {prefix}")) {
                    out.push(Exchange {
                        started: c.0.at(req.offset),
                        request_body: req.body.iter().sum(),
                        response_chunks: resp.body,
                    });
                }
            }
        }
        out.sort_by_key(|e| e.started);
        out
    }

    /// Waits until `n` exchanges under `prefix` are complete (the last bytes of an
    /// answer may reach the tap just after the device has read them).
    async fn wait(&self, prefix: &str, n: usize) -> Vec<Exchange> {
        for _ in 0..500 {
            let e = self.exchanges(prefix);
            if e.len() >= n {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} exchanges under {prefix}");
    }
}

/// One request and its answer as a tap saw them.
#[derive(Debug)]
struct Exchange {
    started: Instant,
    /// Length of the request body.
    request_body: usize,
    /// Lengths of the answer's HTTP chunks (one entry for a `Content-Length` body).
    response_chunks: Vec<usize>,
}

struct Message {
    offset: usize,
    start_line: String,
    /// Chunk lengths (chunked) or the one body length.
    body: Vec<usize>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Complete HTTP/1.1 messages in `bytes` (requests when `requests`, else responses).
fn parse_messages(bytes: &[u8], requests: bool) -> Vec<Message> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(end) = find(&bytes[at..], b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[at..at + end]).to_lowercase();
        let start_line = String::from_utf8_lossy(&bytes[at..at + end])
            .lines()
            .next()
            .unwrap()
            .to_owned();
        let mut pos = at + end + 4;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_owned())
            })
        };
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let Some(eol) = find(&bytes[pos..], b"\r\n") else {
                    return out;
                };
                let size_text = String::from_utf8_lossy(&bytes[pos..pos + eol]).to_string();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
                pos += eol + 2;
                if size == 0 {
                    // No trailers in these exchanges: the final CRLF.
                    if bytes.len() < pos + 2 {
                        return out;
                    }
                    pos += 2;
                    break;
                }
                if bytes.len() < pos + size + 2 {
                    return out;
                }
                body.push(size);
                pos += size + 2;
            }
        } else {
            let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
            let no_body =
                !requests && (start_line.contains(" 204 ") || start_line.contains(" 304 "));
            let len = if no_body { 0 } else { len };
            if bytes.len() < pos + len {
                return out;
            }
            body.push(len);
            pos += len;
        }
        out.push(Message {
            offset: at,
            start_line,
            body,
        });
        at = pos;
    }
    out
}

// ---------------------------------------------------------------- the stack

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

struct Stack {
    wire: WireClient,
    engine: ClientEngine,
    id: String,
    toks: std::vec::IntoIter<Token>,
    /// relay ⇄ gateway
    relay_tap: Tap,
    /// gateway ⇄ node
    node_tap: Tap,
    seen: watch::Sender<usize>,
    _vendor: tempfile::TempDir,
}

/// What the device received of one answer.
struct Received {
    text: String,
    chunk_frames: usize,
    records: usize,
}

impl Stack {
    async fn start(scripts: Vec<Script>) -> Stack {
        // The node: simulated TEE, its release in a cosigned ledger.
        let vendor_dir = tempfile::tempdir().unwrap();
        let vendor = SimulatedVendor::load_or_create(&vendor_dir.path().join("v")).unwrap();
        let root = vendor.root_der().to_vec();
        let attester = EvidenceAttester::new(
            Arc::new(SimulatedAttester::new(vendor, MEASUREMENT)),
            Binding {
                model_digest: MODEL,
                config_digest: CONFIG,
            },
        );
        let ledger = Ledger::new(&[release(&MEASUREMENT, MODEL, CONFIG)]);
        let bundle = confide_node::ledger::build_bundle(&ledger.entries, 0, &ledger.note)
            .unwrap()
            .encode()
            .unwrap();
        let cred = NodeCredential::issue(
            &attester,
            None,
            &bundle,
            tls_now(),
            Duration::from_secs(3600),
        )
        .unwrap();
        let (seen_tx, seen) = watch::channel(0usize);
        let engine = Arc::new(Scripted {
            info: ModelInfo {
                name: "scripted".into(),
                architecture: "scripted".into(),
                sha256: None,
                context_length: None,
            },
            scripts: Mutex::new(scripts.into()),
            seen,
        });
        let svc = NodeService::new(
            Arc::new(NodeCertResolver::new(&cred)),
            ManualClock::new(tls_now()),
            engine,
            ServiceSettings::default(),
            "simulated",
            0,
            ReleaseFacts {
                measurement: MEASUREMENT.to_vec(),
                model_digest: Some(MODEL.to_vec()),
                config_digest: Some(CONFIG.to_vec()),
            },
        );
        let node = serve(svc.router()).await;
        let (node_tapped, node_tap) = Tap::start(node).await;

        // The gateway, redeeming real tokens, routing sessions to the node via the tap.
        let (issuer, toks) = tokens(16);
        let redeemer = Redeemer::new(
            issuer.redemption_keys().unwrap(),
            Arc::new(MemorySpentStore::new()),
        );
        let tokens: Arc<dyn confide_gateway::TokenGate> = Arc::new(redeemer);
        let ring = Arc::new(KeyRing::new(
            KeySchedule::new(Zeroizing::new([5u8; 32]), None).unwrap(),
        ));
        let sessions =
            SessionRouter::new(&[format!("http://{node_tapped}")], Duration::from_secs(120))
                .unwrap();
        sessions.check_health().await;
        assert_eq!(sessions.healthy_nodes(), 1);
        let inner = Arc::new(InnerState {
            ring: Arc::clone(&ring),
            tokens: Some(Arc::clone(&tokens)),
            metrics: GatewayMetrics::default(),
        });
        let gateway = Gateway::new(Arc::clone(&ring), GatewayConfig::default(), Some(tokens))
            .with_inner_routes(sessions.routes(inner))
            .router();
        let gw = serve(gateway).await;
        let (gw_tapped, relay_tap) = Tap::start(gw).await;

        // The relay, forwarding to the gateway via the other tap.
        let relay = confide_relay::Relay::new(confide_relay::RelayConfig::new(format!(
            "http://{gw_tapped}/gateway"
        )))
        .unwrap();
        let relay = serve(relay.router()).await;

        let http = reqwest::Client::new();
        let configs =
            confide_sdk::wire::fetch_key_configs(&http, &format!("http://{gw}/ohttp-keys"))
                .await
                .unwrap();
        let wire = WireClient::new_without_ledger_check(
            http,
            format!("http://{relay}/"),
            configs[0].clone(),
        );

        // Open the session: ClientHello through relay and gateway, the node verified.
        let mut engine = ClientEngine::new(
            verifier(&root, &ledger, 3600),
            SessionLimits::default(),
            tls_now(),
        )
        .unwrap();
        let mut toks = toks.into_iter();
        let mut req = Request::new("POST", "https", "gateway.confide.test", "/v1/sessions");
        req.headers
            .append("authorization", toks.next().unwrap().to_authorization());
        req.content = outgoing(&mut engine);
        let opened = wire.send(&req).await.unwrap();
        assert_eq!(
            opened.status,
            200,
            "{}",
            String::from_utf8_lossy(&opened.content)
        );
        let id =
            String::from_utf8(opened.headers.get("confide-session-id").unwrap().to_vec()).unwrap();
        engine.put_incoming(&opened.content, tls_now()).unwrap();
        assert!(engine.is_established());
        Stack {
            wire,
            engine,
            id,
            toks,
            relay_tap,
            node_tap,
            seen: seen_tx,
            _vendor: vendor_dir,
        }
    }

    /// Sends a suggestion request with `draft` and reads the whole streamed answer.
    async fn ask(&mut self, draft: &str) -> Received {
        let req = AppRequest::new(
            Feature::Suggest(SuggestRequest {
                draft: Zeroizing::new(draft.into()),
                tone: Tone::Friendly,
            }),
            Some(32),
        );
        self.engine.send(&req.to_frame().unwrap()).unwrap();
        let mut inner = Request::new(
            "POST",
            "https",
            "gateway.confide.test",
            &format!("/v1/sessions/{}", self.id),
        );
        inner.headers.append(
            "authorization",
            self.toks.next().unwrap().to_authorization(),
        );
        inner.content = outgoing(&mut self.engine);
        self.seen.send_replace(0);
        let mut stream = self.wire.send_streaming(&inner).await.unwrap();
        assert_eq!(stream.status(), 200);
        let mut got = Received {
            text: String::new(),
            chunk_frames: 0,
            records: 0,
        };
        while let Some(data) = stream.next_data().await.unwrap() {
            got.records += 1;
            self.seen.send_replace(got.records);
            self.engine.put_incoming(&data, tls_now()).unwrap();
            while let Some(f) = self.engine.recv() {
                match f.kind() {
                    FrameKind::StreamChunk => {
                        got.chunk_frames += 1;
                        got.text.push_str(std::str::from_utf8(f.payload()).unwrap());
                    }
                    FrameKind::End => {
                        let end = EndInfo::parse(f.payload()).unwrap();
                        assert!(end.error.is_none(), "{end:?}");
                        assert!(end.receipt.is_some(), "an answer carries its receipt");
                    }
                    k => panic!("unexpected frame {k:?}"),
                }
            }
        }
        got
    }
}

fn outgoing(engine: &mut ClientEngine) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = engine.get_outgoing() {
        out.extend_from_slice(&b);
    }
    out
}

// ---------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_depend_on_buckets_not_on_tokens_or_request_length() {
    // Answers 1 and 2: five pieces each, of very different lengths. Answers 3 and 4:
    // three pieces against twelve.
    let mut stack = Stack::start(vec![
        Script::Ready(vec!["A", " b", " c", " d", "."]),
        Script::Ready(vec![
            "Wonderful",
            " sunshine",
            " tomorrow",
            " everybody",
            "!",
        ]),
        Script::Ready(vec!["See", " you", "."]),
        Script::Ready(vec![
            "We", " will", " meet", " at", " the", " lake", " by", " the", " old", " boat",
            " house", ".",
        ]),
    ])
    .await;
    // The first request also carries the client's TLS Finished; it is the warm-up.
    let a = stack
        .ask("Are we still on for the picnic on Saturday?")
        .await;
    // Requests 2 to 4: drafts of 10, 60 and 200 bytes.
    let b = stack.ask("See you at").await;
    let c = stack
        .ask("Running ten minutes late, sorry, save me a seat near the boat")
        .await;
    let d = stack
        .ask(&"Bringing lemonade and sandwiches for everyone. ".repeat(4))
        .await;
    assert_eq!(a.text, "A b c d.");
    assert_eq!(b.text, "Wonderful sunshine tomorrow everybody!");
    assert_eq!(c.text, "See you.");
    assert_eq!(d.text, "We will meet at the lake by the old boat house.");

    let relay = stack.relay_tap.wait("/gateway", 5).await;
    let node = stack.node_tap.wait("/sessions/", 4).await;
    // relay[0] is the session opening; relay[i + 1] and node[i] are request i + 1.
    let (relay, node) = (&relay[1..], &node[..]);
    for (what, seq) in [("relay ⇄ gateway", relay), ("gateway ⇄ node", node)] {
        // (a) Equal token counts, different token lengths: the same answer sizes.
        assert_eq!(
            seq[0].response_chunks, seq[1].response_chunks,
            "{what}: answers of equal token count differ in shape"
        );
        // Three tokens or twelve: the same answer sizes and the same number of chunks
        // (the tick, not the token count, decides the chunks).
        assert_eq!(
            seq[2].response_chunks, seq[3].response_chunks,
            "{what}: answers of different token counts differ in shape"
        );
        assert_eq!(seq[0].response_chunks, seq[2].response_chunks, "{what}");
        // (b) Requests of 10, 60 and 200 bytes of draft: the same request size.
        assert_eq!(
            seq[1].request_body, seq[2].request_body,
            "{what}: requests differ"
        );
        assert_eq!(
            seq[2].request_body, seq[3].request_body,
            "{what}: requests differ"
        );
    }
    // The node sends one padded unit on the tick with all the text and one padded End:
    // two TLS records of 256 and 2048 bytes of plaintext (22 bytes of TLS each).
    assert_eq!(node[0].response_chunks, vec![256 + 22, 2048 + 22]);
    // The gateway forwards each record as one chunk of the OHTTP answer, between the
    // nonce and head chunks and the final chunk.
    assert_eq!(relay[0].response_chunks.len(), 2 + 2 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_sends_one_unit_of_the_same_size_with_or_without_text() {
    // The engine sends its second sentence only after the device has received three
    // records of the answer: ticks pass with no new text.
    let mut stack = Stack::start(vec![Script::Paced {
        // A sentence leaves the node's sentence gate once white space follows it.
        first: "First things first.\n",
        then: "Then the rest.",
        units: 3,
    }])
    .await;
    let got = stack.ask("What is the plan?").await;
    assert_eq!(got.text, "First things first.\nThen the rest.");
    assert_eq!(got.chunk_frames, 2);
    // At least three ticks before the second sentence, one after, and the End.
    assert!(got.records >= 5, "{} records", got.records);

    let node = stack.node_tap.wait("/sessions/", 1).await;
    let chunks = &node[0].response_chunks;
    let (end, ticks) = chunks.split_last().unwrap();
    assert_eq!(*end, 2048 + 22);
    // Ticks with text and ticks without look the same: one 256-byte unit each.
    assert!(ticks.len() >= 4, "{chunks:?}");
    assert!(ticks.iter().all(|&c| c == 256 + 22), "{chunks:?}");

    let relay = stack.relay_tap.wait("/gateway", 2).await;
    let r = &relay[1].response_chunks;
    // nonce, head, one chunk per record, final chunk.
    assert_eq!(r.len(), 2 + chunks.len() + 1, "{r:?}");
    let units = &r[2..r.len() - 2];
    assert!(units.iter().all(|&c| c == units[0]), "{r:?}");
}
