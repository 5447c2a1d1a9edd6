//! C2SP tlog-tiles: tile paths and tile encoding (no I/O).
//!
//! Implements the static layout of C2SP `tlog-tiles` v1:
//!
//! - "Merkle Tree" / "Tiles": a tile at level `L` and index `N` holds up to 256
//!   consecutive hashes of tree level `8·L` (complete subtrees of 2^(8·L) leaves),
//!   starting at hash `256·N`; a full tile holds 256, a partial one `W` < 256.
//! - "Paths": `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, where `N` is
//!   written in groups of three decimal digits, every group but the last prefixed
//!   with `x` (`1234067` → `x001/x234/067`).
//! - "Log Entries": an entry bundle is a sequence of `u16` big-endian length-prefixed
//!   entries (the tile's leaves, in order).
//!
//! [`TileId::for_subtree`] and [`TileHashes`] turn a set of fetched tiles into a
//! [`confide_tlog::HashSource`], so inclusion and consistency proofs can be computed
//! by a client from a log's static files alone.

use std::collections::HashMap;

use confide_tlog::{HASH_SIZE, Hash, HashSource, node_hash};

/// Hashes (or entries) per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Hash levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// Most entries accepted in one entry bundle: one full tile.
pub const MAX_BUNDLE_ENTRIES: usize = 256;

