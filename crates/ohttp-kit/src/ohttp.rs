//! Encapsulation of requests and responses (RFC 9458 §4), for both the client and the
//! gateway, and the chunked variant (draft-ietf-ohai-chunked-ohttp §5-§6).
//!
//! Single-use values are consumed by the call that uses them: a [`ClientRequest`]
//! encapsulates once and yields the [`ClientResponse`] that can open exactly the
//! matching response; a [`ServerResponse`] seals exactly one response.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::Error;
use crate::hpke::{self, Aead, Context, Kdf, Kem, Suite};
use crate::keyconfig::{KeyConfig, KeyPair, SymmetricSuite};
use crate::varint::{self, Reader};

/// `message/ohttp-req` media type (RFC 9458 §9.1).
pub const REQUEST_MEDIA_TYPE: &str = "message/ohttp-req";
/// `message/ohttp-res` media type (RFC 9458 §9.2).
pub const RESPONSE_MEDIA_TYPE: &str = "message/ohttp-res";
/// `message/ohttp-chunked-req` (draft-ietf-ohai-chunked-ohttp §8).
pub const CHUNKED_REQUEST_MEDIA_TYPE: &str = "message/ohttp-chunked-req";
/// `message/ohttp-chunked-res` (draft-ietf-ohai-chunked-ohttp §8).
pub const CHUNKED_RESPONSE_MEDIA_TYPE: &str = "message/ohttp-chunked-res";
/// `application/ohttp-keys` (RFC 9458 §9.3).
pub const KEYS_MEDIA_TYPE: &str = "application/ohttp-keys";

const REQUEST_LABEL: &[u8] = b"message/bhttp request";
const RESPONSE_LABEL: &[u8] = b"message/bhttp response";
const CHUNKED_REQUEST_LABEL: &[u8] = b"message/bhttp chunked request";
const CHUNKED_RESPONSE_LABEL: &[u8] = b"message/bhttp chunked response";
const FINAL_AAD: &[u8] = b"final";

/// Derived key material, wiped on drop.
type Secret = Zeroizing<Vec<u8>>;

/// Length of the request header: key id, KEM, KDF, AEAD (RFC 9458 §4.3).
const HDR_LEN: usize = 7;

fn header(key_id: u8, suite: Suite) -> [u8; HDR_LEN] {
    let mut h = [0u8; HDR_LEN];
    h[0] = key_id;
    h[1..3].copy_from_slice(&suite.kem.id().to_be_bytes());
    h[3..5].copy_from_slice(&suite.kdf.id().to_be_bytes());
    h[5..7].copy_from_slice(&suite.aead.id().to_be_bytes());
    h
}

fn info(label: &[u8], hdr: &[u8; HDR_LEN]) -> Vec<u8> {
    let mut i = Vec::with_capacity(label.len() + 1 + HDR_LEN);
    i.extend_from_slice(label);
    i.push(0);
    i.extend_from_slice(hdr);
    i
}

/// Response nonce length, max(Nn, Nk) (RFC 9458 §4.4).
fn response_nonce_len(aead: Aead) -> usize {
    aead.n_n().max(aead.n_k())
}

/// The response key schedule (RFC 9458 §4.4): `salt = enc || response_nonce`,
/// `prk = Extract(salt, secret)`, `key = Expand(prk, "key", Nk)`,
/// `nonce = Expand(prk, "nonce", Nn)`.
fn response_keys(
    suite: Suite,
    secret: &[u8],
    enc: &[u8; 32],
    response_nonce: &[u8],
) -> Result<(Secret, Secret), Error> {
    let mut salt = Vec::with_capacity(32 + response_nonce.len());
    salt.extend_from_slice(enc);
    salt.extend_from_slice(response_nonce);
    let prk = suite.kdf.extract(&salt, secret);
    let key = suite.kdf.expand(&prk, b"key", suite.aead.n_k())?;
    let nonce = suite.kdf.expand(&prk, b"nonce", suite.aead.n_n())?;
    Ok((key, nonce))
}

/// The client's side of one exchange: a key configuration and the chosen pair.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    key_id: u8,
    public_key: [u8; 32],
    suite: Suite,
}

impl ClientRequest {
    /// Prepare a request to `config`, using the first pair it offers (the gateway's
    /// preference; every pair this crate parses is supported).
    pub fn new(config: &KeyConfig) -> Result<Self, Error> {
        let s = config
            .suites()
            .first()
            .ok_or(Error::KeyConfig("no symmetric algorithms"))?;
        Self::with_suite(config, *s)
    }

