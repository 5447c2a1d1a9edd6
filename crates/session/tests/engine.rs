//! Two engines exchanging opaque byte batches in memory, as relay and gateway
//! would carry them.
#![allow(clippy::unwrap_used)]

#[path = "../../ratls/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::*;
use confide_ratls::rustls;
use confide_ratls::{ManualClock, NodeCertResolver, NodeCredential, RatlsError, server_config};
use confide_session::{ClientEngine, Frame, FrameKind, ServerEngine, SessionError, SessionLimits};

const CANARY: &[u8] = b"canary-7f3c1e summarise my chat with Alice";

struct Node {
    world: World,
    attester: TestAttester,
    entry: TestEntry,
}

impl Node {
    fn honest() -> Self {
        let world = World::new();
        let attester = TestAttester::new(&world.vendor);
        let entry = TestEntry::matching(&attester);
        Self {
            world,
            attester,
            entry,
        }
    }

    fn credential(&self) -> NodeCredential {
        NodeCredential::issue(
            &self.attester,
            None,
            &self.entry.bundle(&self.world.ledger),
            at(T0),
            WINDOW,
        )
        .unwrap()
    }

    fn server(&self) -> ServerEngine {
        let clock = ManualClock::new(at(T0));
        let config = server_config(
            Arc::new(NodeCertResolver::new(&self.credential())),
            Arc::clone(&clock),
        )
        .unwrap();
        ServerEngine::new(config, clock, SessionLimits::default()).unwrap()
    }
}

fn client(world: &World) -> ClientEngine {
    ClientEngine::new(world.verifier(), SessionLimits::default(), at(T0 + 60)).unwrap()
}

/// Every batch the client sent, in order, so tests can inspect or replay them.
#[derive(Default)]
struct Wire {
    client_to_server: Vec<Vec<u8>>,
    server_to_client: Vec<Vec<u8>>,
}

