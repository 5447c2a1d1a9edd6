//! The client an app embeds: one attested session, reused, re-established with fresh
//! verification when its node goes away (`docs/sessions.md`).
//!
//! Before any request content leaves the device, [`Client`]:
//! 1. reads the ledger ([`LedgerView`]): checkpoint signature, witness quorum,
//!    consistency with the last checkpoint this device saw (stored in
//!    `ClientConfig::checkpoint_state`);
//! 2. fetches the gateway's OHTTP key configs and uses one only if a ledger entry logs it
//!    (`wire::check_logged`, key consistency);
//! 3. spends one anonymous token per inner request ([`TokenSource`], RFC 9577);
//! 4. opens `POST /v1/sessions` through the relay and completes RA-TLS with the node: the
//!    certificate's hardware evidence, its key binding, the release's inclusion in the
//!    same ledger, and freshness are all checked by `confide-ratls` with this SDK's
//!    verifiers ([`crate::verify`]); the session engine refuses application data until a
//!    `VerifiedNode` exists.
//!
//! Requests then travel as frames inside that TLS session; the node streams text back.
//! On `session-unknown` / `node-gone` / `node-timeout`, the client opens a new session (repeating every
//! check) and retries once, telling the caller through [`Event::Reattested`].
//!
//! Application messages ride in `confide-session` frames (`services/node/src/frames.rs`):
//! `Request` JSON `{"summarize":{…}}` / `{"suggest":{…}}`, then `StreamChunk` text pieces
//! and one `End` JSON: `{"finish":…,"completion_tokens":…}` or `{"error":"<kind>"}` (a
//! kind, never text).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confide_ohttp::bhttp;
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{NodePolicy, NodeVerifier};
use confide_release::LedgerTrust;
use confide_session::{ClientEngine, Frame, FrameKind, SessionError, SessionLimits};
use serde::Serialize;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::chat::{Chat, Limits, Selection};
use crate::config::{ClientConfig, Timeouts};
use crate::consent::Consent;
use crate::error::{Check, Error, Party};
use crate::ledger::{LedgerView, advance_last_seen, load_last_seen};
use crate::protect::ProtectedChats;
use crate::receipt::{self, ReceiptError, VerifiedReceipt};
use crate::verify::{Findings, SharedFindings, classify, evidence_verifier, inclusion_verifier};
use crate::wire::{self, LoggedKeyConfig, RelayState, WireClient, WireError};

/// Header carrying the gateway's opaque session id.
pub const SESSION_ID_HEADER: &str = "confide-session-id";
/// Problem type prefix of the session contract.
const PROBLEM_PREFIX: &str = "urn:confide:problem:";

/// Supplies `Authorization: PrivateToken …` values, one per inner request.
///
/// The issuance client (Privacy Pass, RFC 9578) lives in `crate::tokens`; apps can plug in
/// their own store.
pub trait TokenSource: Send + Sync {
    /// One unspent token as a complete `Authorization` header value.
    fn authorization(&self) -> Pin<Box<dyn Future<Output = Result<String, Error>> + Send + '_>>;
}

/// The outcome of one check, for the verification report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// Which check.
    pub check: Check,
    /// Its plain name.
    pub title: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What exactly was established (or why it failed).
    pub detail: String,
}

/// Everything verified about the node and the wire for one session.
#[derive(Debug, Clone, Serialize)]
pub struct VerificationReport {
    /// Platform of the node (`sev-snp`, `tdx`, `simulated`).
    pub platform: String,
    /// Whether the evidence came from the simulated vendor (no hardware protection).
    pub simulated: bool,
    /// Launch measurement, hex.
    pub measurement: String,
    /// Model digest, hex.
    pub model_digest: Option<String>,
    /// Leaf index of the release manifest in the ledger.
    pub ledger_index: u64,
    /// The ledger origin.
    pub ledger_origin: String,
    /// Size of the checkpoint the release was proven under.
    pub checkpoint_size: u64,
    /// Its root hash, hex.
    pub checkpoint_root: String,
    /// Size of the device's verified ledger view.
    pub device_checkpoint_size: u64,
    /// Witnesses that cosigned.
    pub cosigners: Vec<String>,
    /// Witnesses required.
    pub witness_quorum: usize,
    /// SHA-256 of the node's certificate, hex.
    pub certificate_sha256: String,
    /// When verification happened (Unix seconds).
    pub verified_at: u64,
    /// When the evidence was produced, if signed (Unix seconds).
    pub evidence_time: Option<u64>,
    /// OHTTP key id in use.
    pub key_id: u8,
    /// Ledger index of the key-config entry.
    pub key_config_index: u64,
    /// Every check, in order.
    pub checks: Vec<CheckOutcome>,
}