    /// Prepare a request with a specific pair, which `config` must offer.
    pub fn with_suite(config: &KeyConfig, s: SymmetricSuite) -> Result<Self, Error> {
        if !config.suites().contains(&s) {
            return Err(Error::SuiteNotOffered);
        }
        Ok(Self {
            key_id: config.key_id(),
            public_key: *config.public_key(),
            suite: Suite {
                kem: config.kem(),
                kdf: s.kdf,
                aead: s.aead,
            },
        })
    }

    /// Encapsulate `request` (a Binary HTTP message) with a fresh ephemeral key drawn
    /// from `rng` (RFC 9458 §4.3).
    pub fn encapsulate(
        self,
        request: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<u8>, ClientResponse), Error> {
        let mut sk_e = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(sk_e.as_mut());
        self.encapsulate_with_ephemeral(request, &sk_e)
    }

    /// Encapsulate with a caller-chosen ephemeral X25519 secret. Reusing an ephemeral
    /// key breaks unlinkability: use [`Self::encapsulate`] unless reproducing a test
    /// vector.
    pub fn encapsulate_with_ephemeral(
        self,
        request: &[u8],
        sk_e: &Zeroizing<[u8; 32]>,
    ) -> Result<(Vec<u8>, ClientResponse), Error> {
        let hdr = header(self.key_id, self.suite);
        let (enc, mut ctx) = hpke::setup_base_s(
            self.suite,
            &self.public_key,
            &info(REQUEST_LABEL, &hdr),
            sk_e,
        )?;
        let ct = ctx.seal(b"", request)?;
        let mut out = Vec::with_capacity(HDR_LEN + 32 + ct.len());
        out.extend_from_slice(&hdr);
        out.extend_from_slice(&enc);
        out.extend_from_slice(&ct);
        let secret = ctx.export(RESPONSE_LABEL, response_nonce_len(self.suite.aead))?;
        Ok((
            out,
            ClientResponse {
                suite: self.suite,
                enc,
                secret,
            },
        ))
    }

    /// Start a chunked request (draft-ietf-ohai-chunked-ohttp §5): returns the header
    /// bytes to send first and the sealer for the chunks that follow.
    pub fn encapsulate_chunked(
        self,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<u8>, ChunkedRequestSealer), Error> {
        let mut sk_e = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(sk_e.as_mut());
        let hdr = header(self.key_id, self.suite);
        let (enc, ctx) = hpke::setup_base_s(
            self.suite,
            &self.public_key,
            &info(CHUNKED_REQUEST_LABEL, &hdr),
            &sk_e,
        )?;
        let secret = ctx.export(CHUNKED_RESPONSE_LABEL, response_nonce_len(self.suite.aead))?;
        let mut out = Vec::with_capacity(HDR_LEN + 32);
        out.extend_from_slice(&hdr);
        out.extend_from_slice(&enc);
        Ok((
            out,
            ChunkedRequestSealer {
                ctx,
                response: ChunkedClientResponse {
                    suite: self.suite,
                    enc,
                    secret,
                },
            },
        ))
    }
}

/// What the client keeps to open the response to its request.
pub struct ClientResponse {
    suite: Suite,
    enc: [u8; 32],
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientResponse")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl ClientResponse {
    /// Open an Encapsulated Response (RFC 9458 §4.4) and return the Binary HTTP bytes.
    pub fn decapsulate(self, enc_response: &[u8]) -> Result<Vec<u8>, Error> {
        let n = response_nonce_len(self.suite.aead);
        if enc_response.len() < n + self.suite.aead.n_t() {
            return Err(Error::Truncated("encapsulated response"));
        }
        let (nonce, ct) = enc_response.split_at(n);
        let (key, aead_nonce) = response_keys(self.suite, &self.secret, &self.enc, nonce)?;
        self.suite.aead.open(&key, &aead_nonce, b"", ct)
    }
}

/// The gateway's decryption side: every key it currently accepts (several during a
/// rotation), looked up by key identifier.
#[derive(Debug, Clone)]
pub struct Server {
    keys: Vec<KeyPair>,
}

/// The parsed, checked request header and the key it selects.
struct Selected<'a> {
    key: &'a KeyPair,
    hdr: [u8; HDR_LEN],
    suite: Suite,
    enc: [u8; 32],
}

