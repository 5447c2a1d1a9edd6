//! Binary HTTP messages (RFC 9292): the plaintext inside OHTTP.
//!
//! Known-length messages (framing indicators 0 and 1, RFC 9292 §3.1-§3.5) are used for
//! one-shot exchanges; indeterminate-length messages (2 and 3) for streamed responses,
//! decoded incrementally by [`ResponseStream`]. Trailing empty sections are truncated
//! when encoding (RFC 9292 §3.8), which is what RFC 9458 Appendix A's messages show.
//! Field names must be lowercase (RFC 9292 §3.6 follows HTTP/2 and HTTP/3 here).

use crate::Error;
use crate::varint::{self, Reader};

const KNOWN_REQUEST: u64 = 0;
const KNOWN_RESPONSE: u64 = 1;
const INDETERMINATE_REQUEST: u64 = 2;
const INDETERMINATE_RESPONSE: u64 = 3;

/// An ordered list of field lines (name, value). Names are lowercase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, Vec<u8>)>);

impl Fields {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }
    /// Append a field; the name is lowercased.
    pub fn append(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
    /// Iterate over the field lines.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
    /// Whether there are no field lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn encode_lines(&self, out: &mut Vec<u8>) {
        for (n, v) in &self.0 {
            varint::encode(n.len() as u64, out);
            out.extend_from_slice(n.as_bytes());
            varint::encode(v.len() as u64, out);
            out.extend_from_slice(v);
        }
    }

    fn encode_known(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        self.encode_lines(&mut body);
        varint::encode(body.len() as u64, out);
        out.extend_from_slice(&body);
    }

    fn parse_line(r: &mut Reader<'_>, name: &[u8]) -> Result<(String, Vec<u8>), Error> {
        if name.iter().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::Bhttp("uppercase field name"));
        }
        if !name.iter().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Bhttp("invalid field name"));
        }
        let value = r.vec("field value")?;
        if value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(Error::Bhttp("invalid field value"));
        }
        // Validated as visible ASCII above.
        let name =
            String::from_utf8(name.to_vec()).map_err(|_| Error::Bhttp("invalid field name"))?;
        Ok((name, value.to_vec()))
    }

    fn decode_known(r: &mut Reader<'_>) -> Result<Self, Error> {
        if r.is_empty() {
            return Ok(Self::new()); // truncated section: empty (RFC 9292 §3.8)
        }
        let body = r.vec("field section")?;
        let mut inner = Reader::new(body);
        let mut out = Vec::new();
        while !inner.is_empty() {
            let name = inner.vec("field name")?;
            if name.is_empty() {
                return Err(Error::Bhttp("empty field name"));
            }
            out.push(Self::parse_line(&mut inner, name)?);
        }
        Ok(Self(out))
    }

    fn decode_indeterminate(r: &mut Reader<'_>) -> Result<Self, Error> {
        if r.is_empty() {
            return Ok(Self::new());
        }
        let mut out = Vec::new();
        loop {
            let name = r.vec("field name")?;
            if name.is_empty() {
                return Ok(Self(out)); // Content Terminator
            }
            out.push(Self::parse_line(r, name)?);
        }
    }
}

/// A Binary HTTP request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Method token, e.g. `GET`.
    pub method: String,
    /// Scheme, e.g. `https`.
    pub scheme: String,
    /// Authority (may be empty).
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// Header fields.
    pub headers: Fields,
    /// Content.
    pub content: Vec<u8>,
    /// Trailer fields.
    pub trailers: Fields,
}

/// A Binary HTTP response (informational responses are parsed and dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Final status code, 200-599.
    pub status: u16,
    /// Header fields.
    pub headers: Fields,
    /// Content.
    pub content: Vec<u8>,
    /// Trailer fields.
    pub trailers: Fields,
}

fn control_string(
    r: &mut Reader<'_>,
    what: &'static str,
    allow_empty: bool,
) -> Result<String, Error> {
    let b = r.vec(what)?;
    if (!allow_empty && b.is_empty()) || !b.iter().all(|c| c.is_ascii_graphic()) {
        return Err(Error::Bhttp(what));
    }
    String::from_utf8(b.to_vec()).map_err(|_| Error::Bhttp(what))
}

fn check_padding(r: &Reader<'_>) -> Result<(), Error> {
    if r.rest().iter().any(|b| *b != 0) {
        return Err(Error::Bhttp("non-zero bytes after message"));
    }
    Ok(())
}

fn known_content(r: &mut Reader<'_>) -> Result<Vec<u8>, Error> {
    if r.is_empty() {
        return Ok(Vec::new());
    }
    Ok(r.vec("content")?.to_vec())
}

fn indeterminate_content(r: &mut Reader<'_>) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    if r.is_empty() {
        return Ok(out);
    }
    loop {
        let chunk = r.vec("content chunk")?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(chunk);
    }
}