/// What a request stream yields.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The previous session was lost; a new node was verified and the request resent.
    Reattested(Box<VerificationReport>),
    /// The relay does not forward chunked OHTTP (`relay_mode = "plain"`, or a `415` seen
    /// in `auto` mode): this answer arrives in one piece once the node has finished it,
    /// instead of token by token. Sent before the answer's text.
    Unstreamed,
    /// Generated text, in order. Provisional until [`Event::End`] arrives with its
    /// verified [`AnswerLabel`]: if the receipt does not check out, the stream ends with
    /// [`Error::Receipt`] instead, and an app should withdraw or mark the text it showed.
    Text(Zeroizing<String>),
    /// The end: why generation stopped, and who processed it.
    End {
        /// `stop`, `length` or `other`.
        finish: String,
        /// Tokens generated, if the node says.
        completion_tokens: Option<u64>,
        /// The label every answer carries: it was processed privately, by which attested
        /// release, with its verified receipt.
        label: Box<AnswerLabel>,
    },
}

/// What an app shows with every answer (DESIGN.md "The person stays in control"): the
/// answer was privately processed, by which attested release, and the receipt that
/// proves it. Only facts the device verified.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerLabel {
    /// Platform of the node (`sev-snp`, `tdx`, `simulated`).
    pub platform: String,
    /// Whether that was the simulated platform (no hardware protection).
    pub simulated: bool,
    /// The attested measurement, hex.
    pub measurement: String,
    /// The ledger the release is logged in.
    pub ledger_origin: String,
    /// The release's index in it.
    pub ledger_index: u64,
    /// The receipt's short id (its time and the start of the answer digest).
    pub receipt_id: String,
    /// Where the receipt was kept (`None` with `keep_receipts = false`).
    pub receipt_path: Option<std::path::PathBuf>,
}

impl AnswerLabel {
    /// One line for people: "privately processed by …".
    pub fn line(&self) -> String {
        format!(
            "privately processed by an attested node: {}{} measurement {}…, ledger {} index {}; receipt {}",
            self.platform,
            if self.simulated {
                " (SIMULATED: no hardware protection)"
            } else {
                ""
            },
            &self.measurement[..self.measurement.len().min(16)],
            self.ledger_origin,
            self.ledger_index,
            self.receipt_id
        )
    }
}

/// A stream of [`Event`]s for one request; ends after `End` or an error.
#[derive(Debug)]
pub struct TextStream {
    rx: mpsc::Receiver<Result<Event, Error>>,
}

impl TextStream {
    /// The next event, or `None` when the stream is over.
    pub async fn next(&mut self) -> Option<Result<Event, Error>> {
        self.rx.recv().await
    }
}

struct Session {
    id: String,
    engine: ClientEngine,
    report: VerificationReport,
}

struct State {
    wire: Option<(WireClient, LoggedKeyConfig)>,
    session: Option<Session>,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    timeouts: Timeouts,
    trust: LedgerTrust,
    tokens: Arc<dyn TokenSource>,
    /// What was learnt about the relay (whether it forwards chunked OHTTP); outlives
    /// sessions, so a `415` is paid once per client.
    relay: RelayState,
    state: tokio::sync::Mutex<State>,
}

/// The Confide client. Cheap to clone; requests on one client are serialised over its
/// one session.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("relay", &self.inner.config.endpoints.relay)
            .finish_non_exhaustive()
    }
}

fn now() -> UnixTime {
    UnixTime::now()
}

fn wire_error(e: WireError, party: Party, url: &str) -> Error {
    match e {
        WireError::Transport(detail) => Error::Unreachable {
            party,
            url: url.to_owned(),
            detail,
        },
        WireError::KeyConfigNotLogged | WireError::KeyConfigSuperseded { .. } => Error::Check {
            check: Check::KeyConfig,
            detail: e.to_string(),
        },
        other => Error::Protocol {
            party,
            detail: other.to_string(),
        },
    }
}

