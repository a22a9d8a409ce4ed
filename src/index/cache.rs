//! The local blob index: RocksDB on disk, so memory does not grow with the
//! repository. It is a cache of the repository's index files and can always be
//! deleted; `Repository::open` re-merges whatever index files it has not seen.
//!
//! Keys (one byte of tag, then the id):
//! - `b` kind id → pack id (32) ‖ offset u64 ‖ length u32 ‖ plain length u32 (LE)
//! - `i` index id → empty: this index file has been merged
//! - `x` kind id → location, for blobs in packs a prune marked obsolete:
//!   readers may still load them, writers never dedup against them
//! - `m` marker name → empty: this obsolete marker has been merged
//! - `p` pack id → empty: a pack named by a merged index file
//! - `q` pack id → empty: a pack named by a merged obsolete marker
//! - `o` object name → stored bytes of a cached object (tree blobs, snapshots)
//! - `r` snapshot id → empty: a snapshot that existed when the blob index
//!   was last built anew, and whose blobs a snapshot taking it as parent
//!   must not take on trust

use std::path::{Path, PathBuf};

use rocksdb::{BlockBasedIndexType, BlockBasedOptions, Cache, Options, WriteBatch, DB};

use crate::blob::BlobKind;
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::pack::PackEntry;

/// A blob's place in the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub offset: u64,
    pub length: u32,
    pub plain_length: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CacheError {
    pub message: String,
}

impl From<rocksdb::Error> for CacheError {
    fn from(e: rocksdb::Error) -> Self {
        CacheError {
            message: e.into_string(),
        }
    }
}

pub struct IndexCache {
    db: DB,
    path: PathBuf,
    /// Removed on drop when the cache is a private fallback.
    temporary: Option<tempfile::TempDir>,
}

impl Drop for IndexCache {
    /// Writes what the memtable holds to a table file, so that the next
    /// open has no log to replay: that replay holds the whole memtable in
    /// memory while the key derivation holds its 32 MiB (the cache opens
    /// during it), and writes the same table file anyway.
    fn drop(&mut self) {
        if self.temporary.is_none() {
            let _ = self.db.flush();
        }
    }
}

fn blob_key(kind: BlobKind, id: &BlobId) -> [u8; 34] {
    tagged_blob_key(b'b', kind, id)
}

fn tagged_blob_key(tag: u8, kind: BlobKind, id: &BlobId) -> [u8; 34] {
    let mut key = [0u8; 34];
    key[0] = tag;
    key[1] = kind.into();
    key[2..].copy_from_slice(id.as_bytes());
    key
}

/// A key of one tag byte and a 32-byte id.
fn id_key(tag: u8, id: &[u8; 32]) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = tag;
    key[1..].copy_from_slice(id);
    key
}

fn pack_key(tag: u8, id: &PackId) -> [u8; 33] {
    id_key(tag, id.as_bytes())
}

fn unchecked_parent_key(id: &SnapshotId) -> [u8; 33] {
    id_key(b'r', id.as_bytes())
}

fn index_key(id: &IndexId) -> [u8; 33] {
    id_key(b'i', id.as_bytes())
}

fn encode_location(pack: &PackId, e: &PackEntry) -> [u8; 48] {
    let mut v = [0u8; 48];
    v[..32].copy_from_slice(pack.as_bytes());
    v[32..40].copy_from_slice(&e.offset.to_le_bytes());
    v[40..44].copy_from_slice(&e.length.to_le_bytes());
    v[44..48].copy_from_slice(&e.plain_length.to_le_bytes());
    v
}

fn decode_location(v: &[u8]) -> Option<BlobLocation> {
    if v.len() != 48 {
        return None;
    }
    let pack = PackId::from_slice(&v[..32])?;
    let offset = u64::from_le_bytes(v[32..40].try_into().ok()?);
    let length = u32::from_le_bytes(v[40..44].try_into().ok()?);
    let plain_length = u32::from_le_bytes(v[44..48].try_into().ok()?);
    Some(BlobLocation {
        pack,
        offset,
        length,
        plain_length,
    })
}

/// Memory for the shared cache: a block cache and a write buffer.
const SHARED_MEMORY: (usize, usize) = (32 << 20, 16 << 20);
/// Private tables (prune's mark and claim tables, the fallback when another
/// process holds the cache) are short-lived and often two at once.
const PRIVATE_MEMORY: (usize, usize) = (8 << 20, 8 << 20);

