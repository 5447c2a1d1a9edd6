//! Application frames inside the attested TLS stream.
//!
//! ```text
//! frame   = type:u8 length:u32be payload[length]      (length <= MAX_PAYLOAD)
//! 0x01 request  JSON: {"summarize":{"messages":[...]}} | {"suggest":{"draft":..,"tone":..}}
//!               with optional "max_tokens"
//! 0x02 chunk    UTF-8 text generated so far (whole characters)
//! 0x03 end      JSON: {"finish":"stop"|"length"|"other","completion_tokens":n|null}
//! 0x04 error    one byte: an [`ErrorKind`] code, never text
//! ```
//!
//! A request is answered by zero or more `chunk` frames and exactly one `end` or `error`.
//! Payloads that hold request or generated text live in [`Zeroizing`] buffers.
//!
//! `docs/sessions.md` names `crates/session` as the home of this framing; it had not
//! landed when the node was written, so the node defines it here (see ADR 0700) and the
//! session engine can adopt it or the node can switch to it without touching transports.

use confide_engine::features::{SuggestRequest, SummarizeRequest};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;

/// Largest frame payload (64 KiB): larger than any request the feature limits allow.
pub const MAX_PAYLOAD: usize = 64 * 1024;
const HEADER: usize = 5;

/// Frame type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameType {
    /// An application request.
    Request = 1,
    /// A piece of generated text.
    Chunk = 2,
    /// The end of a response.
    End = 3,
    /// A failed request, with an error kind.
    Error = 4,
}

impl FrameType {
    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Self::Request),
            2 => Ok(Self::Chunk),
            3 => Ok(Self::End),
            4 => Ok(Self::Error),
            _ => Err(Error::Frame("unknown frame type")),
        }
    }
}

/// Why a request failed, as told to the client (a code, never text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The frame or its JSON did not parse, or named an unknown feature or field.
    BadRequest = 1,
    /// A size limit was exceeded.
    TooLarge = 2,
    /// The engine failed while generating.
    Engine = 3,
    /// The node is shutting down or overloaded.
    Unavailable = 4,
}

impl ErrorKind {
    /// The code byte.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Parses a code byte.
    pub fn from_code(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Self::BadRequest),
            2 => Ok(Self::TooLarge),
            3 => Ok(Self::Engine),
            4 => Ok(Self::Unavailable),
            _ => Err(Error::Frame("unknown error kind")),
        }
    }
}

/// The feature a request asks for.
#[derive(Debug, Clone)]
pub enum Feature {
    /// Summarise selected chat messages.
    Summarize(SummarizeRequest),
    /// Rewrite a draft in a tone.
    Suggest(SuggestRequest),
}

/// An application request: exactly one of `summarize` / `suggest`, and optionally
/// `max_tokens`. Any other member is refused (data minimisation).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRequest {
    /// `summarize` input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarize: Option<SummarizeRequest>,
    /// `suggest` input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggest: Option<SuggestRequest>,
    /// Upper bound on generated tokens (the node caps it at its own limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl AppRequest {
    /// A request for `feature`.
    pub fn new(feature: Feature, max_tokens: Option<u32>) -> Self {
        match feature {
            Feature::Summarize(s) => Self {
                summarize: Some(s),
                suggest: None,
                max_tokens,
            },
            Feature::Suggest(s) => Self {
                summarize: None,
                suggest: Some(s),
                max_tokens,
            },
        }
    }

    /// The one feature this request names.
    pub fn into_feature(self) -> Result<Feature, Error> {
        match (self.summarize, self.suggest) {
            (Some(s), None) => Ok(Feature::Summarize(s)),
            (None, Some(s)) => Ok(Feature::Suggest(s)),
            _ => Err(Error::Frame("a request names exactly one feature")),
        }
    }
}

/// The `end` frame payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndInfo {
    /// Why generation ended (`stop`, `length`, `other`).
    pub finish: String,
    /// Tokens generated, where known.
    pub completion_tokens: Option<u32>,
}

/// One decoded frame.
#[derive(Debug)]
pub enum Frame {
    /// A request (JSON bytes, kept private).
    Request(Zeroizing<Vec<u8>>),
    /// Generated text.
    Chunk(Zeroizing<String>),
    /// End of response.
    End(EndInfo),
    /// Failure.
    Error(ErrorKind),
}

fn encode_raw(t: FrameType, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Error::Frame("frame payload too large"));
    }
    out.push(t as u8);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