fn node_error_kind(kind: &str) -> &'static str {
    match kind {
        "bad-request" => "bad request",
        "too-large" => "request too large",
        "engine" => "engine failure",
        "unavailable" => "node busy or shutting down: try again later",
        _ => "unknown error kind",
    }
}

/// The problem name of an inner error response, e.g. `node-gone`.
fn problem_name(resp_body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(resp_body)
        .ok()?
        .get("type")?
        .as_str()?
        .strip_prefix(PROBLEM_PREFIX)
        .map(str::to_owned)
}

/// An inner (gateway) error answer turned into the SDK's error.
fn inner_status_error(status: u16, problem: Option<&str>) -> Result<Lost, Error> {
    match problem {
        Some("session-unknown" | "node-gone" | "node-timeout") => Ok(Lost),
        Some("no-node-available") => Err(Error::NoNode),
        Some(p @ ("token-required" | "token-invalid" | "token-replayed")) => Err(Error::Check {
            check: Check::Token,
            detail: format!("the gateway refused the token ({p})"),
        }),
        _ if status == 503 => Err(Error::NoNode),
        _ => Err(Error::Protocol {
            party: Party::Gateway,
            detail: format!(
                "inner status {status}{}",
                problem.map(|p| format!(" ({p})")).unwrap_or_default()
            ),
        }),
    }
}

/// The session ended under us (node gone, session expired): re-attest and retry.
struct Lost;

fn session_error(e: SessionError, findings: &Findings) -> Error {
    match e {
        SessionError::Verification(r) => {
            let (check, detail) = classify(&r, findings);
            Error::Check { check, detail }
        }
        other => Error::Protocol {
            party: Party::Gateway,
            detail: format!("session: {other}"),
        },
    }
}

impl Client {
    /// A client for `config`, spending tokens from `tokens`, with the default
    /// [`Timeouts`]. Nothing is contacted yet.
    pub fn new(config: ClientConfig, tokens: Arc<dyn TokenSource>) -> Result<Client, Error> {
        Client::with_timeouts(config, tokens, Timeouts::default())
    }

