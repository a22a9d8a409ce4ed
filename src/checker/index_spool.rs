//! The index as verify read it, kept in a temporary file instead of memory.
//!
//! Verify goes through the index's packs once to check and read each one
//! and gather the blobs the index names, and again, if a concurrent prune
//! deleted packs meanwhile, to gather the blobs without them. Holding the
//! index in memory for that cost about 90 bytes a blob (900 MB for ten
//! million). Reading the index files again would not do either: a prune
//! may replace one in between, and the two passes would
//! see two different indexes. So each index file and obsolete marker is
//! read once, as the listing that `retry_vanished` settles on, and its
//! packs go to a temporary file, one frame per object; both passes read
//! the frames back one at a time.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::Problem;
use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::IndexedPack;
use crate::pack::PackEntry;
use crate::repository::{retry_vanished, Repository};

/// Where a frame's packs came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    Index(IndexId),
    /// An obsolete marker, by object name: its packs are still readable
    /// until prune deletes them.
    Marker(String),
}

struct Frame {
    source: Source,
    offset: u64,
    len: usize,
}

pub(super) struct IndexSpool {
    file: File,
    frames: Vec<Frame>,
    superseded: HashSet<IndexId>,
    /// Index files and markers that could not be read.
    pub problems: Vec<Problem>,
}

impl IndexSpool {
    /// Reads the live index and the obsolete markers into a spool,
    /// reporting unreadable ones. If a listed object vanished before it was
    /// read (a prune replaced it), everything is read again, so that the
    /// spool holds one index a prune left whole, never half of two.
    pub fn load(repo: &Repository) -> Result<IndexSpool> {
        retry_vanished(|| Self::load_once(repo))
    }

    fn load_once(repo: &Repository) -> Result<IndexSpool> {
        let file = tempfile::tempfile_in(temp_dir()).map_err(temp_file_error)?;
        let mut spool = IndexSpool {
            file,
            frames: Vec::new(),
            superseded: HashSet::new(),
            problems: Vec::new(),
        };
        for id in repo.list_index_files()? {
            if let Some(f) = spool.take(id.object_name(), repo.load_index_file(&id))? {
                spool.superseded.extend(f.supersedes.iter().copied());
                spool.append(Source::Index(id), &f.packs)?;
            }
        }
        for name in repo.obsolete_names()? {
            if let Some(marker) = spool.take(name.clone(), repo.load_obsolete(&name))? {
                spool.append(Source::Marker(name), &marker.packs)?;
            }
        }
        Ok(spool)
    }

    /// `Some` if `loaded` worked; a problem if the object is unreadable; an
    /// error if it vanished, so that the caller lists everything again.
    fn take<T>(&mut self, object: String, loaded: Result<T>) -> Result<Option<T>> {
        match loaded {
            Ok(v) => Ok(Some(v)),
            Err(Error::Backend(e)) if e.is_not_found() => Err(Error::Backend(e)),
            Err(e) => {
                self.problems.push(Problem {
                    object,
                    message: e.to_string(),
                });
                Ok(None)
            }
        }
    }

    fn append(&mut self, source: Source, packs: &[IndexedPack]) -> Result<()> {
        let bytes = encode_frame(packs);
        let offset = self.frames.last().map_or(0, |f| f.offset + f.len as u64);
        self.file.write_all(&bytes).map_err(temp_file_error)?;
        self.frames.push(Frame {
            source,
            offset,
            len: bytes.len(),
        });
        Ok(())
    }

    /// Each live index file's packs, then each marker's, in the order they
    /// were listed, one frame at a time. Packs may repeat across frames
    /// (index files written by an interrupted prune list some twice).
    pub fn frames(&self) -> impl Iterator<Item = Result<(&Source, Vec<IndexedPack>)>> + '_ {
        self.frames
            .iter()
            .filter(|f| !matches!(&f.source, Source::Index(id) if self.superseded.contains(id)))
            .map(|f| Ok((&f.source, self.read_frame(f)?)))
    }

    fn read_frame(&self, frame: &Frame) -> Result<Vec<IndexedPack>> {
        let mut bytes = vec![0; frame.len];
        self.file
            .read_exact_at(&mut bytes, frame.offset)
            .map_err(temp_file_error)?;
        // Only this process wrote these bytes, so they decode unless the
        // disk is failing.
        decode_frame(&bytes).ok_or_else(|| {
            temp_file_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "spooled index damaged",
            ))
        })
    }
}

