//! A deterministic writer of cpio "newc" archives, the format Linux unpacks into its
//! initramfs (the kernel's `Documentation/driver-api/early-userspace/buffer-format.rst`;
//! `usr/gen_init_cpio.c` writes the same records).
//!
//! Why our own writer: GNU cpio copies inode numbers, device numbers, owners and
//! modification times from the build machine, and archives in the order it is given.
//! A node image must be bit-identical wherever it is built (docs/releases.md), so
//! everything here comes from the caller's values or from fixed rules instead:
//!
//! - entries are written in byte order of their paths, whatever order they were added
//!   in, and every parent directory is written before what it holds;
//! - owner and group are 0, every modification time is the one `mtime` given to
//!   [`Archive::new`] (`SOURCE_DATE_EPOCH`), inode numbers count up from 1 in write
//!   order, the device numbers of the archive are 0;
//! - permissions are the caller's, masked to `0o7777`.
//!
//! The crate does no I/O of its own: [`Archive::write`] writes to the caller's sink,
//! and file contents come in as bytes.

use std::collections::BTreeMap;
use std::io::Write;

/// The newc magic (the "new ASCII" format, no checksum).
const MAGIC: &[u8; 6] = b"070701";
/// The name of the record that ends an archive.
const TRAILER: &str = "TRAILER!!!";

