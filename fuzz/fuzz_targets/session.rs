//! The session layer (crates/session), both of its parsers:
//!
//! - The node's frame parser, which reads what any anonymous device sends once TLS is up.
//!   A device needs no credential to reach it, so the harness plays one: a plain rustls
//!   client that completes the handshake with a real node engine and then writes the fuzz
//!   input as application data, in pieces. Property: the frames the node yields are
//!   exactly a prefix of the input cut at the frame boundaries, less the padding frames
//!   it checks and drops, and bad input ends in a typed error.
//! - The TLS records both engines read before that (ClientHello on the node side,
//!   ServerHello on the device side), fed raw.
//!
//! Also the processing-receipt body parser: `parse(b)` accepted means `encode() == b`.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use confide_ratls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use confide_ratls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use confide_ratls::rustls::{
    self, ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use confide_ratls::{
    Attester, ExternalError, ManualClock, NODE_SERVER_NAME, NodeCertResolver, NodeCredential,
    NodePolicy, NodeVerifier,
};
use confide_session::receipt::ReceiptBody;
use confide_session::{ClientEngine, HEADER_LEN, MAX_PADDING, ServerEngine, SessionLimits};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_790_000_000;
/// Small limits so the fuzzer reaches the frame-size and inbox checks.
const LIMITS: SessionLimits = SessionLimits {
    max_frame_payload: 256,
    max_incoming_batch: 1 << 16,
    max_inbox: 1024,
};

/// The kind byte of a padding frame (docs/sessions.md); the engine keeps its kind codes
/// to itself.
const PADDING_KIND: u8 = 5;

/// The kind byte and announced payload length of the frame header at the start of
/// `rest`, if a whole header is there.
fn header(rest: &[u8]) -> Option<(u8, usize)> {
    let h = rest.get(..HEADER_LEN)?;
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    Some((h[0], usize::try_from(len).unwrap_or(usize::MAX)))
}

/// The node's evidence is opaque to the server side, which never verifies itself; any
/// bytes make a well-formed node certificate.
struct FixedAttester;

impl Attester for FixedAttester {
    fn media_type(&self) -> &str {
        "application/vnd.confide.fuzz"
    }
    fn attest(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
        Ok(report_data.to_vec())
    }
}

/// The device in this harness is the attacker, so it skips checking the node.
#[derive(Debug)]
struct AcceptAny(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

struct Fixture {
    server: Arc<ServerConfig>,
    clock: Arc<ManualClock>,
    device: Arc<ClientConfig>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW));
        let cred = NodeCredential::issue(
            &FixedAttester,
            None,
            b"ledger bundle",
            now,
            Duration::from_secs(3600),
        )
        .expect("node credential");
        let clock = ManualClock::new(now);
        let server = confide_ratls::server_config(
            Arc::new(NodeCertResolver::new(&cred)),
            Arc::clone(&clock),
        )
        .expect("server config");
        let provider = confide_ratls::provider();
        let algs = provider.signature_verification_algorithms;
        let device = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(algs)))
            .with_no_client_auth();
        Fixture {
            server,
            clock,
            device: Arc::new(device),
        }
    })
}

/// The device's real verifier (production policy, a ledger key): built once, cloned per
/// session, as the SDK does.
fn device_verifier() -> NodeVerifier {
    static V: OnceLock<NodeVerifier> = OnceLock::new();
    V.get_or_init(build_device_verifier).clone()
}

fn build_device_verifier() -> NodeVerifier {
    let trust = confide_release::LedgerTrust::new(
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        &[] as &[&str],
        0,
    )
    .expect("ledger trust");
    NodeVerifier::new(
        NodePolicy::new(Duration::from_secs(3600)),
        Arc::new(confide_verify::EvidencePipeline::new(
            confide_attest::TrustPolicy::production(),
        )),
        Arc::new(confide_verify::InclusionPipeline::new(trust, None)),
    )
}

