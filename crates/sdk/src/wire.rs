//! The client side of the wire (DESIGN.md phases 2-3): fetch the gateway's OHTTP key
//! configurations, check them against the ledger, encapsulate Binary HTTP requests,
//! send them through the relay, and decapsulate (or stream) the responses.
//!
//! Standards: RFC 9458 (OHTTP) §3 key configurations, §4 encapsulation, §5.3 the
//! `ohttp-key` problem, §6.5.1 the inner `Date` field; RFC 9292 (Binary HTTP);
//! draft-ietf-ohai-chunked-ohttp for streamed responses.
//!
//! Key consistency: a key configuration is only usable as a [`LoggedKeyConfig`], which
//! only [`check_logged`] creates, from ledger entries whose inclusion was verified
//! (`confide_release::VerifiedInclusion`). A gateway that hands one device a personal
//! key cannot also have logged it without every monitor seeing it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use confide_ohttp::bhttp::{self, Fields, ResponseStream, StreamEvent};
use confide_ohttp::{
    CHUNKED_REQUEST_MEDIA_TYPE, CHUNKED_RESPONSE_MEDIA_TYPE, ChunkOpener, ClientRequest,
    KEYS_MEDIA_TYPE, KeyConfig, REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE,
};
use rand_core::OsRng;

/// The IANA `ohttp-key` problem type (RFC 9458 §5.3).
const OHTTP_KEY_PROBLEM: &str = "https://iana.org/assignments/http-problem-types#ohttp-key";
/// Largest key-config document accepted.
const MAX_KEYS_DOC: usize = 64 * 1024;

/// What can go wrong on the wire. Messages never carry request or response content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The relay, gateway or key host could not be reached, or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// A non-success HTTP status, with the problem type when one was given.
    #[error("HTTP status {status}{}", problem.as_deref().map(|p| format!(" ({p})")).unwrap_or_default())]
    Status {
        /// The status code.
        status: u16,
        /// The RFC 9457 problem type, if the body was a problem document.
        problem: Option<String>,
    },
    /// The gateway refused the key configuration (RFC 9458 §5.3): refetch keys.
    #[error("the gateway rejected the key configuration; refetch it")]
    KeyConfigRejected,
    /// An unexpected `Content-Type`.
    #[error("unexpected media type {0:?}")]
    MediaType(String),
    /// None of the offered key configurations is in the verified ledger entries.
    #[error("no offered key configuration is logged in the ledger and valid now")]
    KeyConfigNotLogged,
    /// The offered key configurations are logged, but only in entries that a newer valid
    /// entry superseded more than [`KEY_ROTATION_OVERLAP_SECS`] ago: a stale (or targeted)
    /// offer. The newest logged key is the only one in use.
    #[error(
        "the offered key configuration is superseded by a newer logged one (ledger index \
         {newest}); the key source is stale or singles this device out"
    )]
    KeyConfigSuperseded {
        /// Ledger index of the newest valid key-config entry.
        newest: u64,
    },
    /// A body above the configured limit.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// OHTTP, chunking or Binary HTTP failed (includes tampering and truncation).
    #[error("OHTTP: {0}")]
    Ohttp(#[from] confide_ohttp::Error),
}

fn transport(e: reqwest::Error) -> WireError {
    // reqwest's Display may include the URL, never bodies.
    WireError::Transport(e.without_url().to_string())
}

