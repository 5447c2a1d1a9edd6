//! Byte-level BPE tokenizer assembled from GGUF metadata.
//!
//! GGUF files carry their tokenizer as metadata (GGUF spec, "Tokenizer" keys:
//! `tokenizer.ggml.model`, `.pre`, `.tokens`, `.token_type`, `.merges`,
//! `.bos_token_id`, `.eos_token_id`). For `model = "gpt2"` the vocabulary is a
//! byte-level BPE (GPT-2, Radford et al. 2019): text is first cut into pieces by a
//! pre-tokenizer, every byte of a piece is mapped to a printable character, and the
//! merges are applied in rank order.
//!
//! Why our own: the engine renders prompts straight to token ids ([`crate::template`]),
//! so that request text can never become a control token, and it detokenizes each id to
//! bytes itself (UTF-8 assembly across tokens). A tokenizer must also honour the `pre`
//! name: candle 0.11's GGUF tokenizer (our engine before llama.cpp) ignored it and so
//! dropped SmolLM2's per-digit split (`tokenizer.ggml.pre = "smollm"`, which in the model's
//! original `tokenizer.json` is `Digits(individual_digits)` followed by the GPT-2
//! `ByteLevel` regex). Wrong pre-tokenization gives the model token sequences it never
//! saw in training. The pre-tokenizers implemented here are named by their llama.cpp
//! `pre` identifiers: `gpt2`/`default`, `smollm`, `qwen2`, `llama-bpe`.

use std::collections::HashMap;

use fancy_regex::Regex;
use zeroize::Zeroizing;

use crate::EngineError;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// GPT-2's split: contractions, letters, numbers, other symbols, whitespace runs not
/// followed by a non-space (so the last space sticks to the next word).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Qwen2: case-insensitive contractions, single digits, newline runs kept apart.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3: like Qwen2 but numbers in groups of up to three digits.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How text is cut into pieces before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2 regex only.
    Gpt2,
    /// SmolLM2: every ASCII digit is its own piece, then the GPT-2 regex.
    SmolLm,
    /// Qwen2 regex.
    Qwen2,
    /// Llama 3 regex.
    Llama3,
}

impl PreTokenizer {
    /// Map a GGUF `tokenizer.ggml.pre` value.
    pub fn from_gguf_name(name: &str) -> Result<Self, EngineError> {
        match name {
            "gpt2" | "default" => Ok(Self::Gpt2),
            "smollm" => Ok(Self::SmolLm),
            "qwen2" => Ok(Self::Qwen2),
            "llama-bpe" | "llama3" => Ok(Self::Llama3),
            other => Err(EngineError::UnsupportedTokenizer(format!(
                "pre-tokenizer `{other}`"
            ))),
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Self::Gpt2 | Self::SmolLm => GPT2_PATTERN,
            Self::Qwen2 => QWEN2_PATTERN,
            Self::Llama3 => LLAMA3_PATTERN,
        }
    }
}

