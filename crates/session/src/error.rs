//! The one error type of this crate. No variant carries plaintext.

use std::sync::Arc;

use confide_ratls::RatlsError;

/// Everything that can go wrong in a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Application data was offered before the handshake completed and the
    /// peer was verified; nothing was sent.
    #[error("session not established: no application data before the peer is verified")]
    NotEstablished,
    /// The peer's RA-TLS certificate failed a check (typed cause inside).
    #[error("peer verification failed: {0}")]
    Verification(Arc<RatlsError>),
    /// TLS failed (bad record MAC from a replayed, reordered or altered record,
    /// an alert from the peer, a protocol violation).
    #[error("TLS error: {0}")]
    Tls(rustls::Error),
    /// Building the rustls configuration failed.
    #[error("TLS configuration error: {0}")]
    Config(rustls::Error),
    /// The handshake completed but no verified peer was recorded for the
    /// certificate the connection reports (should be impossible; fail closed).
    #[error("handshake completed without a verified peer")]
    PeerNotVerified,
    /// An incoming batch exceeds the limit.
    #[error("incoming batch exceeds {limit} bytes")]
    BatchTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// rustls refused more input because its receive buffer is full of
    /// unprocessed records (a peer sending faster than records can be processed).
    #[error("TLS receive buffer full")]
    ReceiveBufferFull,
    /// A frame (incoming or offered) exceeds the payload limit.
    #[error("frame payload exceeds {limit} bytes")]
    FrameTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An incoming frame has an unknown kind byte.
    #[error("unknown frame kind {0}")]
    UnknownFrameKind(u8),
    /// A padding frame is longer than [`crate::MAX_PADDING`] or holds a byte other
    /// than zero.
    #[error("malformed padding frame")]
    BadPadding,
    /// Received frames not yet taken with `recv` exceed the limit.
    #[error("received frames exceed {limit} bytes; take them with recv")]
    InboxFull {
        /// The limit in bytes.
        limit: usize,
    },
    /// The peer closed the session (close_notify) or it was closed locally.
    #[error("session closed")]
    Closed,
    /// An earlier error ended the session; it cannot be used any more.
    #[error("session failed earlier and is unusable")]
    Failed,
}

impl SessionError {
    pub(crate) fn from_tls(e: rustls::Error, verification: Option<Arc<RatlsError>>) -> Self {
        if let Some(v) = verification {
            return Self::Verification(v);
        }
        Self::Tls(e)
    }
}