fn media_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Read a whole body, refusing more than `limit` bytes.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if out.len() + chunk.len() > limit {
            return Err(WireError::TooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Turn a non-200 answer into an error, reading the problem type if there is one.
async fn status_error(resp: reqwest::Response) -> WireError {
    let status = resp.status().as_u16();
    let is_problem = media_type(&resp) == "application/problem+json";
    let problem = if is_problem {
        read_limited(resp, 16 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
    } else {
        None
    };
    if problem.as_deref() == Some(OHTTP_KEY_PROBLEM) {
        return WireError::KeyConfigRejected;
    }
    WireError::Status { status, problem }
}

/// Media types accepted for a key-config document: the registered one, and what a plain
/// static file server or object store labels a file it has no type for. The label proves
/// nothing either way; the bytes are used only if [`check_logged`] finds them in the
/// ledger, so a mirror needs no special configuration to serve them.
const KEY_DOC_MEDIA_TYPES: [&str; 3] = [KEYS_MEDIA_TYPE, "application/octet-stream", ""];

/// Fetch `application/ohttp-keys` from a key-config host (a CDN or static mirror, or the
/// gateway's `/ohttp-keys`). The result is not yet trusted: pass it to [`check_logged`].
pub async fn fetch_key_configs(
    http: &reqwest::Client,
    url: &str,
) -> Result<Vec<KeyConfig>, WireError> {
    fetch_key_configs_within(http, url, crate::config::Timeouts::default().fetch).await
}

/// [`fetch_key_configs`], giving up after `timeout` for the whole fetch.
pub async fn fetch_key_configs_within(
    http: &reqwest::Client,
    url: &str,
    timeout: std::time::Duration,
) -> Result<Vec<KeyConfig>, WireError> {
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(transport)?;
    if !resp.status().is_success() {
        return Err(status_error(resp).await);
    }
    let mt = media_type(&resp);
    if !KEY_DOC_MEDIA_TYPES.contains(&mt.as_str()) {
        return Err(WireError::MediaType(mt));
    }
    let body = read_limited(resp, MAX_KEYS_DOC).await?;
    Ok(KeyConfig::decode_list(&body)?)
}

/// A key configuration that was found in a verified ledger entry valid at the time of
/// the check. Only [`check_logged`] makes one.
#[derive(Debug, Clone)]
pub struct LoggedKeyConfig {
    config: KeyConfig,
    ledger_index: u64,
}

impl LoggedKeyConfig {
    /// The configuration.
    pub fn config(&self) -> &KeyConfig {
        &self.config
    }
    /// The ledger index of the entry that logs it.
    pub fn ledger_index(&self) -> u64 {
        self.ledger_index
    }
}

/// How long after a newer key-config entry becomes valid (its `not_before`) the keys of older,
/// still-valid entries are accepted. Within it a key-config mirror or a cached key list may
/// still offer the previous key (the gateway keeps accepting its previous epoch's key for one
/// rotation period, `services/gateway/src/keys.rs`); after it only the newest entry counts, so
/// a key source cannot keep different devices on different keys (partitioning them into
/// groups the gateway can tell apart).
pub const KEY_ROTATION_OVERLAP_SECS: u64 = 3600;

/// A key-config entry valid at `now`, with its decoded list.
struct ValidEntry {
    index: u64,
    not_before: u64,
    configs: Vec<KeyConfig>,
}

/// Verified key-config entries valid at `now`, newest (highest ledger index) first. A
/// malformed list cannot have been offered by anyone; it is skipped (fail closed: if nothing
/// usable remains, [`check_logged`] refuses).
fn valid_entries(logged: &[confide_release::VerifiedInclusion], now: u64) -> Vec<ValidEntry> {
    let mut out: Vec<ValidEntry> = logged
        .iter()
        .filter_map(|inc| match inc.entry() {
            confide_release::LedgerEntry::KeyConfig(entry) if entry.is_valid_at(now) => {
                KeyConfig::decode_list(&entry.key_config)
                    .ok()
                    .map(|configs| ValidEntry {
                        index: inc.index(),
                        not_before: entry.not_before,
                        configs,
                    })
            }
            _ => None,
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.index));
    out
}

/// The entries whose keys may be used at `now`: the newest valid one, and older valid ones
/// only while the newest is younger than [`KEY_ROTATION_OVERLAP_SECS`].
fn usable(entries: &[ValidEntry], now: u64) -> &[ValidEntry] {
    match entries.first() {
        None => entries,
        Some(newest) if now < newest.not_before.saturating_add(KEY_ROTATION_OVERLAP_SECS) => {
            entries
        }
        Some(_) => &entries[..1],
    }
}

/// Choose the key configuration to use from `offered` (a key-config host's list, or
/// [`logged_key_configs`]): one that a verified `key-config` ledger entry valid at `now` (Unix
/// seconds) lists byte for byte. The newest valid entry wins whatever order the offer has; an
/// older entry's key is taken only inside the rotation overlap, and never when the newest's is
/// offered too. Each entry's `key_config` holds `application/ohttp-keys` bytes.
pub fn check_logged(
    offered: &[KeyConfig],
    logged: &[confide_release::VerifiedInclusion],
    now: u64,
) -> Result<LoggedKeyConfig, WireError> {
    let entries = valid_entries(logged, now);
    for entry in usable(&entries, now) {
        if let Some(cfg) = offered.iter().find(|c| entry.configs.contains(c)) {
            return Ok(LoggedKeyConfig {
                config: cfg.clone(),
                ledger_index: entry.index,
            });
        }
    }
    match entries.first() {
        Some(newest)
            if offered
                .iter()
                .any(|c| entries.iter().any(|e| e.configs.contains(c))) =>
        {
            Err(WireError::KeyConfigSuperseded {
                newest: newest.index,
            })
        }
        _ => Err(WireError::KeyConfigNotLogged),
    }
}

/// The gateway key configs that verified ledger entries list as valid at `now`: the newest
/// valid entry's, in its order (after a rotation the newest logged key is the one to use),
/// then, inside the rotation overlap only, older valid entries' keys, each key once.
///
/// This is how a device gets key configs without asking the gateway: every key it may use
/// must be logged anyway (key consistency), so the ledger view is itself a key-config host,
/// and fetching from the gateway would show the gateway the device's address moments
/// before the device's session opens.
pub fn logged_key_configs(
    logged: &[confide_release::VerifiedInclusion],
    now: u64,
) -> Vec<KeyConfig> {
    let entries = valid_entries(logged, now);
    let mut out: Vec<KeyConfig> = Vec::new();
    for entry in usable(&entries, now) {
        for cfg in &entry.configs {
            if !out.contains(cfg) {
                out.push(cfg.clone());
            }
        }
    }
    out
}

/// Whether the relay forwards chunked OHTTP (`message/ohttp-chunked-req`), which a
/// streamed answer needs. RFC 9458 relays need only forward `message/ohttp-req`; many
/// deployed ones (payjoin's `ohttp-relay`, for one) refuse anything else with `415`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelayMode {
    /// Try chunked OHTTP; on a `415` answer, switch to plain messages for the rest of
    /// this client's life (detected once, then remembered).
    #[default]
    Auto,
    /// The relay forwards chunked OHTTP: answers stream piece by piece. A `415` is an
    /// error.
    Chunked,
    /// Plain RFC 9458 messages only: each answer arrives whole, once the node has
    /// finished it.
    Plain,
}

impl RelayMode {
    /// The configuration-file spelling: `auto`, `chunked`, `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayMode::Auto => "auto",
            RelayMode::Chunked => "chunked",
            RelayMode::Plain => "plain",
        }
    }

    /// Parse the configuration-file spelling.
    pub fn parse(s: &str) -> Option<RelayMode> {
        match s {
            "auto" => Some(RelayMode::Auto),
            "chunked" => Some(RelayMode::Chunked),
            "plain" => Some(RelayMode::Plain),
            _ => None,
        }
    }
}

