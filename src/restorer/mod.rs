//! Restoring a snapshot (or part of it) into a directory.
//!
//! The restore is planned first: every selected entry, and for every pack the
//! blobs it must deliver and where they go. Then directories, and files of
//! several chunks at their full length (so all-zero chunks stay holes), are
//! created; packs are read once each (several at a time), their blobs
//! decrypted, checked and written at their offsets. Most files are one
//! chunk: the worker that writes that chunk also creates the file and sets
//! its metadata, through one open descriptor, on all cores. The remaining
//! metadata is set last: files, then directories deepest first, so writing
//! contents never disturbs times.
//! A blob that fails to load makes the files that need it fail, by name; the
//! rest of the restore goes on. A file of one chunk that failed is not
//! created; a larger one keeps what was written of it.

mod metadata;
mod plan;

use metadata::Owners;
use plan::{Plan, Planned};

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::cache::BlobLocation;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::NodeKind;
use crate::walker::filter::Filter;

pub struct RestoreOptions {
    pub target: PathBuf,
    /// Path inside the snapshot to restore (default: everything).
    pub subpath: Option<String>,
    /// Include/exclude rules on snapshot paths (duplicity semantics).
    pub filter: Option<Filter>,
    pub overwrite: bool,
}

#[derive(Debug, Clone)]
pub struct RestoreError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    pub errors: Vec<RestoreError>,
}

/// One chunk of a restored file: the blob, the entry, and the offset.
struct ChunkWrite {
    id: BlobId,
    entry: usize,
    offset: u64,
}

/// One blob to restore: where it is stored, and its `ChunkWrite`s (a range
/// of `ContentPlan::writes`, all of this blob).
struct BlobTarget {
    loc: BlobLocation,
    writes: Range<usize>,
}

impl BlobTarget {
    /// Offset and stored length in its pack.
    fn span(&self) -> (u64, u32) {
        (self.loc.offset, self.loc.length)
    }
}

/// Where every restored file's chunks come from and go to.
struct ContentPlan {
    /// Sorted by blob id.
    writes: Vec<ChunkWrite>,
    /// One per blob, sorted by pack and offset.
    blobs: Vec<BlobTarget>,
}

impl ContentPlan {
    fn writes_of(&self, blob: &BlobTarget) -> &[ChunkWrite] {
        &self.writes[blob.writes.clone()]
    }

    /// The blobs grouped by pack.
    fn packs(&self) -> Vec<&[BlobTarget]> {
        self.blobs
            .chunk_by(|a, b| a.loc.pack == b.loc.pack)
            .collect()
    }
}

/// Checks the target is empty or may be overwritten, creating it when it is
/// missing. `true` when it holds entries that restored ones may replace.
fn check_target(target: &Path, overwrite: bool) -> Result<bool> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            let occupied = entries.next().is_some();
            if occupied && !overwrite {
                return Err(Error::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(occupied)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
            Ok(false)
        }
        Err(e) => Err(Error::io(target, e)),
    }
}

pub fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    // A restore of a large repository can outlast prune's grace period:
    // announced as a run, it keeps a prune from deleting the packs its
    // view of the index names. That view was read moments ago, when the
    // snapshot was resolved: well within the margin prune allows runs that
    // start after its marking. A repository this process may not write to
    // is restored all the same.
    let _run = repo.start_run().ok();
    let start_path = options.subpath.clone().unwrap_or_else(|| "/".to_string());
    let start = plan::find_node(repo, snapshot, &start_path)?;
    let occupied = check_target(&options.target, options.overwrite)?;
    let start_path = PathBuf::from(start_path);
    let mut plan = Plan::build(repo, start, &start_path, options.filter.as_ref())?;
    let owners = Owners::for_plan(&plan, &options.target, !occupied);
    let mut stats = RestoreStats::default();
    create_entries(&options.target, &plan, occupied, &mut stats);
    let failed = write_contents(
        repo,
        &options.target,
        &mut plan,
        &owners,
        progress,
        &mut stats,
    )?;
    metadata::apply_all(&options.target, &plan, &owners, &failed, &mut stats);
    Ok(stats)
}

