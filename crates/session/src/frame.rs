//! Application frames inside the attested TLS session.
//!
//! ```text
//! frame = kind:u8 || length:u32 (big endian) || payload[length]
//! kind  = 1 request | 2 response | 3 stream chunk | 4 end of stream | 5 padding
//! ```
//!
//! TLS already delimits records, but records and frames are independent: a
//! frame may span records and a record may hold several frames. The length
//! prefix is checked against [`crate::SessionLimits::max_frame_payload`] before
//! any payload is buffered, so a peer cannot make the engine allocate more.
//!
//! Padding (kind 5, payload all zero bytes, at most [`MAX_PADDING`]) hides the
//! length of what a write carries: a padded write is one or more frames followed
//! by one padding frame, [`padded_len`] bytes in all, written to TLS at once. The
//! padding is inside the TLS stream, so it is encrypted and authenticated like
//! the content; the receiving engine checks and drops it, and `recv` never
//! returns it. The record sizes the carrier sees then depend only on the bucket.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Bytes of the frame header.
pub const HEADER_LEN: usize = 5;

/// The largest TLS 1.3 record plaintext (RFC 8446 section 5.1): a write of up to
/// this many bytes leaves as one record.
pub const RECORD_PLAINTEXT: usize = 16 * 1024;

/// The largest padding frame payload a sender produces and a receiver accepts
/// (whatever its `max_frame_payload`): [`padded_len`] never needs more.
pub const MAX_PADDING: usize = RECORD_PLAINTEXT;

/// The bucket a padded write of `len` bytes (frames plus the padding frame's
/// header) is rounded up to: `min` (clamped to 1..=[`RECORD_PLAINTEXT`]), else the
/// next power of two up to one full TLS record, else the next multiple of a full
/// record. So a write of at most one record is one record whose size is the
/// bucket, and the padding added is below [`MAX_PADDING`].
pub fn padded_len(len: usize, min: usize) -> usize {
    let min = min.clamp(1, RECORD_PLAINTEXT);
    if len <= min {
        min
    } else if len <= RECORD_PLAINTEXT {
        len.next_power_of_two()
    } else {
        len.div_ceil(RECORD_PLAINTEXT)
            .saturating_mul(RECORD_PLAINTEXT)
    }
}

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
    /// Padding: zero bytes that make a write fill its bucket. Checked and dropped
    /// by the receiving engine, never returned by `recv`.
    Padding,
}

impl FrameKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::Request => 1,
            Self::Response => 2,
            Self::StreamChunk => 3,
            Self::End => 4,
            Self::Padding => 5,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::StreamChunk,
            4 => Self::End,
            5 => Self::Padding,
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
                None => assert!(b == 0 || b > 5),
            }
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(padded_len(0, 256), 256);
        assert_eq!(padded_len(256, 256), 256);
        assert_eq!(padded_len(257, 256), 512);
        assert_eq!(padded_len(1000, 1024), 1024);
        assert_eq!(padded_len(5000, 1024), 8192);
        assert_eq!(padded_len(16384, 1024), 16384);
        assert_eq!(padded_len(16385, 1024), 32768);
        assert_eq!(padded_len(40_010, 1024), 49152);
        // A minimum above one record is clamped to one record.
        assert_eq!(padded_len(10, 1 << 20), 16384);
        for len in (0..100_000).step_by(97) {
            for min in [1, 256, 1024, 2048] {
                let b = padded_len(len, min);
                assert!(b >= len && b - len <= MAX_PADDING, "{len} {min} {b}");
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
