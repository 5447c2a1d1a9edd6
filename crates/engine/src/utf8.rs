//! Incremental UTF-8 assembly of byte-level tokens.
//!
//! Byte-level BPE tokens are byte strings: one character may be split across two
//! tokens (e.g. an emoji). Streaming must therefore hold back an incomplete sequence
//! until its remaining bytes arrive, and only ever emit whole characters.

use zeroize::Zeroizing;

/// Turns a sequence of byte chunks into whole-character text pieces.
#[derive(Default)]
pub struct Utf8Decoder {
    pending: Zeroizing<Vec<u8>>,
}

impl Utf8Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes; return all text that is now complete (possibly empty).
    ///
    /// Invalid sequences (not merely incomplete ones) become U+FFFD, as a lossy UTF-8
    /// decoder would produce for the whole output.
    pub fn push(&mut self, bytes: &[u8]) -> Zeroizing<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = Zeroizing::new(String::new());
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // `valid` bytes were just checked to be UTF-8.
                    out.push_str(&String::from_utf8_lossy(
                        &self.pending[start..start + valid],
                    ));
                    start += valid;
                    match e.error_len() {
                        // A truncated sequence at the end: wait for more bytes.
                        None => break,
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start += n;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// End of input: whatever is still pending is an incomplete sequence; emit it lossily.
    pub fn finish(&mut self) -> Zeroizing<String> {
        let out = Zeroizing::new(String::from_utf8_lossy(&self.pending).into_owned());
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multibyte_characters_across_pushes() {
        let mut d = Utf8Decoder::new();
        let bytes = "a€b".as_bytes(); // € is 3 bytes
        assert_eq!(d.push(&bytes[..2]).as_str(), "a");
        assert_eq!(d.push(&bytes[2..3]).as_str(), "");
        assert_eq!(d.push(&bytes[3..]).as_str(), "€b");
        assert_eq!(d.finish().as_str(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut d = Utf8Decoder::new();
        assert_eq!(d.push(&[b'x', 0xFF, b'y']).as_str(), "x\u{FFFD}y");
        assert_eq!(d.push(&[0xE2, 0x82]).as_str(), "");
        assert_eq!(d.finish().as_str(), "\u{FFFD}");
    }
}
