//! Shared harness for node tests: a real signed and cosigned ledger served as C2SP
//! tlog-tiles on loopback, client trust (simulated root + ledger keys), and a client
//! that drives a `confide-session` client engine over the node's HTTP API.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use confide_attest::TrustPolicy;
use confide_engine::features::{ChatLine, SummarizeRequest};
use confide_node::frames::{AppRequest, EndInfo, Feature};
use confide_note::{Checkpoint, KeyType, Note, SignerKey};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{NodePolicy, NodeVerifier};
use confide_release::{LedgerEntry, LedgerTrust, Platform, ReleaseManifest};
use confide_session::{ClientEngine, FrameKind, SessionError, SessionLimits};
use futures::StreamExt as _;
use zeroize::Zeroizing;

pub const ORIGIN: &str = "ledger.confide.test/releases";

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn tls_now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(now_secs()))
}

/// The embedded model the tests run (fails with a hint when missing).
pub fn model_path() -> PathBuf {
    // This file is shared by services/node (two levels below the root) and cli (one).
    let p = std::env::var_os("CONFIDE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            ["../../models", "../models"]
                .iter()
                .map(|r| here.join(r).join("SmolLM2-135M-Instruct.Q4_1.gguf"))
                .find(|p| p.exists())
                .unwrap_or_else(|| here.join("../models/SmolLM2-135M-Instruct.Q4_1.gguf"))
        });
    assert!(
        p.exists(),
        "model {} missing: run scripts/fetch-model",
        p.display()
    );
    p
}

pub fn release(measurement: &[u8], model_digest: [u8; 32], config_digest: [u8; 32]) -> LedgerEntry {
    let now = now_secs();
    LedgerEntry::Release(ReleaseManifest {
        platform: Platform::Simulated,
        measurement: measurement.to_vec(),
        snp_policy: Some(confide_attest_sim::GUEST_POLICY),
        rtmrs: Vec::new(),
        gpu_reference: Default::default(),
        model_digest,
        config_digest,
        source_revision: "test".into(),
        build_recipe_digest: [7; 32],
        not_before: now - 86_400,
        not_after: now + 86_400,
        notes: String::new(),
    })
}

/// A ledger of real entries, its checkpoint signed by the ledger key and cosigned by
/// two witnesses (C2SP signed-note, tlog-checkpoint, tlog-cosignature).
pub struct Ledger {
    pub key: SignerKey,
    pub witnesses: Vec<SignerKey>,
    pub entries: Vec<Vec<u8>>,
    pub note: String,
}

