//! Application frames inside the attested TLS session.
//!
//! ```text
//! frame = kind:u8 || length:u32 (big endian) || payload[length]
//! kind  = 1 request | 2 response | 3 stream chunk | 4 end of stream
//! ```
//!
//! TLS already delimits records, but records and frames are independent: a
//! frame may span records and a record may hold several frames. The length
//! prefix is checked against [`crate::SessionLimits::max_frame_payload`] before
//! any payload is buffered, so a peer cannot make the engine allocate more.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Bytes of the frame header.
pub(crate) const HEADER_LEN: usize = 5;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameKind {
    /// A request from the device (for example a summarise or suggest call).
    Request,
    /// A complete, non-streamed response.
    Response,
    /// One piece of a streamed response (tokens as they are produced).
    StreamChunk,
    /// The end of a streamed response.
    End,
}

impl FrameKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::Request => 1,
            Self::Response => 2,
            Self::StreamChunk => 3,
            Self::End => 4,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::StreamChunk,
            4 => Self::End,
            _ => return None,
        })
    }
}

/// One application message. The payload is plaintext and is zeroized on drop;
/// `Debug` shows only the kind and length.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    kind: FrameKind,
    payload: Zeroizing<Vec<u8>>,
}

impl Frame {
    /// A frame of `kind` carrying `payload` (taken over, zeroized on drop).
    pub fn new(kind: FrameKind, payload: Vec<u8>) -> Self {
        Self {
            kind,
            payload: Zeroizing::new(payload),
        }
    }

    /// The frame kind.
    pub fn kind(&self) -> FrameKind {
        self.kind
    }

    /// The plaintext payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the payload out, still in zeroizing memory.
    pub fn into_payload(self) -> Zeroizing<Vec<u8>> {
        self.payload
    }

    pub(crate) fn header(&self) -> Option<[u8; HEADER_LEN]> {
        let len = u32::try_from(self.payload.len()).ok()?;
        let mut h = [0u8; HEADER_LEN];
        h[0] = self.kind.to_byte();
        h[1..].copy_from_slice(&len.to_be_bytes());
        Some(h)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("kind", &self.kind)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// Appends to a zeroizing buffer without leaving unzeroized copies behind when
/// it grows (a plain `Vec` reallocation would free the old block as is).
pub(crate) fn append_zeroizing(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    let needed = buf.len() + data.len();
    if needed > buf.capacity() {
        let mut grown = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2)));
        grown.extend_from_slice(buf);
        // The old buffer is zeroized as it drops here.
        *buf = grown;
    }
    buf.extend_from_slice(data);
}

/// Removes the first `n` bytes, zeroizing the vacated tail.
pub(crate) fn consume_front(buf: &mut Zeroizing<Vec<u8>>, n: usize) {
    let len = buf.len();
    let n = n.min(len);
    buf.copy_within(n.., 0);
    buf[len - n..].zeroize();
    buf.truncate(len - n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let f = Frame::new(FrameKind::StreamChunk, vec![0xab; 300]);
        assert_eq!(f.header().unwrap(), [3, 0, 0, 1, 44]);
        assert_eq!(format!("{f:?}"), "Frame { kind: StreamChunk, len: 300 }");
        for b in 0..=255u8 {
            match FrameKind::from_byte(b) {
                Some(k) => assert_eq!(k.to_byte(), b),
                None => assert!(b == 0 || b > 4),
            }
        }
    }

    #[test]
    fn buffer_helpers() {
        let mut b = Zeroizing::new(Vec::with_capacity(2));
        append_zeroizing(&mut b, b"hello");
        append_zeroizing(&mut b, b" world");
        assert_eq!(&b[..], b"hello world");
        consume_front(&mut b, 6);
        assert_eq!(&b[..], b"world");
        consume_front(&mut b, 10);
        assert!(b.is_empty());
    }
}
