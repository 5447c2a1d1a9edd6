//! Node to node: another attested node as this node's inference upstream.
//!
//! DESIGN.md has calls between confidential VMs ride the same RA-TLS as devices' calls.
//! Here both sides attest (mutual RA-TLS, ADR 0603):
//!
//! - the *model node* serves [`crate::NodeService::peer_router`] on its own listener and
//!   accepts only callers whose certificate carries evidence and a stapled ledger bundle
//!   that pass its peer policy ([`peer_verifier`]);
//! - the *front node* runs [`PeerNodeEngine`]: each generation opens a mutual session,
//!   verifies the model node's evidence and release through the same pipeline
//!   (`confide_verify`), checks that it still serves the model digest the front node
//!   attests, and only then seals the prompt into the session. Any failure is a typed
//!   [`PeerError`]; nothing is sent unverified.
//!
//! The front node's attested model digest is the model node's, learned from the verified
//! peer at start ([`probe`]), never from the operator's word: a device that verified the
//! front node thereby knows which model answers it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use confide_attest::TrustPolicy;
use confide_engine::{
    ChatMessage, Completion, Engine, EngineError, FinishReason, GenerateParams, ModelInfo,
    StreamEvent, TokenStream,
};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{NodeCertResolver, NodePolicy, NodeVerifier, RatlsError, VerifiedNode};
use confide_release::LedgerTrust;
use confide_session::{ClientEngine, FrameKind, SessionError, SessionLimits};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::SESSION_ID_HEADER;
use crate::frames::{EndInfo, PeerRequest};

/// Why another node could not be used (or could not use this one). Names the check or
/// the step that failed; never request content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer policy file could not be read.
    #[error("cannot read the peer policy file")]
    PolicyUnreadable,
    /// The peer policy is not a valid trust policy.
    #[error("the peer policy is invalid: {0}")]
    Policy(#[source] confide_attest::Error),
    /// The peer policy's `[ledger]` keys are unusable.
    #[error("the peer policy's ledger keys are unusable: {0}")]
    LedgerTrust(#[source] confide_release::Error),
    /// The upstream node's certificate failed a check (evidence, release, binding...).
    #[error("the upstream node failed verification: {0}")]
    Verification(Arc<RatlsError>),
    /// The upstream node's verified release lists no model digest.
    #[error("the upstream node attests no model digest")]
    NoModelDigest,
    /// The upstream node's verified model digest is not the one this node attests.
    #[error(
        "the upstream node's attested model digest {got} is not the one this node attests \
         ({expected})"
    )]
    ModelDigestMismatch {
        /// The digest this node attests (from its start-up check or its configuration).
        expected: String,
        /// The digest the verified upstream attests.
        got: String,
    },
    /// The upstream node refused this node (a TLS alert: its policy rejected our
    /// certificate, or it wanted one and we had none).
    #[error("the upstream node refused this node: {0}")]
    Refused(String),
    /// This node has no credential yet to present.
    #[error("this node has no attested credential to present yet")]
    NoIdentity,
    /// The upstream node could not be reached.
    #[error("cannot reach the upstream node: {0}")]
    Unreachable(String),
    /// The upstream node answered with an HTTP error.
    #[error("the upstream node answered HTTP {0}")]
    Status(u16),
    /// The session broke (records, frames, closure).
    #[error("the session with the upstream node failed: {0}")]
    Session(String),
    /// The upstream node ended the request with an error kind.
    #[error("the upstream node reported {0}")]
    Remote(String),
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// Reads a peer policy (the trust policy TOML devices use, `[ledger]` included) and
/// returns it with the SHA-256 of its text (part of the node's configuration digest:
/// which nodes it trusts is part of what a release approves).
pub fn load_peer_policy(path: &std::path::Path) -> Result<(TrustPolicy, [u8; 32]), PeerError> {
    let text = std::fs::read_to_string(path).map_err(|_| PeerError::PolicyUnreadable)?;
    let policy = TrustPolicy::from_toml(&text).map_err(PeerError::Policy)?;
    Ok((policy, Sha256::digest(text.as_bytes()).into()))
}

/// The verifier this node applies to other nodes: evidence under `policy`, the stapled
/// bundle under its `[ledger]` trust, freshness and GPU and model rules from it.
pub fn peer_verifier(policy: &TrustPolicy) -> Result<NodeVerifier, PeerError> {
    let l = &policy.ledger;
    let trust = LedgerTrust::new(&l.log_vkey, &l.witness_vkeys, l.witness_quorum as usize)
        .map_err(PeerError::LedgerTrust)?;
    let mut node_policy = NodePolicy::new(Duration::from_secs(policy.freshness_secs));
    node_policy.require_gpu = policy.require_gpu;
    node_policy.allow_unattested_model = policy.allow_unattested_model;
    if let Some(age) = policy.max_certificate_age_secs {
        node_policy.max_certificate_age = Duration::from_secs(age);
    }
    Ok(NodeVerifier::new(
        node_policy,
        Arc::new(confide_verify::EvidencePipeline::new(policy.clone())),
        Arc::new(confide_verify::InclusionPipeline::new(trust, None)),
    ))
}

