//! Index files: which blobs live in which pack, at which offset.
//!
//! An index file is CBOR sealed with associated data `cairn index` and stored
//! under `index/<BLAKE3 of its bytes>`. It may name older index files it
//! supersedes (written by prune); readers ignore a superseded file even if it
//! has not been deleted yet. `cache` keeps the merged view in RocksDB.

#[cfg(feature = "engine")]
pub mod cache;

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::id::{IndexId, PackId};
use crate::pack::PackEntry;

const INDEX_AAD: &[u8] = b"cairn index";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedPack {
    pub id: PackId,
    /// Size of the pack object in bytes.
    pub size_bytes: u64,
    pub blobs: Vec<PackEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<IndexedPack>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexDecodeError {
    #[error("authentication failed")]
    Auth,
    #[error("does not decode: {0}")]
    Decode(String),
}

/// The `(pack, entries)` pairs the cache merges, borrowed from `packs`.
pub fn pack_entries(packs: &[IndexedPack]) -> Vec<(PackId, &[PackEntry])> {
    packs.iter().map(|p| (p.id, p.blobs.as_slice())).collect()
}

impl IndexFile {
    /// Seals the index; returns its id and bytes.
    pub fn seal(&self, key: &MasterKey) -> (IndexId, Vec<u8>) {
        let mut plain = Vec::new();
        if ciborium::into_writer(self, &mut plain).is_err() {
            unreachable!("CBOR encoding into a Vec cannot fail");
        }
        let bytes = key.seal(&plain, INDEX_AAD);
        (IndexId(crate::id::content_hash(&bytes)), bytes)
    }

    pub fn open(key: &MasterKey, bytes: &[u8]) -> Result<IndexFile, IndexDecodeError> {
        let plain = key
            .open(bytes, INDEX_AAD)
            .map_err(|_| IndexDecodeError::Auth)?;
        Self::decode_plain(&plain)
    }

    pub fn decode_plain(plain: &[u8]) -> Result<IndexFile, IndexDecodeError> {
        ciborium::from_reader(plain).map_err(|e| IndexDecodeError::Decode(e.to_string()))
    }

    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobKind;
    use crate::id::BlobId;

    #[test]
    fn roundtrip_and_damage() {
        let key = MasterKey::from_bytes([5; 32]);
        let file = IndexFile {
            supersedes: vec![IndexId([1; 32])],
            packs: vec![IndexedPack {
                id: PackId([2; 32]),
                size_bytes: 1000,
                blobs: vec![PackEntry {
                    kind: BlobKind::Tree,
                    id: BlobId([3; 32]),
                    offset: 0,
                    length: 100,
                    plain_length: 80,
                }],
            }],
        };
        let (id, bytes) = file.seal(&key);
        assert_eq!(id, IndexId(crate::id::content_hash(&bytes)));
        assert_eq!(IndexFile::open(&key, &bytes).unwrap(), file);
        let mut bad = bytes.clone();
        bad[20] ^= 4;
        assert_eq!(IndexFile::open(&key, &bad), Err(IndexDecodeError::Auth));
        assert!(IndexFile::open(&key, &bytes[..5]).is_err());
    }
}