/// Where verify's temporary files go (unlinked from the start): where
/// `TMPDIR` says.
pub(super) fn temp_dir() -> PathBuf {
    std::env::temp_dir()
}

/// An error with one of verify's temporary files, saying so: a full or
/// missing temporary directory must not read as damage to the repository.
pub(super) fn temp_file_error(e: std::io::Error) -> Error {
    let message = format!("verify's temporary file (set TMPDIR to move it): {e}");
    Error::io(temp_dir(), std::io::Error::new(e.kind(), message))
}

/// Bytes of a spooled pack before its entries: id, size, entry count.
const PACK_BYTES: usize = 32 + 8 + 4;
/// Bytes of a spooled entry: kind, id, offset, length, plain length.
const ENTRY_BYTES: usize = 1 + 32 + 8 + 4 + 4;

/// Fixed-width records: decoding CBOR three times (index file, then both
/// passes) was most of a structure check of two million blobs.
fn encode_frame(packs: &[IndexedPack]) -> Vec<u8> {
    let entries: usize = packs.iter().map(|p| p.blobs.len()).sum();
    let mut out = Vec::with_capacity(packs.len() * PACK_BYTES + entries * ENTRY_BYTES);
    for p in packs {
        out.extend_from_slice(p.id.as_bytes());
        out.extend_from_slice(&p.size_bytes.to_le_bytes());
        out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
        for e in &p.blobs {
            out.push(e.kind.into());
            out.extend_from_slice(e.id.as_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.plain_length.to_le_bytes());
        }
    }
    out
}

/// `None` if `bytes` are not what `encode_frame` wrote.
fn decode_frame(mut bytes: &[u8]) -> Option<Vec<IndexedPack>> {
    let mut packs = Vec::new();
    while !bytes.is_empty() {
        let id = PackId::from_slice(take(&mut bytes, 32)?)?;
        let size_bytes = u64::from_le_bytes(take(&mut bytes, 8)?.try_into().ok()?);
        let count = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?) as usize;
        let mut blobs = Vec::with_capacity(count.min(bytes.len() / ENTRY_BYTES));
        for _ in 0..count {
            let e = take(&mut bytes, ENTRY_BYTES)?;
            blobs.push(PackEntry {
                kind: BlobKind::try_from(e[0]).ok()?,
                id: BlobId::from_slice(&e[1..33])?,
                offset: u64::from_le_bytes(e[33..41].try_into().ok()?),
                length: u32::from_le_bytes(e[41..45].try_into().ok()?),
                plain_length: u32::from_le_bytes(e[45..49].try_into().ok()?),
            });
        }
        packs.push(IndexedPack {
            id,
            size_bytes,
            blobs,
        });
    }
    Some(packs)
}

/// The first `n` bytes of `bytes`, which move past them.
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip_and_damage_is_refused() {
        let entry = |n: u8| PackEntry {
            kind: if n % 2 == 0 {
                BlobKind::Data
            } else {
                BlobKind::Tree
            },
            id: BlobId([n; 32]),
            offset: u64::from(n) << 33,
            length: u32::MAX - u32::from(n),
            plain_length: u32::from(n),
        };
        let packs = vec![
            IndexedPack {
                id: PackId([1; 32]),
                size_bytes: 1 << 40,
                blobs: (0..5).map(entry).collect(),
            },
            IndexedPack {
                id: PackId([2; 32]),
                size_bytes: 0,
                blobs: Vec::new(),
            },
        ];
        let bytes = encode_frame(&packs);
        assert_eq!(decode_frame(&bytes), Some(packs));
        assert_eq!(decode_frame(&[]), Some(Vec::new()));
        for cut in [1, PACK_BYTES, PACK_BYTES + 1, bytes.len() - 1] {
            assert_eq!(decode_frame(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut bad_kind = bytes.clone();
        bad_kind[PACK_BYTES] = 0xee;
        assert_eq!(decode_frame(&bad_kind), None);
    }
}
