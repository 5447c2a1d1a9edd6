//! A strict decoder and deterministic encoder for the small CBOR subset a CMW
//! collection needs (RFC 8949): unsigned integers (major type 0), byte strings
//! (2), text strings (3), arrays (4) and maps (5), definite lengths only.
//!
//! Why not a general CBOR crate: the extension is attacker-supplied, and the
//! subset is small enough that a strict reader is easier to audit than a
//! lenient general one. The reader accepts only the RFC 8949 section 4.2.1
//! "core deterministic encoding": shortest-form arguments, definite lengths,
//! map keys in bytewise lexicographic order of their encodings, no duplicates.
//! Anything else is refused, so one collection has exactly one encoding.

/// A decoded item borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    Uint(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
    Array(Vec<Item<'a>>),
    Map(Vec<(Item<'a>, Item<'a>)>),
}

/// Nesting limit: a CMW collection here is map -> record array -> leaf.
const MAX_DEPTH: usize = 4;
/// Element-count limit per array or map, far above what a collection needs.
const MAX_ITEMS: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CborError {
    Truncated,
    TrailingBytes,
    Unsupported,
    NonCanonical,
    TooDeep,
    TooMany,
    BadUtf8,
    UnsortedOrDuplicateKeys,
}

impl CborError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Truncated => "CBOR truncated",
            Self::TrailingBytes => "bytes after the CBOR item",
            Self::Unsupported => "unsupported CBOR major type or indefinite length",
            Self::NonCanonical => "CBOR argument not in shortest form",
            Self::TooDeep => "CBOR nested too deeply",
            Self::TooMany => "CBOR container has too many elements",
            Self::BadUtf8 => "CBOR text string is not UTF-8",
            Self::UnsortedOrDuplicateKeys => "CBOR map keys unsorted or duplicated",
        }
    }
}

/// Decodes exactly one item spanning all of `input`.
pub(crate) fn decode(input: &[u8]) -> Result<Item<'_>, CborError> {
    let mut r = Reader { buf: input, pos: 0 };
    let item = r.item(0)?;
    if r.pos != input.len() {
        return Err(CborError::TrailingBytes);
    }
    Ok(item)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a head: (major type, argument), enforcing the shortest form.
    fn head(&mut self) -> Result<(u8, u64), CborError> {
        let ib = self.byte()?;
        let major = ib >> 5;
        let info = ib & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => {
                let v = u64::from(self.byte()?);
                if v < 24 {
                    return Err(CborError::NonCanonical);
                }
                v
            }
            25 => {
                let b = self.take(2)?;
                let v = u64::from(u16::from_be_bytes([b[0], b[1]]));
                if v <= 0xff {
                    return Err(CborError::NonCanonical);
                }
                v
            }
            26 => {
                let b = self.take(4)?;
                let v = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if v <= 0xffff {
                    return Err(CborError::NonCanonical);
                }
                v
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                let v = u64::from_be_bytes(a);
                if v <= 0xffff_ffff {
                    return Err(CborError::NonCanonical);
                }
                v
            }
            // 28..=30 reserved, 31 indefinite length: outside the deterministic subset.
            _ => return Err(CborError::Unsupported),
        };
        Ok((major, arg))
    }

    fn len(&mut self, arg: u64) -> Result<usize, CborError> {
        let n = usize::try_from(arg).map_err(|_| CborError::Truncated)?;
        if n > self.buf.len() - self.pos {
            return Err(CborError::Truncated);
        }
        Ok(n)
    }

    fn item(&mut self, depth: usize) -> Result<Item<'a>, CborError> {
        if depth >= MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let (major, arg) = self.head()?;
        match major {
            0 => Ok(Item::Uint(arg)),
            2 => {
                let n = self.len(arg)?;
                Ok(Item::Bytes(self.take(n)?))
            }
            3 => {
                let n = self.len(arg)?;
                let s = std::str::from_utf8(self.take(n)?).map_err(|_| CborError::BadUtf8)?;
                Ok(Item::Text(s))
            }
            4 => {
                if arg > MAX_ITEMS {
                    return Err(CborError::TooMany);
                }
                let mut v = Vec::new();
                for _ in 0..arg {
                    v.push(self.item(depth + 1)?);
                }
                Ok(Item::Array(v))
            }
            5 => {
                if arg > MAX_ITEMS {
                    return Err(CborError::TooMany);
                }
                let mut v = Vec::new();
                let mut prev_key: Option<&'a [u8]> = None;
                for _ in 0..arg {
                    let key_start = self.pos;
                    let k = self.item(depth + 1)?;
                    let key_enc = &self.buf[key_start..self.pos];
                    if let Some(p) = prev_key {
                        // RFC 8949 section 4.2.1: keys sorted bytewise by encoding.
                        if p >= key_enc {
                            return Err(CborError::UnsortedOrDuplicateKeys);
                        }
                    }
                    prev_key = Some(key_enc);
                    let val = self.item(depth + 1)?;
                    v.push((k, val));
                }
                Ok(Item::Map(v))
            }
            _ => Err(CborError::Unsupported),
        }
    }
}

