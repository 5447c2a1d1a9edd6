//! A sans-I/O session engine between a device and an attested node.
//!
//! Each side holds one engine per session and moves opaque bytes:
//!
//! ```text
//!   device                                   node
//!   ClientEngine                             ServerEngine
//!   get_outgoing() ──► OHTTP ─► relay ─► gateway (session id) ─► put_incoming()
//!   put_incoming() ◄── OHTTP ◄─ relay ◄─ gateway              ◄── get_outgoing()
//! ```
//!
//! The bytes are TLS 1.3 records (RFC 8446 section 5) of an RA-TLS connection
//! ([`confide_ratls`]); the carrier (OHTTP through relay and gateway, or TCP
//! between nodes) never sees plaintext. Inside, application messages are
//! length-prefixed [`Frame`]s, which a write can pad to a bucket with a zero-filled
//! padding frame ([`padded_len`]) so that record sizes do not follow content: the
//! client pads every request, the node its streamed units.
//!
//! Guarantees:
//! - The client engine refuses application data ([`SessionError::NotEstablished`])
//!   until the handshake finished *and* a [`VerifiedNode`] exists for the exact
//!   certificate the connection used. Nothing the caller offers is buffered
//!   ahead of verification, so nothing can leave early.
//! - Replayed, reordered, dropped or altered records fail the TLS record
//!   protection (RFC 8446 section 5.3 per-record nonces) and the engine fails
//!   closed: every later call returns [`SessionError::Failed`].
//! - Plaintext lives in zeroizing buffers (frame reassembly, received frames);
//!   rustls' own internal buffers are outside this crate's control.
//! - No 0-RTT, no resumption, no tickets (see `confide_ratls` config).
//!
//! Time is passed to every call that may verify a certificate.

mod error;
mod frame;
pub mod receipt;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use confide_ratls::rustls::pki_types::{CertificateDer, UnixTime};
use confide_ratls::rustls::{ClientConnection, Connection, ServerConfig, ServerConnection};
use confide_ratls::{ManualClock, NodeCertResolver, NodeVerifier, PeerVerification, VerifiedNode};
use zeroize::Zeroizing;

pub use error::SessionError;
pub use frame::{Frame, FrameKind, HEADER_LEN, MAX_PADDING, RECORD_PLAINTEXT, padded_len};
use frame::{append_zeroizing, consume_front};

/// The bucket floor of every frame a [`ClientEngine`] sends: a request is padded to
/// 1 KiB, or the next power of two up to 16 KiB, or the next multiple of 16 KiB
/// ([`padded_len`]). Most requests (a suggestion, a short summary) then look alike
/// on the wire; a long summary reveals only its bucket.
pub const REQUEST_MIN_BUCKET: usize = 1024;

/// Size limits of one session.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Largest frame payload accepted or sent.
    pub max_frame_payload: usize,
    /// Largest byte batch accepted by one `put_incoming`.
    pub max_incoming_batch: usize,
    /// Largest total of received frame payloads waiting for `recv`.
    pub max_inbox: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_frame_payload: 1 << 20,
            max_incoming_batch: 4 << 20,
            max_inbox: 4 << 20,
        }
    }
}

/// State shared by both engine roles.
struct Engine {
    conn: Connection,
    clock: Arc<ManualClock>,
    /// Outcome of peer verification; `None` when the peer is not authenticated
    /// (a node serving anonymous devices).
    outcome: Option<PeerVerification>,
    peer: Option<VerifiedNode>,
    /// The certificate the verified peer presented (receipts are signed with its key).
    peer_cert: Option<CertificateDer<'static>>,
    established: bool,
    failed: bool,
    closed: bool,
    limits: SessionLimits,
    reassembly: Zeroizing<Vec<u8>>,
    inbox: VecDeque<Frame>,
    inbox_bytes: usize,
}

impl Engine {
    fn new(
        mut conn: Connection,
        clock: Arc<ManualClock>,
        outcome: Option<PeerVerification>,
        limits: SessionLimits,
    ) -> Self {
        // Frame limits bound memory; rustls' own limit would split writes.
        conn.set_buffer_limit(None);
        Self {
            conn,
            clock,
            outcome,
            peer: None,
            peer_cert: None,
            established: false,
            failed: false,
            closed: false,
            limits,
            reassembly: Zeroizing::new(Vec::new()),
            inbox: VecDeque::new(),
            inbox_bytes: 0,
        }
    }

