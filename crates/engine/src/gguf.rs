//! The metadata section of a GGUF file: just enough to build the tokenizer and pick the
//! chat template before llama.cpp loads the weights.
//!
//! Why our own reader: the engine renders prompts to token ids itself (see
//! [`crate::template`]) so request text can never become a control token, and that
//! needs the vocabulary, merges and token types as data. llama.cpp's C API does not
//! expose merges. The reader is small, does no I/O beyond the `Read` it is given, and
//! bounds every count and length by `limits` so a hostile file cannot make it allocate
//! more than the file could hold.
//!
//! Layout (GGUF v2 and v3, little-endian): magic `GGUF`, `u32` version, `u64` tensor
//! count, `u64` key/value count, then each pair as a string key, a `u32` value type and
//! the value. Strings are a `u64` length and UTF-8 bytes; arrays are a `u32` element
//! type, a `u64` count and the elements.

use std::collections::HashMap;
use std::io::Read;

use crate::EngineError;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Types 0 (u8), 2 (u16), 4 (u32), 10 (u64).
    Unsigned(u64),
    /// Types 1 (i8), 3 (i16), 5 (i32), 11 (i64).
    Signed(i64),
    /// Types 6 (f32) and 12 (f64).
    Float(f64),
    /// Type 7.
    Bool(bool),
    /// Type 8.
    String(String),
    /// Type 9.
    Array(Vec<Value>),
}