fn session_error(e: SessionError) -> PeerError {
    match e {
        SessionError::Verification(v) => PeerError::Verification(v),
        // An alert from the peer: it refused us.
        SessionError::Tls(t @ confide_ratls::rustls::Error::AlertReceived(_)) => {
            PeerError::Refused(t.to_string())
        }
        other => PeerError::Session(other.to_string()),
    }
}

fn http_client() -> Result<reqwest::Client, PeerError> {
    // As for an OpenAI upstream: exactly this URL, no proxy from the environment, no
    // redirects (the records are sealed, but which party sees the traffic still matters).
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PeerError::Unreachable(e.to_string()))
}

fn outgoing(engine: &mut ClientEngine) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = engine.get_outgoing() {
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    out
}

fn session_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Opens a session at `base` (the peer route) and returns the engine once the upstream
/// is verified, with the session id. The caller has sent nothing but the ClientHello.
async fn handshake(
    http: &reqwest::Client,
    base: &str,
    mut engine: ClientEngine,
) -> Result<(ClientEngine, String), PeerError> {
    let id = session_id();
    let hello = outgoing(&mut engine);
    let resp = http
        .post(format!("{base}/sessions"))
        .header(SESSION_ID_HEADER, &id)
        .body(hello)
        .send()
        .await
        .map_err(|e| PeerError::Unreachable(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(PeerError::Status(resp.status().as_u16()));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| PeerError::Unreachable(e.without_url().to_string()))?;
    if let Err(e) = engine.put_incoming(&body, now()) {
        forget(http, base, &id).await;
        return Err(session_error(e));
    }
    if engine.verified_node().is_none() {
        forget(http, base, &id).await;
        return Err(PeerError::Session("the handshake did not complete".into()));
    }
    Ok((engine, id))
}

/// Best effort: tell the upstream to drop a session (it expires anyway).
async fn forget(http: &reqwest::Client, base: &str, id: &str) {
    let _ = http.delete(format!("{base}/sessions/{id}")).send().await;
}

fn digest_of(node: &VerifiedNode) -> Result<[u8; 32], PeerError> {
    node.model_digest()
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .ok_or(PeerError::NoModelDigest)
}

/// Verifies the upstream node at `base` (its evidence and release, under `verifier`)
/// without presenting a certificate and without sending anything: the node's half of
/// a TLS 1.3 handshake already carries its certificate. Used at start, before this node
/// has a credential, to learn the model digest it will attest; the upstream then drops
/// the half-open session.
pub async fn probe(base: &str, verifier: NodeVerifier) -> Result<VerifiedNode, PeerError> {
    let base = base.trim_end_matches('/');
    let http = http_client()?;
    let engine = ClientEngine::new(verifier, SessionLimits::default(), now())
        .map_err(|e| PeerError::Session(e.to_string()))?;
    let (engine, id) = handshake(&http, base, engine).await?;
    forget(&http, base, &id).await;
    engine
        .verified_node()
        .cloned()
        .ok_or(PeerError::Session("the handshake did not complete".into()))
}

/// An [`Engine`] whose model runs on another attested node, reached over mutual RA-TLS.
pub struct PeerNodeEngine {
    http: reqwest::Client,
    base: String,
    verifier: NodeVerifier,
    model_digest: [u8; 32],
    identity: OnceLock<Arc<NodeCertResolver>>,
    info: ModelInfo,
}

impl std::fmt::Debug for PeerNodeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerNodeEngine")
            .field("base", &self.base)
            .field("model_digest", &hex::encode(self.model_digest))
            .finish_non_exhaustive()
    }
}

impl PeerNodeEngine {
    /// An engine for the upstream node at `base` (its peer route), verified with
    /// `verifier` at every session and required to attest `model_digest`.
    pub fn new(
        base: &str,
        verifier: NodeVerifier,
        model_digest: [u8; 32],
    ) -> Result<Self, PeerError> {
        Ok(Self {
            http: http_client()?,
            base: base.trim_end_matches('/').to_owned(),
            verifier,
            model_digest,
            identity: OnceLock::new(),
            info: ModelInfo {
                name: "attested upstream node".to_owned(),
                architecture: "peer-node".to_owned(),
                sha256: Some(model_digest),
                context_length: None,
            },
        })
    }