impl Server {
    /// A server over `keys`. Two keys with the same identifier are refused: the
    /// identifier is how a request names its key (RFC 9458 §3.1).
    pub fn new(keys: Vec<KeyPair>) -> Result<Self, Error> {
        let mut ids: Vec<u8> = keys.iter().map(|k| k.config().key_id()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::KeyConfig("duplicate key identifier"));
        }
        if keys.is_empty() {
            return Err(Error::KeyConfig("no keys"));
        }
        Ok(Self { keys })
    }

    /// The public configurations, for `application/ohttp-keys`.
    pub fn configs(&self) -> Vec<KeyConfig> {
        self.keys.iter().map(|k| k.config().clone()).collect()
    }

    /// Parse the header (RFC 9458 §4.3), in the order that gives the most specific
    /// error: key id, then KEM, KDF, AEAD, then whether the key offers that pair.
    fn select<'a>(&'a self, r: &mut Reader<'_>) -> Result<Selected<'a>, Error> {
        let key_id = r.u8("key id")?;
        let kem_id = r.u16("KEM id")?;
        let kdf_id = r.u16("KDF id")?;
        let aead_id = r.u16("AEAD id")?;
        let key = self
            .keys
            .iter()
            .find(|k| k.config().key_id() == key_id)
            .ok_or(Error::UnknownKeyId(key_id))?;
        let kem = Kem::from_id(kem_id)?;
        if kem != key.config().kem() {
            return Err(Error::UnsupportedKem(kem_id));
        }
        let kdf = Kdf::from_id(kdf_id)?;
        let aead = Aead::from_id(aead_id)?;
        if !key
            .config()
            .suites()
            .contains(&SymmetricSuite { kdf, aead })
        {
            return Err(Error::SuiteNotOffered);
        }
        let suite = Suite { kem, kdf, aead };
        let mut enc = [0u8; 32];
        enc.copy_from_slice(r.bytes(kem.n_pk(), "encapsulated key")?);
        Ok(Selected {
            key,
            hdr: header(key_id, suite),
            suite,
            enc,
        })
    }

    /// Decapsulate an Encapsulated Request (RFC 9458 §4.3), returning the Binary HTTP
    /// request and the one-use handle to encapsulate the response.
    pub fn decapsulate(&self, enc_request: &[u8]) -> Result<(Vec<u8>, ServerResponse), Error> {
        let mut r = Reader::new(enc_request);
        let sel = self.select(&mut r)?;
        let ct = r.rest();
        if ct.len() < sel.suite.aead.n_t() {
            return Err(Error::Truncated("request ciphertext"));
        }
        let mut ctx = hpke::setup_base_r(
            sel.suite,
            sel.key.secret(),
            &sel.enc,
            &info(REQUEST_LABEL, &sel.hdr),
        )?;
        let pt = ctx.open(b"", ct)?;
        let secret = ctx.export(RESPONSE_LABEL, response_nonce_len(sel.suite.aead))?;
        Ok((
            pt,
            ServerResponse {
                suite: sel.suite,
                enc: sel.enc,
                secret,
            },
        ))
    }

    /// Decapsulate a complete chunked request (draft-ietf-ohai-chunked-ohttp §5),
    /// returning the concatenated plaintext chunks and the chunked response handle.
    /// The request body is bounded by the caller (the gateway's body limit); responses,
    /// which is where streaming matters, are sealed chunk by chunk.
    pub fn decapsulate_chunked(
        &self,
        body: &[u8],
    ) -> Result<(Vec<u8>, ChunkedServerResponse), Error> {
        let mut r = Reader::new(body);
        let sel = self.select(&mut r)?;
        let mut ctx = hpke::setup_base_r(
            sel.suite,
            sel.key.secret(),
            &sel.enc,
            &info(CHUNKED_REQUEST_LABEL, &sel.hdr),
        )?;
        let secret = ctx.export(CHUNKED_RESPONSE_LABEL, response_nonce_len(sel.suite.aead))?;
        let mut pt = Vec::new();
        loop {
            let len = r
                .varint("chunk length")
                .map_err(|_| Error::Chunk("missing final chunk"))?;
            if len == 0 {
                // The final chunk runs to the end of the message, sealed with "final".
                pt.extend_from_slice(&ctx.open(FINAL_AAD, r.rest())?);
                break;
            }
            let len = usize::try_from(len).map_err(|_| Error::Chunk("chunk length"))?;
            let chunk = r.bytes(len, "chunk")?;
            pt.extend_from_slice(&ctx.open(b"", chunk)?);
        }
        Ok((
            pt,
            ChunkedServerResponse {
                suite: sel.suite,
                enc: sel.enc,
                secret,
            },
        ))
    }
}

