//! Restoring a snapshot (or part of it) into a directory.
//!
//! The restore is planned first: every selected entry, and for every pack the
//! blobs it must deliver and where they go. Then directories and empty files
//! of the right length are created (so all-zero chunks stay holes), packs
//! are read once each (several at a time), their blobs decrypted, checked and
//! written at their offsets, and metadata is set last: files, then
//! directories deepest first, so writing contents never disturbs times.
//! A blob that fails to load makes the files that need it fail, by name; the
//! rest of the restore goes on.

mod metadata;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::cache::BlobLocation;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind};
use crate::walker::filter::{Decision, Filter};

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

/// One entry to restore: its path below the target and its node.
struct Planned {
    rel: PathBuf,
    snapshot_path: PathBuf,
    node: Node,
    /// For a hard link: index of the entry it links to.
    link_to: Option<usize>,
}

/// Where one blob's plaintext must be written.
struct BlobTarget {
    id: BlobId,
    loc: BlobLocation,
    writes: Vec<(usize, u64)>,
}

/// Walks the snapshot from `start` and lists the selected entries, parents
/// before children.
fn plan_entries(
    repo: &Repository,
    node: &Node,
    snapshot_path: &Path,
    rel: &Path,
    filter: Option<&Filter>,
    out: &mut Vec<Planned>,
) -> Result<bool> {
    let is_dir = node.kind == NodeKind::Dir;
    let decision = match filter {
        Some(f) if !rel.as_os_str().is_empty() => {
            f.decide(snapshot_path.as_os_str().as_bytes(), is_dir)
        }
        _ => Decision::Include,
    };
    if decision == Decision::Exclude || (decision == Decision::Scan && !is_dir) {
        return Ok(false);
    }
    let index = out.len();
    out.push(Planned {
        rel: rel.to_path_buf(),
        snapshot_path: snapshot_path.to_path_buf(),
        node: node.clone(),
        link_to: None,
    });
    if !is_dir {
        return Ok(true);
    }
    let mut any = false;
    if let Some(subtree) = &node.subtree {
        let tree = repo.load_tree(subtree)?;
        for child in &tree.nodes {
            let name = OsStr::from_bytes(&child.name);
            any |= plan_entries(
                repo,
                child,
                &snapshot_path.join(name),
                &rel.join(name),
                filter,
                out,
            )?;
        }
    }
    if decision == Decision::Scan && !any {
        out.truncate(index);
        return Ok(false);
    }
    Ok(true)
}

/// Finds the node at `path` ("/home/ann") in the snapshot.
fn find_node(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Node> {
    let mut node = Node::new(b"/", NodeKind::Dir);
    node.subtree = Some(snapshot.tree);
    node.mode = 0o755;
    for part in Path::new(path).components().skip(1) {
        let tree = match &node.subtree {
            Some(id) if node.kind == NodeKind::Dir => repo.load_tree(id)?,
            _ => return Err(Error::PathNotFound(path.to_string())),
        };
        node = tree
            .find(part.as_os_str().as_bytes())
            .cloned()
            .ok_or_else(|| Error::PathNotFound(path.to_string()))?;
    }
    Ok(node)
}

fn check_target(target: &Path, overwrite: bool) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() && !overwrite {
                return Err(Error::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))
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
    let start_path = options.subpath.clone().unwrap_or_else(|| "/".to_string());
    let start = find_node(repo, snapshot, &start_path)?;
    check_target(&options.target, options.overwrite)?;
    let mut entries = Vec::new();
    let rel_root = if start.kind == NodeKind::Dir {
        PathBuf::new()
    } else {
        PathBuf::from(OsStr::from_bytes(&start.name))
    };
    plan_entries(
        repo,
        &start,
        Path::new(&start_path),
        &rel_root,
        options.filter.as_ref(),
        &mut entries,
    )?;
    link_hard_links(&mut entries);
    let mut stats = RestoreStats::default();
    create_entries(&options.target, &entries, &mut stats);
    let failed = write_contents(repo, &options.target, &entries, progress, &mut stats)?;
    metadata::apply_all(&options.target, &entries, &failed, &mut stats);
    Ok(stats)
}

/// Marks later occurrences of a multiply-linked inode as links to the first.
fn link_hard_links(entries: &mut [Planned]) {
    let mut first: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        let node = &entry.node;
        if node.kind == NodeKind::Dir || node.links < 2 || node.inode == 0 {
            continue;
        }
        match first.get(&(node.device, node.inode)) {
            Some(&j) => entry.link_to = Some(j),
            None => {
                first.insert((node.device, node.inode), i);
            }
        }
    }
}