/// Errors from tile paths and contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path is not a tlog-tiles tile path.
    #[error("malformed tile path: {0}")]
    MalformedPath(&'static str),
    /// A tile's size is not `width × 32` bytes.
    #[error("tile has {got} bytes, expected {want}")]
    TileLength {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// An entry bundle is malformed.
    #[error("malformed entry bundle: {0}")]
    MalformedBundle(&'static str),
    /// An entry is longer than a `u16` length prefix can carry.
    #[error("entry of {0} bytes does not fit an entry bundle")]
    EntryTooLong(usize),
    /// A tile was needed but has not been supplied.
    #[error("tile {0} is missing")]
    MissingTile(String),
    /// A Merkle error (e.g. a subtree outside the tree).
    #[error(transparent)]
    Tlog(#[from] confide_tlog::Error),
}

/// One tile: a hash tile (`level` ≥ 0) or an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    /// `None` for an entry bundle, `Some(L)` for a hash tile at tile level L.
    pub level: Option<u8>,
    /// Tile index N.
    pub index: u64,
    /// Width W, 1..=256 (256 = full tile).
    pub width: u16,
}

impl TileId {
    /// The path of this tile, relative to the log prefix.
    pub fn path(&self) -> String {
        let lvl = match self.level {
            Some(l) => l.to_string(),
            None => "entries".to_string(),
        };
        let mut p = format!("tile/{lvl}/{}", encode_index(self.index));
        if u64::from(self.width) < TILE_WIDTH {
            p.push_str(&format!(".p/{}", self.width));
        }
        p
    }

    /// Parse a path like `tile/0/x001/234` or `tile/entries/000.p/5`.
    pub fn parse_path(path: &str) -> Result<Self, Error> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(Error::MalformedPath("must start with tile/"))?;
        let (lvl, rest) = rest
            .split_once('/')
            .ok_or(Error::MalformedPath("missing level"))?;
        let level = if lvl == "entries" {
            None
        } else {
            if lvl.is_empty() || lvl.len() > 2 || !lvl.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::MalformedPath("bad level"));
            }
            if lvl.len() > 1 && lvl.starts_with('0') {
                return Err(Error::MalformedPath("level has a leading zero"));
            }
            let l: u8 = lvl.parse().map_err(|_| Error::MalformedPath("bad level"))?;
            if l > 63 / TILE_HEIGHT {
                return Err(Error::MalformedPath("level too high"));
            }
            Some(l)
        };
        let (idx, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                if w.is_empty()
                    || w.len() > 3
                    || !w.bytes().all(|b| b.is_ascii_digit())
                    || w.starts_with('0')
                {
                    return Err(Error::MalformedPath("bad partial width"));
                }
                let w: u16 = w.parse().map_err(|_| Error::MalformedPath("bad width"))?;
                if u64::from(w) >= TILE_WIDTH {
                    return Err(Error::MalformedPath("partial width must be below 256"));
                }
                (i, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        Ok(Self {
            level,
            index: decode_index(idx)?,
            width,
        })
    }

    /// The hash tile holding complete subtree (`hash_level`, `hash_index`) of a tree
    /// of `tree_size` leaves, at the width that tree's tiles have.
    pub fn for_subtree(hash_level: u8, hash_index: u64, tree_size: u64) -> Result<Self, Error> {
        let tile_level = hash_level / TILE_HEIGHT;
        let r = hash_level % TILE_HEIGHT;
        let base_level = u32::from(tile_level) * u32::from(TILE_HEIGHT);
        let first =
            hash_index
                .checked_shl(u32::from(r))
                .ok_or(confide_tlog::Error::MissingHash {
                    level: hash_level,
                    index: hash_index,
                })?;
        let index = first / TILE_WIDTH;
        let width = tile_width(tree_size, base_level, index);
        if width == 0 || (first % TILE_WIDTH) + (1u64 << r) > u64::from(width) {
            return Err(confide_tlog::Error::MissingHash {
                level: hash_level,
                index: hash_index,
            }
            .into());
        }
        Ok(Self {
            level: Some(tile_level),
            index,
            width,
        })
    }

    /// The entry bundle holding leaf `leaf_index` in a tree of `tree_size` leaves.
    pub fn for_entry(leaf_index: u64, tree_size: u64) -> Result<Self, Error> {
        if leaf_index >= tree_size {
            return Err(confide_tlog::Error::IndexOutOfRange {
                index: leaf_index,
                size: tree_size,
            }
            .into());
        }
        let index = leaf_index / TILE_WIDTH;
        Ok(Self {
            level: None,
            index,
            width: tile_width(tree_size, 0, index),
        })
    }
}

/// Width of tile `index` at hash level `base_level` in a tree of `tree_size` leaves.
fn tile_width(tree_size: u64, base_level: u32, index: u64) -> u16 {
    let hashes = if base_level >= 64 {
        0
    } else {
        tree_size >> base_level
    };
    let start = index.saturating_mul(TILE_WIDTH);
    hashes.saturating_sub(start).min(TILE_WIDTH) as u16
}

/// Every tile (hash tiles at every level, and entry bundles) of a tree of `size`.
pub fn tiles_for_size(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    let mut level: u8 = 0;
    loop {
        let base = u32::from(level) * u32::from(TILE_HEIGHT);
        let hashes = if base >= 64 { 0 } else { size >> base };
        if hashes == 0 {
            break;
        }
        for n in 0..hashes.div_ceil(TILE_WIDTH) {
            out.push(TileId {
                level: Some(level),
                index: n,
                width: tile_width(size, base, n),
            });
        }
        level += 1;
    }
    for n in 0..size.div_ceil(TILE_WIDTH) {
        out.push(TileId {
            level: None,
            index: n,
            width: tile_width(size, 0, n),
        });
    }
    out
}

fn encode_index(n: u64) -> String {
    let s = format!("{n:03}");
    // Pad to a multiple of three digits, then split in groups.
    let pad = (3 - s.len() % 3) % 3;
    let s = format!("{}{s}", "0".repeat(pad));
    let groups: Vec<&str> = (0..s.len() / 3).map(|i| &s[3 * i..3 * i + 3]).collect();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g}")
            } else {
                (*g).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn decode_index(s: &str) -> Result<u64, Error> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.is_empty() || parts.len() > 7 {
        return Err(Error::MalformedPath("bad index"));
    }
    let mut digits = String::new();
    for (i, p) in parts.iter().enumerate() {
        let g = if i + 1 < parts.len() {
            p.strip_prefix('x')
                .ok_or(Error::MalformedPath("index group must start with x"))?
        } else {
            p
        };
        if g.len() != 3 || !g.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::MalformedPath("index group must be three digits"));
        }
        digits.push_str(g);
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| Error::MalformedPath("index out of range"))?;
    // Only the canonical (shortest) encoding is accepted.
    if encode_index(n) != s {
        return Err(Error::MalformedPath("index not canonically encoded"));
    }
    Ok(n)
}