/// What was learnt about the relay, shared by every [`WireClient`] a client makes (they
/// are rebuilt per session, the relay is not).
#[derive(Debug, Clone, Default)]
pub struct RelayState(Arc<AtomicBool>);

impl RelayState {
    /// Whether a `415` has shown that the relay refuses chunked requests.
    pub fn plain_only(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn mark_plain_only(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sends Binary HTTP requests through a relay to the gateway.
#[derive(Debug, Clone)]
pub struct WireClient {
    http: reqwest::Client,
    relay: String,
    config: KeyConfig,
    max_response: usize,
    mode: RelayMode,
    learnt: RelayState,
}

impl WireClient {
    /// A client sending through `relay_url` to the gateway whose logged key is `key`.
    pub fn new(http: reqwest::Client, relay_url: impl Into<String>, key: LoggedKeyConfig) -> Self {
        Self {
            http,
            relay: relay_url.into(),
            config: key.config,
            max_response: 8 << 20,
            mode: RelayMode::Auto,
            learnt: RelayState::default(),
        }
    }

    /// Use `mode` for answers that stream, remembering what is learnt about the relay in
    /// `learnt` (pass the same state to every client for the same relay).
    pub fn with_relay_mode(mut self, mode: RelayMode, learnt: RelayState) -> Self {
        self.mode = mode;
        self.learnt = learnt;
        self
    }

    /// A client with a key configuration that was NOT checked against the ledger. For
    /// development setups without a ledger and for tests only: it gives up key
    /// consistency, so a gateway could single this device out.
    pub fn new_without_ledger_check(
        http: reqwest::Client,
        relay_url: impl Into<String>,
        config: KeyConfig,
    ) -> Self {
        tracing::warn!("OHTTP key configuration used without a ledger check");
        Self {
            http,
            relay: relay_url.into(),
            config,
            max_response: 8 << 20,
            mode: RelayMode::Auto,
            learnt: RelayState::default(),
        }
    }

    /// Limit the size of a non-streamed response and of one streamed unit.
    pub fn with_max_response(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// The key configuration in use.
    pub fn key_config(&self) -> &KeyConfig {
        &self.config
    }

    /// Add a `Date` field if absent, so the gateway can bound replays (RFC 9458 §6.5.1).
    fn with_date(req: &bhttp::Request) -> bhttp::Request {
        let mut req = req.clone();
        if req.headers.get("date").is_none() {
            req.headers.append(
                "date",
                httpdate::fmt_http_date(std::time::SystemTime::now()).into_bytes(),
            );
        }
        req
    }

    /// Send one request and return the whole response.
    pub async fn send(&self, req: &bhttp::Request) -> Result<bhttp::Response, WireError> {
        let encoded = Self::with_date(req).encode();
        let (enc, pending) = ClientRequest::new(&self.config)?.encapsulate(&encoded, &mut OsRng)?;
        let resp = self
            .http
            .post(&self.relay)
            .header(reqwest::header::CONTENT_TYPE, REQUEST_MEDIA_TYPE)
            .body(enc)
            .send()
            .await
            .map_err(transport)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(status_error(resp).await);
        }
        let mt = media_type(&resp);
        if mt != RESPONSE_MEDIA_TYPE {
            return Err(WireError::MediaType(mt));
        }
        let body = read_limited(resp, self.max_response + 64).await?;
        let plain = pending.decapsulate(&body)?;
        Ok(bhttp::Response::decode(&plain)?)
    }

    /// Send one request asking for a chunked (streamed) response. Returns once the
    /// response head has arrived; read the content with [`StreamingResponse::next_data`].
    pub async fn send_streaming(
        &self,
        req: &bhttp::Request,
    ) -> Result<StreamingResponse, WireError> {
        let encoded = Self::with_date(req).encode();
        let (mut body, sealer) =
            ClientRequest::new(&self.config)?.encapsulate_chunked(&mut OsRng)?;
        let (last, pending) = sealer.finish(&encoded)?;
        body.extend_from_slice(&last);
        let resp = self
            .http
            .post(&self.relay)
            .header(reqwest::header::CONTENT_TYPE, CHUNKED_REQUEST_MEDIA_TYPE)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(status_error(resp).await);
        }
        let mt = media_type(&resp);
        if mt != CHUNKED_RESPONSE_MEDIA_TYPE {
            return Err(WireError::MediaType(mt));
        }
        let mut s = StreamingResponse {
            resp: Some(resp),
            opener: Some(pending.decoder(self.max_response)),
            parser: Some(ResponseStream::new(self.max_response)),
            events: VecDeque::new(),
            status: 0,
            headers: Fields::new(),
            trailers: None,
        };
        match s.next_event().await? {
            Some(StreamEvent::Head { status, headers }) => {
                s.status = status;
                s.headers = headers;
                Ok(s)
            }
            Some(_) | None => Err(confide_ohttp::Error::Truncated("streamed response head").into()),
        }
    }
}

/// An answer to [`WireClient::send_for_stream`]: streamed when the relay forwards
/// chunked OHTTP, whole when it does not.
#[derive(Debug)]
pub enum Answer {
    /// Chunked OHTTP: content arrives piece by piece. Boxed: it holds the decoder
    /// state, much larger than a finished answer.
    Streamed(Box<StreamingResponse>),
    /// A plain RFC 9458 response: all content at once.
    Whole {
        /// The inner response status.
        status: u16,
        /// The content not yet handed out.
        content: Option<Vec<u8>>,
    },
}

impl Answer {
    /// The inner response status.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Streamed(s) => s.status(),
            Answer::Whole { status, .. } => *status,
        }
    }