fn status(r: &mut Reader<'_>) -> Result<u16, Error> {
    let s = r.varint("status")?;
    if !(100..=599).contains(&s) {
        return Err(Error::Bhttp("status code out of range"));
    }
    Ok(s as u16)
}

impl Request {
    /// A request with no fields or content.
    pub fn new(method: &str, scheme: &str, authority: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            path: path.to_owned(),
            ..Self::default()
        }
    }

    /// Encode as a known-length request, truncating trailing empty sections.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        varint::encode(KNOWN_REQUEST, &mut out);
        for s in [&self.method, &self.scheme, &self.authority, &self.path] {
            varint::encode(s.len() as u64, &mut out);
            out.extend_from_slice(s.as_bytes());
        }
        let mut tail = Vec::new();
        self.headers.encode_known(&mut tail);
        varint::encode(self.content.len() as u64, &mut tail);
        tail.extend_from_slice(&self.content);
        self.trailers.encode_known(&mut tail);
        truncate_empty_sections(
            &mut tail,
            self.trailers.is_empty(),
            self.content.is_empty(),
            self.headers.is_empty(),
        );
        out.extend_from_slice(&tail);
        out
    }

    /// Decode a known- or indeterminate-length request (RFC 9292 §3).
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let framing = r.varint("framing indicator")?;
        let indeterminate = match framing {
            KNOWN_REQUEST => false,
            INDETERMINATE_REQUEST => true,
            _ => return Err(Error::Bhttp("not a request framing indicator")),
        };
        let method = control_string(&mut r, "method", false)?;
        let scheme = control_string(&mut r, "scheme", false)?;
        let authority = control_string(&mut r, "authority", true)?;
        let path = control_string(&mut r, "path", false)?;
        let (headers, content, trailers) = if indeterminate {
            let h = Fields::decode_indeterminate(&mut r)?;
            let c = indeterminate_content(&mut r)?;
            (h, c, Fields::decode_indeterminate(&mut r)?)
        } else {
            let h = Fields::decode_known(&mut r)?;
            let c = known_content(&mut r)?;
            (h, c, Fields::decode_known(&mut r)?)
        };
        check_padding(&r)?;
        Ok(Self {
            method,
            scheme,
            authority,
            path,
            headers,
            content,
            trailers,
        })
    }
}

/// Drop trailing zero-length sections (each encodes as one 0x00 byte) from the end of
/// `tail`: trailers, then content, then headers, as far as they are all empty.
fn truncate_empty_sections(
    tail: &mut Vec<u8>,
    trailers_empty: bool,
    content_empty: bool,
    headers_empty: bool,
) {
    if !trailers_empty {
        return;
    }
    tail.pop();
    if !content_empty {
        return;
    }
    tail.pop();
    if headers_empty {
        tail.pop();
    }
}

impl Response {
    /// A response with a status and no fields or content.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    /// Encode as a known-length response, truncating trailing empty sections.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        varint::encode(KNOWN_RESPONSE, &mut out);
        varint::encode(u64::from(self.status), &mut out);
        let mut tail = Vec::new();
        self.headers.encode_known(&mut tail);
        varint::encode(self.content.len() as u64, &mut tail);
        tail.extend_from_slice(&self.content);
        self.trailers.encode_known(&mut tail);
        truncate_empty_sections(
            &mut tail,
            self.trailers.is_empty(),
            self.content.is_empty(),
            self.headers.is_empty(),
        );
        out.extend_from_slice(&tail);
        out
    }

    /// Decode a complete known- or indeterminate-length response.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let framing = r.varint("framing indicator")?;
        let indeterminate = match framing {
            KNOWN_RESPONSE => false,
            INDETERMINATE_RESPONSE => true,
            _ => return Err(Error::Bhttp("not a response framing indicator")),
        };
        loop {
            let s = status(&mut r)?;
            let headers = if indeterminate {
                Fields::decode_indeterminate(&mut r)?
            } else {
                Fields::decode_known(&mut r)?
            };
            if s < 200 {
                continue; // informational response (RFC 9292 §3.5.1)
            }
            let (content, trailers) = if indeterminate {
                let c = indeterminate_content(&mut r)?;
                (c, Fields::decode_indeterminate(&mut r)?)
            } else {
                let c = known_content(&mut r)?;
                (c, Fields::decode_known(&mut r)?)
            };
            check_padding(&r)?;
            return Ok(Self {
                status: s,
                headers,
                content,
                trailers,
            });
        }
    }

    /// The start of an indeterminate-length response (framing indicator 3): status and
    /// header section. Follow with [`encode_stream_chunk`] and [`encode_stream_end`].
    pub fn encode_stream_head(status: u16, headers: &Fields) -> Vec<u8> {
        let mut out = Vec::new();
        varint::encode(INDETERMINATE_RESPONSE, &mut out);
        varint::encode(u64::from(status), &mut out);
        headers.encode_lines(&mut out);
        out.push(0);
        out
    }
}