/// Appends a head with the shortest-form argument (RFC 8949 section 4.2.1).
fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let mt = major << 5;
    if arg < 24 {
        out.push(mt | arg as u8);
    } else if arg <= 0xff {
        out.push(mt | 24);
        out.push(arg as u8);
    } else if arg <= 0xffff {
        out.push(mt | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(mt | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(mt | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Deterministic encoding. Map entries are sorted here, so callers need not care.
pub(crate) fn encode(item: &Item<'_>, out: &mut Vec<u8>) {
    match item {
        Item::Uint(v) => put_head(out, 0, *v),
        Item::Bytes(b) => {
            put_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Item::Text(s) => {
            put_head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Item::Array(v) => {
            put_head(out, 4, v.len() as u64);
            for i in v {
                encode(i, out);
            }
        }
        Item::Map(entries) => {
            let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = entries
                .iter()
                .map(|(k, v)| {
                    let mut ke = Vec::new();
                    encode(k, &mut ke);
                    let mut ve = Vec::new();
                    encode(v, &mut ve);
                    (ke, ve)
                })
                .collect();
            encoded.sort_by(|a, b| a.0.cmp(&b.0));
            put_head(out, 5, encoded.len() as u64);
            for (k, v) in encoded {
                out.extend_from_slice(&k);
                out.extend_from_slice(&v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8949_appendix_a_vectors() {
        // Selected unsigned-integer, string and container vectors from RFC 8949 Appendix A.
        let cases: &[(Item<'_>, &str)] = &[
            (Item::Uint(0), "00"),
            (Item::Uint(23), "17"),
            (Item::Uint(24), "1818"),
            (Item::Uint(100), "1864"),
            (Item::Uint(1000), "1903e8"),
            (Item::Uint(1_000_000), "1a000f4240"),
            (Item::Uint(1_000_000_000_000), "1b000000e8d4a51000"),
            (Item::Bytes(&[1, 2, 3, 4]), "4401020304"),
            (Item::Text("IETF"), "6449455446"),
            (Item::Text("\u{00fc}"), "62c3bc"),
            (
                Item::Array(vec![Item::Uint(1), Item::Uint(2), Item::Uint(3)]),
                "83010203",
            ),
            (
                Item::Map(vec![
                    (Item::Text("a"), Item::Uint(1)),
                    (
                        Item::Text("b"),
                        Item::Array(vec![Item::Uint(2), Item::Uint(3)]),
                    ),
                ]),
                "a26161016162820203",
            ),
        ];
        for (item, hex_str) in cases {
            let mut out = Vec::new();
            encode(item, &mut out);
            assert_eq!(hex::encode(&out), *hex_str);
            let bytes = hex::decode(hex_str).unwrap();
            assert_eq!(&decode(&bytes).unwrap(), item);
        }
    }

    #[test]
    fn refuses_non_deterministic_forms() {
        // 1 encoded in two bytes; indefinite-length array; unsorted and duplicate keys.
        assert_eq!(
            decode(&hex::decode("1801").unwrap()),
            Err(CborError::NonCanonical)
        );
        assert_eq!(
            decode(&hex::decode("9f01ff").unwrap()),
            Err(CborError::Unsupported)
        );
        assert_eq!(
            decode(&hex::decode("a261620161610102").unwrap()),
            Err(CborError::UnsortedOrDuplicateKeys)
        );
        assert_eq!(
            decode(&hex::decode("a2616101616102").unwrap()),
            Err(CborError::UnsortedOrDuplicateKeys)
        );
        // Negative integers, tags, floats are outside the subset.
        assert_eq!(decode(&[0x20]), Err(CborError::Unsupported));
        assert_eq!(decode(&[0xc1, 0x00]), Err(CborError::Unsupported));
        assert_eq!(decode(&[0xf5]), Err(CborError::Unsupported));
    }

    #[test]
    fn refuses_truncation_at_every_boundary() {
        let mut full = Vec::new();
        encode(
            &Item::Map(vec![(
                Item::Text("evidence"),
                Item::Array(vec![Item::Text("t"), Item::Bytes(&[9; 300]), Item::Uint(4)]),
            )]),
            &mut full,
        );
        assert!(decode(&full).is_ok());
        for cut in 0..full.len() {
            assert!(decode(&full[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut longer = full.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(CborError::TrailingBytes));
    }

    #[test]
    fn refuses_deep_nesting_and_huge_lengths() {
        assert_eq!(
            decode(&[0x81, 0x81, 0x81, 0x81, 0x00]),
            Err(CborError::TooDeep)
        );
        // A byte string claiming 2^32 bytes.
        assert_eq!(
            decode(&hex::decode("5b0000000100000000").unwrap()),
            Err(CborError::Truncated)
        );
        assert_eq!(
            decode(&hex::decode("9818").unwrap()),
            Err(CborError::Truncated)
        );
        assert_eq!(
            decode(&hex::decode("98ff").unwrap()),
            Err(CborError::TooMany)
        );
    }
}