fn record(stats: &mut RestoreStats, path: &Path, message: impl ToString) {
    stats.errors.push(RestoreError {
        path: path.to_path_buf(),
        message: message.to_string(),
    });
}

/// Creates what the content workers do not: directories, links, special
/// files and files of several chunks (or none). With `replace`, an existing
/// entry in the way is removed first, so writing never follows it.
fn create_entries(target: &Path, plan: &Plan, replace: bool, stats: &mut RestoreStats) {
    for (i, entry) in plan.entries.iter().enumerate() {
        if replace || !entry.written_whole {
            let path = target.join(plan.rel(i));
            if replace && !matches!(entry.kind, NodeKind::Dir | NodeKind::Socket) {
                remove_existing(&path);
            }
            if !entry.written_whole {
                if let Err(e) = create_one(target, entry, plan, &path) {
                    record(stats, &plan.snapshot_path(i), e);
                    continue;
                }
            }
        }
        match entry.kind {
            NodeKind::Dir => stats.dirs += 1,
            NodeKind::File => stats.files += 1,
            _ => stats.other += 1,
        }
    }
}

fn remove_existing(path: &Path) {
    if let Ok(meta) = path.symlink_metadata() {
        if !meta.is_dir() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn create_one(target: &Path, entry: &Planned, plan: &Plan, path: &Path) -> std::io::Result<()> {
    if let Some(j) = entry.link_to() {
        return std::fs::hard_link(target.join(plan.rel(j)), path);
    }
    match entry.kind {
        NodeKind::Dir => match std::fs::create_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            other => other,
        },
        NodeKind::File => {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            match entry.size {
                0 => Ok(()),
                size => file.set_len(size),
            }
        }
        NodeKind::Symlink => {
            std::os::unix::fs::symlink(OsStr::from_bytes(entry.link_target()), path)
        }
        NodeKind::Fifo => {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(std::io::Error::from)
        }
        NodeKind::Socket => Ok(()),
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let kind = if entry.kind == NodeKind::CharDevice {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(
                path,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                entry.rdev(),
            )
            .map_err(std::io::Error::from)
        }
    }
}

/// Lists the blobs every restored file needs, grouped by pack. Takes the
/// files' chunk lists out of the plan: they are not needed again.
fn plan_contents(
    repo: &Repository,
    plan: &mut Plan,
    failed: &mut BTreeMap<usize, String>,
) -> Result<ContentPlan> {
    let has_contents = |e: &Planned| e.kind == NodeKind::File && e.link_to().is_none();
    // Sized exactly: on many small files these lists are a fifth of the
    // restore's memory, and growing them by doubling wastes up to half.
    let chunks = plan.entries.iter().filter(|e| has_contents(e));
    let mut writes = Vec::with_capacity(chunks.map(|e| e.content.len()).sum());
    for (i, entry) in plan.entries.iter_mut().enumerate() {
        if !has_contents(entry) {
            continue;
        }
        let mut offset = 0u64;
        for chunk in std::mem::take(&mut entry.content) {
            writes.push(ChunkWrite {
                id: chunk.0,
                entry: i,
                offset,
            });
            offset += u64::from(chunk.1);
        }
    }
    writes.sort_unstable_by_key(|w| w.id);
    let mut blobs = Vec::with_capacity(writes.chunk_by(|a, b| a.id == b.id).count());
    let mut missing = Vec::new();
    let mut start = 0;
    for run in writes.chunk_by(|a, b| a.id == b.id) {
        let range = start..start + run.len();
        start = range.end;
        match repo.lookup_blob(BlobKind::Data, &run[0].id)? {
            Some(loc) => blobs.push(BlobTarget { loc, writes: range }),
            None => missing.push(range),
        }
    }
    for range in missing {
        let message = format!(
            "data blob {} is missing from the index",
            writes[range.start].id.short()
        );
        for write in &writes[range] {
            failed.insert(write.entry, message.clone());
        }
    }
    blobs.sort_unstable_by_key(|b| (b.loc.pack, b.loc.offset));
    Ok(ContentPlan { writes, blobs })
}

/// Reads each pack once and writes its blobs into the files. Returns the
/// entries whose contents failed, with the reason.
fn write_contents(
    repo: &Repository,
    target: &Path,
    plan: &mut Plan,
    owners: &Owners,
    progress: &dyn Progress,
    stats: &mut RestoreStats,
) -> Result<BTreeMap<usize, String>> {
    let mut failed = BTreeMap::new();
    let contents = plan_contents(repo, plan, &mut failed)?;
    let plan = &*plan;
    let failures = Mutex::new(Vec::<(usize, Failure)>::new());
    let written = std::sync::atomic::AtomicU64::new(0);
    let writer = ContentWriter {
        repo,
        target,
        plan,
        owners,
    };
    contents.packs().par_iter().for_each(|blobs| {
        let outcome = writer.restore_pack(&contents, blobs, progress, &written);
        if let Err(list) = outcome {
            if let Ok(mut f) = failures.lock() {
                f.extend(list);
            }
        }
    });
    stats.bytes = written.into_inner();
    for (i, failure) in failures.into_inner().unwrap_or_default() {
        match failure {
            Failure::Contents(message) => {
                failed.entry(i).or_insert(message);
            }
            Failure::Metadata(message) => record(stats, &plan.snapshot_path(i), message),
        }
    }
    for (i, message) in &failed {
        record(
            stats,
            &plan.snapshot_path(*i),
            format!("contents not restored: {message}"),
        );
    }
    Ok(failed)
}

/// Why one entry was not fully restored.
enum Failure {
    Contents(String),
    /// Only for a file written whole: its contents are in place.
    Metadata(String),
}

fn fail_writes(failures: &mut Vec<(usize, Failure)>, writes: &[ChunkWrite], message: &str) {
    let each = writes.iter();
    failures.extend(each.map(|w| (w.entry, Failure::Contents(message.to_string()))));
}

/// What every content worker needs to place blobs.
struct ContentWriter<'a> {
    repo: &'a Repository,
    target: &'a Path,
    plan: &'a Plan,
    owners: &'a Owners,
}