    /// The credential this node presents (its resolver follows every refresh). Set once,
    /// after the node issued its first credential.
    pub fn set_identity(&self, resolver: Arc<NodeCertResolver>) {
        let _ = self.identity.set(resolver);
    }

    /// Opens a verified mutual session: the upstream's evidence and release pass the
    /// peer policy and it attests this node's model digest, or a typed error.
    async fn open(&self) -> Result<(ClientEngine, String), PeerError> {
        let identity = self.identity.get().ok_or(PeerError::NoIdentity)?;
        let engine = ClientEngine::new_mutual(
            self.verifier.clone(),
            Arc::clone(identity),
            SessionLimits::default(),
            now(),
        )
        .map_err(|e| PeerError::Session(e.to_string()))?;
        let (engine, id) = handshake(&self.http, &self.base, engine).await?;
        let got = engine
            .verified_node()
            .ok_or(PeerError::Session("the handshake did not complete".into()))
            .and_then(digest_of)?;
        if got != self.model_digest {
            forget(&self.http, &self.base, &id).await;
            return Err(PeerError::ModelDigestMismatch {
                expected: hex::encode(self.model_digest),
                got: hex::encode(got),
            });
        }
        Ok((engine, id))
    }

    async fn start(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<TokenStream, PeerError> {
        let (mut engine, id) = self.open().await?;
        // Only now, with the upstream verified, is the prompt sealed into the session.
        let frame = PeerRequest::new(messages, params)
            .to_frame()
            .map_err(|_| PeerError::Session("request encoding".into()))?;
        engine.send(&frame).map_err(session_error)?;
        drop(frame);
        let body = Zeroizing::new(outgoing(&mut engine));
        let resp = self
            .http
            .post(format!("{}/sessions/{id}", self.base))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| PeerError::Unreachable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(PeerError::Status(resp.status().as_u16()));
        }
        let (tx, stream) = TokenStream::channel();
        let http = self.http.clone();
        let base = self.base.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                // The caller dropped the stream: dropping the response closes the
                // connection and the upstream stops generating.
                () = tx.closed() => Ok(()),
                r = relay(resp, &mut engine, &tx) => r,
            };
            if let Err(e) = result {
                let _ = tx.send(Err(EngineError::PeerNode(e.to_string()))).await;
            }
            forget(&http, &base, &id).await;
        });
        Ok(stream)
    }
}

fn finish_reason(s: Option<&str>) -> FinishReason {
    match s {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        _ => FinishReason::Other,
    }
}

/// Unseals the upstream's streamed records into text events until its `End` frame.
async fn relay(
    resp: reqwest::Response,
    engine: &mut ClientEngine,
    tx: &tokio::sync::mpsc::Sender<Result<StreamEvent, EngineError>>,
) -> Result<(), PeerError> {
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| PeerError::Unreachable(e.without_url().to_string()))?;
        engine.put_incoming(&chunk, now()).map_err(session_error)?;
        while let Some(f) = engine.recv() {
            match f.kind() {
                FrameKind::StreamChunk => {
                    let text = Zeroizing::new(
                        std::str::from_utf8(f.payload())
                            .map_err(|_| PeerError::Session("a chunk is not UTF-8".into()))?
                            .to_owned(),
                    );
                    if tx.send(Ok(StreamEvent::Text(text))).await.is_err() {
                        return Ok(());
                    }
                }
                FrameKind::End => {
                    let end = EndInfo::parse(f.payload())
                        .map_err(|_| PeerError::Session("malformed end frame".into()))?;
                    if let Some(kind) = end.error {
                        let kind = serde_json::to_value(kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_else(|| "an error".into());
                        return Err(PeerError::Remote(kind));
                    }
                    let done = Completion {
                        finish_reason: finish_reason(end.finish.as_deref()),
                        prompt_tokens: None,
                        completion_tokens: end.completion_tokens,
                    };
                    let _ = tx.send(Ok(StreamEvent::Done(done))).await;
                    return Ok(());
                }
                _ => return Err(PeerError::Session("unexpected frame".into())),
            }
        }
    }
    Err(PeerError::Session(
        "the stream ended without an end frame".into(),
    ))
}

impl Engine for PeerNodeEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> BoxFuture<'_, Result<TokenStream, EngineError>> {
        Box::pin(async move {
            params.validate()?;
            if messages.is_empty() {
                return Err(EngineError::EmptyConversation);
            }
            self.start(messages, params)
                .await
                .map_err(|e| EngineError::PeerNode(e.to_string()))
        })
    }
}