    /// [`Client::new`] with other timeouts (see [`Timeouts`]).
    pub fn with_timeouts(
        config: ClientConfig,
        tokens: Arc<dyn TokenSource>,
        timeouts: Timeouts,
    ) -> Result<Client, Error> {
        let l = &config.policy.ledger;
        let trust = LedgerTrust::new(&l.log_vkey, &l.witness_vkeys, l.witness_quorum as usize)
            .map_err(|e| Error::Check {
                check: Check::Checkpoint,
                detail: format!("the trust policy's ledger keys are unusable: {e}"),
            })?;
        let http = timeouts.http_client().map_err(|e| Error::Protocol {
            party: Party::Relay,
            detail: e.to_string(),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                timeouts,
                trust,
                tokens,
                relay: RelayState::default(),
                state: tokio::sync::Mutex::new(State {
                    wire: None,
                    session: None,
                }),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Open a fresh session (every check repeated) and report what was verified. Sends no
    /// request content; the session is kept for the next request.
    pub async fn verify(&self) -> Result<VerificationReport, Error> {
        let mut st = self.inner.state.lock().await;
        st.session = None;
        let s = self.inner.open(&mut st).await?;
        let report = s.report.clone();
        st.session = Some(s);
        Ok(report)
    }

    /// End the session now (`DELETE /v1/sessions/<id>`, no token needed), so the node
    /// drops and zeroizes its state at once instead of at its idle timeout. Waits for any
    /// request in flight. Best effort: a node that is already gone needs no goodbye.
    pub async fn close(&self) {
        let mut st = self.inner.state.lock().await;
        let Some(mut session) = st.session.take() else {
            return;
        };
        session.engine.close();
        let Some((wire, _)) = &st.wire else {
            return;
        };
        let mut req = bhttp::Request::new(
            "DELETE",
            "https",
            "gateway",
            &format!("/v1/sessions/{}", session.id),
        );
        req.content = Vec::new();
        if let Err(e) = wire.send(&req).await {
            tracing::debug!(error = %e, "session close not delivered");
        }
    }

    /// Summarise the `selection` of `chat` (`--last N`, `--since`; see
    /// [`crate::chat::Chat::select`]).
    ///
    /// Before anything leaves the device, in this order: AI features must be on
    /// ([`Error::ConsentRequired`], [`crate::consent`]); the chat must not be protected,
    /// by the person or by its Advanced Chat Privacy setting ([`Error::ChatProtected`],
    /// [`crate::protect`]); the selection must fit the node's limits ([`Error::Chat`]).
    /// The whole chat is passed, not only the selected messages, so that a protected chat
    /// is recognised from everything the export says about it.
    pub async fn summarize(
        &self,
        chat: &Chat,
        selection: &Selection,
        max_tokens: Option<u32>,
    ) -> Result<TextStream, Error> {
        #[derive(Serialize)]
        struct Line<'a> {
            sender: &'a str,
            #[serde(with = "time::serde::rfc3339")]
            time: time::OffsetDateTime,
            text: &'a str,
        }
        self.may_summarize(chat)?;
        let messages = chat.select(selection, &Limits::default())?;
        let lines: Vec<Line<'_>> = messages
            .iter()
            .map(|m| Line {
                sender: &m.sender,
                time: m.time,
                text: &m.text,
            })
            .collect();
        let body = serde_json::json!({
            "summarize": { "messages": lines },
            "max_tokens": max_tokens,
        });
        self.request(body)
    }

    /// Whether `chat` may be summarised at all: AI features are on, and the chat is not
    /// protected. Local files only; contacts nobody. [`Client::summarize`] calls it too;
    /// an app calls it first to decide what to show before it verifies or sends anything.
    pub fn may_summarize(&self, chat: &Chat) -> Result<(), Error> {
        self.require_consent()?;
        match ProtectedChats::load(&self.inner.config.protected_chats)?.protection(chat) {
            Some(p) => Err(Error::ChatProtected(p)),
            None => Ok(()),
        }
    }

    /// The person's consent, read fresh for every request (turning AI features off takes
    /// effect at once, even in a long-running app).
    fn require_consent(&self) -> Result<(), Error> {
        Consent::load(&self.inner.config.consent_state)?.require()
    }

    /// Suggest a rewrite of `draft` in `tone` (`friendly`, `formal`, `concise`,
    /// `apologetic`, `enthusiastic`; the node checks it).
    pub async fn suggest(
        &self,
        draft: &str,
        tone: &str,
        max_tokens: Option<u32>,
    ) -> Result<TextStream, Error> {
        self.require_consent()?;
        if draft.trim().is_empty() {
            return Err(Error::InvalidRequest("the draft is empty"));
        }
        let body = serde_json::json!({
            "suggest": { "draft": draft, "tone": tone },
            "max_tokens": max_tokens,
        });
        self.request(body)
    }

    fn request(&self, body: serde_json::Value) -> Result<TextStream, Error> {
        let payload = Zeroizing::new(
            serde_json::to_vec(&body)
                .map_err(|_| Error::InvalidRequest("request does not serialise"))?,
        );
        drop(body);
        let (tx, rx) = mpsc::channel(64);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            if let Err(e) = inner.run(&payload, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(TextStream { rx })
    }
}

impl Inner {
    /// Key config checked against a fresh ledger view (also refreshing the stored checkpoint).
    async fn ledger_and_wire(&self, st: &mut State) -> Result<Arc<LedgerView>, Error> {
        let cfg = &self.config;
        let last = load_last_seen(&cfg.checkpoint_state)?;
        let view = LedgerView::fetch(
            &self.http,
            &cfg.endpoints.ledger,
            &self.trust,
            last.as_ref(),
            self.timeouts.fetch,
        )
        .await?;
        let now_s = now().as_secs();
        // A log that stopped advancing for this device shows old cosignatures only.
        if let Some(max) = cfg.policy.ledger.max_cosignature_age_secs {
            view.check_fresh(now_s, max)?;
        }
        // Compare-and-advance under a file lock: another client sharing the file may have
        // stored a newer checkpoint meanwhile, which must not be rolled back.
        advance_last_seen(&cfg.checkpoint_state, view.checkpoint(), |size, root| {
            view.is_prefix(size, root)
        })?;
        let logged = view.inclusions()?;
        // Key configs come from the verified ledger view, or from a key-config mirror (a
        // CDN) whose offer must then be in the ledger too; never from the gateway, which
        // would learn the device's address (see `Endpoints::key_config_host`).
        let (offered, source) = match &cfg.endpoints.key_config_host {
            Some(host) => (
                wire::fetch_key_configs_within(&self.http, host, self.timeouts.fetch)
                    .await
                    .map_err(|e| wire_error(e, Party::KeyConfigHost, host))?,
                host.as_str(),
            ),
            None => (
                wire::logged_key_configs(&logged, now_s),
                cfg.endpoints.ledger.as_str(),
            ),
        };
        let key = wire::check_logged(&offered, &logged, now_s)
            .map_err(|e| wire_error(e, Party::KeyConfigHost, source))?;
        let client = WireClient::new(self.http.clone(), cfg.endpoints.relay.clone(), key.clone())
            .with_relay_mode(cfg.endpoints.relay_mode, self.relay.clone());
        st.wire = Some((client, key));
        Ok(Arc::new(view))
    }

    fn inner_request(path: &str, auth: Option<String>, body: Vec<u8>) -> bhttp::Request {
        let mut req = bhttp::Request::new("POST", "https", "gateway", path);
        if let Some(a) = auth {
            req.headers.append("authorization", a.into_bytes());
        }
        req.content = body;
        req
    }

    async fn token(&self) -> Result<String, Error> {
        self.tokens.authorization().await
    }

    /// Open and verify a new session. A node that died moments ago may still be picked
    /// until the gateway's next health check; such an attempt (`node-gone`) is repeated,
    /// at most three times in all, a second apart, each with a fresh handshake.
    async fn open(&self, st: &mut State) -> Result<Session, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.open_once(st).await {
                Err(Error::SessionLost) if attempt < 3 => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                other => return other,
            }
        }
    }

    async fn open_once(&self, st: &mut State) -> Result<Session, Error> {
        let view = self.ledger_and_wire(st).await?;
        let Some((wire, key)) = st.wire.clone() else {
            return Err(Error::Protocol {
                party: Party::KeyConfigHost,
                detail: "no key configuration".into(),
            });
        };
        let findings: SharedFindings = Arc::new(Mutex::new(Findings::default()));
        let policy = &self.config.policy;
        let mut node_policy = NodePolicy::new(Duration::from_secs(policy.freshness_secs));
        node_policy.require_gpu = policy.require_gpu;
        node_policy.allow_unattested_model = policy.allow_unattested_model;
        if let Some(age) = policy.max_certificate_age_secs {
            node_policy.max_certificate_age = Duration::from_secs(age);
        }
        let verifier = NodeVerifier::new(
            node_policy,
            Arc::new(evidence_verifier(policy.clone(), Arc::clone(&findings))),
            Arc::new(inclusion_verifier(
                self.trust.clone(),
                Arc::clone(&view),
                policy.ledger.max_release_age_secs,
                Arc::clone(&findings),
            )),
        );
        let t0 = now();
        let mut engine = ClientEngine::new(verifier, SessionLimits::default(), t0)
            .map_err(|e| session_error(e, &Findings::default()))?;
        let hello = engine.get_outgoing().ok_or(Error::Protocol {
            party: Party::Gateway,
            detail: "the TLS engine produced no ClientHello".into(),
        })?;
        let auth = self.token().await?;
        let resp = wire
            .send(&Self::inner_request("/v1/sessions", Some(auth), hello))
            .await
            .map_err(|e| wire_error(e, Party::Relay, &self.config.endpoints.relay))?;
        if resp.status != 200 {
            let problem = problem_name(&resp.content);
            // A node that died before the gateway's health check noticed answers
            // `node-gone`: the caller may try once more (the gateway then marks it down).
            return match inner_status_error(resp.status, problem.as_deref()) {
                Ok(Lost) => Err(Error::SessionLost),
                Err(e) => Err(e),
            };
        }
        let id = resp
            .headers
            .get(SESSION_ID_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
            .ok_or(Error::Protocol {
                party: Party::Gateway,
                detail: "no session id in the answer".into(),
            })?;
        let res = engine.put_incoming(&resp.content, now());
        let f = findings.lock().map(|g| g.clone()).unwrap_or_default();
        res.map_err(|e| session_error(e, &f))?;
        let node = engine.verified_node().ok_or(Error::Check {
            check: Check::Handshake,
            detail: "the handshake did not complete with a verified node".into(),
        })?;
        let report = build_report(node, &f, &view, &key, self.trust.quorum(), t0.as_secs());
        Ok(Session { id, engine, report })
    }

    /// Send one request on the current session (opening one if needed); on a lost
    /// session, re-attest and resend once.
    async fn run(
        &self,
        payload: &[u8],
        tx: &mpsc::Sender<Result<Event, Error>>,
    ) -> Result<(), Error> {
        let mut st = self.state.lock().await;
        let mut reattested = false;
        loop {
            let mut session = match st.session.take() {
                Some(s) => s,
                None => {
                    let s = match self.open(&mut st).await {
                        Ok(s) => s,
                        Err(Error::SessionLost) if !reattested => {
                            reattested = true;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if reattested {
                        let _ = tx
                            .send(Ok(Event::Reattested(Box::new(s.report.clone()))))
                            .await;
                    }
                    s
                }
            };
            match self.exchange(&st, &mut session, payload, tx).await? {
                Outcome::Done => {
                    st.session = Some(session);
                    return Ok(());
                }
                // The caller dropped its stream mid-answer: the rest of this answer's
                // records were never read, so the session's TLS stream is out of step.
                // Forget it (the node expires it); the next request opens a fresh,
                // fully verified session instead of failing on stale records.
                Outcome::Abandoned => return Ok(()),
                Outcome::Lost if !reattested => {
                    // Drop the old session's state (keys zeroized by rustls on drop) and
                    // go round once more with a fresh, fully verified session.
                    reattested = true;
                }
                Outcome::Lost => return Err(Error::SessionLost),
            }
        }
    }

    async fn exchange(
        &self,
        st: &State,
        s: &mut Session,
        payload: &[u8],
        tx: &mpsc::Sender<Result<Event, Error>>,
    ) -> Result<Outcome, Error> {
        let Some((wire, _)) = &st.wire else {
            return Ok(Outcome::Lost);
        };
        let proto = |e: SessionError| session_error(e, &Findings::default());
        let request_sha256 = confide_session::receipt::request_digest(payload);
        let mut response = confide_session::receipt::ResponseDigest::new();
        s.engine
            .send(&Frame::new(FrameKind::Request, payload.to_vec()))
            .map_err(proto)?;
        let mut out = Vec::new();
        while let Some(b) = s.engine.get_outgoing() {
            out.extend_from_slice(&b);
        }
        let auth = self.token().await?;
        let path = format!("/v1/sessions/{}", s.id);
        let mut resp = match wire
            .send_for_stream(&Self::inner_request(&path, Some(auth), out))
            .await
        {
            Ok(r) => r,
            // A relay without chunked OHTTP gets the whole answer from the gateway; a node
            // that died before finishing shows up as this problem, before any text. Like
            // a cut stream in chunked mode, that means re-attest and resend (ADR 0402).
            Err(WireError::Status {
                status: 502,
                problem: Some(p),
            }) if p.ends_with(":inner-response-failed") => return Ok(Outcome::Lost),
            Err(e) => return Err(wire_error(e, Party::Relay, &self.config.endpoints.relay)),
        };
        if resp.status() != 200 {
            let status = resp.status();
            let body = resp.collect(16 * 1024).await.unwrap_or_default();
            let problem = problem_name(&body);
            return inner_status_error(status, problem.as_deref()).map(|Lost| Outcome::Lost);
        }
        if !resp.is_streamed() && tx.send(Ok(Event::Unstreamed)).await.is_err() {
            return Ok(Outcome::Abandoned);
        }
        let mut sent_text = false;
        loop {
            let data = match resp.next_data().await {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) if !sent_text => {
                    tracing::debug!(kind = "stream_cut", "session stream ended early");
                    let _ = e;
                    return Ok(Outcome::Lost);
                }
                Err(e) => return Err(wire_error(e, Party::Gateway, &self.config.endpoints.relay)),
            };
            s.engine.put_incoming(&data, now()).map_err(proto)?;
            while let Some(frame) = s.engine.recv() {
                match frame.kind() {
                    FrameKind::StreamChunk => {
                        response.update(frame.payload());
                        let text =
                            Zeroizing::new(String::from_utf8_lossy(frame.payload()).into_owned());
                        sent_text = true;
                        if tx.send(Ok(Event::Text(text))).await.is_err() {
                            return Ok(Outcome::Abandoned);
                        }
                    }
                    FrameKind::End => {
                        let v: serde_json::Value =
                            serde_json::from_slice(frame.payload()).unwrap_or_default();
                        if let Some(kind) = v.get("error").and_then(|k| k.as_str()) {
                            return Err(Error::Node {
                                kind: node_error_kind(kind),
                            });
                        }
                        let finish = v
                            .get("finish")
                            .and_then(|f| f.as_str())
                            .unwrap_or("other")
                            .to_owned();
                        let completion_tokens = v
                            .get("completion_tokens")
                            .and_then(serde_json::Value::as_u64);
                        let label = self.accept_receipt(
                            s,
                            v.get("receipt"),
                            request_sha256,
                            std::mem::take(&mut response).finish(),
                        )?;
                        let _ = tx
                            .send(Ok(Event::End {
                                finish,
                                completion_tokens,
                                label: Box::new(label),
                            }))
                            .await;
                        return Ok(Outcome::Done);
                    }
                    _ => {
                        return Err(Error::Protocol {
                            party: Party::Gateway,
                            detail: "unexpected frame type from the node".into(),
                        });
                    }
                }
            }
        }
        if sent_text {
            Err(Error::Protocol {
                party: Party::Gateway,
                detail: "the answer stopped before its end".into(),
            })
        } else {
            Ok(Outcome::Lost)
        }
    }
}

impl Inner {
    /// Check the answer's receipt against this session, keep it, and label the answer.
    /// A missing or wrong receipt fails the answer: the device cannot show who processed
    /// it.
    fn accept_receipt(
        &self,
        s: &Session,
        receipt: Option<&serde_json::Value>,
        request_sha256: [u8; 32],
        response_sha256: [u8; 32],
    ) -> Result<AnswerLabel, Error> {
        let field = |k: &str| receipt.and_then(|r| r.get(k)).and_then(|v| v.as_str());
        let (Some(body), Some(sig)) = (field("body"), field("signature")) else {
            return Err(Error::Receipt(ReceiptError::Missing));
        };
        let (Some(node), Some(cert)) = (s.engine.verified_node(), s.engine.peer_certificate())
        else {
            return Err(Error::Receipt(ReceiptError::Missing));
        };
        let checked = receipt::check_in_session(
            body,
            sig,
            cert,
            &receipt::Expected {
                request_sha256,
                response_sha256,
                node,
                verified_at: s.report.verified_at,
                now: now().as_secs(),
            },
        )
        .map_err(Error::Receipt)?;
        let mut verified = VerifiedReceipt {
            body: checked,
            ledger_origin: s.report.ledger_origin.clone(),
            path: None,
        };
        if self.config.keep_receipts {
            verified.path = Some(receipt::store(
                &self.config.receipts_dir,
                &verified.body,
                sig,
                cert,
                &s.report.ledger_origin,
            )?);
        }
        Ok(AnswerLabel {
            platform: s.report.platform.clone(),
            simulated: s.report.simulated,
            measurement: s.report.measurement.clone(),
            ledger_origin: s.report.ledger_origin.clone(),
            ledger_index: s.report.ledger_index,
            receipt_id: verified.id(),
            receipt_path: verified.path,
        })
    }
}

enum Outcome {
    /// The answer was read to its end; the session can carry the next request.
    Done,
    /// The caller stopped reading before the end; the session must not be reused.
    Abandoned,
    /// The node or the session went away; re-attest.
    Lost,
}

fn build_report(
    node: &confide_ratls::VerifiedNode,
    f: &Findings,
    view: &LedgerView,
    key: &LoggedKeyConfig,
    quorum: usize,
    at: u64,
) -> VerificationReport {
    let cp = node.checkpoint();
    let ok = |check: Check, detail: String| CheckOutcome {
        check,
        title: check.title(),
        passed: true,
        detail,
    };
    let platform = node.platform().to_owned();
    let checks = vec![
        ok(Check::HardwareRoot, {
            let cpu = if f.simulated {
                "evidence signed by the SIMULATED vendor root pinned in your policy (no hardware protection)".to_owned()
            } else {
                format!("{platform} evidence chains to the vendor root pinned in your policy")
            };
            match &f.gpu {
                None => cpu,
                Some(g) => format!(
                    "{cpu}; GPU evidence chains to the {}NVIDIA root pinned in your policy, \
                         in CC mode {}, its SPDM nonce is this certificate's key and the CPU \
                         report binds it ({} measurement blocks)",
                    if g.simulated { "SIMULATED " } else { "" },
                    g.cc_mode,
                    g.blocks
                ),
            }
        }),
        ok(
            Check::KeyBinding,
            "the evidence's REPORT_DATA binds this TLS certificate's key".into(),
        ),
        ok(
            Check::Measurement,
            format!(
                "measurement {} ({} compared), model digest {} and configuration digest {} \
                 are the ones the release lists",
                hex::encode(node.measurement()),
                if f.pinned.is_empty() {
                    "every pinned register".to_owned()
                } else {
                    f.pinned.join(", ")
                },
                node.model_digest().map_or_else(|| "-".into(), hex::encode),
                node.config_digest().map_or_else(|| "-".into(), hex::encode),
            ),
        ),
        ok(
            Check::LedgerEntry,
            format!(
                "release manifest at ledger index {} proven included (RFC 9162 inclusion proof)",
                node.ledger_index()
            ),
        ),
        ok(
            Check::Checkpoint,
            format!(
                "checkpoint of {} (size {}) signed by the ledger and consistent with this device's view (size {})",
                cp.origin,
                cp.size,
                view.checkpoint().size()
            ),
        ),
        ok(
            Check::Witnesses,
            format!(
                "{} witnesses cosigned ({} required): {}",
                f.cosigners.len(),
                quorum,
                f.cosigners.join(", ")
            ),
        ),
        ok(
            Check::Freshness,
            match f.evidence_time {
                Some(t) => {
                    format!("certificate, evidence (made at {t}) and release are valid now ({at})")
                }
                None => format!("certificate and release are valid now ({at})"),
            },
        ),
        ok(
            Check::KeyConfig,
            format!(
                "OHTTP key id {} is logged at ledger index {}",
                key.config().key_id(),
                key.ledger_index()
            ),
        ),
        ok(
            Check::Token,
            "an anonymous Privacy Pass token was accepted by the gateway".into(),
        ),
        ok(
            Check::Handshake,
            "TLS 1.3 handshake signed with the attested key".into(),
        ),
    ];
    VerificationReport {
        platform,
        simulated: f.simulated,
        measurement: hex::encode(node.measurement()),
        model_digest: node.model_digest().map(hex::encode),
        ledger_index: node.ledger_index(),
        ledger_origin: cp.origin.clone(),
        checkpoint_size: cp.size,
        checkpoint_root: hex::encode(cp.root_hash),
        device_checkpoint_size: view.checkpoint().size(),
        cosigners: f.cosigners.clone(),
        witness_quorum: quorum,
        certificate_sha256: hex::encode(node.certificate_sha256()),
        verified_at: at,
        evidence_time: f.evidence_time,
        key_id: key.config().key_id(),
        key_config_index: key.ledger_index(),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_map_to_typed_errors() {
        assert!(matches!(
            inner_status_error(404, Some("session-unknown")),
            Ok(Lost)
        ));
        assert!(matches!(
            inner_status_error(502, Some("node-gone")),
            Ok(Lost)
        ));
        assert!(matches!(
            inner_status_error(504, Some("node-timeout")),
            Ok(Lost)
        ));
        assert!(matches!(
            inner_status_error(503, Some("no-node-available")),
            Err(Error::NoNode)
        ));
        assert!(matches!(
            inner_status_error(401, Some("token-replayed")),
            Err(Error::Check {
                check: Check::Token,
                ..
            })
        ));
        assert!(matches!(
            inner_status_error(500, None),
            Err(Error::Protocol { .. })
        ));
        assert_eq!(
            problem_name(br#"{"type":"urn:confide:problem:node-gone","title":"x"}"#).as_deref(),
            Some("node-gone")
        );
        assert_eq!(problem_name(b"not json"), None);
        assert_eq!(problem_name(br#"{"type":"about:blank"}"#), None);
    }

    #[test]
    fn node_error_kinds() {
        assert_eq!(node_error_kind("too-large"), "request too large");
        assert_eq!(node_error_kind("x"), "unknown error kind");
    }
}
