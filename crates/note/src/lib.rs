//! C2SP signed-note, tlog-checkpoint and tlog-cosignature (no I/O).
//!
//! - [`Note`], [`SignerKey`], [`VerifierKey`]: C2SP `signed-note` v1.0.0 — the note
//!   text, signature lines `— <name> base64(key ID || signature)`, key IDs
//!   `SHA-256(name || "\n" || type || public key)[:4]`, and the `vkey`/`skey` string
//!   encodings ("Verifier keys" section). Signature type `0x01` (Ed25519 over the note
//!   text) is supported.
//! - [`Checkpoint`]: C2SP `tlog-checkpoint` v1.0.0 — origin line, decimal tree size,
//!   base64 root hash, optional extension lines.
//! - Cosignatures: C2SP `tlog-cosignature` `cosignature/v1` (key type `0x04`): an
//!   Ed25519 signature over `cosignature/v1\ntime <t>\n` followed by the checkpoint
//!   note text, carried as `key ID || u64 timestamp || signature` ("Format" and
//!   "Ed25519 signed message" sections). The same [`SignerKey`] / [`VerifierKey`]
//!   types carry them, told apart by [`KeyType`].
//!
//! Keys, time and randomness are passed in; nothing here reads a clock or a file.
//! Parsers enforce size limits ([`MAX_NOTE_SIZE`], [`MAX_SIGNATURES`]) so they can
//! face the network.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use confide_tlog::Hash;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Largest note (text plus signatures) accepted, in bytes.
pub const MAX_NOTE_SIZE: usize = 64 * 1024;
/// Most signature lines accepted on one note (the Go reference uses the same bound).
pub const MAX_SIGNATURES: usize = 100;
/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 256;

const EM_DASH_PREFIX: &str = "\u{2014} ";
const COSIGNATURE_HEADER: &str = "cosignature/v1\n";

/// Errors from parsing, signing or verifying notes, keys and checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The note text or its signature block does not follow signed-note.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// The note is larger than [`MAX_NOTE_SIZE`].
    #[error("note is {0} bytes, more than the {MAX_NOTE_SIZE} allowed")]
    NoteTooLarge(usize),
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("note carries more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A key string is malformed.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A key string's key ID does not match its name and key.
    #[error("key ID in the key string does not match the key")]
    KeyIdMismatch,
    /// A key name is empty, too long, or contains whitespace or `+`.
    #[error("invalid key name")]
    InvalidName,
    /// A key of an unsupported signature type.
    #[error("unsupported signature type 0x{0:02x}")]
    UnsupportedKeyType(u8),
    /// The note carries no signature by the key asked about.
    #[error("no signature by key {0}")]
    UnknownKey(String),
    /// A signature line by the key asked about does not verify.
    #[error("signature by key {0} does not verify")]
    BadSignature(String),
    /// The operation needs a key of another type (e.g. a cosignature key).
    #[error("key {0} has the wrong type for this operation")]
    WrongKeyType(String),
    /// The checkpoint body does not follow tlog-checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A cosignature timestamp above 2^63 - 1.
    #[error("cosignature timestamp out of range")]
    TimestampOutOfRange,
}

/// The signature types this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// signed-note Ed25519 (`0x01`): signs the note text.
    Ed25519,
    /// tlog-cosignature `cosignature/v1` (`0x04`): Ed25519 over a timestamped message.
    CosignatureV1,
}

impl KeyType {
    /// The signature type byte.
    pub fn byte(self) -> u8 {
        match self {
            KeyType::Ed25519 => 0x01,
            KeyType::CosignatureV1 => 0x04,
        }
    }

    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            0x01 => Ok(KeyType::Ed25519),
            0x04 => Ok(KeyType::CosignatureV1),
            other => Err(Error::UnsupportedKeyType(other)),
        }
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.contains('+')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::InvalidName);
    }
    Ok(())
}