impl Value {
    /// The value as a `u32`, if it is an integer in range.
    pub fn to_u32(&self) -> Option<u32> {
        match *self {
            Self::Unsigned(v) => u32::try_from(v).ok(),
            Self::Signed(v) => u32::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an `i32`, if it is an integer in range.
    pub fn to_i32(&self) -> Option<i32> {
        match *self {
            Self::Unsigned(v) => i32::try_from(v).ok(),
            Self::Signed(v) => i32::try_from(v).ok(),
            _ => None,
        }
    }
}

/// The parsed metadata.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Number of tensors the file declares.
    pub tensor_count: u64,
    /// Key/value pairs.
    pub kv: HashMap<String, Value>,
}

impl Metadata {
    /// A string value.
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.kv.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// Upper bound on how many bytes the metadata section may occupy; a model's vocabulary
/// and merges take a few MiB, so 256 MiB is generous and still bounds allocation.
pub const MAX_METADATA_BYTES: u64 = 256 << 20;

const MAX_DEPTH: u32 = 2;

struct Reader<R> {
    inner: R,
    /// Bytes still allowed to be read.
    budget: u64,
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidModel(msg.into())
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, EngineError> {
        if n > self.budget {
            return Err(bad(format!(
                "GGUF metadata declares {n} more bytes than the {MAX_METADATA_BYTES}-byte limit allows"
            )));
        }
        self.budget -= n;
        let mut out = Vec::new();
        (&mut self.inner)
            .take(n)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("GGUF metadata: read failed: {}", e.kind())))?;
        if out.len() as u64 != n {
            return Err(bad("GGUF metadata is truncated"));
        }
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EngineError> {
        let v = self.bytes(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, EngineError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, EngineError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, EngineError> {
        let len = self.u64()?;
        String::from_utf8(self.bytes(len)?).map_err(|_| bad("GGUF string is not UTF-8"))
    }

    /// Smallest encoded size of one value of `ty`, to bound array counts before
    /// allocating.
    fn min_size(ty: u32) -> u64 {
        match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 => 8,
            9 => 12,
            _ => 8,
        }
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<Value, EngineError> {
        Ok(match ty {
            0 => Value::Unsigned(u64::from(self.array::<1>()?[0])),
            1 => Value::Signed(i64::from(i8::from_le_bytes(self.array()?))),
            2 => Value::Unsigned(u64::from(u16::from_le_bytes(self.array()?))),
            3 => Value::Signed(i64::from(i16::from_le_bytes(self.array()?))),
            4 => Value::Unsigned(u64::from(self.u32()?)),
            5 => Value::Signed(i64::from(i32::from_le_bytes(self.array()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.array()?))),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(bad(format!("GGUF bool has byte {b}"))),
            },
            8 => Value::String(self.string()?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(bad("GGUF arrays are nested too deeply"));
                }
                let elem = self.u32()?;
                let count = self.u64()?;
                if count.saturating_mul(Self::min_size(elem)) > self.budget {
                    return Err(bad(format!(
                        "GGUF array of {count} elements is larger than the metadata limit"
                    )));
                }
                let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::Unsigned(self.u64()?),
            11 => Value::Signed(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(bad(format!("GGUF value type {other} is unknown"))),
        })
    }
}

/// Read the header and every metadata key/value pair (not the tensor infos).
pub fn read_metadata(input: impl Read) -> Result<Metadata, EngineError> {
    let mut r = Reader {
        inner: input,
        budget: MAX_METADATA_BYTES,
    };
    if &r.array::<4>()? != b"GGUF" {
        return Err(bad("not a GGUF file (bad magic)"));
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(bad(format!(
            "GGUF version {version} is not supported (2 or 3)"
        )));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    // Each pair takes at least 8 (key length) + 4 (type) + 1 bytes.
    if kv_count.saturating_mul(13) > r.budget {
        return Err(bad(format!(
            "GGUF declares {kv_count} metadata pairs, more than the file can hold"
        )));
    }
    let mut kv = HashMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let ty = r.u32()?;
        let value = r.value(ty, 0)?;
        if kv.insert(key, value).is_some() {
            return Err(bad("GGUF metadata has a duplicate key"));
        }
    }
    Ok(Metadata {
        version,
        tensor_count,
        kv,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(kv_count: u64) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(0u64.to_le_bytes());
        v.extend(kv_count.to_le_bytes());
        v
    }

    fn key(v: &mut Vec<u8>, k: &str, ty: u32) {
        v.extend((k.len() as u64).to_le_bytes());
        v.extend(k.as_bytes());
        v.extend(ty.to_le_bytes());
    }

    #[test]
    fn reads_every_value_type() {
        let mut f = header(4);
        key(&mut f, "a.name", 8);
        f.extend(5u64.to_le_bytes());
        f.extend(b"qwen2");
        key(&mut f, "a.ctx", 4);
        f.extend(32768u32.to_le_bytes());
        key(&mut f, "a.types", 9);
        f.extend(5u32.to_le_bytes());
        f.extend(2u64.to_le_bytes());
        f.extend(1i32.to_le_bytes());
        f.extend((-3i32).to_le_bytes());
        key(&mut f, "a.flag", 7);
        f.push(1);
        let md = read_metadata(&f[..]).unwrap();
        assert_eq!(md.string("a.name"), Some("qwen2"));
        assert_eq!(md.kv["a.ctx"].to_u32(), Some(32768));
        assert_eq!(
            md.kv["a.types"],
            Value::Array(vec![Value::Signed(1), Value::Signed(-3)])
        );
        assert_eq!(md.kv["a.flag"], Value::Bool(true));
    }

    #[test]
    fn hostile_headers_are_typed_errors_without_huge_allocations() {
        assert!(read_metadata(&b"GGML\x03\0\0\0"[..]).is_err());
        let mut f = header(u64::MAX);
        f.extend([0u8; 16]);
        let e = read_metadata(&f[..]).unwrap_err().to_string();
        assert!(e.contains("metadata pairs"), "{e}");

        let mut f = header(1);
        key(&mut f, "arr", 9);
        f.extend(8u32.to_le_bytes());
        f.extend(u64::MAX.to_le_bytes());
        let e = read_metadata(&f[..]).unwrap_err().to_string();
        assert!(e.contains("array of"), "{e}");

        let mut f = header(1);
        key(&mut f, "s", 8);
        f.extend(u64::MAX.to_le_bytes());
        let e = read_metadata(&f[..]).unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");

        let mut f = header(1);
        key(&mut f, "t", 99);
        let e = read_metadata(&f[..]).unwrap_err().to_string();
        assert!(e.contains("type 99"), "{e}");

        let f = header(1);
        let e = read_metadata(&f[..]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