    fn fail(&mut self, e: SessionError) -> SessionError {
        self.failed = true;
        self.established = false;
        e
    }

    fn fail_tls(&mut self, e: confide_ratls::rustls::Error) -> SessionError {
        let cause = self.outcome.as_ref().and_then(PeerVerification::error);
        self.fail(SessionError::from_tls(e, cause))
    }

    fn put_incoming(&mut self, batch: &[u8], now: UnixTime) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Failed);
        }
        if self.closed {
            return Err(SessionError::Closed);
        }
        if batch.len() > self.limits.max_incoming_batch {
            let limit = self.limits.max_incoming_batch;
            return Err(self.fail(SessionError::BatchTooLarge { limit }));
        }
        self.clock.set(now);
        let mut rest = batch;
        while !rest.is_empty() {
            match self.conn.read_tls(&mut rest) {
                Ok(_) => {}
                // Only "buffer full" can happen with an in-memory reader.
                Err(_) => return Err(self.fail(SessionError::ReceiveBufferFull)),
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => return Err(self.fail_tls(e)),
            };
            let peer_closed = state.peer_has_closed();
            self.check_established()?;
            self.drain_plaintext()?;
            if peer_closed {
                self.closed = true;
                break;
            }
        }
        Ok(())
    }

    /// Marks the session established once the handshake is over, and only if
    /// the peer (when authenticated) is verified for the certificate in use.
    fn check_established(&mut self) -> Result<(), SessionError> {
        if self.established || self.conn.is_handshaking() {
            return Ok(());
        }
        if let Some(outcome) = &self.outcome {
            let cert = self
                .conn
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|c| c.clone().into_owned());
            let node = cert.as_ref().and_then(|c| outcome.take_verified(c));
            match node {
                Some(node) => {
                    self.peer = Some(node);
                    self.peer_cert = cert;
                }
                None => return Err(self.fail(SessionError::PeerNotVerified)),
            }
        }
        self.established = true;
        Ok(())
    }

    fn drain_plaintext(&mut self) -> Result<(), SessionError> {
        let mut chunk = Zeroizing::new([0u8; 4096]);
        loop {
            match self.conn.reader().read(&mut chunk[..]) {
                Ok(0) => break,
                Ok(n) => {
                    if !self.established {
                        // Unreachable with rustls (no early data), kept as a guard.
                        return Err(self.fail(SessionError::NotEstablished));
                    }
                    append_zeroizing(&mut self.reassembly, &chunk[..n]);
                    self.parse_frames()?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    // Peer closed the transport without close_notify: truncation.
                    self.closed = true;
                    break;
                }
            }
        }
        Ok(())
    }

    fn parse_frames(&mut self) -> Result<(), SessionError> {
        while self.reassembly.len() >= HEADER_LEN {
            let kind_byte = self.reassembly[0];
            let Some(kind) = FrameKind::from_byte(kind_byte) else {
                return Err(self.fail(SessionError::UnknownFrameKind(kind_byte)));
            };
            let mut len_bytes = [0u8; 4];
            len_bytes.copy_from_slice(&self.reassembly[1..HEADER_LEN]);
            let len = usize::try_from(u32::from_be_bytes(len_bytes)).unwrap_or(usize::MAX);
            if kind == FrameKind::Padding {
                // Padding is bounded by its own limit (a sender with a small frame
                // limit may still pad up to a bucket) and never reaches the inbox.
                if len > MAX_PADDING {
                    return Err(self.fail(SessionError::BadPadding));
                }
                if self.reassembly.len() < HEADER_LEN + len {
                    break;
                }
                // Only zeros: padding is no side channel for a node to fill.
                if self.reassembly[HEADER_LEN..HEADER_LEN + len]
                    .iter()
                    .any(|&b| b != 0)
                {
                    return Err(self.fail(SessionError::BadPadding));
                }
                consume_front(&mut self.reassembly, HEADER_LEN + len);
                continue;
            }
            if len > self.limits.max_frame_payload {
                let limit = self.limits.max_frame_payload;
                return Err(self.fail(SessionError::FrameTooLarge { limit }));
            }
            if self.inbox_bytes + len > self.limits.max_inbox {
                let limit = self.limits.max_inbox;
                return Err(self.fail(SessionError::InboxFull { limit }));
            }
            if self.reassembly.len() < HEADER_LEN + len {
                break;
            }
            let payload = self.reassembly[HEADER_LEN..HEADER_LEN + len].to_vec();
            consume_front(&mut self.reassembly, HEADER_LEN + len);
            self.inbox_bytes += len;
            self.inbox.push_back(Frame::new(kind, payload));
        }
        Ok(())
    }

    fn get_outgoing(&mut self) -> Option<Vec<u8>> {
        // Allowed after a failure so the fatal alert rustls queued reaches the peer.
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Encodes `frames` (and, with `pad_to` set, one padding frame bringing the total
    /// to [`padded_len`] of it) and hands them to TLS in one write.
    fn send_frames(
        &mut self,
        frames: &[&Frame],
        pad_to: Option<usize>,
    ) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Failed);
        }
        if self.closed {
            return Err(SessionError::Closed);
        }
        if !self.established {
            return Err(SessionError::NotEstablished);
        }
        let too_large = SessionError::FrameTooLarge {
            limit: self.limits.max_frame_payload,
        };
        let mut len = 0usize;
        for f in frames {
            if f.payload().len() > self.limits.max_frame_payload {
                return Err(too_large);
            }
            len += HEADER_LEN + f.payload().len();
        }
        let padding = match pad_to {
            Some(min) => {
                let target = padded_len(len + HEADER_LEN, min);
                Some(target - len - HEADER_LEN)
            }
            None => None,
        };
        let total = len + padding.map_or(0, |p| HEADER_LEN + p);
        let mut unit = Zeroizing::new(Vec::with_capacity(total));
        for f in frames {
            unit.extend_from_slice(&f.header().ok_or(SessionError::FrameTooLarge {
                limit: self.limits.max_frame_payload,
            })?);
            unit.extend_from_slice(f.payload());
        }
        if let Some(p) = padding {
            let pad = Frame::new(FrameKind::Padding, vec![0; p]);
            unit.extend_from_slice(&pad.header().ok_or(too_large)?);
            unit.extend_from_slice(pad.payload());
        }
        // One write: rustls seals each write into its own records (up to 16 KiB of
        // plaintext each), so a unit of at most one record leaves as exactly one
        // record whose size is the unit's. With no buffer limit set, rustls accepts
        // the whole write.
        if self.conn.writer().write_all(&unit).is_err() {
            return Err(self.fail(SessionError::Failed));
        }
        Ok(())
    }

    fn recv(&mut self) -> Option<Frame> {
        let f = self.inbox.pop_front()?;
        self.inbox_bytes -= f.payload().len();
        Some(f)
    }

    fn close(&mut self) {
        if !self.closed {
            self.conn.send_close_notify();
            self.closed = true;
        }
    }
}