/// signed-note key ID: `SHA-256(name || "\n" || type || public key)[:4]`.
pub fn key_id(name: &str, key_type: KeyType, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([key_type.byte()]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A public key that verifies note signatures or cosignatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_type: KeyType,
    id: [u8; 4],
    key: VerifyingKey,
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl VerifierKey {
    /// Parse a `vkey` string: `<name>+<hex key ID>+<base64(type || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, Error> {
        if vkey.len() > MAX_NAME_LEN + 64 {
            return Err(Error::MalformedKey("too long"));
        }
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::MalformedKey("expected name+id+key"));
        };
        check_name(name)?;
        let raw = B64
            .decode(key_b64)
            .map_err(|_| Error::MalformedKey("key is not base64"))?;
        let (&t, pk) = raw.split_first().ok_or(Error::MalformedKey("empty key"))?;
        let key_type = KeyType::from_byte(t)?;
        let pk: [u8; 32] = pk
            .try_into()
            .map_err(|_| Error::MalformedKey("Ed25519 public key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&pk)
            .map_err(|_| Error::MalformedKey("invalid Ed25519 point"))?;
        let id = key_id(name, key_type, &pk);
        if id_hex.len() != 8 || hex::encode(id) != id_hex {
            return Err(Error::KeyIdMismatch);
        }
        Ok(Self {
            name: name.to_owned(),
            key_type,
            id,
            key,
        })
    }

    /// The `vkey` string.
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![self.key_type.byte()];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(raw))
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID.
    pub fn id(&self) -> [u8; 4] {
        self.id
    }

    /// The raw Ed25519 public key. Two verifier keys with different names but the same
    /// public key are the same signer: a quorum must count them once.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Signature type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.id == self.id
    }

    /// Verify this key's signature on `note`. For an Ed25519 key it checks the note
    /// signature and returns `None`; for a cosignature key it checks the cosignature
    /// and returns its timestamp. A note without a line by this key (name and key ID)
    /// is [`Error::UnknownKey`]; a line that does not verify is [`Error::BadSignature`].
    pub fn verify(&self, note: &Note) -> Result<Option<u64>, Error> {
        match note.signatures.iter().find(|s| self.matches(s)) {
            Some(sig) => self.verify_one(&note.text, sig),
            None => Err(Error::UnknownKey(self.name.clone())),
        }
    }

    fn verify_one(&self, text: &str, sig: &NoteSignature) -> Result<Option<u64>, Error> {
        let bad = || Error::BadSignature(self.name.clone());
        match self.key_type {
            KeyType::Ed25519 => {
                let s: [u8; 64] = sig.sig.as_slice().try_into().map_err(|_| bad())?;
                self.key
                    .verify_strict(text.as_bytes(), &ed25519_dalek::Signature::from_bytes(&s))
                    .map_err(|_| bad())?;
                Ok(None)
            }
            KeyType::CosignatureV1 => {
                if sig.sig.len() != 72 {
                    return Err(bad());
                }
                let mut t = [0u8; 8];
                t.copy_from_slice(&sig.sig[..8]);
                let timestamp = u64::from_be_bytes(t);
                if timestamp > i64::MAX as u64 {
                    return Err(Error::TimestampOutOfRange);
                }
                let s: [u8; 64] = sig.sig[8..].try_into().map_err(|_| bad())?;
                let msg = cosignature_message(timestamp, text);
                self.key
                    .verify_strict(msg.as_bytes(), &ed25519_dalek::Signature::from_bytes(&s))
                    .map_err(|_| bad())?;
                Ok(Some(timestamp))
            }
        }
    }
}

/// tlog-cosignature "Ed25519 signed message": header line, time line, note text.
pub fn cosignature_message(timestamp: u64, note_text: &str) -> String {
    format!("{COSIGNATURE_HEADER}time {timestamp}\n{note_text}")
}

/// A private key that signs notes (type `0x01`) or cosignatures (type `0x04`).
/// `Debug` never prints the secret.
pub struct SignerKey {
    name: String,
    key_type: KeyType,
    id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({}, opaque)", self.name)
    }
}