/// One content chunk of an indeterminate-length message (empty input encodes nothing,
/// since a zero length would end the content).
pub fn encode_stream_chunk(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    if !data.is_empty() {
        varint::encode(data.len() as u64, &mut out);
        out.extend_from_slice(data);
    }
    out
}

/// End of content plus the trailer section of an indeterminate-length message.
pub fn encode_stream_end(trailers: &Fields) -> Vec<u8> {
    let mut out = vec![0u8];
    trailers.encode_lines(&mut out);
    out.push(0);
    out
}

/// What [`ResponseStream`] yields as bytes arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// The final status and header fields.
    Head {
        /// Status code.
        status: u16,
        /// Header fields.
        headers: Fields,
    },
    /// A piece of content.
    Data(Vec<u8>),
    /// The trailer fields; the message is complete.
    End(Fields),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamState {
    Framing,
    Head,
    Content,
    Trailers,
    Done,
    /// A known-length response: decoded whole at end of stream.
    Known,
}

/// Incremental decoder of a response that arrives in pieces (chunked OHTTP). It
/// parses whole units (head, content chunk, trailers) once their bytes are present and
/// never allocates from a claimed length before those bytes have arrived.
#[derive(Debug)]
pub struct ResponseStream {
    buf: Vec<u8>,
    state: StreamState,
    max_buffer: usize,
}

impl ResponseStream {
    /// A decoder that refuses to buffer more than `max_buffer` bytes of one unit.
    pub fn new(max_buffer: usize) -> Self {
        Self {
            buf: Vec::new(),
            state: StreamState::Framing,
            max_buffer,
        }
    }

    /// Add bytes and return every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, Error> {
        if self.state == StreamState::Done && bytes.iter().any(|b| *b != 0) {
            return Err(Error::Bhttp("non-zero bytes after message"));
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.max_buffer {
            return Err(Error::TooLarge {
                size: self.buf.len(),
                limit: self.max_buffer,
            });
        }
        let mut events = Vec::new();
        loop {
            let mut r = Reader::new(&self.buf);
            let step = match self.state {
                StreamState::Framing => match r.varint("framing indicator") {
                    Ok(INDETERMINATE_RESPONSE) => {
                        self.state = StreamState::Head;
                        Ok(None)
                    }
                    Ok(KNOWN_RESPONSE) => {
                        self.state = StreamState::Known;
                        return Ok(events);
                    }
                    Ok(_) => return Err(Error::Bhttp("not a response framing indicator")),
                    Err(e) => Err(e),
                },
                StreamState::Head => status(&mut r).and_then(|s| {
                    let h = Fields::decode_indeterminate_complete(&mut r)?;
                    if s < 200 {
                        return Ok(None);
                    }
                    self.state = StreamState::Content;
                    Ok(Some(StreamEvent::Head {
                        status: s,
                        headers: h,
                    }))
                }),
                StreamState::Content => r.vec("content chunk").map(|c| {
                    if c.is_empty() {
                        self.state = StreamState::Trailers;
                        None
                    } else {
                        Some(StreamEvent::Data(c.to_vec()))
                    }
                }),
                StreamState::Trailers => Fields::decode_indeterminate_complete(&mut r).map(|t| {
                    self.state = StreamState::Done;
                    Some(StreamEvent::End(t))
                }),
                StreamState::Done => {
                    check_padding(&r)?;
                    return Ok(events);
                }
                StreamState::Known => return Ok(events),
            };
            match step {
                Ok(ev) => {
                    let used = r.pos();
                    self.buf.drain(..used);
                    events.extend(ev);
                }
                Err(Error::Truncated(_)) => return Ok(events), // wait for more bytes
                Err(e) => return Err(e),
            }
        }
    }

    /// End of input. A known-length response is decoded here; an indeterminate one
    /// must already be complete, though RFC 9292 §3.8 lets trailers be truncated.
    pub fn finish(self) -> Result<Vec<StreamEvent>, Error> {
        match self.state {
            StreamState::Done => Ok(Vec::new()),
            StreamState::Trailers if self.buf.is_empty() => {
                Ok(vec![StreamEvent::End(Fields::new())])
            }
            StreamState::Known => {
                let mut whole = Vec::with_capacity(self.buf.len() + 1);
                varint::encode(KNOWN_RESPONSE, &mut whole);
                whole.extend_from_slice(&self.buf);
                let r = Response::decode(&whole)?;
                let mut ev = vec![StreamEvent::Head {
                    status: r.status,
                    headers: r.headers,
                }];
                if !r.content.is_empty() {
                    ev.push(StreamEvent::Data(r.content));
                }
                ev.push(StreamEvent::End(r.trailers));
                Ok(ev)
            }
            _ => Err(Error::Truncated("streamed response")),
        }
    }
}

impl Fields {
    /// Like `decode_indeterminate` but an empty input is "need more", not "empty".
    fn decode_indeterminate_complete(r: &mut Reader<'_>) -> Result<Self, Error> {
        if r.is_empty() {
            return Err(Error::Truncated("field section"));
        }
        Self::decode_indeterminate(r)
    }
}