/// The gateway's one-use handle for the response to one request.
pub struct ServerResponse {
    suite: Suite,
    enc: [u8; 32],
    pub(crate) secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ServerResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerResponse")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl ServerResponse {
    /// Encapsulate `response` (Binary HTTP) with a random response nonce (RFC 9458 §4.4).
    pub fn encapsulate(
        self,
        response: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        let mut nonce = vec![0u8; response_nonce_len(self.suite.aead)];
        rng.fill_bytes(&mut nonce);
        self.encapsulate_with_nonce(response, &nonce)
    }

    /// Encapsulate with a caller-chosen response nonce (for test vectors).
    pub fn encapsulate_with_nonce(self, response: &[u8], nonce: &[u8]) -> Result<Vec<u8>, Error> {
        if nonce.len() != response_nonce_len(self.suite.aead) {
            return Err(Error::Crypto("response nonce length"));
        }
        let (key, aead_nonce) = response_keys(self.suite, &self.secret, &self.enc, nonce)?;
        let ct = self.suite.aead.seal(&key, &aead_nonce, b"", response)?;
        let mut out = Vec::with_capacity(nonce.len() + ct.len());
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }
}

/// The client's sealer for the chunks of a chunked request.
pub struct ChunkedRequestSealer {
    ctx: Context,
    response: ChunkedClientResponse,
}

impl std::fmt::Debug for ChunkedRequestSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedRequestSealer")
            .finish_non_exhaustive()
    }
}

fn frame_chunk(ct: &[u8], last: bool, out: &mut Vec<u8>) {
    varint::encode(if last { 0 } else { ct.len() as u64 }, out);
    out.extend_from_slice(ct);
}

impl ChunkedRequestSealer {
    /// Seal one non-final chunk; an empty chunk is not allowed (a zero length means
    /// "final" on the wire), so it is an error.
    pub fn seal_chunk(&mut self, chunk: &[u8]) -> Result<Vec<u8>, Error> {
        if chunk.is_empty() {
            return Err(Error::Chunk("empty non-final chunk"));
        }
        let ct = self.ctx.seal(b"", chunk)?;
        let mut out = Vec::with_capacity(ct.len() + 8);
        frame_chunk(&ct, false, &mut out);
        Ok(out)
    }

    /// Seal the final chunk (may be empty) and return the response decoder.
    pub fn finish(mut self, chunk: &[u8]) -> Result<(Vec<u8>, ChunkedClientResponse), Error> {
        let ct = self.ctx.seal(FINAL_AAD, chunk)?;
        let mut out = Vec::with_capacity(ct.len() + 1);
        frame_chunk(&ct, true, &mut out);
        Ok((out, self.response))
    }
}

/// The gateway's handle for a chunked response (draft-ietf-ohai-chunked-ohttp §6).
pub struct ChunkedServerResponse {
    suite: Suite,
    enc: [u8; 32],
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChunkedServerResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedServerResponse")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl ChunkedServerResponse {
    /// Choose the response nonce and return it (to send first) with the chunk sealer.
    pub fn start(self, rng: &mut impl CryptoRngCore) -> Result<(Vec<u8>, ChunkSealer), Error> {
        let mut nonce = vec![0u8; response_nonce_len(self.suite.aead)];
        rng.fill_bytes(&mut nonce);
        let (key, base_nonce) = response_keys(self.suite, &self.secret, &self.enc, &nonce)?;
        Ok((
            nonce,
            ChunkSealer {
                aead: self.suite.aead,
                key,
                base_nonce,
                counter: 0,
                done: false,
            },
        ))
    }
}

/// Seals response chunks; the nonce of chunk `i` is `aead_nonce XOR I2OSP(i, Nn)`.
pub struct ChunkSealer {
    aead: Aead,
    key: Zeroizing<Vec<u8>>,
    base_nonce: Zeroizing<Vec<u8>>,
    counter: u64,
    done: bool,
}

impl std::fmt::Debug for ChunkSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSealer")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

