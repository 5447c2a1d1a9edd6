//! The device's small state files (last-seen checkpoint, consent, protected chats,
//! receipts): read as "maybe absent", replaced crash-safely.

use std::path::Path;

use crate::error::Error;

fn state_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::State {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// The file's bytes, or `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(state_error(path, &e)),
    }
}

/// Replace `path` with `bytes`, crash-safely.
///
/// The new content is written to a temporary file and flushed to disk before it is
/// renamed over the old one, and the directory is flushed after the rename. Without the
/// flushes a crash could leave an empty file: the device would then fail on its state,
/// and a user deleting that file would reset whatever protection it holds (rollback
/// protection for the checkpoint, a chat's opt-out for the protected list).
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::File::create(&tmp))
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| state_error(path, &e))
}

/// Parse a JSON state file; a file that does not parse is an error, never "empty": a
/// corrupt consent or protection file must not quietly turn into "allowed".
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match read_optional(path)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            state_error(
                path,
                &format_args!("not a valid state file ({})", json_category(&e)),
            )
        }),
    }
}

/// Write a JSON state file crash-safely.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| state_error(path, &e))?;
    bytes.push(b'\n');
    write_durable(path, &bytes)
}

/// serde_json's error category only: its message can quote the file's content.
fn json_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected content",
        serde_json::error::Category::Eof => "truncated",
    }
}