/// The device side of a session with a node.
pub struct ClientEngine {
    engine: Engine,
}

impl ClientEngine {
    /// Starts a session that will accept the node only if `verifier` does.
    /// The ClientHello is ready in [`ClientEngine::get_outgoing`].
    pub fn new(
        verifier: NodeVerifier,
        limits: SessionLimits,
        now: UnixTime,
    ) -> Result<Self, SessionError> {
        Self::build(verifier, None, limits, now)
    }

    /// Node-to-node: as [`ClientEngine::new`], also presenting this node's own
    /// attested certificate (mutual RA-TLS).
    pub fn new_mutual(
        verifier: NodeVerifier,
        own_identity: Arc<NodeCertResolver>,
        limits: SessionLimits,
        now: UnixTime,
    ) -> Result<Self, SessionError> {
        Self::build(verifier, Some(own_identity), limits, now)
    }

    fn build(
        verifier: NodeVerifier,
        own: Option<Arc<NodeCertResolver>>,
        limits: SessionLimits,
        now: UnixTime,
    ) -> Result<Self, SessionError> {
        let clock = ManualClock::new(now);
        let (conn, outcome): (ClientConnection, _) =
            confide_ratls::client_connection(verifier, own, Arc::clone(&clock))
                .map_err(SessionError::Config)?;
        Ok(Self {
            engine: Engine::new(Connection::Client(conn), clock, Some(outcome), limits),
        })
    }

    /// Feeds bytes received from the node.
    pub fn put_incoming(&mut self, batch: &[u8], now: UnixTime) -> Result<(), SessionError> {
        self.engine.put_incoming(batch, now)
    }

    /// Takes the bytes to send to the node, if any.
    pub fn get_outgoing(&mut self) -> Option<Vec<u8>> {
        self.engine.get_outgoing()
    }

    /// The verified node, once the session is established.
    pub fn verified_node(&self) -> Option<&VerifiedNode> {
        if self.engine.established {
            self.engine.peer.as_ref()
        } else {
            None
        }
    }

