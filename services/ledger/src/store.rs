//! The write-ahead entries file.
//!
//! Each entry is one record `u32 length (big-endian) || entry || SHA-256(entry)[..8]`.
//! A batch of records is written with one `write` and made durable with `fsync`
//! (`File::sync_data`) before the sequencer signs a checkpoint over it, so an
//! acknowledged entry is always on disk. A crash can leave only a torn final record;
//! [`EntryLog::open`] detects it by length or checksum and truncates it. The signed
//! checkpoint (written atomically with `confide_svc::durable::write_atomic` after the
//! entries) is then checked against the recovered entries by the server.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::Error;

const CHECK_LEN: usize = 8;
/// Largest record payload accepted when reading back.
pub const MAX_RECORD: usize = 64 * 1024;

/// The open entries file, positioned at its end.
#[derive(Debug)]
pub struct EntryLog {
    file: File,
    len: u64,
    poisoned: bool,
}

/// What [`EntryLog::open`] recovered.
#[derive(Debug)]
pub struct Recovered {
    /// The log, ready to append.
    pub log: EntryLog,
    /// Every complete entry, in order.
    pub entries: Vec<Vec<u8>>,
    /// Bytes of a torn final record that were cut off (0 after a clean shutdown).
    pub truncated_bytes: u64,
}

fn checksum(entry: &[u8]) -> [u8; CHECK_LEN] {
    let d = Sha256::digest(entry);
    let mut c = [0u8; CHECK_LEN];
    c.copy_from_slice(&d[..CHECK_LEN]);
    c
}

/// Encode one record.
pub fn record(entry: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(4 + entry.len() + CHECK_LEN);
    r.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    r.extend_from_slice(entry);
    r.extend_from_slice(&checksum(entry));
    r
}

impl EntryLog {
    /// Open (or create) the entries file, recover its entries and cut a torn tail.
    pub fn open(path: &Path) -> Result<Recovered, Error> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let mut entries = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let rest = &data[pos..];
            if rest.len() < 4 {
                break;
            }
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if n > MAX_RECORD || rest.len() < 4 + n + CHECK_LEN {
                break;
            }
            let entry = &rest[4..4 + n];
            if rest[4 + n..4 + n + CHECK_LEN] != checksum(entry) {
                break;
            }
            entries.push(entry.to_vec());
            pos += 4 + n + CHECK_LEN;
        }
        let truncated_bytes = (data.len() - pos) as u64;
        if truncated_bytes > 0 {
            // Only the final batch can be torn (earlier ones were fsynced before the
            // next began); the server re-checks the result against the signed checkpoint.
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(pos as u64))?;
        if let Some(dir) = path.parent() {
            confide_svc::durable::sync_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?;
        }
        Ok(Recovered {
            log: EntryLog {
                file,
                len: pos as u64,
                poisoned: false,
            },
            entries,
            truncated_bytes,
        })
    }

    /// Append a batch durably: one write, then `fsync`. On failure the file is cut
    /// back to its previous length; if even that fails the log refuses further
    /// appends (fail closed: a half-written record must not be followed by more).
    pub fn append_batch<B: AsRef<[u8]>>(&mut self, entries: &[B]) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Stopped);
        }
        let mut buf = Vec::new();
        for e in entries {
            let e = e.as_ref();
            if e.len() > MAX_RECORD {
                return Err(Error::Corrupt("entry larger than a record may be".into()));
            }
            buf.extend_from_slice(&record(e));
        }
        let res = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        match res {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let undo = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(|_| ()));
                if undo.is_err() {
                    self.poisoned = true;
                }
                Err(Error::Io(e))
            }
        }
    }

    /// Bytes of complete records.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds no records.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("entries.log");
        let mut r = EntryLog::open(&p).unwrap();
        assert!(r.entries.is_empty());
        r.log.append_batch(&[b"one".as_slice(), b"two"]).unwrap();
        r.log.append_batch(&[b"three".as_slice()]).unwrap();
        drop(r);
        let r = EntryLog::open(&p).unwrap();
        assert_eq!(
            r.entries,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(r.truncated_bytes, 0);
        drop(r);
        // A torn record: half of a new record at the end.
        let full = std::fs::read(&p).unwrap();
        let rec = record(b"four");
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&rec[..5]).unwrap();
        drop(f);
        let mut r = EntryLog::open(&p).unwrap();
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.truncated_bytes, 5);
        assert_eq!(std::fs::read(&p).unwrap(), full);
        // A complete-length record with a bad checksum is also cut.
        let mut bad = record(b"five");
        let l = bad.len();
        bad[l - 1] ^= 1;
        r.log.append_batch(&[b"four".as_slice()]).unwrap();
        drop(r);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&bad).unwrap();
        drop(f);
        let r = EntryLog::open(&p).unwrap();
        assert_eq!(r.entries.len(), 4);
        assert_eq!(r.truncated_bytes, bad.len() as u64);
    }
}