fn options((block_cache, write_buffer): (usize, usize)) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(&Cache::new_lru_cache(block_cache));
    table.set_cache_index_and_filter_blocks(true);
    // A table file's filter in one block outgrows a shard of the block
    // cache (512 KiB of a 32 MiB cache) at about 400,000 blobs; from then
    // on every lookup read and checksummed it from the file again, and a
    // run adding two million blobs took 100 s instead of 13. Partitioned,
    // the filter and index come in 4 KiB blocks the cache keeps, under a
    // small top level pinned in it.
    table.set_partition_filters(true);
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_metadata_block_size(4096);
    table.set_pin_top_level_index_and_filter(true);
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(write_buffer);
    opts.set_max_open_files(256);
    opts.set_keep_log_file_num(2);
    opts
}

impl IndexCache {
    /// Opens (or creates) the cache at `path`. If another process holds it,
    /// falls back to a private temporary cache: slower, never blocking.
    pub fn open(path: &Path) -> Result<IndexCache, CacheError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CacheError {
                message: format!("{}: {e}", parent.display()),
            })?;
        }
        match DB::open(&options(SHARED_MEMORY), path) {
            Ok(db) => Ok(IndexCache {
                db,
                path: path.to_path_buf(),
                temporary: None,
            }),
            Err(e) if e.to_string().contains("lock") => Self::open_private(),
            Err(e) => Err(e.into()),
        }
    }

    /// A cache that lives only as long as this process.
    pub fn open_private() -> Result<IndexCache, CacheError> {
        let dir = tempfile::Builder::new()
            .prefix("cairn-cache-")
            .tempdir()
            .map_err(|e| CacheError {
                message: format!("temporary cache: {e}"),
            })?;
        let path = dir.path().join("index");
        let db = DB::open(&options(PRIVATE_MEMORY), &path)?;
        Ok(IndexCache {
            db,
            path,
            temporary: Some(dir),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_private(&self) -> bool {
        self.temporary.is_some()
    }

    /// Where a blob can be read: a live pack, or else an obsolete one.
    pub fn lookup(&self, kind: BlobKind, id: &BlobId) -> Result<Option<BlobLocation>, CacheError> {
        for tag in [b'b', b'x'] {
            if let Some(v) = self.db.get_pinned(tagged_blob_key(tag, kind, id))? {
                return Ok(decode_location(&v));
            }
        }
        Ok(None)
    }

    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> Result<bool, CacheError> {
        // The bloom filter makes most misses cheap; a hit costs one read.
        Ok(self.db.get_pinned(blob_key(kind, id))?.is_some())
    }

    /// Records that index file `index` (if any) names these packs' blobs.
    pub fn merge(
        &self,
        index: Option<&IndexId>,
        packs: &[(PackId, &[PackEntry])],
    ) -> Result<(), CacheError> {
        let mut batch = WriteBatch::default();
        for (pack, entries) in packs {
            for e in entries.iter() {
                batch.put(blob_key(e.kind, &e.id), encode_location(pack, e));
            }
            if index.is_some() {
                batch.put(pack_key(b'p', pack), b"");
            }
        }
        if let Some(index) = index {
            batch.put(index_key(index), b"");
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Records the packs of an obsolete marker (readable, not for dedup).
    pub fn merge_obsolete(
        &self,
        marker: &str,
        packs: &[(PackId, &[PackEntry])],
    ) -> Result<(), CacheError> {
        let mut batch = WriteBatch::default();
        for (pack, entries) in packs {
            for e in entries.iter() {
                batch.put(
                    tagged_blob_key(b'x', e.kind, &e.id),
                    encode_location(pack, e),
                );
            }
            batch.put(pack_key(b'q', pack), b"");
        }
        let mut key = vec![b'm'];
        key.extend_from_slice(marker.as_bytes());
        batch.put(key, b"");
        self.db.write(batch)?;
        Ok(())
    }

    /// Names of the obsolete markers merged so far.
    pub fn merged_markers(&self) -> Result<Vec<String>, CacheError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(b"m") {
            let (key, _) = item?;
            if key.first() != Some(&b'm') {
                break;
            }
            out.push(String::from_utf8_lossy(&key[1..]).into_owned());
        }
        Ok(out)
    }

    /// Whether a pack is named by a merged index file or obsolete marker.
    pub fn knows_pack(&self, pack: &PackId) -> Result<bool, CacheError> {
        for tag in [b'p', b'q'] {
            if self.db.get_pinned(pack_key(tag, pack))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn clear_obsolete(&self) -> Result<(), CacheError> {
        self.delete_tags(b"mxq")
    }

    /// Index files merged so far.
    pub fn merged_indexes(&self) -> Result<Vec<IndexId>, CacheError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(b"i") {
            let (key, _) = item?;
            if key.first() != Some(&b'i') {
                break;
            }
            if let Some(id) = IndexId::from_slice(&key[1..]) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Forgets every blob location and merged index (cached objects stay).
    pub fn clear_index(&self) -> Result<(), CacheError> {
        self.delete_tags(b"bip")
    }

    fn delete_tags(&self, tags: &[u8]) -> Result<(), CacheError> {
        let mut batch = WriteBatch::default();
        for &tag in tags {
            batch.delete_range(&[tag][..], &[tag + 1][..]);
        }
        self.db.write(batch)?;
        Ok(())
    }

    pub fn get_object(&self, name: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut key = Vec::with_capacity(name.len() + 1);
        key.push(b'o');
        key.extend_from_slice(name.as_bytes());
        Ok(self.db.get(key)?)
    }

    pub fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let mut key = Vec::with_capacity(name.len() + 1);
        key.push(b'o');
        key.extend_from_slice(name.as_bytes());
        self.db.put(key, bytes)?;
        Ok(())
    }

    /// Records the snapshots present when the blob index was built anew:
    /// the index may lack blobs they refer to (`repair index` after a pack
    /// was lost), which a snapshot taking one of them as parent must store
    /// again rather than take on trust.
    pub fn set_unchecked_parents(&self, snapshots: &[SnapshotId]) -> Result<(), CacheError> {
        let mut batch = WriteBatch::default();
        batch.delete_range(&b"r"[..], &b"s"[..]);
        for id in snapshots {
            batch.put(unchecked_parent_key(id), b"");
        }
        self.db.write(batch)?;
        Ok(())
    }

    pub fn is_unchecked_parent(&self, snapshot: &SnapshotId) -> Result<bool, CacheError> {
        Ok(self
            .db
            .get_pinned(unchecked_parent_key(snapshot))?
            .is_some())
    }

    /// Records that a snapshot taking `snapshot` as parent checked its
    /// blobs and stored again those that were missing: later snapshots
    /// may take them on trust.
    pub fn parent_checked(&self, snapshot: &SnapshotId) -> Result<(), CacheError> {
        Ok(self.db.delete(unchecked_parent_key(snapshot))?)
    }

    /// Removes the cached objects whose names start with `prefix` and that
    /// `keep` turns down. Returns how many went.
    pub fn evict_objects(
        &self,
        prefix: &str,
        mut keep: impl FnMut(&str) -> Result<bool, CacheError>,
    ) -> Result<usize, CacheError> {
        let mut start = vec![b'o'];
        start.extend_from_slice(prefix.as_bytes());
        let mut batch = WriteBatch::default();
        for item in self.db.prefix_iterator(&start) {
            let (key, _) = item?;
            if !key.starts_with(&start) {
                break;
            }
            let name = String::from_utf8_lossy(&key[1..]);
            if !keep(&name)? {
                batch.delete(&key);
            }
        }
        let evicted = batch.len();
        // Most calls (every listing of snapshots) find nothing to evict:
        // they write nothing either.
        if evicted > 0 {
            self.db.write(batch)?;
        }
        Ok(evicted)
    }

    pub fn remove_object(&self, name: &str) -> Result<(), CacheError> {
        let mut key = Vec::with_capacity(name.len() + 1);
        key.push(b'o');
        key.extend_from_slice(name.as_bytes());
        self.db.delete(key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_lookup_clear() {
        let dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::open(&dir.path().join("idx")).unwrap();
        let entry = PackEntry {
            kind: BlobKind::Data,
            id: BlobId([1; 32]),
            offset: 77,
            length: 100,
            plain_length: 90,
        };
        let pack = PackId([2; 32]);
        cache
            .merge(Some(&IndexId([3; 32])), &[(pack, &[entry][..])])
            .unwrap();
        let loc = cache
            .lookup(BlobKind::Data, &BlobId([1; 32]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (loc.pack, loc.offset, loc.length, loc.plain_length),
            (pack, 77, 100, 90)
        );
        assert!(cache
            .lookup(BlobKind::Tree, &BlobId([1; 32]))
            .unwrap()
            .is_none());
        assert_eq!(cache.merged_indexes().unwrap(), vec![IndexId([3; 32])]);
        cache.put_object("snapshots/x", b"bytes").unwrap();
        cache.clear_index().unwrap();
        assert!(cache
            .lookup(BlobKind::Data, &BlobId([1; 32]))
            .unwrap()
            .is_none());
        assert!(cache.merged_indexes().unwrap().is_empty());
        assert_eq!(cache.get_object("snapshots/x").unwrap().unwrap(), b"bytes");
    }

    #[test]
    fn second_opener_gets_a_private_cache() {
        let dir = tempfile::tempdir().unwrap();
        let first = IndexCache::open(&dir.path().join("idx")).unwrap();
        let second = IndexCache::open(&dir.path().join("idx")).unwrap();
        assert!(!first.is_private());
        assert!(second.is_private());
    }
}
