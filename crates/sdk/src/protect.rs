//! User control: chats that AI may never see.
//!
//! A person can protect a chat (`confide chats protect`). From then on
//! [`crate::Client::summarize`] refuses it with [`crate::Error::ChatProtected`] before
//! anything leaves the device. A WhatsApp export with an Advanced Chat Privacy line that
//! turns the setting on (any such line, see [`crate::chat::ChatFacts`]) ([`crate::chat::ADVANCED_CHAT_PRIVACY_LINES`]) is protected
//! without being listed: someone in that chat asked that its messages not be used for AI.
//!
//! # Recognising a chat
//!
//! An export carries no stable chat id, so a chat is known by several keys, and it is
//! protected if *any* of its keys is on the list ([`ChatIdentity`]):
//!
//! - each chat name the export shows (created, renamed, and the chat name iOS puts in
//!   front of every system line), so a group that gains members is still recognised;
//! - the set of people who wrote in it, so a one-to-one chat (no group name) is
//!   recognised;
//! - the `chat_id` of a JSON export.
//!
//! Protecting a chat stores all its keys; a later export that shows any one of them
//! matches. Not recognised: an Android export without any created or rename line whose
//! writers changed, and a group renamed *and* joined by new people with the old name gone
//! from the export. Protect the new export too (`confide chats list` shows what is
//! protected).
//!
//! The list stores only SHA-256 digests of the keys (domain-separated), never names. They
//! are unsalted: someone holding the file can test a guessed name or set of people. An
//! optional label is the person's own words, given with `--name`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chat::Chat;
use crate::error::Error;
use crate::state::{read_json, write_json};

const VERSION: u32 = 1;

/// The keys a chat is recognised by: hex SHA-256 digests, sorted, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatIdentity {
    keys: Vec<String>,
}

fn key(kind: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"confide-chat-key/v1\n");
    h.update(kind.as_bytes());
    h.update(b"\n");
    h.update(value.as_bytes());
    hex::encode(h.finalize())
}

impl ChatIdentity {
    /// The identity of a parsed chat (the whole export, not a selection).
    pub fn of(chat: &Chat) -> ChatIdentity {
        let mut keys = Vec::new();
        for s in &chat.facts.subjects {
            keys.push(key("subject", s.trim()));
        }
        if let Some(id) = &chat.facts.chat_id {
            keys.push(key("chat-id", id.trim()));
        }
        let mut people: Vec<&str> = chat.messages.iter().map(|m| m.sender.as_str()).collect();
        people.sort_unstable();
        people.dedup();
        keys.push(key("participants", &people.join("\n")));
        keys.sort();
        keys.dedup();
        ChatIdentity { keys }
    }

    /// The keys, hex.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// A short, stable name for display: the first 12 hex digits of the first key.
    pub fn short(&self) -> &str {
        self.keys.first().map_or("", |k| &k[..12])
    }
}

/// One protected chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedChat {
    /// The chat's keys when it was protected (more are added when a later export of the
    /// same chat is protected again).
    pub keys: Vec<String>,
    /// The person's own label, if they gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When it was protected (Unix seconds).
    pub since: u64,
}

impl ProtectedChat {
    /// Whether this entry is the chat `id` names: they share any key.
    pub fn matches(&self, id: &ChatIdentity) -> bool {
        self.keys.iter().any(|k| id.keys.contains(k))
    }

    /// How to show the entry: the person's label, else the start of its first key.
    pub fn display_name(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| self.keys.first().map_or("", |k| &k[..12]).to_owned())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    version: u32,
    chats: Vec<ProtectedChat>,
}

/// Why a chat may not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protection {
    /// The person protected it on this device.
    Listed,
    /// The export says Advanced Chat Privacy is on.
    AdvancedChatPrivacy,
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protection::Listed => "you protected this chat from AI features",
            Protection::AdvancedChatPrivacy => {
                "the chat has Advanced Chat Privacy turned on, which keeps its messages \
                 out of AI features"
            }
        })
    }
}

/// The person's list of protected chats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedChats {
    chats: Vec<ProtectedChat>,
}

