//! Chat templates, rendered straight to token ids.
//!
//! A GGUF file carries its chat template as a Jinja string (`tokenizer.chat_template`).
//! Rather than run Jinja, we recognise the template family and render it in code:
//! control tokens (`<|im_start|>`, `<|im_end|>`) are emitted as ids and the text
//! between them is tokenized as plain text. So a message that *contains* the string
//! `<|im_end|>` cannot close its turn and inject a fake system turn: it stays text.
//!
//! ChatML (used by SmolLM2 and Qwen2), per message:
//! `<|im_start|>{role}\n{content}<|im_end|>\n`, then the generation prompt
//! `<|im_start|>assistant\n`.

use zeroize::Zeroizing;

use crate::tokenizer::Tokenizer;
use crate::{ChatMessage, EngineError};

/// A recognised chat template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// ChatML with the given control-token ids.
    ChatMl {
        /// `<|im_start|>`.
        im_start: u32,
        /// `<|im_end|>`.
        im_end: u32,
    },
}

impl ChatTemplate {
    /// Recognise the template from the GGUF `tokenizer.chat_template` source (if any)
    /// and the vocabulary. Without a template, a vocabulary with ChatML control tokens
    /// is taken to be ChatML.
    pub fn detect(source: Option<&str>, tok: &Tokenizer) -> Result<Self, EngineError> {
        let chatml = match (tok.token_id("<|im_start|>"), tok.token_id("<|im_end|>")) {
            (Some(s), Some(e)) if tok.is_control(s) && tok.is_control(e) => Some((s, e)),
            _ => None,
        };
        match (source, chatml) {
            (Some(src), Some((im_start, im_end))) if src.contains("<|im_start|>") => {
                Ok(Self::ChatMl { im_start, im_end })
            }
            (None, Some((im_start, im_end))) => Ok(Self::ChatMl { im_start, im_end }),
            _ => Err(EngineError::UnsupportedChatTemplate),
        }
    }

    /// Token ids that end the assistant's turn.
    pub fn stop_tokens(&self) -> Vec<u32> {
        match self {
            Self::ChatMl { im_end, .. } => vec![*im_end],
        }
    }

    /// Render a conversation plus the assistant generation prompt as token ids.
    pub fn render(
        &self,
        tok: &Tokenizer,
        messages: &[ChatMessage],
    ) -> Result<Zeroizing<Vec<u32>>, EngineError> {
        if messages.is_empty() {
            return Err(EngineError::EmptyConversation);
        }
        let mut ids = Zeroizing::new(Vec::new());
        match self {
            Self::ChatMl { im_start, im_end } => {
                let newline = tok.encode("\n")?;
                for m in messages {
                    ids.push(*im_start);
                    let text = Zeroizing::new(format!("{}\n{}", m.role.as_str(), &*m.content));
                    ids.extend(tok.encode(&text)?);
                    ids.push(*im_end);
                    ids.extend_from_slice(&newline);
                }
                ids.push(*im_start);
                ids.extend(tok.encode("assistant\n")?);
            }
        }
        Ok(ids)
    }
}