    /// The certificate the verified node presented, once the session is established.
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        if self.engine.established {
            self.engine.peer_cert.as_ref()
        } else {
            None
        }
    }

    /// Whether application data may flow.
    pub fn is_established(&self) -> bool {
        self.verified_node().is_some()
    }

    /// Queues a frame for the node, padded to its [`REQUEST_MIN_BUCKET`] bucket (one
    /// TLS write, so requests of nearby sizes leave as records of the same size);
    /// refused until the node is verified.
    pub fn send(&mut self, frame: &Frame) -> Result<(), SessionError> {
        // The proof is required, not merely a finished handshake.
        if self.verified_node().is_none() {
            return Err(if self.engine.failed {
                SessionError::Failed
            } else {
                SessionError::NotEstablished
            });
        }
        self.engine.send_frames(&[frame], Some(REQUEST_MIN_BUCKET))
    }

    /// The next frame received from the node.
    pub fn recv(&mut self) -> Option<Frame> {
        self.engine.recv()
    }

    /// Whether the session was closed by either side.
    pub fn is_closed(&self) -> bool {
        self.engine.closed
    }

    /// Sends close_notify; flush with [`ClientEngine::get_outgoing`].
    pub fn close(&mut self) {
        self.engine.close();
    }
}

/// The node side of a session.
pub struct ServerEngine {
    engine: Engine,
}

impl ServerEngine {
    /// A session for an anonymous device, using the node's shared
    /// configuration (from [`confide_ratls::server_config`]) and its clock.
    pub fn new(
        config: Arc<ServerConfig>,
        clock: Arc<ManualClock>,
        limits: SessionLimits,
    ) -> Result<Self, SessionError> {
        let conn = ServerConnection::new(config).map_err(SessionError::Config)?;
        Ok(Self {
            engine: Engine::new(Connection::Server(conn), clock, None, limits),
        })
    }

    /// Node-to-node: a session whose caller must be an attested node that
    /// `verifier` accepts (mutual RA-TLS).
    pub fn new_mutual(
        identity: Arc<NodeCertResolver>,
        verifier: NodeVerifier,
        limits: SessionLimits,
        now: UnixTime,
    ) -> Result<Self, SessionError> {
        let clock = ManualClock::new(now);
        let (conn, outcome) =
            confide_ratls::mutual_server_connection(identity, verifier, Arc::clone(&clock))
                .map_err(SessionError::Config)?;
        Ok(Self {
            engine: Engine::new(Connection::Server(conn), clock, Some(outcome), limits),
        })
    }

    /// Feeds bytes received from the device (or calling node).
    pub fn put_incoming(&mut self, batch: &[u8], now: UnixTime) -> Result<(), SessionError> {
        self.engine.put_incoming(batch, now)
    }

    /// Takes the bytes to send back, if any.
    pub fn get_outgoing(&mut self) -> Option<Vec<u8>> {
        self.engine.get_outgoing()
    }

    /// Whether the handshake completed (and, for mutual sessions, the caller verified).
    pub fn is_established(&self) -> bool {
        self.engine.established
    }

    /// The verified calling node of a mutual session.
    pub fn verified_peer(&self) -> Option<&VerifiedNode> {
        if self.engine.established {
            self.engine.peer.as_ref()
        } else {
            None
        }
    }

    /// Queues a frame for the peer, unpadded, as one TLS write; refused until
    /// established.
    pub fn send(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.engine.send_frames(&[frame], None)
    }

    /// Queues `frames` and one padding frame as one TLS write of
    /// [`padded_len`]`(frames + padding header, min_bucket)` bytes: what the peer's
    /// carrier sees depends on the bucket, not on the frames' lengths. With no frames
    /// the write is padding only (cover traffic on a tick with nothing to say).
    pub fn send_padded(
        &mut self,
        frames: &[&Frame],
        min_bucket: usize,
    ) -> Result<(), SessionError> {
        self.engine.send_frames(frames, Some(min_bucket))
    }

    /// The next frame received.
    pub fn recv(&mut self) -> Option<Frame> {
        self.engine.recv()
    }

    /// Whether the session was closed by either side.
    pub fn is_closed(&self) -> bool {
        self.engine.closed
    }

    /// Sends close_notify; flush with [`ServerEngine::get_outgoing`].
    pub fn close(&mut self) {
        self.engine.close();
    }
}