impl SignerKey {
    /// A key from a 32-byte Ed25519 seed (the caller supplies the randomness).
    pub fn from_seed(name: &str, key_type: KeyType, seed: &[u8; 32]) -> Result<Self, Error> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, key_type, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_type,
            id,
            key,
        })
    }

    /// Parse a private key string `PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`.
    pub fn parse(skey: &str) -> Result<Self, Error> {
        let rest = skey
            .trim_end()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(Error::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::MalformedKey("expected name+id+key"));
        };
        let raw = Zeroizing::new(
            B64.decode(key_b64)
                .map_err(|_| Error::MalformedKey("key is not base64"))?,
        );
        let (&t, seed) = raw.split_first().ok_or(Error::MalformedKey("empty key"))?;
        let key_type = KeyType::from_byte(t)?;
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.try_into()
                .map_err(|_| Error::MalformedKey("Ed25519 seed must be 32 bytes"))?,
        );
        let k = Self::from_seed(name, key_type, &seed)?;
        if id_hex.len() != 8 || hex::encode(k.id) != id_hex {
            return Err(Error::KeyIdMismatch);
        }
        Ok(k)
    }

    /// The private key string (zeroized when dropped).
    pub fn to_skey(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(vec![self.key_type.byte()]);
        raw.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(raw.as_slice())
        ))
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_type: self.key_type,
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sign `text` as a signed-note Ed25519 signature (type `0x01` keys only).
    pub fn sign_note(&self, text: &str) -> Result<NoteSignature, Error> {
        if self.key_type != KeyType::Ed25519 {
            return Err(Error::WrongKeyType(self.name.clone()));
        }
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        Ok(NoteSignature {
            name: self.name.clone(),
            id: self.id,
            sig: sig.to_bytes().to_vec(),
        })
    }

    /// Cosign a checkpoint note text at `timestamp` (type `0x04` keys only).
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> Result<NoteSignature, Error> {
        if self.key_type != KeyType::CosignatureV1 {
            return Err(Error::WrongKeyType(self.name.clone()));
        }
        if timestamp > i64::MAX as u64 {
            return Err(Error::TimestampOutOfRange);
        }
        check_text(checkpoint_text)?;
        let sig = self
            .key
            .sign(cosignature_message(timestamp, checkpoint_text).as_bytes());
        let mut raw = timestamp.to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        Ok(NoteSignature {
            name: self.name.clone(),
            id: self.id,
            sig: raw,
        })
    }
}

/// One signature line of a note: key name, key ID and signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    id: [u8; 4],
    sig: Vec<u8>,
}