fn chunk_nonce(base: &[u8], counter: u64) -> Vec<u8> {
    let mut n = base.to_vec();
    let c = counter.to_be_bytes();
    let off = n.len() - c.len();
    for (a, b) in n[off..].iter_mut().zip(c) {
        *a ^= b;
    }
    n
}

impl ChunkSealer {
    /// Seal one chunk as a framed wire chunk. After the final chunk nothing more can
    /// be sealed. Empty non-final chunks are skipped (returns an empty vector).
    pub fn seal(&mut self, chunk: &[u8], last: bool) -> Result<Vec<u8>, Error> {
        if self.done {
            return Err(Error::Chunk("chunk after the final chunk"));
        }
        if chunk.is_empty() && !last {
            return Ok(Vec::new());
        }
        let aad = if last { FINAL_AAD } else { b"" };
        let ct = self.aead.seal(
            &self.key,
            &chunk_nonce(&self.base_nonce, self.counter),
            aad,
            chunk,
        )?;
        self.counter = self.counter.checked_add(1).ok_or(Error::SequenceOverflow)?;
        self.done = last;
        let mut out = Vec::with_capacity(ct.len() + 8);
        frame_chunk(&ct, last, &mut out);
        Ok(out)
    }
}

/// The client's incremental decoder for a chunked response. Feed it bytes as they
/// arrive with [`Self::push`]; call [`Self::finish`] at end of stream. A stream that
/// ends without its final chunk is an error, which is what stops a relay or network
/// attacker from truncating a response undetected.
pub struct ChunkedClientResponse {
    suite: Suite,
    enc: [u8; 32],
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChunkedClientResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedClientResponse")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl ChunkedClientResponse {
    /// Begin decoding; `max_chunk` bounds the buffered size of one chunk.
    pub fn decoder(self, max_chunk: usize) -> ChunkOpener {
        ChunkOpener {
            head: Some(self),
            keys: None,
            buf: Vec::new(),
            counter: 0,
            in_final: false,
            max_chunk,
        }
    }
}

/// See [`ChunkedClientResponse`].
pub struct ChunkOpener {
    head: Option<ChunkedClientResponse>,
    keys: Option<(Aead, Secret, Secret)>,
    buf: Vec<u8>,
    counter: u64,
    in_final: bool,
    max_chunk: usize,
}

impl std::fmt::Debug for ChunkOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkOpener")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl ChunkOpener {
    /// Add received bytes; returns the plaintext of every chunk completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        if let Some(head) = &self.head {
            let n = response_nonce_len(head.suite.aead);
            if self.buf.len() < n {
                return Ok(out);
            }
            let (key, nonce) = response_keys(head.suite, &head.secret, &head.enc, &self.buf[..n])?;
            self.keys = Some((head.suite.aead, key, nonce));
            self.head = None;
            self.buf.drain(..n);
        }
        while !self.in_final {
            let Ok((len, used)) = varint::decode(&self.buf) else {
                break;
            };
            if len == 0 {
                self.in_final = true;
                self.buf.drain(..used);
                break;
            }
            let len = usize::try_from(len).map_err(|_| Error::Chunk("chunk length"))?;
            if len > self.max_chunk {
                return Err(Error::TooLarge {
                    size: len,
                    limit: self.max_chunk,
                });
            }
            if self.buf.len() < used + len {
                break;
            }
            let ct: Vec<u8> = self.buf.drain(..used + len).skip(used).collect();
            let pt = self.open(&ct, false)?;
            out.push(pt);
        }
        if self.in_final && self.buf.len() > self.max_chunk {
            return Err(Error::TooLarge {
                size: self.buf.len(),
                limit: self.max_chunk,
            });
        }
        Ok(out)
    }

    fn open(&mut self, ct: &[u8], last: bool) -> Result<Vec<u8>, Error> {
        let (aead, key, nonce) = self
            .keys
            .as_ref()
            .ok_or(Error::Truncated("response nonce"))?;
        let aad = if last { FINAL_AAD } else { b"" };
        let pt = aead.open(key, &chunk_nonce(nonce, self.counter), aad, ct)?;
        self.counter = self.counter.checked_add(1).ok_or(Error::SequenceOverflow)?;
        Ok(pt)
    }

    /// End of stream: open the final chunk. Errors if the final chunk never came.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        if !self.in_final {
            return Err(Error::Chunk("stream ended without the final chunk"));
        }
        let rest = std::mem::take(&mut self.buf);
        self.open(&rest, true)
    }
}
