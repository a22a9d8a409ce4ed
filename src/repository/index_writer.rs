//! Writes a large set of packs as several bounded index files, then one
//! small file that supersedes the old ones, so that neither prune nor
//! `repair index` ever holds the whole index in memory and the switch from
//! old to new files is still atomic (format-spec section 10).
//!
//! Until the superseding file exists, old and new files are both live and
//! simply list some packs twice, which readers tolerate; once it exists,
//! the old files are dead even if deleting them is interrupted.

use crate::error::Result;
use crate::id::IndexId;
use crate::index::{IndexFile, IndexedPack};
use crate::repository::Repository;

/// Blob entries per index file by default: about 5 MiB of CBOR.
const BLOBS_PER_INDEX_FILE: usize = 100_000;

/// Blob entries per index file (and obsolete marker) that prune and repair
/// write: `CAIRN_INDEX_FILE_BLOBS` if set (smaller files suit slow links,
/// and tests use it to exercise many files), else 100,000.
pub fn blobs_per_index_file() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("CAIRN_INDEX_FILE_BLOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(BLOBS_PER_INDEX_FILE)
    })
}

/// Packs gathered until they hold `blobs_per_index_file()` entries: the
/// unit of one index file or one obsolete marker.
#[derive(Default)]
pub struct PackBatch {
    packs: Vec<IndexedPack>,
    blobs: usize,
}

impl PackBatch {
    /// Adds a pack; returns the batch once it is full.
    pub fn push(&mut self, pack: IndexedPack) -> Option<Vec<IndexedPack>> {
        self.blobs += pack.blobs.len();
        self.packs.push(pack);
        (self.blobs >= blobs_per_index_file()).then(|| self.take())
    }

    /// Whatever is gathered (possibly nothing).
    pub fn take(&mut self) -> Vec<IndexedPack> {
        self.blobs = 0;
        std::mem::take(&mut self.packs)
    }
}

pub struct IndexWriter<'r> {
    repo: &'r Repository,
    batch: PackBatch,
    written: Vec<IndexId>,
}

impl<'r> IndexWriter<'r> {
    pub fn new(repo: &'r Repository) -> IndexWriter<'r> {
        IndexWriter {
            repo,
            batch: PackBatch::default(),
            written: Vec::new(),
        }
    }

    pub fn add(&mut self, pack: IndexedPack) -> Result<()> {
        match self.batch.push(pack) {
            Some(full) => self.write(full),
            None => Ok(()),
        }
    }

    fn write(&mut self, packs: Vec<IndexedPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let file = IndexFile {
            supersedes: Vec::new(),
            packs,
        };
        self.written.push(self.repo.save_index_file(&file)?);
        Ok(())
    }

    /// Writes what is pending, then a file that supersedes `old` (when it
    /// is not empty), and returns the ids of every file written.
    pub fn finish(mut self, old: &[IndexId]) -> Result<Vec<IndexId>> {
        let rest = self.batch.take();
        self.write(rest)?;
        if !old.is_empty() {
            let file = IndexFile {
                supersedes: old.to_vec(),
                packs: Vec::new(),
            };
            self.written.push(self.repo.save_index_file(&file)?);
        }
        Ok(self.written)
    }

    /// Deletes the old files the writer superseded, keeping any that it
    /// happened to write again.
    pub fn delete_superseded(
        repo: &Repository,
        old: &[IndexId],
        written: &[IndexId],
    ) -> Result<()> {
        for id in old.iter().filter(|id| !written.contains(id)) {
            match repo.backend().delete(&id.object_name()) {
                Err(e) if !e.is_not_found() => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}
