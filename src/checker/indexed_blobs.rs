//! The set of blobs the index names, for verify's tree walk to look every
//! referenced blob up in, in bounded memory however large the index.
//!
//! Up to `RUN_KEYS` blobs it is a sorted vector. Beyond, it is an external
//! sort: each `RUN_KEYS` blobs are sorted and written to a temporary file
//! as a run, the runs are merged into one sorted file, and a lookup
//! bisects a table of every `BLOCK_KEYS`th key in memory, then reads one
//! block of the file. A temporary RocksDB table did the same with a
//! compaction that took as long as the rest of a structure check of ten
//! million blobs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use super::index_spool::{temp_dir, temp_file_error};
use crate::blob::BlobKind;
use crate::error::Result;
use crate::id::BlobId;

/// A blob as the set keeps it: its kind's byte, then its id.
type Key = [u8; KEY_BYTES];
const KEY_BYTES: usize = 33;

/// Blobs sorted in memory at once: 8.6 MB.
const RUN_KEYS: usize = 1 << 18;
/// Blobs per block of the merged file: a lookup reads 4.2 KB, and the
/// fences take 0.26 bytes a blob.
const BLOCK_KEYS: usize = 128;
/// Bytes read at a time from each run while merging.
const MERGE_READ_KEYS: usize = 2048;

fn key(kind: BlobKind, id: &BlobId) -> Key {
    let mut k = [0; KEY_BYTES];
    k[0] = kind.into();
    k[1..].copy_from_slice(id.as_bytes());
    k
}

/// Gathers blobs (`add`), then answers `contains` once `finish`ed.
pub(super) struct IndexedBlobs {
    /// Blobs not yet written as a run; all of them while the set is small.
    buffer: Vec<Key>,
    /// Written runs: where each starts in `file`, and how many keys.
    runs: Vec<(u64, usize)>,
    /// The runs, and then the merged set after them.
    file: Option<File>,
    merged: Option<MergedFile>,
}

/// The merged set: keys from `start` in `file`, sorted, deduplicated.
struct MergedFile {
    start: u64,
    len: usize,
    /// The first key of each block of `BLOCK_KEYS`.
    fences: Vec<Key>,
}

impl IndexedBlobs {
    pub fn new() -> IndexedBlobs {
        IndexedBlobs {
            buffer: Vec::new(),
            runs: Vec::new(),
            file: None,
            merged: None,
        }
    }

    pub fn add(&mut self, blobs: impl Iterator<Item = (BlobKind, BlobId)>) -> Result<()> {
        for (kind, id) in blobs {
            self.buffer.push(key(kind, &id));
            if self.buffer.len() >= RUN_KEYS {
                self.write_run()?;
            }
        }
        Ok(())
    }

    fn write_run(&mut self) -> Result<()> {
        self.buffer.sort_unstable();
        self.buffer.dedup();
        let start = self.runs_end();
        let file = match &mut self.file {
            Some(f) => f,
            None => self
                .file
                .insert(tempfile::tempfile_in(temp_dir()).map_err(temp_file_error)?),
        };
        let mut out = BufWriter::new(&*file);
        for k in &self.buffer {
            out.write_all(k).map_err(temp_file_error)?;
        }
        out.flush().map_err(temp_file_error)?;
        self.runs.push((start, self.buffer.len()));
        self.buffer.clear();
        Ok(())
    }

    /// Where the written runs end in `file`: the next run, or the merged
    /// set, starts there.
    fn runs_end(&self) -> u64 {
        self.runs
            .last()
            .map_or(0, |(s, n)| s + (n * KEY_BYTES) as u64)
    }

