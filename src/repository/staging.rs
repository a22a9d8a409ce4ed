//! Packs written to a local file as their blobs are sealed, then handed to
//! the backend whole (`Backend::store_file`). A pack waiting for its upload
//! costs no memory, and on a local repository storing it is a rename.
//!
//! Staging files are named `.tmp-pack-…`, which backends never list; one
//! that a failed run leaves behind is removed when its `StagedPath` is
//! dropped, and one that a killed run left is removed by `remove_stale`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::blob::BlobKind;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::pack::{PackEntry, PackLayout};

/// Small blobs (tiny files, trees) are gathered into writes of this size.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

const STAGING_PREFIX: &str = ".tmp-pack-";

/// Removes staging files in `dir` last written more than `age` ago: what
/// killed runs left behind.
pub fn remove_stale(dir: &Path, age: std::time::Duration) {
    crate::backend::local::remove_stale_files(dir, STAGING_PREFIX, age);
}

/// Which of a writer's two open packs a blob of `kind` goes to: data blobs
/// and trees are packed apart.
pub fn pack_slot(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
    }
}

/// Adds a sealed blob to the pack open in `slot`, staging a new one in
/// `dir` when there is none; takes the pack out of the slot once it holds
/// `target` bytes of blobs, for the caller to store.
pub fn append_to_open_pack(
    slot: &mut Option<StagedPack>,
    dir: &Path,
    target: u64,
    (kind, id, plain_length): (BlobKind, BlobId, u32),
    sealed: &[u8],
) -> Result<Option<StagedPack>> {
    let pack = match slot {
        Some(pack) => pack,
        None => slot.insert(StagedPack::create(dir).map_err(|e| Error::io(dir, e))?),
    };
    pack.add(kind, id, plain_length, sealed)
        .map_err(|e| Error::io(pack.path(), e))?;
    Ok(match pack.size_bytes() >= target {
        true => slot.take(),
        false => None,
    })
}

/// A staging file, removed on drop unless the backend took it.
#[derive(Debug)]
pub struct StagedPath(PathBuf);

impl StagedPath {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StagedPath {
    fn drop(&mut self) {
        // Gone already when the backend moved it into place.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A pack being written to a staging file.
pub struct StagedPack {
    layout: PackLayout,
    file: BufWriter<File>,
    path: StagedPath,
}

/// A complete pack in a staging file, ready for `Backend::store_file`.
pub struct StagedFinished {
    pub id: PackId,
    pub path: StagedPath,
    pub size_bytes: u64,
    pub entries: Vec<PackEntry>,
}

impl StagedPack {
    pub fn create(dir: &Path) -> std::io::Result<StagedPack> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!(
            "{STAGING_PREFIX}{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(StagedPack {
            layout: PackLayout::default(),
            file: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            path: StagedPath(path),
        })
    }

    pub fn path(&self) -> &Path {
        self.path.path()
    }

    pub fn add(
        &mut self,
        kind: BlobKind,
        id: BlobId,
        plain_length: u32,
        sealed: &[u8],
    ) -> std::io::Result<()> {
        self.file.write_all(sealed)?;
        self.layout.add(kind, id, plain_length, sealed);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }

    /// Bytes of blob data so far (without the header).
    pub fn size_bytes(&self) -> u64 {
        self.layout.size_bytes()
    }

    /// Appends the sealed header and closes the file (durability is the
    /// backend's job when it stores the file).
    pub fn finish(self, key: &MasterKey) -> std::io::Result<StagedFinished> {
        let StagedPack {
            layout,
            mut file,
            path,
        } = self;
        let data_bytes = layout.size_bytes();
        let (trailer, id, entries) = layout.finish(key);
        file.write_all(&trailer)?;
        file.flush()?;
        Ok(StagedFinished {
            id,
            path,
            size_bytes: data_bytes + trailer.len() as u64,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::compress::Compression;
    use crate::pack::{read_header, PackWriter};

    #[test]
    fn staged_pack_matches_the_in_memory_writer_and_is_removed_on_drop() {
        let key = MasterKey::from_bytes([4; 32]);
        let dir = tempfile::tempdir().unwrap();
        let mut staged = StagedPack::create(dir.path()).unwrap();
        let mut memory = PackWriter::new();
        for i in 0..5u8 {
            let data = vec![i; 3000 * usize::from(i + 1)];
            let id = key.blob_id(&data);
            let sealed = blob::seal(&key, BlobKind::Data, &id, &data, Compression::Auto);
            staged
                .add(BlobKind::Data, id, data.len() as u32, &sealed)
                .unwrap();
            memory.add(BlobKind::Data, id, data.len() as u32, &sealed);
        }
        let finished = staged.finish(&key).unwrap();
        let bytes = std::fs::read(finished.path.path()).unwrap();
        assert_eq!(bytes.len() as u64, finished.size_bytes);
        assert_eq!(finished.id, PackId(crate::id::content_hash(&bytes)));
        assert_eq!(read_header(&key, &bytes).unwrap(), finished.entries);
        // Same blobs, same offsets as in memory (only the header's nonce differs).
        let in_memory = memory.finish(&key);
        assert_eq!(in_memory.entries, finished.entries);
        let data_end = finished
            .entries
            .iter()
            .map(|e| e.offset + u64::from(e.length))
            .max();
        let data_end = data_end.unwrap() as usize;
        assert_eq!(bytes[..data_end], in_memory.bytes[..data_end]);
        let path = finished.path.path().to_path_buf();
        drop(finished);
        assert!(!path.exists());
    }

    #[test]
    fn only_old_staging_files_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".tmp-pack-1-old");
        let fresh = dir.path().join(".tmp-pack-2-fresh");
        let other = dir.path().join("ab");
        for path in [&old, &fresh, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for path in [&old, &other] {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(long_ago).unwrap();
        }
        remove_stale(dir.path(), std::time::Duration::from_secs(3600));
        assert!(!old.exists());
        assert!(fresh.exists() && other.exists());
    }
}