/// The contents of hash tile (`tile_level`, `index`, `width`) from a hash source.
pub fn hash_tile<S: HashSource + ?Sized>(src: &S, tile: &TileId) -> Result<Vec<u8>, Error> {
    let level = tile
        .level
        .ok_or(Error::MalformedPath("an entry bundle is not a hash tile"))?;
    let hash_level = level * TILE_HEIGHT;
    let mut out = Vec::with_capacity(usize::from(tile.width) * HASH_SIZE);
    for i in 0..u64::from(tile.width) {
        let index = tile
            .index
            .checked_mul(TILE_WIDTH)
            .and_then(|x| x.checked_add(i))
            .ok_or(confide_tlog::Error::MissingHash {
                level: hash_level,
                index: tile.index,
            })?;
        let h = src.complete_subtree(hash_level, index)?;
        out.extend_from_slice(&h.0);
    }
    Ok(out)
}

/// Encode an entry bundle (tlog-tiles "Log Entries").
pub fn encode_entry_bundle<B: AsRef<[u8]>>(entries: &[B]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| Error::EntryTooLong(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decode an entry bundle, requiring exactly `width` entries.
pub fn decode_entry_bundle(mut b: &[u8], width: u16) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::with_capacity(usize::from(width));
    while !b.is_empty() {
        if out.len() == usize::from(width) || out.len() == MAX_BUNDLE_ENTRIES {
            return Err(Error::MalformedBundle("more entries than the tile width"));
        }
        if b.len() < 2 {
            return Err(Error::MalformedBundle("truncated length"));
        }
        let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
        if b.len() < 2 + n {
            return Err(Error::MalformedBundle("truncated entry"));
        }
        out.push(b[2..2 + n].to_vec());
        b = &b[2 + n..];
    }
    if out.len() != usize::from(width) {
        return Err(Error::MalformedBundle("fewer entries than the tile width"));
    }
    Ok(out)
}

/// Hash tiles fetched from a log, usable as a [`HashSource`].
#[derive(Debug, Default, Clone)]
pub struct TileHashes {
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl TileHashes {
    /// No tiles yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a fetched hash tile; its length must match its width.
    pub fn insert(&mut self, tile: &TileId, data: &[u8]) -> Result<(), Error> {
        let level = tile
            .level
            .ok_or(Error::MalformedPath("an entry bundle is not a hash tile"))?;
        let want = usize::from(tile.width) * HASH_SIZE;
        if data.len() != want {
            return Err(Error::TileLength {
                got: data.len(),
                want,
            });
        }
        let hashes = data
            .chunks_exact(HASH_SIZE)
            .map(Hash::from_slice)
            .collect::<Result<Vec<_>, _>>()?;
        // Keep the widest version of a tile seen (a full tile supersedes partials).
        let slot = self.tiles.entry((level, tile.index)).or_default();
        if hashes.len() > slot.len() {
            *slot = hashes;
        }
        Ok(())
    }

    /// Whether a tile at least as wide as `tile` is present.
    pub fn has(&self, tile: &TileId) -> bool {
        tile.level.is_some_and(|l| {
            self.tiles
                .get(&(l, tile.index))
                .is_some_and(|t| t.len() >= usize::from(tile.width))
        })
    }
}

impl HashSource for TileHashes {
    fn complete_subtree(&self, level: u8, index: u64) -> Result<Hash, confide_tlog::Error> {
        let missing = confide_tlog::Error::MissingHash { level, index };
        let tile_level = level / TILE_HEIGHT;
        let r = level % TILE_HEIGHT;
        let first = index.checked_shl(u32::from(r)).ok_or(missing.clone())?;
        let tile = self
            .tiles
            .get(&(tile_level, first / TILE_WIDTH))
            .ok_or(missing.clone())?;
        let start = (first % TILE_WIDTH) as usize;
        let count = 1usize << r;
        let hashes = tile.get(start..start + count).ok_or(missing)?;
        // The hashes are the leaves of a complete subtree of height r: fold pairwise.
        let mut layer: Vec<Hash> = hashes.to_vec();
        while layer.len() > 1 {
            layer = layer
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
        }
        layer
            .first()
            .copied()
            .ok_or(confide_tlog::Error::MissingHash { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confide_tlog::{MemoryTree, consistency_proof, inclusion_proof, leaf_hash};

    #[test]
    fn paths_known_answers() {
        let t = |level, index, width| TileId {
            level,
            index,
            width,
        };
        // Examples of the C2SP tlog-tiles specification.
        assert_eq!(t(Some(0), 1_234_067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(t(Some(0), 1_234_067, 8).path(), "tile/0/x001/x234/067.p/8");
        assert_eq!(t(None, 1_234_067, 256).path(), "tile/entries/x001/x234/067");
        assert_eq!(t(Some(1), 0, 1).path(), "tile/1/000.p/1");
        assert_eq!(t(Some(2), 1000, 256).path(), "tile/2/x001/000");
        for p in [
            "tile/0/x001/x234/067",
            "tile/0/x001/x234/067.p/8",
            "tile/entries/000.p/255",
            "tile/3/999",
        ] {
            assert_eq!(TileId::parse_path(p).unwrap().path(), p);
        }
        for bad in [
            "tile/0/1234067",
            "tile/0/x001/234/067",
            "tile/0/x000/067",
            "tile/0/067.p/256",
            "tile/0/067.p/0",
            "tile/0/067.p/08",
            "tile/00/067",
            "tile/9/067",
            "tile/x/067",
            "tiles/0/067",
            "tile/0/67",
        ] {
            assert!(TileId::parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entry_bundle_round_trip_and_limits() {
        let e = vec![b"a".to_vec(), Vec::new(), vec![7; 300]];
        let b = encode_entry_bundle(&e).unwrap();
        assert_eq!(&b[..5], &[0, 1, b'a', 0, 0]);
        assert_eq!(decode_entry_bundle(&b, 3).unwrap(), e);
        assert!(decode_entry_bundle(&b, 2).is_err());
        assert!(decode_entry_bundle(&b, 4).is_err());
        assert!(decode_entry_bundle(&b[..b.len() - 1], 3).is_err());
        assert_eq!(
            encode_entry_bundle(&[vec![0u8; 70_000]]),
            Err(Error::EntryTooLong(70_000))
        );
    }

    #[test]
    fn proofs_from_tiles_match_proofs_from_memory() {
        let mut t = MemoryTree::new();
        for i in 0..70_000u64 {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        let size = 66_000 + 77;
        let mut th = TileHashes::new();
        let all = tiles_for_size(size);
        for id in all.iter().filter(|i| i.level.is_some()) {
            th.insert(id, &hash_tile(&t, id).unwrap()).unwrap();
        }
        assert_eq!(
            confide_tlog::root(&th, size).unwrap(),
            t.root_at(size).unwrap()
        );
        for idx in [0, 255, 256, 65_535, 65_536, size - 1] {
            assert_eq!(
                inclusion_proof(&th, idx, size).unwrap(),
                inclusion_proof(&t, idx, size).unwrap()
            );
        }
        for old in [1, 255, 256, 300, 65_536, 65_999] {
            assert_eq!(
                consistency_proof(&th, old, size).unwrap(),
                consistency_proof(&t, old, size).unwrap()
            );
        }
        // for_subtree names a tile that is present for every needed subtree.
        for st in confide_tlog::inclusion_proof_subtrees(12_345, size).unwrap() {
            for (l, i) in confide_tlog::complete_subtrees(st.start, st.end) {
                assert!(th.has(&TileId::for_subtree(l, i, size).unwrap()));
            }
        }
        assert_eq!(
            TileId::for_entry(size - 1, size).unwrap().path(),
            "tile/entries/258.p/29"
        );
        let bad = TileId::parse_path("tile/0/000").unwrap();
        assert!(matches!(
            th.insert(&bad, &[0; 31]),
            Err(Error::TileLength { .. })
        ));
    }
}