    /// Sorts what is gathered; the set takes no more `add`s after this.
    pub fn finish(&mut self) -> Result<()> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            self.buffer.dedup();
            self.buffer.shrink_to_fit();
            return Ok(());
        }
        if !self.buffer.is_empty() {
            self.write_run()?;
        }
        self.buffer = Vec::new();
        self.merged = Some(self.merge_runs()?);
        Ok(())
    }

    /// Merges the runs into one sorted file after them.
    fn merge_runs(&self) -> Result<MergedFile> {
        let Some(file) = &self.file else {
            return Err(temp_file_error(std::io::ErrorKind::NotFound.into()));
        };
        let start = self.runs_end();
        let mut readers: Vec<RunReader> = self
            .runs
            .iter()
            .map(|&(at, len)| RunReader::new(at, len))
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, reader) in readers.iter_mut().enumerate() {
            if let Some(k) = reader.next(file)? {
                heap.push(Reverse((k, i)));
            }
        }
        let mut out = BufWriter::new(file);
        let mut fences = Vec::new();
        let mut len = 0;
        let mut last: Option<Key> = None;
        while let Some(Reverse((k, i))) = heap.pop() {
            if let Some(next) = readers[i].next(file)? {
                heap.push(Reverse((next, i)));
            }
            if last == Some(k) {
                continue;
            }
            if len % BLOCK_KEYS == 0 {
                fences.push(k);
            }
            // `BufWriter` over `&File` writes at the file's cursor, which
            // the runs left at `start`.
            out.write_all(&k).map_err(temp_file_error)?;
            len += 1;
            last = Some(k);
        }
        out.flush().map_err(temp_file_error)?;
        Ok(MergedFile { start, len, fences })
    }

    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        let k = key(kind, id);
        let (Some(merged), Some(file)) = (&self.merged, &self.file) else {
            return Ok(self.buffer.binary_search(&k).is_ok());
        };
        // The block whose first key is the last one not above `k`.
        let block = match merged.fences.binary_search(&k) {
            Ok(_) => return Ok(true),
            Err(0) => return Ok(false),
            Err(after) => after - 1,
        };
        let first = block * BLOCK_KEYS;
        let count = BLOCK_KEYS.min(merged.len - first);
        // On the stack: the walk looks up every referenced blob.
        let mut buffer = [0; BLOCK_KEYS * KEY_BYTES];
        let bytes = &mut buffer[..count * KEY_BYTES];
        file.read_exact_at(bytes, merged.start + (first * KEY_BYTES) as u64)
            .map_err(temp_file_error)?;
        Ok(bytes.chunks_exact(KEY_BYTES).any(|c| c == k))
    }
}

/// Reads one run back a few thousand keys at a time.
struct RunReader {
    at: u64,
    left: usize,
    buffered: Vec<u8>,
    used: usize,
}

impl RunReader {
    fn new(at: u64, len: usize) -> RunReader {
        RunReader {
            at,
            left: len,
            buffered: Vec::new(),
            used: 0,
        }
    }

    fn next(&mut self, file: &File) -> Result<Option<Key>> {
        if self.used == self.buffered.len() {
            if self.left == 0 {
                return Ok(None);
            }
            let n = self.left.min(MERGE_READ_KEYS);
            self.buffered.resize(n * KEY_BYTES, 0);
            file.read_exact_at(&mut self.buffered, self.at)
                .map_err(temp_file_error)?;
            self.at += (n * KEY_BYTES) as u64;
            self.left -= n;
            self.used = 0;
        }
        let mut k = [0; KEY_BYTES];
        k.copy_from_slice(&self.buffered[self.used..self.used + KEY_BYTES]);
        self.used += KEY_BYTES;
        Ok(Some(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> BlobId {
        BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn check(count: u32) {
        let mut set = IndexedBlobs::new();
        // Every blob twice, in two kinds' worth of order, as index files
        // that list a pack twice would give them.
        let blobs = (0..count).map(|n| (BlobKind::Data, id(n)));
        set.add(blobs.clone()).unwrap();
        set.add(blobs.rev().step_by(3)).unwrap();
        set.add([(BlobKind::Tree, id(count + 1))].into_iter())
            .unwrap();
        set.finish().unwrap();
        for n in (0..count).step_by(97).chain([0, count - 1]) {
            assert!(set.contains(BlobKind::Data, &id(n)).unwrap(), "{n}");
            assert!(!set.contains(BlobKind::Tree, &id(n)).unwrap(), "{n}");
        }
        assert!(set.contains(BlobKind::Tree, &id(count + 1)).unwrap());
        for n in count + 2..count + 500 {
            assert!(!set.contains(BlobKind::Data, &id(n)).unwrap(), "{n}");
        }
        assert!(!set.contains(BlobKind::Data, &BlobId([0; 32])).unwrap());
        assert!(!set.contains(BlobKind::Tree, &BlobId([0xff; 32])).unwrap());
        if let Some(merged) = &set.merged {
            assert_eq!(merged.len, count as usize + 1, "duplicates merged once");
        }
    }

    #[test]
    fn a_small_set_stays_in_memory() {
        check(1000);
    }

    #[test]
    fn a_large_set_is_sorted_on_disk_and_found_there() {
        let count = RUN_KEYS as u32 * 2 + 12_345;
        check(count);
    }
}