/// Moves TLS bytes between the device and the node until neither has more to say.
fn pump(dev: &mut ClientConnection, node: &mut ServerEngine, now: UnixTime) -> bool {
    for _ in 0..8 {
        let mut out = Vec::new();
        while dev.wants_write() {
            if dev.write_tls(&mut out).is_err() {
                return false;
            }
        }
        if !out.is_empty() && node.put_incoming(&out, now).is_err() {
            return false;
        }
        match node.get_outgoing() {
            Some(back) => {
                let mut rd = &back[..];
                while !rd.is_empty() {
                    if dev.read_tls(&mut rd).is_err() || dev.process_new_packets().is_err() {
                        return false;
                    }
                }
            }
            None if out.is_empty() => return true,
            None => {}
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW));

    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(r) = ReceiptBody::parse(text)
    {
        assert_eq!(r.encode(), text);
    }

    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        // Raw records at a fresh node: the ClientHello parser.
        0 => {
            if let Ok(mut node) =
                ServerEngine::new(Arc::clone(&f.server), Arc::clone(&f.clock), LIMITS)
            {
                let _ = node.put_incoming(body, now);
                assert!(node.recv().is_none(), "no frame before a handshake");
            }
        }
        // Raw records at a device that sent its ClientHello: the ServerHello parser.
        1 => {
            if let Ok(mut dev) = ClientEngine::new(device_verifier(), LIMITS, now) {
                let _ = dev.get_outgoing();
                let _ = dev.put_incoming(body, now);
                assert!(!dev.is_established());
                assert!(dev.recv().is_none());
            }
        }
        // Application data after a real handshake: the frame parser.
        _ => {
            let Ok(mut node) =
                ServerEngine::new(Arc::clone(&f.server), Arc::clone(&f.clock), LIMITS)
            else {
                return;
            };
            let name = ServerName::try_from(NODE_SERVER_NAME).expect("server name");
            let mut dev = ClientConnection::new(Arc::clone(&f.device), name).expect("client");
            assert!(pump(&mut dev, &mut node, now), "handshake with a device");
            assert!(node.is_established());
            let split = body.first().map_or(1, |b| usize::from(*b % 64) + 1);
            let mut seen = Vec::new();
            let mut failed = false;
            for piece in body.chunks(split) {
                use std::io::Write as _;
                dev.writer().write_all(piece).expect("device write");
                let mut out = Vec::new();
                while dev.wants_write() {
                    dev.write_tls(&mut out).expect("device write_tls");
                }
                if node.put_incoming(&out, now).is_err() {
                    failed = true;
                    break;
                }
                while let Some(frame) = node.recv() {
                    assert!(frame.payload().len() <= LIMITS.max_frame_payload);
                    seen.push(frame);
                }
            }
            // Walk the input as the frame format reads it: each frame is a header plus
            // its payload; padding frames are checked and dropped, every other frame is
            // yielded, in input order.
            let mut at = 0usize;
            let mut frames = seen.iter();
            while let Some((kind, len)) = header(&body[at..]) {
                let start = at + HEADER_LEN;
                if kind == PADDING_KIND {
                    if len > body.len() - start {
                        break;
                    }
                    if !failed {
                        assert!(len <= MAX_PADDING, "accepted padding is bounded");
                        assert!(body[start..start + len].iter().all(|&b| b == 0));
                    }
                    at = start + len;
                    continue;
                }
                let Some(frame) = frames.next() else {
                    break;
                };
                let end = start + frame.payload().len();
                assert!(end <= body.len());
                assert_eq!(&body[start..end], frame.payload());
                at = end;
            }
            assert!(
                frames.next().is_none(),
                "every yielded frame is in the input"
            );
            if failed {
                // A failed engine refuses everything after.
                assert!(node.put_incoming(&[], now).is_err());
            } else if let Some((kind, len)) = header(&body[at..]) {
                // What is left over is an incomplete frame whose announced length is
                // within its limit.
                let limit = if kind == PADDING_KIND {
                    MAX_PADDING
                } else {
                    LIMITS.max_frame_payload
                };
                assert!(len <= limit && len > body.len() - at - HEADER_LEN);
            }
        }
    }
});