impl ContentWriter<'_> {
    fn restore_pack(
        &self,
        contents: &ContentPlan,
        blobs: &[BlobTarget],
        progress: &dyn Progress,
        written: &std::sync::atomic::AtomicU64,
    ) -> std::result::Result<(), Vec<(usize, Failure)>> {
        let mut failures = Vec::new();
        let mut scratch = Vec::new();
        let Some(pack) = blobs.first().map(|b| b.loc.pack) else {
            return Ok(());
        };
        for (group, read) in self.repo.read_pack_windows(&pack, blobs, BlobTarget::span) {
            let mut window = match read {
                Ok(window) => window,
                Err(e) => {
                    // Only this window's files lose contents; the other
                    // windows of the pack are still read.
                    let message = format!("pack {}: {e}", pack.short());
                    for blob in group {
                        fail_writes(&mut failures, contents.writes_of(blob), &message);
                    }
                    continue;
                }
            };
            // Decrypting in place spares a copy of every blob.
            let in_place = !window.overlapping;
            for blob in group {
                let writes = contents.writes_of(blob);
                let Some(stored) = window.stored(blob.span()) else {
                    let message = format!("pack {}: read returned too few bytes", pack.short());
                    fail_writes(&mut failures, writes, &message);
                    continue;
                };
                let plain = match self.open_blob(&blob.loc, writes, stored, in_place, &mut scratch)
                {
                    Ok(plain) => plain,
                    Err(message) => {
                        fail_writes(&mut failures, writes, &message);
                        continue;
                    }
                };
                let runs = data_runs(plain);
                for write in writes {
                    if let Err(failure) = self.write_chunk(write, plain, &runs) {
                        failures.push((write.entry, failure));
                    }
                }
                let bytes = u64::from(blob.loc.plain_length) * writes.len() as u64;
                written.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                progress.bytes_read(bytes);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// Opens a blob read from its pack: in place (see `blob::open_in_place`)
    /// or else into `scratch`.
    fn open_blob<'a>(
        &self,
        loc: &BlobLocation,
        writes: &[ChunkWrite],
        stored: &'a mut [u8],
        in_place: bool,
        scratch: &'a mut Vec<u8>,
    ) -> std::result::Result<&'a [u8], String> {
        let Some(id) = writes.first().map(|w| w.id) else {
            return Ok(&[]);
        };
        let opened = if in_place {
            let repo = self.repo;
            repo.open_stored_blob_in_place(BlobKind::Data, &id, loc, stored, scratch)
        } else {
            let plain = self.repo.open_stored_blob(BlobKind::Data, &id, loc, stored);
            plain.map(|plain| {
                *scratch = plain;
                &scratch[..]
            })
        };
        opened.map_err(|e| e.to_string())
    }

    /// Writes one chunk into its file: the `runs` of `plain` that are not
    /// aligned zero blocks (`data_runs`, worked out once per blob), so the
    /// rest stays a hole. A file written whole is created here, and its
    /// metadata set.
    fn write_chunk(
        &self,
        write: &ChunkWrite,
        plain: &[u8],
        runs: &[(usize, usize)],
    ) -> std::result::Result<(), Failure> {
        let entry = &self.plan.entries[write.entry];
        if runs.is_empty() && !entry.written_whole {
            // All zeros: the file was created at full length, a hole already.
            return Ok(());
        }
        let path = self.target.join(self.plan.rel(write.entry));
        let contents = |e: std::io::Error| Failure::Contents(format!("{}: {e}", path.display()));
        let mut options = OpenOptions::new();
        options.write(true);
        if entry.written_whole {
            let mode = metadata::create_mode(entry);
            options.create(true).truncate(true).mode(mode);
        }
        let file = options.open(&path).map_err(contents)?;
        for &(from, to) in runs {
            file.write_all_at(&plain[from..to], write.offset + from as u64)
                .map_err(contents)?;
        }
        if !entry.written_whole {
            return Ok(());
        }
        if runs.last().map_or(0, |run| run.1) < plain.len() {
            // Zero blocks at the end were skipped: the length makes them
            // a hole.
            file.set_len(entry.size).map_err(contents)?;
        }
        metadata::apply_to_created(&file, entry, self.owners)
            .map_err(|e| Failure::Metadata(format!("metadata not restored: {e}")))
    }
}

/// Granularity of hole detection: a zero run this long and aligned is left
/// unwritten, so it stays a hole in the file created at full length.
const HOLE_BLOCK: usize = 64 * 1024;

/// The byte ranges of `data` that must be written: everything except
/// aligned all-zero blocks.
fn data_runs(data: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (n, block) in data.chunks(HOLE_BLOCK).enumerate() {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        let (from, to) = (n * HOLE_BLOCK, n * HOLE_BLOCK + block.len());
        match runs.last_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => runs.push((from, to)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_become_holes() {
        assert!(data_runs(&vec![0u8; 3 * HOLE_BLOCK]).is_empty());
        let mut d = vec![0u8; 3 * HOLE_BLOCK + 10];
        d[HOLE_BLOCK + 5] = 1;
        d[3 * HOLE_BLOCK + 9] = 1;
        assert_eq!(
            data_runs(&d),
            vec![
                (HOLE_BLOCK, 2 * HOLE_BLOCK),
                (3 * HOLE_BLOCK, 3 * HOLE_BLOCK + 10)
            ]
        );
        let ones = vec![1u8; 2 * HOLE_BLOCK];
        assert_eq!(data_runs(&ones), vec![(0, 2 * HOLE_BLOCK)]);
    }
}