impl ProtectedChats {
    /// Read the list (a missing file: empty). A damaged file is an error, never "empty".
    pub fn load(path: &Path) -> Result<ProtectedChats, Error> {
        let Some(f) = read_json::<ListFile>(path)? else {
            return Ok(ProtectedChats::default());
        };
        let bad = |detail: String| Error::State {
            path: path.to_owned(),
            detail,
        };
        if f.version != VERSION {
            return Err(bad(format!(
                "unknown protected-chats version {}",
                f.version
            )));
        }
        for c in &f.chats {
            if c.keys.is_empty()
                || c.keys
                    .iter()
                    .any(|k| k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(bad("an entry has no valid chat key".into()));
            }
        }
        Ok(ProtectedChats { chats: f.chats })
    }

    /// Write the list crash-safely.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        write_json(
            path,
            &ListFile {
                version: VERSION,
                chats: self.chats.clone(),
            },
        )
    }

    /// The protected chats.
    pub fn chats(&self) -> &[ProtectedChat] {
        &self.chats
    }

    /// The entry that `id` matches, if any.
    pub fn find(&self, id: &ChatIdentity) -> Option<&ProtectedChat> {
        self.chats.iter().find(|c| c.matches(id))
    }

    /// Protect a chat. If it is already protected, its entry learns the new keys (and the
    /// label, if given). Returns whether it was newly protected.
    pub fn protect(&mut self, id: &ChatIdentity, label: Option<String>, now: u64) -> bool {
        if let Some(c) = self.chats.iter_mut().find(|c| c.matches(id)) {
            for k in &id.keys {
                if !c.keys.contains(k) {
                    c.keys.push(k.clone());
                }
            }
            c.keys.sort();
            if label.is_some() {
                c.label = label;
            }
            return false;
        }
        self.chats.push(ProtectedChat {
            keys: id.keys.clone(),
            label,
            since: now,
        });
        true
    }

    /// Remove every entry that `id` matches, and return them (one export can match
    /// several entries, e.g. two chats in which the same people wrote).
    pub fn unprotect(&mut self, id: &ChatIdentity) -> Vec<ProtectedChat> {
        let (removed, kept) = std::mem::take(&mut self.chats)
            .into_iter()
            .partition(|c| c.matches(id));
        self.chats = kept;
        removed
    }

    /// Why `chat` may not be sent to AI, if it may not.
    pub fn protection(&self, chat: &Chat) -> Option<Protection> {
        if chat.facts.advanced_chat_privacy == Some(true) {
            return Some(Protection::AdvancedChatPrivacy);
        }
        self.find(&ChatIdentity::of(chat))
            .map(|_| Protection::Listed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::chat::{ParseOptions, parse};

    fn chat(text: &str) -> Chat {
        parse(text.as_bytes(), &ParseOptions::default()).unwrap()
    }

    const GROUP: &str = "\
[01/12/2026, 09:00:00] Allotment crew: \u{200e}Alice created group \"Allotment crew\"
[01/12/2026, 09:01:00] Alice: rent is due
[01/12/2026, 09:02:00] Bob: I'll pay
";

    #[test]
    fn a_group_is_recognised_after_new_members_join_and_after_a_rename() {
        let mut list = ProtectedChats::default();
        assert!(list.protect(&ChatIdentity::of(&chat(GROUP)), None, 1));
        assert_eq!(list.protection(&chat(GROUP)), Some(Protection::Listed));

        // A later export: a new member wrote, and the group was renamed.
        let later = format!(
            "{GROUP}[02/12/2026, 10:00:00] Carol: hello\n\
             [02/12/2026, 10:01:00] Plot 12: \u{200e}Bob changed the subject from \"Allotment crew\" to \"Plot 12\"\n"
        );
        assert_eq!(list.protection(&chat(&later)), Some(Protection::Listed));

        // Protecting the later export adds its keys to the same entry.
        assert!(!list.protect(&ChatIdentity::of(&chat(&later)), Some("plot".into()), 2));
        assert_eq!(list.chats().len(), 1);
        assert_eq!(list.chats()[0].label.as_deref(), Some("plot"));

        // Another chat entirely is not protected.
        let other = "[01/12/2026, 09:00:00] Dan: hi\n[01/12/2026, 09:01:00] Eve: hey\n";
        assert_eq!(list.protection(&chat(other)), None);
        assert_eq!(list.unprotect(&ChatIdentity::of(&chat(GROUP))).len(), 1);
        assert_eq!(list.protection(&chat(GROUP)), None);
    }

    #[test]
    fn advanced_chat_privacy_lines_protect_and_cannot_be_undone_by_a_later_line() {
        let on = format!(
            "{GROUP}[03/12/2026, 08:00:00] Allotment crew: \u{200e}Bob turned on advanced chat privacy. \
             This setting prevents others from exporting chats.\n"
        );
        let c = chat(&on);
        assert_eq!(c.facts.advanced_chat_privacy, Some(true));
        assert_eq!(c.messages.len(), 2, "the setting line is not a message");
        assert_eq!(
            ProtectedChats::default().protection(&c),
            Some(Protection::AdvancedChatPrivacy)
        );
        // A later "off" line does not unprotect (it could be forged inside a message).
        let off = format!(
            "{on}[03/12/2026, 08:05:00] Allotment crew: \u{200e}You turned off advanced chat privacy\n"
        );
        assert_eq!(chat(&off).facts.advanced_chat_privacy, Some(true));
        // Only "off" lines: not protected.
        let only_off = format!(
            "{GROUP}[03/12/2026, 08:05:00] Allotment crew: \u{200e}You turned off advanced chat privacy\n"
        );
        assert_eq!(chat(&only_off).facts.advanced_chat_privacy, Some(false));
        assert_eq!(ProtectedChats::default().protection(&chat(&only_off)), None);
        // Someone writing the phrase in a message changes nothing.
        let typed =
            format!("{GROUP}[03/12/2026, 09:00:00] Bob: I turned on advanced chat privacy\n");
        assert_eq!(chat(&typed).facts.advanced_chat_privacy, None);
        // A group renamed to the phrase, or whose iOS chat-name prefix holds it, is no
        // setting line.
        let renamed = format!(
            "{on}[03/12/2026, 10:00:00] Allotment crew: \u{200e}Bob changed the subject from \
             \"Allotment crew\" to \"turned off advanced chat privacy\"\n\
             [03/12/2026, 10:01:00] turned off advanced chat privacy: \u{200e}Ann left\n"
        );
        let c = chat(&renamed);
        assert_eq!(c.facts.advanced_chat_privacy, Some(true));
        assert!(
            c.facts
                .subjects
                .iter()
                .any(|s| s.as_str() == "turned off advanced chat privacy")
        );
    }

    #[test]
    fn names_are_read_from_quotes_and_from_the_ios_prefix() {
        let c = chat(&format!(
            "{GROUP}[02/12/2026, 10:01:00] Plans to travel: \u{200e}Bob changed the subject from \
             \"Allotment crew\" to \"Plans to travel\"\n"
        ));
        let names: Vec<&str> = c.facts.subjects.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["Allotment crew", "Plans to travel"],
            "no repeats, in order"
        );
        // An export without any created/renamed line is still known by its iOS chat name.
        let plain = "[01/12/2026, 09:00:00] Book club: \u{200e}Messages and calls are end-to-end encrypted.\n\
                     [01/12/2026, 09:01:00] Ann: hi\n";
        let later = format!("{plain}[05/12/2026, 09:01:00] Zed: new here\n");
        let mut list = ProtectedChats::default();
        list.protect(&ChatIdentity::of(&chat(plain)), None, 1);
        assert_eq!(list.protection(&chat(&later)), Some(Protection::Listed));
    }

    #[test]
    fn json_chat_ids_and_the_file_round_trip_without_names() {
        let json = r#"{"chat_id": "family-42", "messages": [
            {"sender": "Ann", "time": "2026-12-01T09:00:00Z", "text": "hi"}]}"#;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("protected.json");
        let mut list = ProtectedChats::load(&p).unwrap();
        list.protect(&ChatIdentity::of(&chat(json)), None, 7);
        list.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("Ann") && !text.contains("family-42"),
            "{text}"
        );
        let back = ProtectedChats::load(&p).unwrap();
        assert_eq!(back, list);
        // Same id, other people: still the same chat.
        let json2 = json.replace("Ann", "Bea");
        assert_eq!(back.protection(&chat(&json2)), Some(Protection::Listed));

        std::fs::write(
            &p,
            "{\"version\":1,\"chats\":[{\"keys\":[\"zz\"],\"since\":1}]}",
        )
        .unwrap();
        assert!(matches!(ProtectedChats::load(&p), Err(Error::State { .. })));
    }
}