fn record(stats: &mut RestoreStats, path: &Path, message: impl ToString) {
    stats.errors.push(RestoreError {
        path: path.to_path_buf(),
        message: message.to_string(),
    });
}

fn create_entries(target: &Path, entries: &[Planned], stats: &mut RestoreStats) {
    for entry in entries {
        let path = target.join(&entry.rel);
        if let Err(e) = create_one(target, entry, entries, &path) {
            record(stats, &entry.snapshot_path, e);
            continue;
        }
        match entry.node.kind {
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

fn create_one(target: &Path, entry: &Planned, all: &[Planned], path: &Path) -> std::io::Result<()> {
    let node = &entry.node;
    if let Some(j) = entry.link_to {
        remove_existing(path);
        return std::fs::hard_link(target.join(&all[j].rel), path);
    }
    match node.kind {
        NodeKind::Dir => match std::fs::create_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            other => other,
        },
        NodeKind::File => {
            remove_existing(path);
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            file.set_len(node.size)
        }
        NodeKind::Symlink => {
            remove_existing(path);
            let target = node
                .link_target
                .as_deref()
                .map(|t| t.to_vec())
                .unwrap_or_default();
            std::os::unix::fs::symlink(OsStr::from_bytes(&target), path)
        }
        NodeKind::Fifo => {
            remove_existing(path);
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(std::io::Error::from)
        }
        NodeKind::Socket => Ok(()),
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            remove_existing(path);
            let kind = if node.kind == NodeKind::CharDevice {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(
                path,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                node.rdev,
            )
            .map_err(std::io::Error::from)
        }
    }
}

/// Groups the blobs every restored file needs by pack.
fn plan_packs(
    repo: &Repository,
    entries: &[Planned],
    failed: &mut BTreeMap<usize, String>,
) -> Result<BTreeMap<PackId, Vec<BlobTarget>>> {
    let mut by_blob: HashMap<BlobId, BlobTarget> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.node.kind != NodeKind::File || entry.link_to.is_some() {
            continue;
        }
        let mut offset = 0u64;
        for chunk in &entry.node.content {
            match repo.lookup_blob(BlobKind::Data, &chunk.0)? {
                Some(loc) => by_blob
                    .entry(chunk.0)
                    .or_insert_with(|| BlobTarget {
                        id: chunk.0,
                        loc,
                        writes: Vec::new(),
                    })
                    .writes
                    .push((i, offset)),
                None => {
                    failed.insert(
                        i,
                        format!("data blob {} is missing from the index", chunk.0.short()),
                    );
                }
            }
            offset += u64::from(chunk.1);
        }
    }
    let mut by_pack: BTreeMap<PackId, Vec<BlobTarget>> = BTreeMap::new();
    for target in by_blob.into_values() {
        by_pack.entry(target.loc.pack).or_default().push(target);
    }
    for blobs in by_pack.values_mut() {
        blobs.sort_by_key(|b| b.loc.offset);
    }
    Ok(by_pack)
}

/// Reads each pack once and writes its blobs into the files. Returns the
/// entries whose contents failed, with the reason.
fn write_contents(
    repo: &Repository,
    target: &Path,
    entries: &[Planned],
    progress: &dyn Progress,
    stats: &mut RestoreStats,
) -> Result<BTreeMap<usize, String>> {
    let mut failed = BTreeMap::new();
    let by_pack = plan_packs(repo, entries, &mut failed)?;
    let failures = Mutex::new(Vec::<(usize, String)>::new());
    let written = std::sync::atomic::AtomicU64::new(0);
    let packs: Vec<_> = by_pack.into_iter().collect();
    packs.par_iter().for_each(|(pack, blobs)| {
        let outcome = restore_pack(repo, target, entries, pack, blobs, progress, &written);
        if let Err(list) = outcome {
            if let Ok(mut f) = failures.lock() {
                f.extend(list);
            }
        }
    });
    stats.bytes = written.into_inner();
    for (i, message) in failures.into_inner().unwrap_or_default() {
        failed.entry(i).or_insert(message);
    }
    for (i, message) in &failed {
        record(
            stats,
            &entries[*i].snapshot_path,
            format!("contents not restored: {message}"),
        );
    }
    Ok(failed)
}

fn restore_pack(
    repo: &Repository,
    target: &Path,
    entries: &[Planned],
    pack: &PackId,
    blobs: &[BlobTarget],
    progress: &dyn Progress,
    written: &std::sync::atomic::AtomicU64,
) -> std::result::Result<(), Vec<(usize, String)>> {
    let mut failures = Vec::new();
    for group in read_windows(blobs) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let start = first.loc.offset;
        let end = last.loc.offset + u64::from(last.loc.length);
        let bytes = match repo
            .backend()
            .read_range(&pack.object_name(), start, end - start)
        {
            Ok(bytes) => bytes,
            Err(e) => {
                // Only this window's files lose contents; the other
                // windows of the pack are still read.
                let message = format!("pack {}: {e}", pack.short());
                let writes = group.iter().flat_map(|b| b.writes.iter());
                failures.extend(writes.map(|w| (w.0, message.clone())));
                continue;
            }
        };
        for blob in group {
            let from = (blob.loc.offset - start) as usize;
            let Some(stored) = bytes.get(from..from + blob.loc.length as usize) else {
                let message = format!("pack {}: read returned too few bytes", pack.short());
                failures.extend(blob.writes.iter().map(|w| (w.0, message.clone())));
                continue;
            };
            if !write_blob(repo, target, entries, blob, stored, &mut failures) {
                continue;
            }
            let bytes = u64::from(blob.loc.plain_length) * blob.writes.len() as u64;
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

/// Pack bytes read at once. Bounds what each restore worker holds while
/// keeping reads large (a whole pack is 16 MiB by default).
const READ_WINDOW_BYTES: u64 = 4 << 20;

/// Splits a pack's blobs (sorted by offset) into runs that each span at
/// most `READ_WINDOW_BYTES`, or one blob when a blob alone is larger.
fn read_windows(blobs: &[BlobTarget]) -> Vec<&[BlobTarget]> {
    let mut windows = Vec::new();
    let mut first = 0;
    for (i, blob) in blobs.iter().enumerate() {
        let end = blob.loc.offset + u64::from(blob.loc.length);
        if i > first && end - blobs[first].loc.offset > READ_WINDOW_BYTES {
            windows.push(&blobs[first..i]);
            first = i;
        }
    }
    if first < blobs.len() {
        windows.push(&blobs[first..]);
    }
    windows
}

/// Opens one blob and writes it wherever the plan wants it. `false` when
/// the blob did not open (the failure is recorded for each file).
fn write_blob(
    repo: &Repository,
    target: &Path,
    entries: &[Planned],
    blob: &BlobTarget,
    stored: &[u8],
    failures: &mut Vec<(usize, String)>,
) -> bool {
    let plain = match repo.open_stored_blob(BlobKind::Data, &blob.id, &blob.loc, stored) {
        Ok(plain) => plain,
        Err(e) => {
            failures.extend(blob.writes.iter().map(|w| (w.0, e.to_string())));
            return false;
        }
    };
    let runs = data_runs(&plain);
    if runs.is_empty() {
        // All zeros: the file was created at full length, a hole already.
        return true;
    }
    for &(i, offset) in &blob.writes {
        let path = target.join(&entries[i].rel);
        let result = OpenOptions::new().write(true).open(&path).and_then(|f| {
            runs.iter()
                .try_for_each(|&(from, to)| f.write_all_at(&plain[from..to], offset + from as u64))
        });
        if let Err(e) = result {
            failures.push((i, format!("{}: {e}", path.display())));
        }
    }
    true
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
    fn read_windows_bound_each_read() {
        let blob = |offset: u64, length: u32| BlobTarget {
            id: BlobId([0; 32]),
            loc: BlobLocation {
                pack: PackId([0; 32]),
                offset,
                length,
                plain_length: length,
            },
            writes: Vec::new(),
        };
        let mib: u32 = 1 << 20;
        let at = |n: u32| u64::from(n * mib);
        let blobs = [
            blob(0, mib),
            blob(at(1), 2 * mib),
            blob(at(3), mib),
            blob(at(4), 9 * mib),
            blob(at(13), 10),
        ];
        let spans: Vec<usize> = read_windows(&blobs).iter().map(|w| w.len()).collect();
        assert_eq!(spans, [3, 1, 1]);
        assert!(read_windows(&[]).is_empty());
    }

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