    /// Whether content arrives as it is produced.
    pub fn is_streamed(&self) -> bool {
        matches!(self, Answer::Streamed(_))
    }

    /// The next piece of content; `None` at the authenticated end.
    pub async fn next_data(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        match self {
            Answer::Streamed(s) => s.next_data().await,
            Answer::Whole { content, .. } => Ok(content.take()),
        }
    }

    /// The rest of the content in one buffer (bounded by `limit`).
    pub async fn collect(self, limit: usize) -> Result<Vec<u8>, WireError> {
        match self {
            Answer::Streamed(s) => s.collect(limit).await,
            Answer::Whole { content, .. } => {
                let c = content.unwrap_or_default();
                if c.len() > limit {
                    return Err(WireError::TooLarge(limit));
                }
                Ok(c)
            }
        }
    }
}

impl WireClient {
    /// Send a request whose answer the caller wants streamed: as chunked OHTTP when the
    /// relay forwards it, otherwise as one plain message (see [`RelayMode`]). In `Auto`
    /// mode a `415` from the relay switches this and every later request to plain
    /// messages; the refused request never reached the gateway, so resending the same
    /// inner request (and the token in it) is safe.
    pub async fn send_for_stream(&self, req: &bhttp::Request) -> Result<Answer, WireError> {
        let plain = match self.mode {
            RelayMode::Plain => true,
            RelayMode::Chunked => false,
            RelayMode::Auto => self.learnt.plain_only(),
        };
        if !plain {
            match self.send_streaming(req).await {
                Ok(s) => return Ok(Answer::Streamed(Box::new(s))),
                Err(WireError::Status { status: 415, .. }) if self.mode == RelayMode::Auto => {
                    tracing::info!(
                        "the relay refuses chunked OHTTP (415); answers now arrive whole"
                    );
                    self.learnt.mark_plain_only();
                }
                Err(e) => return Err(e),
            }
        }
        let resp = self.send(req).await?;
        Ok(Answer::Whole {
            status: resp.status,
            content: Some(resp.content),
        })
    }
}

