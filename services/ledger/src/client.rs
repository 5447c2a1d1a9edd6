//! A client of the ledger's HTTP interface, for operators, nodes and monitors.
//!
//! Everything but [`LedgerClient::add`] reads only the static C2SP tlog-tiles layout
//! (`/checkpoint`, `/tile/...`), so it works the same against a CDN or object store
//! mirror of the ledger. Proofs are computed locally from hash tiles
//! ([`confide_tiles::TileHashes`]) with the RFC 9162 algorithms of `confide-tlog`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confide_note::{Checkpoint, Note, SignerKey};
use confide_release::Bundle;
use confide_tiles::{TileHashes, TileId};
use confide_tlog::{Hash, Subtree};

use crate::Error;

/// Largest checkpoint or tile body accepted.
const MAX_BODY: usize = 256 * 1024;

/// The answer to a successful add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct AddResponse {
    /// The entry's leaf index.
    pub index: u64,
    /// Size of the published checkpoint that covers it.
    pub tree_size: u64,
}

/// A ledger client bound to a base URL.
#[derive(Debug, Clone)]
pub struct LedgerClient {
    base: String,
    http: reqwest::Client,
}

impl LedgerClient {
    /// A client for the ledger at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, Error> {
        let resp = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            return Err(Error::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        }
        if body.len() > MAX_BODY {
            return Err(Error::Protocol("response too large"));
        }
        Ok(body.to_vec())
    }

    /// The current checkpoint note text (unverified: pass it to
    /// [`confide_release::verify_checkpoint`]).
    pub async fn checkpoint(&self) -> Result<String, Error> {
        String::from_utf8(self.get("checkpoint").await?)
            .map_err(|_| Error::Protocol("checkpoint is not UTF-8"))
    }

    /// The checkpoint body (origin, size, root) of a note, without verification.
    pub fn parse_checkpoint(note: &str) -> Result<Checkpoint, Error> {
        Ok(Checkpoint::parse(Note::parse(note)?.text())?)
    }

    /// Fetch one tile.
    pub async fn tile(&self, id: &TileId) -> Result<Vec<u8>, Error> {
        self.get(&id.path()).await
    }

    /// Fetch the hash tiles needed to compute `subtrees` in a tree of `size`.
    pub async fn hashes_for(&self, subtrees: &[Subtree], size: u64) -> Result<TileHashes, Error> {
        let mut th = TileHashes::new();
        for st in subtrees {
            for (level, index) in confide_tlog::complete_subtrees(st.start, st.end) {
                let id = TileId::for_subtree(level, index, size)?;
                if !th.has(&id) {
                    let data = self.tile(&id).await?;
                    th.insert(&id, &data)?;
                }
            }
        }
        Ok(th)
    }

    /// RFC 9162 inclusion proof for `index` in the tree of `size`, from tiles.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, Error> {
        let subtrees = confide_tlog::inclusion_proof_subtrees(index, size)?;
        let th = self.hashes_for(&subtrees, size).await?;
        Ok(confide_tlog::inclusion_proof(&th, index, size)?)
    }

    /// RFC 9162 consistency proof from `old_size` to `new_size`, from tiles: what a
    /// device needs to move its stored checkpoint forward
    /// ([`confide_release::verify_bundle`]'s `consistency_proof`).
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, Error> {
        let subtrees = confide_tlog::consistency_proof_subtrees(old_size, new_size)?;
        let th = self.hashes_for(&subtrees, new_size).await?;
        Ok(confide_tlog::consistency_proof(&th, old_size, new_size)?)
    }

    /// The entries of entry bundle `id`.
    pub async fn entry_bundle(&self, id: &TileId) -> Result<Vec<Vec<u8>>, Error> {
        let data = self.tile(id).await?;
        Ok(confide_tiles::decode_entry_bundle(&data, id.width)?)
    }

    /// Entry `index` of the tree of `size`.
    pub async fn entry(&self, index: u64, size: u64) -> Result<Vec<u8>, Error> {
        let id = TileId::for_entry(index, size)?;
        let mut all = self.entry_bundle(&id).await?;
        let pos = (index % confide_tiles::TILE_WIDTH) as usize;
        if pos >= all.len() {
            return Err(Error::Protocol("entry bundle shorter than its width"));
        }
        Ok(all.swap_remove(pos))
    }

    /// A stapleable bundle for entry `index` under the ledger's current checkpoint.
    pub async fn bundle(&self, index: u64) -> Result<Bundle, Error> {
        let note = self.checkpoint().await?;
        let size = Self::parse_checkpoint(&note)?.size();
        self.bundle_at(index, &note, size).await
    }

    /// A bundle for entry `index` under a given checkpoint note of tree `size`.
    pub async fn bundle_at(&self, index: u64, note: &str, size: u64) -> Result<Bundle, Error> {
        Ok(Bundle {
            entry: self.entry(index, size).await?,
            index,
            proof: self.inclusion_proof(index, size).await?,
            checkpoint: note.to_owned(),
        })
    }

    /// Submit canonical entry bytes, signed with the operator key. The origin the
    /// signature binds is read from the ledger's checkpoint.
    pub async fn add(&self, entry: &[u8], operator: &SignerKey) -> Result<AddResponse, Error> {
        let origin = Self::parse_checkpoint(&self.checkpoint().await?)?
            .origin()
            .to_owned();
        self.add_with_origin(entry, operator, &origin).await
    }

    /// Submit with a known origin (saves the checkpoint fetch).
    pub async fn add_with_origin(
        &self,
        entry: &[u8],
        operator: &SignerKey,
        origin: &str,
    ) -> Result<AddResponse, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let auth = crate::auth::sign(operator, origin, now, entry)?;
        let resp = self
            .http
            .post(format!("{}/add", self.base))
            .header(crate::auth::HEADER, auth)
            .body(entry.to_vec())
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            return Err(Error::Status {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&body).map_err(|_| Error::Protocol("add response is not JSON"))
    }
}