impl Frame {
    /// Appends the encoding of `self` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Frame::Request(b) => encode_raw(FrameType::Request, b, out),
            Frame::Chunk(s) => encode_raw(FrameType::Chunk, s.as_bytes(), out),
            Frame::End(e) => {
                let j = serde_json::to_vec(e).map_err(|_| Error::Frame("end frame"))?;
                encode_raw(FrameType::End, &j, out)
            }
            Frame::Error(k) => encode_raw(FrameType::Error, &[k.code()], out),
        }
    }

    /// A request frame for `req`.
    pub fn request(req: &AppRequest) -> Result<Self, Error> {
        let j = serde_json::to_vec(req).map_err(|_| Error::Frame("request encoding"))?;
        Ok(Frame::Request(Zeroizing::new(j)))
    }
}

/// Accumulates stream bytes and yields whole frames.
#[derive(Default)]
pub struct FrameReader {
    buf: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl FrameReader {
    /// Appends received plaintext.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, if one is buffered. An oversized or unknown frame is an
    /// error and the reader must then be discarded (the stream is out of sync).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let t = FrameType::from_byte(self.buf[0])?;
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(Error::Frame("frame payload too large"));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let payload = Zeroizing::new(self.buf[HEADER..HEADER + len].to_vec());
        // Shift the rest down in place (the old bytes are overwritten, then truncated
        // away; `Zeroizing` wipes the buffer when it finally drops).
        self.buf.copy_within(HEADER + len.., 0);
        let rest = self.buf.len() - HEADER - len;
        self.buf[rest..].iter_mut().for_each(|b| *b = 0);
        self.buf.truncate(rest);
        let frame = match t {
            FrameType::Request => Frame::Request(payload),
            FrameType::Chunk => {
                let s = String::from_utf8(payload.to_vec())
                    .map_err(|_| Error::Frame("chunk is not UTF-8"))?;
                Frame::Chunk(Zeroizing::new(s))
            }
            FrameType::End => {
                Frame::End(serde_json::from_slice(&payload).map_err(|_| Error::Frame("end frame"))?)
            }
            FrameType::Error => match payload.as_slice() {
                [code] => Frame::Error(ErrorKind::from_code(*code)?),
                _ => return Err(Error::Frame("error frame must be one byte")),
            },
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_split_anywhere() {
        let mut wire = Vec::new();
        Frame::Chunk(Zeroizing::new("héllo".into()))
            .encode_into(&mut wire)
            .unwrap();
        Frame::End(EndInfo {
            finish: "stop".into(),
            completion_tokens: Some(3),
        })
        .encode_into(&mut wire)
        .unwrap();
        Frame::Error(ErrorKind::TooLarge)
            .encode_into(&mut wire)
            .unwrap();
        for cut in 0..wire.len() {
            let mut r = FrameReader::default();
            r.push(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
            r.push(&wire[cut..]);
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 3);
            assert!(matches!(&got[0], Frame::Chunk(s) if s.as_str() == "héllo"));
            assert!(matches!(&got[1], Frame::End(e) if e.completion_tokens == Some(3)));
            assert!(matches!(&got[2], Frame::Error(ErrorKind::TooLarge)));
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut r = FrameReader::default();
        r.push(&[9, 0, 0, 0, 0]);
        assert!(r.next_frame().is_err());
        let mut r = FrameReader::default();
        r.push(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.next_frame().is_err());
        let mut r = FrameReader::default();
        r.push(&[4, 0, 0, 0, 2, 1, 1]);
        assert!(r.next_frame().is_err());
    }

    #[test]
    fn request_schema_rejects_unknown_fields() {
        let ok = br#"{"suggest":{"draft":"hi there","tone":"formal"},"max_tokens":8}"#;
        let r: AppRequest = serde_json::from_slice(ok).unwrap();
        assert_eq!(r.max_tokens, Some(8));
        assert!(matches!(r.into_feature().unwrap(), Feature::Suggest(_)));
        let none: AppRequest = serde_json::from_slice(b"{}").unwrap();
        assert!(none.into_feature().is_err());
        let extra = br#"{"suggest":{"draft":"hi","tone":"formal","user":"x"}}"#;
        assert!(serde_json::from_slice::<AppRequest>(extra).is_err());
        let unknown = br#"{"translate":{"text":"hi"}}"#;
        assert!(serde_json::from_slice::<AppRequest>(unknown).is_err());
    }
}
