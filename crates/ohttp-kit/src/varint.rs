//! QUIC variable-length integers (RFC 9000 §16), the length encoding that Binary HTTP
//! (RFC 9292 §3) and chunked OHTTP (draft-ietf-ohai-chunked-ohttp §2) both use.

use crate::Error;

/// The largest value a QUIC varint can carry (2^62 - 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Append `v` in the shortest encoding. Values above [`MAX`] cannot occur in this crate
/// (all lengths come from in-memory buffers), so they are clamped rather than panicking.
pub fn encode(v: u64, out: &mut Vec<u8>) {
    let v = v.min(MAX);
    if v < (1 << 6) {
        out.push(v as u8);
    } else if v < (1 << 14) {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < (1 << 30) {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Decode one varint from the front of `buf`, returning the value and the number of
/// bytes it took. Non-minimal encodings are accepted (RFC 9000 §16 allows them).
pub fn decode(buf: &[u8]) -> Result<(u64, usize), Error> {
    let first = *buf.first().ok_or(Error::Truncated("varint"))?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len).ok_or(Error::Truncated("varint"))?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    Ok((v, len))
}

/// A cursor over a byte slice for the parsers in this crate. Every read is bounds
/// checked and reports which field was short, so truncation errors say where.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, Error> {
        let (v, n) = decode(self.rest()).map_err(|_| Error::Truncated(what))?;
        self.pos += n;
        Ok(v)
    }
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated(what))?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }
    /// A varint length followed by that many bytes.
    pub(crate) fn vec(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let n = self.varint(what)?;
        let n = usize::try_from(n).map_err(|_| Error::Truncated(what))?;
        self.bytes(n, what)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.bytes(1, what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9000_appendix_a1_examples() {
        // RFC 9000 §A.1 sample encodings.
        for (hex_in, v) in [
            ("c2197c5eff14e88c", 151_288_809_941_952_652u64),
            ("9d7f3e7d", 494_878_333),
            ("7bbd", 15_293),
            ("25", 37),
            ("4025", 37),
        ] {
            let b = hex::decode(hex_in).unwrap();
            assert_eq!(decode(&b).unwrap(), (v, b.len()));
        }
        let mut out = Vec::new();
        encode(15_293, &mut out);
        assert_eq!(hex::encode(out), "7bbd");
    }

    #[test]
    fn truncated_varint_is_an_error() {
        assert_eq!(decode(&[0x40]), Err(Error::Truncated("varint")));
        assert_eq!(decode(&[]), Err(Error::Truncated("varint")));
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(v in 0u64..=MAX) {
            let mut out = Vec::new();
            encode(v, &mut out);
            proptest::prop_assert_eq!(decode(&out).unwrap(), (v, out.len()));
        }
    }
}