impl Ledger {
    pub fn new(entries: &[LedgerEntry]) -> Self {
        let key = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[11; 32]).unwrap();
        let witnesses = vec![
            SignerKey::from_seed("witness-a.test", KeyType::CosignatureV1, &[12; 32]).unwrap(),
            SignerKey::from_seed("witness-b.test", KeyType::CosignatureV1, &[13; 32]).unwrap(),
        ];
        let entries: Vec<Vec<u8>> = entries.iter().map(|e| e.encode().unwrap()).collect();
        let mut tree = confide_tlog::MemoryTree::new();
        for e in &entries {
            tree.push(confide_tlog::leaf_hash(e));
        }
        let text = Checkpoint::new(ORIGIN, tree.size(), tree.root())
            .unwrap()
            .to_text();
        let mut note = Note::new(&text).unwrap();
        note.add_signature(key.sign_note(&text).unwrap()).unwrap();
        for w in &witnesses {
            note.add_signature(w.cosign(&text, now_secs()).unwrap())
                .unwrap();
        }
        Self {
            key,
            witnesses,
            entries,
            note: note.encode(),
        }
    }

    pub fn trust(&self) -> LedgerTrust {
        let w: Vec<String> = self
            .witnesses
            .iter()
            .map(|w| w.verifier().to_vkey())
            .collect();
        LedgerTrust::new(&self.key.verifier().to_vkey(), &w, 2).unwrap()
    }

    /// Serves `/checkpoint` and `/tile/entries/000[.p/W]` on loopback; returns the URL.
    pub async fn serve(&self) -> String {
        use axum::extract::Path;
        let note = self.note.clone();
        let entries = Arc::new(self.entries.clone());
        let app = axum::Router::new()
            .route(
                "/checkpoint",
                axum::routing::get(move || async move { note }),
            )
            .route(
                "/tile/entries/{*rest}",
                axum::routing::get(move |Path(rest): Path<String>| {
                    let entries = Arc::clone(&entries);
                    async move {
                        let width = match rest.as_str() {
                            "000" => 256,
                            r => match r.strip_prefix("000.p/") {
                                Some(w) => w.parse::<usize>().unwrap_or(0),
                                None => 0,
                            },
                        };
                        if width == 0 || width > entries.len() {
                            return Err(http::StatusCode::NOT_FOUND);
                        }
                        let mut out = Vec::new();
                        for e in entries.iter().take(width) {
                            out.extend_from_slice(&(e.len() as u16).to_be_bytes());
                            out.extend_from_slice(e);
                        }
                        Ok(out)
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        format!("http://{addr}")
    }
}

/// The client's verifier: simulated root pinned, ledger trust, freshness window.
pub fn verifier(sim_root: &[u8], ledger: &Ledger, policy_freshness: u64) -> NodeVerifier {
    verifier_with_trust(sim_root, ledger.trust(), policy_freshness)
}

/// As [`verifier`], for any ledger trust (e.g. a ledger process and its witnesses).
pub fn verifier_with_trust(
    sim_root: &[u8],
    trust: LedgerTrust,
    policy_freshness: u64,
) -> NodeVerifier {
    let mut policy = TrustPolicy::production().with_simulated_root(sim_root.to_vec());
    policy.freshness_secs = policy_freshness;
    NodeVerifier::new(
        NodePolicy::new(Duration::from_secs(3600)),
        Arc::new(confide_verify::EvidencePipeline::new(policy)),
        Arc::new(confide_verify::InclusionPipeline::new(trust, None)),
    )
}

pub fn chat() -> SummarizeRequest {
    let line = |sender: &str, t: &str, text: &str| ChatLine {
        sender: Zeroizing::new(sender.into()),
        time: time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap(),
        text: Zeroizing::new(text.into()),
    };
    SummarizeRequest {
        messages: vec![
            line(
                "Alice",
                "2025-06-14T09:00:00Z",
                "Shall we have a picnic at the lake on Saturday?",
            ),
            line(
                "Bob",
                "2025-06-14T09:02:00Z",
                "Yes! I will bring sandwiches and lemonade.",
            ),
            line(
                "Alice",
                "2025-06-14T09:03:00Z",
                "Great, I will bring a blanket. Let's meet at noon by the boathouse.",
            ),
            line(
                "Bob",
                "2025-06-14T09:05:00Z",
                "Perfect, see you at noon at the lake.",
            ),
        ],
    }
}

/// What a streamed request returned.
pub struct Answer {
    pub text: String,
    pub chunks: usize,
    pub first_chunk: Option<Instant>,
    pub end_at: Instant,
    pub end: EndInfo,
    /// What a receipt must name: SHA-256 of the request payload and the
    /// `ResponseDigest` of the chunks received.
    pub request_sha256: [u8; 32],
    pub response_sha256: [u8; 32],
}

/// A device-side session driven over the node's internal HTTP API.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub id: String,
    pub engine: ClientEngine,
    /// The ClientHello flight and every later body sent, for replay tests.
    pub hello: Vec<u8>,
    pub sent: Vec<Vec<u8>>,
}

impl Client {
    pub fn new(base: &str, verifier: NodeVerifier) -> Self {
        let id = hex::encode(rand::random::<[u8; 16]>());
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            id,
            engine: ClientEngine::new(verifier, SessionLimits::default(), tls_now()).unwrap(),
            hello: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn outgoing(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = self.engine.get_outgoing() {
            if b.is_empty() {
                break;
            }
            out.extend_from_slice(&b);
        }
        out
    }

    /// ClientHello → node flight; the engine verifies the node (or fails).
    pub async fn open(&mut self) -> Result<(), SessionError> {
        let hello = self.outgoing();
        self.hello = hello.clone();
        let resp = self
            .http
            .post(format!("{}/sessions", self.base))
            .header(confide_node::SESSION_ID_HEADER, &self.id)
            .body(hello)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        self.engine.put_incoming(&body, tls_now())
    }

    /// Posts raw records to the session, returns status and body.
    pub async fn post_raw(&self, body: Vec<u8>) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .post(format!("{}/sessions/{}", self.base, self.id))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    }

    /// Sends one request and reads the streamed answer frame by frame.
    pub async fn request(&mut self, req: &AppRequest) -> Result<Answer, SessionError> {
        let frame = req.to_frame().unwrap();
        let request_sha256 = confide_session::receipt::request_digest(frame.payload());
        let mut digest = confide_session::receipt::ResponseDigest::new();
        self.engine.send(&frame)?;
        let body = self.outgoing();
        self.sent.push(body.clone());
        let resp = self
            .http
            .post(format!("{}/sessions/{}", self.base, self.id))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut stream = resp.bytes_stream();
        let mut text = String::new();
        let mut chunks = 0;
        let mut first_chunk = None;
        while let Some(b) = stream.next().await {
            self.engine.put_incoming(&b.unwrap(), tls_now())?;
            while let Some(f) = self.engine.recv() {
                match f.kind() {
                    FrameKind::StreamChunk => {
                        chunks += 1;
                        digest.update(f.payload());
                        first_chunk.get_or_insert_with(Instant::now);
                        text.push_str(std::str::from_utf8(f.payload()).unwrap());
                    }
                    FrameKind::End => {
                        return Ok(Answer {
                            text,
                            chunks,
                            first_chunk,
                            end_at: Instant::now(),
                            end: EndInfo::parse(f.payload()).unwrap(),
                            request_sha256,
                            response_sha256: digest.finish(),
                        });
                    }
                    k => panic!("unexpected frame {k:?}"),
                }
            }
        }
        panic!("stream ended without an End frame");
    }
}

pub fn summarize(max_tokens: u32) -> AppRequest {
    AppRequest::new(Feature::Summarize(chat()), Some(max_tokens))
}