/// The tokenizer part of a GGUF file's metadata, as plain data.
#[derive(Debug, Clone)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model` (only `gpt2` is supported).
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (empty: all normal).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`, each `"left right"`.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
}

impl TokenizerSpec {
    /// Read the tokenizer keys from GGUF metadata.
    pub fn from_gguf(md: &HashMap<String, crate::gguf::Value>) -> Result<Self, EngineError> {
        use crate::gguf::Value;
        let string = |key: &str| -> Result<String, EngineError> {
            match md.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(EngineError::InvalidTokenizer(format!(
                    "{key} is not a string"
                ))),
                None => Err(EngineError::InvalidTokenizer(format!("{key} is missing"))),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, EngineError> {
            match md.get(key) {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(EngineError::InvalidTokenizer(format!(
                            "{key} has a non-string element"
                        ))),
                    })
                    .collect(),
                Some(_) => Err(EngineError::InvalidTokenizer(format!(
                    "{key} is not an array"
                ))),
                None => Err(EngineError::InvalidTokenizer(format!("{key} is missing"))),
            }
        };
        let id = |key: &str| -> Result<Option<u32>, EngineError> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => v
                    .to_u32()
                    .map(Some)
                    .ok_or_else(|| EngineError::InvalidTokenizer(format!("{key} is not a u32"))),
            }
        };
        let token_types = match md.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.to_i32().ok_or_else(|| {
                        EngineError::InvalidTokenizer(
                            "tokenizer.ggml.token_type has a non-i32 element".into(),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(EngineError::InvalidTokenizer(
                    "tokenizer.ggml.token_type is not an array".into(),
                ));
            }
        };
        let model = string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            // SentencePiece-style vocabularies (`llama`, used by Gemma) need a different
            // algorithm; refuse rather than tokenize wrongly.
            return Err(EngineError::UnsupportedTokenizer(format!(
                "model `{model}`"
            )));
        }
        Ok(Self {
            model,
            pre: string("tokenizer.ggml.pre").unwrap_or_else(|_| "default".to_owned()),
            tokens: strings("tokenizer.ggml.tokens")?,
            token_types,
            merges: strings("tokenizer.ggml.merges")?,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
        })
    }
}

/// A byte-level BPE tokenizer.
pub struct Tokenizer {
    pre: PreTokenizer,
    regex: Regex,
    /// Token string -> id (all tokens, including control tokens, for lookups by name).
    ids: HashMap<String, u32>,
    /// Id of the token for each single byte. Vocabularies may lack a few (SmolLM2 has
    /// no token for some control bytes and for bytes that are never valid UTF-8).
    byte_ids: [Option<u32>; 256],
    /// (left, right) -> (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Bytes each token decodes to (empty for control tokens).
    decoded: Vec<Vec<u8>>,
    control: Vec<bool>,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("pre", &self.pre)
            .field("vocab_size", &self.decoded.len())
            .field("merges", &self.merges.len())
            .finish_non_exhaustive()
    }
}

/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes
/// map to themselves, the rest to U+0100 onwards in byte order.
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(b)
        } else {
            let c = next;
            next += 1;
            c
        };
        // Codes stay below 0x144: always valid scalar values.
        table[usize::from(b)] = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    table
}

impl Tokenizer {
    /// Build the tokenizer, checking the metadata for consistency.
    pub fn new(spec: &TokenizerSpec) -> Result<Self, EngineError> {
        if spec.model != "gpt2" {
            return Err(EngineError::UnsupportedTokenizer(format!(
                "model `{}`",
                spec.model
            )));
        }
        let pre = PreTokenizer::from_gguf_name(&spec.pre)?;
        let regex = Regex::new(pre.pattern())
            .map_err(|_| EngineError::InvalidTokenizer("pre-tokenizer regex".into()))?;
        let n = spec.tokens.len();
        if n == 0 || u32::try_from(n).is_err() {
            return Err(EngineError::InvalidTokenizer("vocabulary size".into()));
        }
        if !spec.token_types.is_empty() && spec.token_types.len() != n {
            return Err(EngineError::InvalidTokenizer(
                "token_type length differs from tokens".into(),
            ));
        }
        let to_byte: HashMap<char, u8> = byte_to_char_table()
            .iter()
            .enumerate()
            .map(|(b, c)| (*c, b as u8))
            .collect();

        let mut ids = HashMap::with_capacity(n);
        let mut decoded = Vec::with_capacity(n);
        let mut control = Vec::with_capacity(n);
        for (i, tok) in spec.tokens.iter().enumerate() {
            let ty = spec
                .token_types
                .get(i)
                .copied()
                .unwrap_or(token_type::NORMAL);
            let id = i as u32; // fits: checked above
            ids.entry(tok.clone()).or_insert(id);
            let (bytes, is_control) = match ty {
                token_type::CONTROL | token_type::UNUSED | token_type::UNKNOWN => {
                    (Vec::new(), true)
                }
                // User-defined (added) tokens are stored as plain text, not byte-mapped.
                token_type::USER_DEFINED => (tok.as_bytes().to_vec(), false),
                token_type::NORMAL | token_type::BYTE => {
                    let mut out = Vec::with_capacity(tok.len());
                    for c in tok.chars() {
                        match to_byte.get(&c) {
                            Some(b) => out.push(*b),
                            None => {
                                return Err(EngineError::InvalidTokenizer(format!(
                                    "token {i} is not byte-level"
                                )));
                            }
                        }
                    }
                    (out, false)
                }
                other => {
                    return Err(EngineError::InvalidTokenizer(format!(
                        "token {i} has unknown type {other}"
                    )));
                }
            };
            decoded.push(bytes);
            control.push(is_control);
        }

        let table = byte_to_char_table();
        let mut byte_ids = [None; 256];
        for (b, c) in table.iter().enumerate() {
            byte_ids[b] = ids.get(&c.to_string()).copied();
        }
        // Printable ASCII must be representable, or this is not a byte-level vocabulary.
        if (b' '..=b'~').any(|b| byte_ids[usize::from(b)].is_none()) {
            return Err(EngineError::InvalidTokenizer(
                "vocabulary lacks byte tokens for printable ASCII".into(),
            ));
        }

        let mut merges = HashMap::with_capacity(spec.merges.len());
        for (rank, m) in spec.merges.iter().enumerate() {
            let (l, r) = m.split_once(' ').ok_or_else(|| {
                EngineError::InvalidTokenizer(format!("merge {rank} has no separator"))
            })?;
            let lookup = |s: &str| {
                ids.get(s).copied().ok_or_else(|| {
                    EngineError::InvalidTokenizer(format!("merge {rank} names an unknown token"))
                })
            };
            let (li, ri) = (lookup(l)?, lookup(r)?);
            let merged = lookup(&format!("{l}{r}"))?;
            let rank = u32::try_from(rank)
                .map_err(|_| EngineError::InvalidTokenizer("too many merges".into()))?;
            // The first (lowest-rank) occurrence of a pair wins, as in every BPE trainer.
            merges.entry((li, ri)).or_insert((rank, merged));
        }
        for (name, id) in [("bos", spec.bos), ("eos", spec.eos)] {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(EngineError::InvalidTokenizer(format!(
                    "{name} token id out of range"
                )));
            }
        }

        Ok(Self {
            pre,
            regex,
            ids,
            byte_ids,
            merges,
            decoded,
            control,
            bos: spec.bos,
            eos: spec.eos,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.decoded.len()
    }

    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// The id of a token by its exact vocabulary string (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Beginning-of-sequence token id, if the model has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token id, if the model has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `id` is a control token (never produced from text, never printed).
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// Encode text as ordinary text: control-token strings inside it (such as
    /// `<|im_end|>`) are tokenized as the characters they are, never as control tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        match self.pre {
            PreTokenizer::SmolLm => {
                // `Digits(individual_digits = true)`: each ASCII digit is isolated, and
                // the GPT-2 regex runs on the text between digits.
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if c.is_ascii_digit() {
                        self.encode_regex(&text[start..i], &mut out)?;
                        self.encode_piece(&text.as_bytes()[i..i + 1], &mut out)?;
                        start = i + 1;
                    }
                }
                self.encode_regex(&text[start..], &mut out)?;
            }
            _ => self.encode_regex(text, &mut out)?,
        }
        Ok(out)
    }

    fn encode_regex(&self, text: &str, out: &mut Vec<u32>) -> Result<(), EngineError> {
        let mut last = 0;
        for m in self.regex.find_iter(text) {
            let m = m.map_err(|_| EngineError::Tokenize)?;
            if m.start() > last {
                // The patterns cover every character; keep any gap rather than drop it.
                self.encode_piece(&text.as_bytes()[last..m.start()], out)?;
            }
            self.encode_piece(m.as_str().as_bytes(), out)?;
            last = m.end();
        }
        if last < text.len() {
            self.encode_piece(&text.as_bytes()[last..], out)?;
        }
        Ok(())
    }

    /// BPE on one piece: start from byte tokens, repeatedly merge the adjacent pair with
    /// the lowest merge rank (leftmost on ties) until no pair has a merge.
    ///
    /// A byte without a token is an error rather than silently dropped (which is what
    /// Hugging Face's BPE does without an unknown token): the model must see the text
    /// the person sent, or nothing.
    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<(), EngineError> {
        let mut syms: Zeroizing<Vec<u32>> = Zeroizing::new(
            piece
                .iter()
                .map(|b| self.byte_ids[usize::from(*b)])
                .collect::<Option<Vec<u32>>>()
                .ok_or(EngineError::UnrepresentableText)?,
        );
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(syms[i], syms[i + 1]))
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, merged));
                }
            }
            match best {
                Some((_, i, merged)) => {
                    syms[i] = merged;
                    syms.remove(i + 1);
                }
                None => break,
            }
        }
        out.extend_from_slice(&syms);
        Ok(())
    }

    /// The bytes token `id` stands for (empty for control tokens and unknown ids).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.decoded.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Decode a whole sequence (lossy on invalid UTF-8; control tokens are skipped).
    pub fn decode(&self, ids: &[u32]) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::new());
        for id in ids {
            bytes.extend_from_slice(self.token_bytes(*id));
        }
        Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny hand-made vocabulary: all 256 byte tokens, then merges building "ab",
    /// "abc", and a control token.
    fn toy() -> Tokenizer {
        let table = byte_to_char_table();
        let mut tokens: Vec<String> = table.iter().map(|c| c.to_string()).collect();
        tokens.push("ab".into());
        tokens.push("abc".into());
        tokens.push("<|end|>".into());
        let mut types = vec![1; tokens.len()];
        types[258] = token_type::CONTROL;
        Tokenizer::new(&TokenizerSpec {
            model: "gpt2".into(),
            pre: "smollm".into(),
            tokens,
            token_types: types,
            merges: vec!["a b".into(), "ab c".into()],
            bos: None,
            eos: Some(258),
        })
        .unwrap()
    }

    #[test]
    fn merges_apply_in_rank_order() {
        let t = toy();
        assert_eq!(t.encode("abc").unwrap(), vec![257]);
        assert_eq!(t.encode("abab").unwrap(), vec![256, 256]);
        assert_eq!(t.decode(&[257, 256]).as_str(), "abcab");
    }

    #[test]
    fn control_token_text_is_not_a_control_token() {
        let t = toy();
        let ids = t.encode("<|end|>").unwrap();
        assert!(!ids.contains(&258));
        assert_eq!(t.decode(&ids).as_str(), "<|end|>");
        assert!(t.is_control(258));
        assert_eq!(t.token_bytes(258), b"");
    }

    #[test]
    fn byte_table_is_a_bijection() {
        let table = byte_to_char_table();
        let mut seen: Vec<char> = table.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(table[usize::from(b' ')], 'Ġ');
        assert_eq!(table[usize::from(b'\n')], 'Ċ');
    }

    #[test]
    fn rejects_unknown_pre_tokenizer_and_model() {
        let mut spec = TokenizerSpec {
            model: "gpt2".into(),
            pre: "made-up".into(),
            tokens: vec!["a".into()],
            token_types: vec![],
            merges: vec![],
            bos: None,
            eos: None,
        };
        assert!(matches!(
            Tokenizer::new(&spec),
            Err(EngineError::UnsupportedTokenizer(_))
        ));
        spec.pre = "gpt2".into();
        spec.model = "llama".into();
        assert!(matches!(
            Tokenizer::new(&spec),
            Err(EngineError::UnsupportedTokenizer(_))
        ));
        spec.model = "gpt2".into();
        // Only one token: the byte tokens for printable ASCII are missing.
        assert!(matches!(
            Tokenizer::new(&spec),
            Err(EngineError::InvalidTokenizer(_))
        ));
    }
}