/// A response arriving as chunked OHTTP. Every piece is authenticated as it arrives;
/// the end is authenticated too, so a cut stream is an error, never a short answer.
#[derive(Debug)]
pub struct StreamingResponse {
    resp: Option<reqwest::Response>,
    opener: Option<ChunkOpener>,
    parser: Option<ResponseStream>,
    events: VecDeque<StreamEvent>,
    status: u16,
    headers: Fields,
    trailers: Option<Fields>,
}

impl StreamingResponse {
    /// The inner response status.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// The inner response header fields.
    pub fn headers(&self) -> &Fields {
        &self.headers
    }
    /// The trailer fields, once the stream has ended.
    pub fn trailers(&self) -> Option<&Fields> {
        self.trailers.as_ref()
    }

    async fn next_event(&mut self) -> Result<Option<StreamEvent>, WireError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(Some(ev));
            }
            let Some(resp) = self.resp.as_mut() else {
                return Ok(None);
            };
            let (Some(opener), Some(parser)) = (self.opener.as_mut(), self.parser.as_mut()) else {
                return Ok(None);
            };
            match resp.chunk().await.map_err(transport)? {
                Some(bytes) => {
                    for plain in opener.push(&bytes)? {
                        self.events.extend(parser.push(&plain)?);
                    }
                }
                None => {
                    self.resp = None;
                    let (Some(opener), Some(mut parser)) = (self.opener.take(), self.parser.take())
                    else {
                        return Ok(None);
                    };
                    let last = opener.finish()?;
                    self.events.extend(parser.push(&last)?);
                    self.events.extend(parser.finish()?);
                }
            }
        }
    }

    /// The next piece of content; `None` once the authenticated end has arrived.
    pub async fn next_data(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            match self.next_event().await? {
                Some(StreamEvent::Data(d)) => return Ok(Some(d)),
                Some(StreamEvent::End(t)) => {
                    self.trailers = Some(t);
                    return Ok(None);
                }
                Some(_) => continue,
                None => {
                    return if self.trailers.is_some() {
                        Ok(None)
                    } else {
                        Err(confide_ohttp::Error::Truncated("streamed response").into())
                    };
                }
            }
        }
    }

    /// Read the rest of the content into one buffer (bounded by `limit`).
    pub async fn collect(mut self, limit: usize) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        while let Some(d) = self.next_data().await? {
            if out.len() + d.len() > limit {
                return Err(WireError::TooLarge(limit));
            }
            out.extend_from_slice(&d);
        }
        Ok(out)
    }
}