impl NoteSignature {
    /// Parse one signature line (with or without its final newline).
    pub fn parse_line(line: &str) -> Result<Self, Error> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let rest = line
            .strip_prefix(EM_DASH_PREFIX)
            .ok_or(Error::MalformedNote(
                "signature line must start with an em dash",
            ))?;
        let (name, b64) = rest.split_once(' ').ok_or(Error::MalformedNote(
            "signature line needs name and signature",
        ))?;
        check_name(name).map_err(|_| Error::MalformedNote("invalid signature name"))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| Error::MalformedNote("signature is not base64"))?;
        if raw.len() < 5 {
            return Err(Error::MalformedNote("signature too short"));
        }
        Ok(Self {
            name: name.to_owned(),
            id: [raw[0], raw[1], raw[2], raw[3]],
            sig: raw[4..].to_vec(),
        })
    }

    /// The line, `— <name> <base64>\n`.
    pub fn to_line(&self) -> String {
        let mut raw = self.id.to_vec();
        raw.extend_from_slice(&self.sig);
        format!("{EM_DASH_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID.
    pub fn id(&self) -> [u8; 4] {
        self.id
    }
}

fn check_text(text: &str) -> Result<(), Error> {
    if !text.ends_with('\n') {
        return Err(Error::MalformedNote("text must end with a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        // Our notes (checkpoints) never contain blank lines; refusing them keeps the
        // text/signature boundary unambiguous.
        return Err(Error::MalformedNote("text must not contain a blank line"));
    }
    if text.chars().any(|c| c != '\n' && c.is_control()) {
        return Err(Error::MalformedNote("text contains control characters"));
    }
    Ok(())
}

/// A signed note: text and signature lines (C2SP signed-note "Format").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// A note with `text` and no signatures yet.
    pub fn new(text: &str) -> Result<Self, Error> {
        check_text(text)?;
        Ok(Self {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Parse a signed note: text, one blank line, one or more signature lines.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_NOTE_SIZE {
            return Err(Error::NoteTooLarge(s.len()));
        }
        let split = s
            .rfind("\n\n")
            .ok_or(Error::MalformedNote("missing blank line before signatures"))?;
        let text = &s[..=split];
        let sigs = &s[split + 2..];
        check_text(text)?;
        if sigs.is_empty() {
            return Err(Error::MalformedNote("no signatures"));
        }
        if !sigs.ends_with('\n') {
            return Err(Error::MalformedNote(
                "signature block must end with a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs.split_terminator('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(Error::TooManySignatures);
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text (including its final newline).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Add a signature line; a line with the same name and key ID replaces the old one.
    pub fn add_signature(&mut self, sig: NoteSignature) -> Result<(), Error> {
        self.signatures
            .retain(|s| !(s.name == sig.name && s.id == sig.id));
        if self.signatures.len() == MAX_SIGNATURES {
            return Err(Error::TooManySignatures);
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// Drop every signature line not by one of `keep`.
    pub fn retain_signatures_by(&mut self, keep: &[&VerifierKey]) {
        self.signatures
            .retain(|s| keep.iter().any(|k| k.matches(s)));
    }

    /// The encoded note.
    pub fn encode(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out
    }
}

/// A tlog-checkpoint body: origin, tree size, root hash, extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines. The origin must be a non-empty line.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, Error> {
        if origin.is_empty() || origin.chars().any(|c| c.is_control()) {
            return Err(Error::MalformedCheckpoint("invalid origin line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Parse the note text of a checkpoint (tlog-checkpoint "Note text").
    pub fn parse(text: &str) -> Result<Self, Error> {
        check_text(text).map_err(|_| Error::MalformedCheckpoint("not a valid note text"))?;
        let mut lines = text.split_terminator('\n');
        let origin = lines
            .next()
            .ok_or(Error::MalformedCheckpoint("missing origin"))?;
        let size_s = lines
            .next()
            .ok_or(Error::MalformedCheckpoint("missing tree size"))?;
        let root_s = lines
            .next()
            .ok_or(Error::MalformedCheckpoint("missing root hash"))?;
        if size_s.is_empty()
            || !size_s.bytes().all(|b| b.is_ascii_digit())
            || (size_s.len() > 1 && size_s.starts_with('0'))
        {
            return Err(Error::MalformedCheckpoint(
                "tree size is not a canonical decimal",
            ));
        }
        let size: u64 = size_s
            .parse()
            .map_err(|_| Error::MalformedCheckpoint("tree size out of range"))?;
        let root_raw = B64
            .decode(root_s)
            .map_err(|_| Error::MalformedCheckpoint("root hash is not base64"))?;
        let root = Hash::from_slice(&root_raw)
            .map_err(|_| Error::MalformedCheckpoint("root hash must be 32 bytes"))?;
        let mut c = Self::new(origin, size, root)?;
        c.extensions = lines.map(str::to_owned).collect();
        Ok(c)
    }

    /// The note text: `origin\nsize\nbase64(root)\n[extensions\n]`.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Root hash.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// Extension lines.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_rejections() {
        let c = Checkpoint::new("example.com/log", 20, Hash([7; 32])).unwrap();
        let t = c.to_text();
        assert_eq!(
            t,
            "example.com/log\n20\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        assert_eq!(Checkpoint::parse(&t).unwrap(), c);
        for bad in [
            "example.com/log\n020\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n20\nBwcH\n",
            "example.com/log\n20\n",
            "example.com/log\n20\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            "example.com/log\n99999999999999999999\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        ] {
            assert!(
                matches!(Checkpoint::parse(bad), Err(Error::MalformedCheckpoint(_))),
                "{bad:?}"
            );
        }
    }
}