/// File type bits of `mode` (`<sys/stat.h>`).
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// What can be wrong with an entry or the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path that is empty, absolute, has an empty, `.` or `..` component, or a NUL.
    #[error(
        "invalid archive path {0:?}: paths are relative, with no empty, '.' or '..' components and no NUL"
    )]
    InvalidPath(String),
    /// Two entries with one path.
    #[error("the archive already has an entry at {0:?}")]
    Duplicate(String),
    /// An entry whose parent directory was not added.
    #[error("{path:?} needs its parent directory {parent:?} in the archive")]
    MissingParent {
        /// The entry.
        path: String,
        /// The directory it is in.
        parent: String,
    },
    /// A parent that is not a directory.
    #[error("{path:?} is inside {parent:?}, which is not a directory")]
    ParentNotDirectory {
        /// The entry.
        path: String,
        /// The non-directory above it.
        parent: String,
    },
    /// A field past what newc's 8 hex digits hold (a file of 4 GiB or more).
    #[error("{path:?}: {field} {value} does not fit a newc header (at most 0xffffffff)")]
    TooLarge {
        /// The entry.
        path: String,
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The sink refused the bytes.
    #[error("cannot write the archive: {0}")]
    Write(#[from] std::io::Error),
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Directory,
    /// A regular file and its contents.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(String),
    /// A character device (such as `dev/console`, 5:1).
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    kind: Kind,
    perm: u32,
}

/// An archive being assembled; see the crate docs for what makes it deterministic.
#[derive(Clone, Debug)]
pub struct Archive {
    mtime: u32,
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// An empty archive whose every entry carries modification time `mtime` (seconds
    /// since the epoch, normally `SOURCE_DATE_EPOCH`).
    pub fn new(mtime: u32) -> Self {
        Self {
            mtime,
            entries: BTreeMap::new(),
        }
    }

    /// Adds a directory.
    pub fn directory(&mut self, path: &str, perm: u32) -> Result<&mut Self, Error> {
        self.add(path, Kind::Directory, perm)
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> Result<&mut Self, Error> {
        self.add(path, Kind::File(data), perm)
    }

    /// Adds a symbolic link (permissions 0777, as Linux gives every link).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, Error> {
        if target.is_empty() || target.contains('\0') {
            return Err(Error::InvalidPath(target.to_owned()));
        }
        self.add(path, Kind::Symlink(target.to_owned()), 0o777)
    }

    /// Adds a character device node.
    pub fn char_device(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, Error> {
        self.add(path, Kind::CharDevice { major, minor }, perm)
    }

    /// Adds an entry of any kind.
    pub fn add(&mut self, path: &str, kind: Kind, perm: u32) -> Result<&mut Self, Error> {
        check_path(path)?;
        if self.entries.contains_key(path) {
            return Err(Error::Duplicate(path.to_owned()));
        }
        if let Kind::File(data) = &kind {
            fits(path, "file size", data.len() as u64)?;
        }
        self.entries.insert(
            path.to_owned(),
            Entry {
                kind,
                perm: perm & 0o7777,
            },
        );
        Ok(self)
    }

    /// Number of entries (the trailer not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the archive: every entry in path order, then the trailer, each record
    /// padded to 4 bytes as newc requires. Fails, writing nothing, when an entry's parent
    /// directory is missing or is not a directory.
    pub fn write<W: Write>(&self, mut out: W) -> Result<u64, Error> {
        self.check_parents()?;
        // Byte order puts "a" before "a/b", but also "a/b" after "a-c" and "a.d"; that
        // is fine: the kernel needs a directory to exist before its entries, which the
        // check above and the byte order of a parent being a prefix guarantee.
        let mut written = 0u64;
        for (ino, (path, e)) in (1u32..).zip(&self.entries) {
            let (type_bits, data, rdev): (u32, &[u8], (u32, u32)) = match &e.kind {
                Kind::Directory => (S_IFDIR, &[], (0, 0)),
                Kind::File(d) => (S_IFREG, d, (0, 0)),
                Kind::Symlink(t) => (S_IFLNK, t.as_bytes(), (0, 0)),
                Kind::CharDevice { major, minor } => (S_IFCHR, &[], (*major, *minor)),
            };
            let nlink = if e.kind == Kind::Directory { 2 } else { 1 };
            let h = Header {
                ino,
                mode: type_bits | e.perm,
                nlink,
                mtime: self.mtime,
                filesize: data.len() as u32,
                rdev,
            };
            written += record(&mut out, &h, path, data)?;
        }
        let end = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdev: (0, 0),
        };
        written += record(&mut out, &end, TRAILER, &[])?;
        Ok(written)
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut v = Vec::new();
        self.write(&mut v)?;
        Ok(v)
    }

    fn check_parents(&self) -> Result<(), Error> {
        for path in self.entries.keys() {
            if let Some((parent, _)) = path.rsplit_once('/') {
                match self.entries.get(parent) {
                    None => {
                        return Err(Error::MissingParent {
                            path: path.clone(),
                            parent: parent.to_owned(),
                        });
                    }
                    Some(p) if p.kind != Kind::Directory => {
                        return Err(Error::ParentNotDirectory {
                            path: path.clone(),
                            parent: parent.to_owned(),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    rdev: (u32, u32),
}

fn check_path(path: &str) -> Result<(), Error> {
    let bad = path.is_empty()
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad || path == TRAILER {
        return Err(Error::InvalidPath(path.to_owned()));
    }
    fits(path, "path length", path.len() as u64 + 1)
}

fn fits(path: &str, field: &'static str, value: u64) -> Result<(), Error> {
    if value > u64::from(u32::MAX) {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            field,
            value,
        });
    }
    Ok(())
}

/// Zero bytes that bring `len` to a multiple of 4.
fn pad(len: u64) -> &'static [u8] {
    &[0u8; 3][..((4 - (len % 4)) % 4) as usize]
}

/// One record: the 110-byte header, the NUL-terminated name, padding, the data, padding.
fn record<W: Write>(out: &mut W, h: &Header, name: &str, data: &[u8]) -> Result<u64, Error> {
    let namesize = name.len() as u32 + 1;
    let fields = [
        h.ino, h.mode, 0, // uid
        0, // gid
        h.nlink, h.mtime, h.filesize, 0, // devmajor
        0, // devminor
        h.rdev.0, h.rdev.1, namesize, 0, // check (newc has none)
    ];
    let mut head = Vec::with_capacity(110 + name.len() + 4);
    head.extend_from_slice(MAGIC);
    for f in fields {
        head.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    head.extend_from_slice(name.as_bytes());
    head.push(0);
    head.extend_from_slice(pad(head.len() as u64));
    out.write_all(&head)?;
    out.write_all(data)?;
    out.write_all(pad(data.len() as u64))?;
    Ok(head.len() as u64 + data.len() as u64 + pad(data.len() as u64).len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(rec: &[u8], i: usize) -> u32 {
        let s = std::str::from_utf8(&rec[6 + 8 * i..14 + 8 * i]).unwrap();
        u32::from_str_radix(s, 16).unwrap()
    }

    #[test]
    fn one_file_record_byte_for_byte() {
        // Worked by hand from buffer-format.rst: header fields in order, name "a" + NUL
        // (110 + 2 = 112 bytes, already aligned), 3 data bytes + 1 pad, then the trailer.
        let mut a = Archive::new(0x5f5e_1000);
        a.file("a", 0o644, b"hi\n".to_vec()).unwrap();
        let bytes = a.to_bytes().unwrap();
        let mut want = String::new();
        want.push_str("070701");
        for f in [1, 0o100644, 0, 0, 1, 0x5f5e_1000, 3, 0, 0, 0, 0, 2, 0] {
            want.push_str(&format!("{f:08x}"));
        }
        let mut want = want.into_bytes();
        want.extend_from_slice(b"a\0hi\n\0");
        want.extend_from_slice(b"070701");
        for f in [0u32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0] {
            want.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        want.extend_from_slice(b"TRAILER!!!\0");
        // 110 + 11 = 121 -> padded to 124.
        want.extend_from_slice(&[0, 0, 0]);
        assert_eq!(bytes, want);
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn order_of_adding_does_not_matter() {
        let mut a = Archive::new(1);
        a.directory("bin", 0o755).unwrap();
        a.file("bin/x", 0o755, vec![1, 2, 3, 4, 5]).unwrap();
        a.symlink("init", "bin/x").unwrap();
        a.directory("dev", 0o755).unwrap();
        a.char_device("dev/console", 0o600, 5, 1).unwrap();
        let mut b = Archive::new(1);
        b.char_device("dev/console", 0o600, 5, 1).unwrap();
        b.symlink("init", "bin/x").unwrap();
        b.directory("dev", 0o755).unwrap();
        b.file("bin/x", 0o755, vec![1, 2, 3, 4, 5]).unwrap();
        b.directory("bin", 0o755).unwrap();
        assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
        // A different time is a different archive.
        let mut c = b.clone();
        c.mtime = 2;
        assert_ne!(a.to_bytes().unwrap(), c.to_bytes().unwrap());
    }

    #[test]
    fn records_carry_types_devices_and_alignment() {
        let mut a = Archive::new(7);
        a.directory("dev", 0o755).unwrap();
        a.char_device("dev/console", 0o600, 5, 1).unwrap();
        a.symlink("init", "bin/confide").unwrap();
        let bytes = a.to_bytes().unwrap();
        // Walk the records as the kernel does.
        let mut at = 0;
        let mut seen = Vec::new();
        while at < bytes.len() {
            let rec = &bytes[at..];
            assert_eq!(&rec[..6], MAGIC);
            let namesize = field(rec, 11) as usize;
            let name = std::str::from_utf8(&rec[110..110 + namesize - 1]).unwrap();
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let size = field(rec, 6) as usize;
            seen.push((
                name.to_owned(),
                field(rec, 0),
                field(rec, 1),
                field(rec, 9),
                field(rec, 10),
                rec[data_at..data_at + size].to_vec(),
            ));
            at += data_at + size.div_ceil(4) * 4;
            assert_eq!(at % 4, 0);
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            seen,
            vec![
                ("dev".into(), 1, S_IFDIR | 0o755, 0, 0, vec![]),
                ("dev/console".into(), 2, S_IFCHR | 0o600, 5, 1, vec![]),
                (
                    "init".into(),
                    3,
                    S_IFLNK | 0o777,
                    0,
                    0,
                    b"bin/confide".to_vec()
                ),
                (TRAILER.into(), 0, 0, 0, 0, vec![]),
            ]
        );
    }

    #[test]
    fn bad_entries_are_refused_with_their_reason() {
        let mut a = Archive::new(0);
        for p in ["", "/abs", "a//b", "a/./b", "../x", "a/", "n\0ul", TRAILER] {
            assert!(
                matches!(a.file(p, 0o644, vec![]), Err(Error::InvalidPath(_))),
                "{p:?}"
            );
        }
        a.file("x", 0o644, vec![]).unwrap();
        assert!(matches!(
            a.file("x", 0o644, vec![]),
            Err(Error::Duplicate(_))
        ));
        a.file("lib/y", 0o644, vec![]).unwrap();
        assert!(
            matches!(a.to_bytes(), Err(Error::MissingParent { parent, .. }) if parent == "lib")
        );
        let mut b = Archive::new(0);
        b.file("f", 0o644, vec![]).unwrap();
        b.file("f/g", 0o644, vec![]).unwrap();
        assert!(
            matches!(b.to_bytes(), Err(Error::ParentNotDirectory { parent, .. }) if parent == "f")
        );
        assert!(matches!(b.symlink("l", ""), Err(Error::InvalidPath(_))));
    }

    #[test]
    fn permissions_are_masked_to_the_permission_bits() {
        let mut a = Archive::new(0);
        a.file("f", 0o170_755, vec![]).unwrap();
        let bytes = a.to_bytes().unwrap();
        assert_eq!(field(&bytes, 1), S_IFREG | 0o755);
    }
}