fn pump(c: &mut ClientEngine, s: &mut ServerEngine, wire: &mut Wire) -> Result<(), SessionError> {
    for _ in 0..10 {
        let mut moved = false;
        if let Some(b) = c.get_outgoing() {
            wire.client_to_server.push(b.clone());
            s.put_incoming(&b, at(T0 + 60))?;
            moved = true;
        }
        if let Some(b) = s.get_outgoing() {
            wire.server_to_client.push(b.clone());
            c.put_incoming(&b, at(T0 + 60))?;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// TLS records in a batch: (content type, length).
fn records(batch: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut rest = batch;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        out.push((rest[0], len));
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty());
    out
}

fn established() -> (ClientEngine, ServerEngine, Wire) {
    let node = Node::honest();
    let mut c = client(&node.world);
    let mut s = node.server();
    let mut wire = Wire::default();
    pump(&mut c, &mut s, &mut wire).unwrap();
    assert!(c.is_established() && s.is_established());
    (c, s, wire)
}

#[test]
fn request_and_streamed_response_round_trip() {
    let (mut c, mut s, mut wire) = established();
    let node = c.verified_node().unwrap();
    assert_eq!(node.measurement(), &measurement(1)[..]);
    assert_eq!(node.ledger_index(), 7);

    c.send(&Frame::new(FrameKind::Request, CANARY.to_vec()))
        .unwrap();
    pump(&mut c, &mut s, &mut wire).unwrap();
    let req = s.recv().unwrap();
    assert_eq!(req.kind(), FrameKind::Request);
    assert_eq!(req.payload(), CANARY);
    assert!(s.recv().is_none());
    // The canary never appears on the wire in clear.
    assert!(wire.client_to_server.iter().all(|b| !contains(b, CANARY)));

    for tok in ["Alice ", "asked ", "about ", "lunch."] {
        s.send(&Frame::new(FrameKind::StreamChunk, tok.as_bytes().to_vec()))
            .unwrap();
    }
    s.send(&Frame::new(FrameKind::End, Vec::new())).unwrap();
    // A large response crossing many TLS records and batches.
    let big = vec![0x61u8; 300_000];
    s.send(&Frame::new(FrameKind::Response, big.clone()))
        .unwrap();
    pump(&mut c, &mut s, &mut wire).unwrap();
    let mut text = Vec::new();
    loop {
        let f = c.recv().unwrap();
        if f.kind() == FrameKind::End {
            break;
        }
        assert_eq!(f.kind(), FrameKind::StreamChunk);
        text.extend_from_slice(f.payload());
    }
    assert_eq!(text, b"Alice asked about lunch.");
    let r = c.recv().unwrap();
    assert_eq!(
        (r.kind(), r.payload().len()),
        (FrameKind::Response, big.len())
    );
    assert!(c.recv().is_none());

    c.close();
    pump(&mut c, &mut s, &mut wire).unwrap();
    assert!(s.is_closed());
    assert!(matches!(
        s.send(&Frame::new(FrameKind::End, vec![])),
        Err(SessionError::Closed)
    ));
}

#[test]
fn no_application_data_before_verification() {
    let node = Node::honest();
    let mut c = client(&node.world);
    let mut s = node.server();
    // Before anything: refused, and only a ClientHello (one handshake record) is produced.
    assert!(matches!(
        c.send(&Frame::new(FrameKind::Request, CANARY.to_vec())),
        Err(SessionError::NotEstablished)
    ));
    let hello = c.get_outgoing().unwrap();
    assert_eq!(
        records(&hello).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![22]
    );
    assert!(c.get_outgoing().is_none());
    // Mid-handshake (server flight received, client Finished pending): still refused.
    s.put_incoming(&hello, at(T0 + 60)).unwrap();
    assert!(matches!(
        s.send(&Frame::new(FrameKind::Response, b"early".to_vec())),
        Err(SessionError::NotEstablished)
    ));
    let flight = s.get_outgoing().unwrap();
    c.put_incoming(&flight, at(T0 + 60)).unwrap();
    // The client verified the node during this flight.
    assert!(c.is_established());
    let finished = c.get_outgoing().unwrap();
    // Only the middlebox-compatibility ChangeCipherSpec (RFC 8446 appendix D.4)
    // and the Finished (one encrypted handshake record): no application data yet.
    assert_eq!(records(&finished).len(), 2);
    assert_eq!(records(&finished)[0], (20, 1));
    s.put_incoming(&finished, at(T0 + 60)).unwrap();
    assert!(s.is_established());
    assert!(s.recv().is_none());
}

/// A handshake against a node that must be refused: returns the client's error
/// and checks that nothing but a ClientHello and a single alert left the client.
fn refused(node: &Node, verifier_world: &World) -> Arc<RatlsError> {
    let mut c = client(verifier_world);
    let mut s = node.server();
    assert!(matches!(
        c.send(&Frame::new(FrameKind::Request, CANARY.to_vec())),
        Err(SessionError::NotEstablished)
    ));
    let hello = c.get_outgoing().unwrap();
    s.put_incoming(&hello, at(T0 + 60)).unwrap();
    let flight = s.get_outgoing().unwrap();
    let err = c.put_incoming(&flight, at(T0 + 60)).unwrap_err();
    let SessionError::Verification(cause) = err else {
        panic!("{err:?}")
    };
    assert!(!c.is_established() && c.verified_node().is_none());
    // The client is unusable afterwards.
    assert!(matches!(
        c.send(&Frame::new(FrameKind::Request, CANARY.to_vec())),
        Err(SessionError::Failed)
    ));
    assert!(matches!(
        c.put_incoming(&flight, at(T0 + 60)),
        Err(SessionError::Failed)
    ));
    // All that leaves the client now is the middlebox-compatibility
    // ChangeCipherSpec (RFC 8446 appendix D.4) and one fatal alert record,
    // encrypted under the handshake keys (2 bytes + content type + 16-byte tag).
    let tail = c.get_outgoing().unwrap();
    assert_eq!(records(&tail), vec![(20, 1), (23, 19)]);
    assert!(!contains(&tail, CANARY));
    assert!(c.get_outgoing().is_none());
    // The node learns only that the client aborted; it never gets a frame.
    let e = s.put_incoming(&tail, at(T0 + 60)).unwrap_err();
    assert!(
        matches!(e, SessionError::Tls(rustls::Error::AlertReceived(_))),
        "{e:?}"
    );
    assert!(s.recv().is_none() && !s.is_established());
    cause
}

#[test]
fn tampered_nodes_fail_closed_before_any_application_data() {
    // Unlisted measurement.
    let mut n = Node::honest();
    n.attester.measurement = measurement(0x66);
    assert!(matches!(
        *refused(&n, &n.world),
        RatlsError::MeasurementNotListed { .. }
    ));

    // Model file digest differs from the logged one.
    let mut n = Node::honest();
    n.attester.model_digest = Some(model(0x77));
    assert!(matches!(
        *refused(&n, &n.world),
        RatlsError::ModelDigestMismatch
    ));

    // Evidence not binding the TLS key.
    let mut n = Node::honest();
    n.attester.report_data_override = Some([1; 64]);
    assert!(matches!(
        *refused(&n, &n.world),
        RatlsError::ReportDataMismatch(_)
    ));

    // Stale evidence.
    let mut n = Node::honest();
    n.attester.collected_at = T0 - 3 * WINDOW.as_secs();
    assert!(matches!(*refused(&n, &n.world), RatlsError::StaleEvidence));

    // Evidence from a vendor the client does not trust.
    let n = Node::honest();
    let mut other = World::new();
    other.vendor = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    assert!(matches!(
        *refused(&n, &other),
        RatlsError::EvidenceRejected(_)
    ));
}

#[test]
fn replayed_record_fails_closed() {
    let (mut c, mut s, mut wire) = established();
    c.send(&Frame::new(FrameKind::Request, b"first".to_vec()))
        .unwrap();
    pump(&mut c, &mut s, &mut wire).unwrap();
    assert_eq!(s.recv().unwrap().payload(), b"first");
    let replay = wire.client_to_server.last().unwrap().clone();
    let e = s.put_incoming(&replay, at(T0 + 60)).unwrap_err();
    assert!(
        matches!(e, SessionError::Tls(rustls::Error::DecryptError)),
        "{e:?}"
    );
    assert!(s.recv().is_none());
    // Failed for good, even for genuine later records.
    c.send(&Frame::new(FrameKind::Request, b"second".to_vec()))
        .unwrap();
    let next = c.get_outgoing().unwrap();
    assert!(matches!(
        s.put_incoming(&next, at(T0 + 60)),
        Err(SessionError::Failed)
    ));
    assert!(matches!(
        s.send(&Frame::new(FrameKind::End, vec![])),
        Err(SessionError::Failed)
    ));
}

#[test]
fn duplicated_handshake_flight_fails_closed() {
    let node = Node::honest();
    let mut c = client(&node.world);
    let mut s = node.server();
    let hello = c.get_outgoing().unwrap();
    s.put_incoming(&hello, at(T0 + 60)).unwrap();
    let flight = s.get_outgoing().unwrap();
    c.put_incoming(&flight, at(T0 + 60)).unwrap();
    // The server's flight delivered twice (a gateway replaying it).
    assert!(c.put_incoming(&flight, at(T0 + 60)).is_err());
    assert!(matches!(
        c.send(&Frame::new(FrameKind::Request, vec![1])),
        Err(SessionError::Failed)
    ));
    // A second ClientHello on an existing server session is refused too.
    let node = Node::honest();
    let mut c = client(&node.world);
    let mut s = node.server();
    let hello = c.get_outgoing().unwrap();
    s.put_incoming(&hello, at(T0 + 60)).unwrap();
    assert!(s.put_incoming(&hello, at(T0 + 60)).is_err());
}

#[test]
fn reordered_and_altered_records_fail_closed() {
    let (mut c, mut s, _) = established();
    c.send(&Frame::new(FrameKind::Request, b"one".to_vec()))
        .unwrap();
    let a = c.get_outgoing().unwrap();
    c.send(&Frame::new(FrameKind::Request, b"two".to_vec()))
        .unwrap();
    let b = c.get_outgoing().unwrap();
    assert!(matches!(
        s.put_incoming(&b, at(T0 + 60)),
        Err(SessionError::Tls(rustls::Error::DecryptError))
    ));
    assert!(matches!(
        s.put_incoming(&a, at(T0 + 60)),
        Err(SessionError::Failed)
    ));
    assert!(s.recv().is_none());

    let (mut c, mut s, _) = established();
    c.send(&Frame::new(FrameKind::Request, b"one".to_vec()))
        .unwrap();
    let mut a = c.get_outgoing().unwrap();
    let last = a.len() - 1;
    a[last] ^= 1;
    assert!(matches!(
        s.put_incoming(&a, at(T0 + 60)),
        Err(SessionError::Tls(rustls::Error::DecryptError))
    ));
    assert!(s.recv().is_none());
}

#[test]
fn records_split_across_batches_reassemble() {
    let (mut c, mut s, _) = established();
    c.send(&Frame::new(FrameKind::Request, vec![7; 40_000]))
        .unwrap();
    let bytes = c.get_outgoing().unwrap();
    for piece in bytes.chunks(777) {
        s.put_incoming(piece, at(T0 + 60)).unwrap();
    }
    let f = s.recv().unwrap();
    assert_eq!(f.payload(), &vec![7; 40_000][..]);
}

#[test]
fn size_limits_are_enforced() {
    let node = Node::honest();
    let limits = SessionLimits {
        max_frame_payload: 1000,
        max_incoming_batch: 64 * 1024,
        max_inbox: 1500,
    };
    let mut c = ClientEngine::new(node.world.verifier(), limits, at(T0 + 60)).unwrap();
    let clock = ManualClock::new(at(T0));
    let config = server_config(
        Arc::new(NodeCertResolver::new(&node.credential())),
        Arc::clone(&clock),
    )
    .unwrap();
    let mut s = ServerEngine::new(config, clock, limits).unwrap();
    pump(&mut c, &mut s, &mut Wire::default()).unwrap();

    // Offering an oversized frame is refused without breaking the session.
    assert!(matches!(
        c.send(&Frame::new(FrameKind::Request, vec![0; 1001])),
        Err(SessionError::FrameTooLarge { limit: 1000 })
    ));
    c.send(&Frame::new(FrameKind::Request, vec![0; 1000]))
        .unwrap();
    pump(&mut c, &mut s, &mut Wire::default()).unwrap();
    assert_eq!(s.recv().unwrap().payload().len(), 1000);

    // A peer whose frames pile up beyond the inbox limit is cut off.
    s.send(&Frame::new(FrameKind::StreamChunk, vec![1; 1000]))
        .unwrap();
    s.send(&Frame::new(FrameKind::StreamChunk, vec![1; 1000]))
        .unwrap();
    let out = s.get_outgoing().unwrap();
    assert!(matches!(
        c.put_incoming(&out, at(T0 + 60)),
        Err(SessionError::InboxFull { limit: 1500 })
    ));

    // An oversized batch is refused.
    let (mut c, _, _) = established();
    assert!(matches!(
        c.put_incoming(&vec![0; (4 << 20) + 1], at(T0 + 60)),
        Err(SessionError::BatchTooLarge { .. })
    ));
}

#[test]
fn mutual_sessions_between_nodes() {
    let node = Node::honest();
    let caller = Arc::new(NodeCertResolver::new(&node.credential()));
    let callee = Arc::new(NodeCertResolver::new(&node.credential()));
    let mut c = ClientEngine::new_mutual(
        node.world.verifier(),
        caller,
        SessionLimits::default(),
        at(T0 + 60),
    )
    .unwrap();
    let mut s = ServerEngine::new_mutual(
        callee,
        node.world.verifier(),
        SessionLimits::default(),
        at(T0 + 60),
    )
    .unwrap();
    pump(&mut c, &mut s, &mut Wire::default()).unwrap();
    assert!(c.verified_node().is_some());
    assert_eq!(
        s.verified_peer().unwrap().measurement(),
        &measurement(1)[..]
    );
    c.send(&Frame::new(FrameKind::Request, b"node to node".to_vec()))
        .unwrap();
    pump(&mut c, &mut s, &mut Wire::default()).unwrap();
    assert_eq!(s.recv().unwrap().payload(), b"node to node");

    // A caller node with an unlisted measurement never gets a frame through.
    let mut bad = Node::honest();
    bad.attester.measurement = measurement(0x42);
    let caller = Arc::new(NodeCertResolver::new(&bad.credential()));
    let callee = Arc::new(NodeCertResolver::new(&node.credential()));
    let mut c = ClientEngine::new_mutual(
        node.world.verifier(),
        caller,
        SessionLimits::default(),
        at(T0 + 60),
    )
    .unwrap();
    let mut s = ServerEngine::new_mutual(
        callee,
        node.world.verifier(),
        SessionLimits::default(),
        at(T0 + 60),
    )
    .unwrap();
    let e = pump(&mut c, &mut s, &mut Wire::default()).unwrap_err();
    let SessionError::Verification(cause) = e else {
        panic!("{e:?}")
    };
    assert!(matches!(*cause, RatlsError::MeasurementNotListed { .. }));
    assert!(!s.is_established() && s.verified_peer().is_none());
    assert!(matches!(
        s.send(&Frame::new(FrameKind::Response, vec![1])),
        Err(SessionError::Failed)
    ));
}

#[test]
fn tls12_server_is_refused() {
    let node = Node::honest();
    let mut c = client(&node.world);
    let _client_hello = c.get_outgoing().unwrap();
    // A TLS 1.2 ServerHello (RFC 5246 section 7.4.1.3): no supported_versions
    // extension, an ECDHE-RSA suite, null compression.
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0);
    body.extend_from_slice(&[0xc0, 0x2f]);
    body.push(0);
    let mut hs = vec![2, 0, 0, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x03, 0, hs.len() as u8];
    record.extend_from_slice(&hs);
    let e = c.put_incoming(&record, at(T0 + 60)).unwrap_err();
    assert!(
        matches!(e, SessionError::Tls(rustls::Error::PeerIncompatible(_))),
        "{e:?}"
    );
    assert!(c.verified_node().is_none());
    assert!(matches!(
        c.send(&Frame::new(FrameKind::Request, CANARY.to_vec())),
        Err(SessionError::Failed)
    ));
}

/// The ClientHello's cipher suites and extensions (RFC 8446 section 4.1.2).
fn client_hello_parts(record: &[u8]) -> (Vec<u16>, Vec<(u16, Vec<u8>)>) {
    let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    assert_eq!(record[0], 22);
    let hs = &record[5..];
    assert_eq!(hs[0], 1, "not a ClientHello");
    let mut p = &hs[4 + 2 + 32..];
    let sid = usize::from(p[0]);
    p = &p[1 + sid..];
    let cs_len = usize::from(be16(p));
    let suites = p[2..2 + cs_len].chunks(2).map(be16).collect();
    p = &p[2 + cs_len..];
    let comp = usize::from(p[0]);
    p = &p[1 + comp..];
    let ext_len = usize::from(be16(p));
    let mut e = &p[2..2 + ext_len];
    let mut exts = Vec::new();
    while !e.is_empty() {
        let (t, l) = (be16(e), usize::from(be16(&e[2..])));
        exts.push((t, e[4..4 + l].to_vec()));
        e = &e[4 + l..];
    }
    (suites, exts)
}

#[test]
fn client_hello_offers_only_tls13_with_ephemeral_key_exchange() {
    let node = Node::honest();
    let mut c = client(&node.world);
    let (suites, exts) = client_hello_parts(&c.get_outgoing().unwrap());
    // TLS 1.3 suites only (0x13xx), plus possibly the renegotiation SCSV (0x00ff).
    assert!(
        suites.iter().all(|s| s >> 8 == 0x13 || *s == 0x00ff),
        "{suites:x?}"
    );
    let ext = |t: u16| exts.iter().find(|(x, _)| *x == t).map(|(_, d)| d.clone());
    // supported_versions (43): exactly TLS 1.3.
    assert_eq!(ext(43).unwrap(), vec![2, 0x03, 0x04]);
    // key_share (51) present: an ephemeral (EC)DHE share is offered.
    assert!(ext(51).is_some());
    // supported_groups (10): x25519 (0x001d) and secp256r1 (0x0017) only.
    assert_eq!(ext(10).unwrap(), vec![0, 4, 0x00, 0x1d, 0x00, 0x17]);
    // No pre_shared_key (41) and no early_data (42): no resumption that could
    // skip certificate verification, no 0-RTT.
    assert!(ext(41).is_none() && ext(42).is_none());
    // rustls always lists psk_key_exchange_modes (45); it names psk_dhe_ke (1)
    // only, so even a PSK would be combined with a fresh (EC)DHE exchange.
    if let Some(modes) = ext(45) {
        assert_eq!(modes, vec![1, 1]);
    }
}

/// Issue 13: requests are padded to buckets by the client engine, and a node's padded
/// write of frames is one record whose size is the bucket; the receiver drops padding.
#[test]
fn padded_writes_hide_lengths_and_padding_is_dropped() {
    let (mut c, mut s, _) = established();
    // Client requests of nearby sizes: the same records on the wire.
    let mut shapes = Vec::new();
    for len in [10, 300, 900] {
        c.send(&Frame::new(FrameKind::Request, vec![b'r'; len]))
            .unwrap();
        let out = c.get_outgoing().unwrap();
        shapes.push(records(&out));
        s.put_incoming(&out, at(T0 + 60)).unwrap();
        let f = s.recv().unwrap();
        assert_eq!((f.kind(), f.payload().len()), (FrameKind::Request, len));
        assert!(s.recv().is_none(), "padding never reaches recv");
    }
    assert_eq!(
        shapes[0],
        vec![(23, confide_session::REQUEST_MIN_BUCKET + 17)]
    );
    assert!(shapes.iter().all(|r| *r == shapes[0]), "{shapes:?}");
    // A request above the floor takes the next power of two.
    c.send(&Frame::new(FrameKind::Request, vec![b'r'; 1500]))
        .unwrap();
    let out = c.get_outgoing().unwrap();
    assert_eq!(records(&out), vec![(23, 2048 + 17)]);
    s.put_incoming(&out, at(T0 + 60)).unwrap();
    assert_eq!(s.recv().unwrap().payload().len(), 1500);

    // Node units: text of 1 or 200 bytes, or none, fill the same 256-byte record.
    let mut units = Vec::new();
    for text in [&b"a"[..], &[b'x'; 200][..], &[][..]] {
        let chunk = Frame::new(FrameKind::StreamChunk, text.to_vec());
        let frames: Vec<&Frame> = if text.is_empty() {
            vec![]
        } else {
            vec![&chunk]
        };
        s.send_padded(&frames, 256).unwrap();
        let out = s.get_outgoing().unwrap();
        units.push(records(&out));
        c.put_incoming(&out, at(T0 + 60)).unwrap();
        if text.is_empty() {
            assert!(c.recv().is_none(), "a padding-only unit carries nothing");
        } else {
            assert_eq!(c.recv().unwrap().payload(), text);
        }
    }
    assert!(
        units.iter().all(|u| *u == vec![(23, 256 + 17)]),
        "{units:?}"
    );
    // Several frames in one unit, still one record.
    let a = Frame::new(FrameKind::StreamChunk, b"one".to_vec());
    let e = Frame::new(FrameKind::End, b"{}".to_vec());
    s.send_padded(&[&a, &e], 256).unwrap();
    let out = s.get_outgoing().unwrap();
    assert_eq!(records(&out), vec![(23, 256 + 17)]);
    c.put_incoming(&out, at(T0 + 60)).unwrap();
    assert_eq!(c.recv().unwrap().kind(), FrameKind::StreamChunk);
    assert_eq!(c.recv().unwrap().kind(), FrameKind::End);
    assert!(c.recv().is_none());
}

#[test]
fn malformed_padding_fails_closed() {
    // Padding carrying anything but zeros is a channel nobody asked for.
    let (mut c, mut s, _) = established();
    s.send(&Frame::new(FrameKind::Padding, vec![1; 10]))
        .unwrap();
    let out = s.get_outgoing().unwrap();
    assert!(matches!(
        c.put_incoming(&out, at(T0 + 60)),
        Err(SessionError::BadPadding)
    ));
    assert!(matches!(
        c.put_incoming(&[], at(T0 + 60)),
        Err(SessionError::Failed)
    ));
    // Padding longer than any bucket needs.
    let (mut c, mut s, _) = established();
    s.send(&Frame::new(
        FrameKind::Padding,
        vec![0; confide_session::MAX_PADDING + 1],
    ))
    .unwrap();
    let out = s.get_outgoing().unwrap();
    assert!(matches!(
        c.put_incoming(&out, at(T0 + 60)),
        Err(SessionError::BadPadding)
    ));
}
