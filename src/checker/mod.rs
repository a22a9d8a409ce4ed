//! `verify`: proves a repository is intact, and says exactly what is not.
//!
//! The structure check reads no file contents: config and keys open; every
//! index entry points into an existing pack of the recorded size; pack
//! headers agree with the index; every snapshot's trees decode and every
//! blob they reference is indexed. `read_data` additionally downloads packs,
//! checks their hash, and decrypts and re-hashes every blob. Every problem
//! is collected (not only the first), and damaged blobs are traced back to
//! the snapshots and file paths that need them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::{content_hash, content_hasher, BlobId, PackId, SnapshotId};
use crate::index::IndexedPack;
use crate::pack::{self, PackEntry};
use crate::repository::config::KeyFile;
use crate::repository::pack_windows::PackWindow;
use crate::repository::{retry_vanished, Repository};
use crate::tree::{NodeKind, Tree};

pub mod repair;

/// Which packs `read_data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataSubset {
    None,
    All,
    /// Slice `n` of `m` (1-based): packs whose position in id order is
    /// `n-1` modulo `m`. `m` runs with n = 1..m cover everything.
    Slice {
        n: u32,
        m: u32,
    },
    /// A random share of the packs, 0.0..=1.0.
    Fraction(f64),
}

impl std::str::FromStr for DataSubset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid percentage {s:?}"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("percentage {s:?} out of range"));
            }
            return Ok(DataSubset::Fraction(v / 100.0));
        }
        let (n, m) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid subset {s:?}: use N/M or P%"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("invalid subset {s:?}"))?;
        let m: u32 = m
            .trim()
            .parse()
            .map_err(|_| format!("invalid subset {s:?}"))?;
        if m == 0 || n == 0 || n > m {
            return Err(format!("invalid subset {s:?}: need 1 <= N <= M"));
        }
        Ok(DataSubset::Slice { n, m })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The object at fault ("pack 3f2a91c0", "index/…", "snapshot 1a2b3c4d").
    pub object: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Affected {
    pub snapshot: String,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub blobs_checked: u64,
    pub problems: Vec<Problem>,
    /// Packs present but named by no index (a run in progress, or a crash).
    pub unreferenced_packs: Vec<String>,
    pub affected: Vec<Affected>,
    /// Blobs found damaged or missing (for `repair snapshots`).
    #[serde(skip)]
    pub damaged_blobs: Vec<(BlobKind, BlobId)>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, object: impl Into<String>, message: impl ToString) {
        self.problems.push(Problem {
            object: object.into(),
            message: message.to_string(),
        });
    }
}

/// The packs verify checks, as the index files and markers listed them.
#[derive(Default)]
struct IndexView {
    /// The live index's packs, then those only obsolete markers name
    /// (readers still use them until prune deletes them).
    packs: Vec<IndexedPack>,
    /// Packs known only from an obsolete marker, with the marker's name.
    retired: HashMap<PackId, String>,
    /// Index files and markers that could not be read.
    problems: Vec<Problem>,
}

impl IndexView {
    /// `Some` if `loaded` worked; a problem if the object is unreadable;
    /// an error if it vanished, so that the caller lists everything again.
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
}

/// Collects the live index and the obsolete markers, reporting unreadable
/// ones. If a listed file vanished before it was read (a prune replaced
/// it), everything is listed again, so that the view is one a prune left
/// whole, never half of two.
fn load_index(repo: &Repository, report: &mut Report) -> Result<IndexView> {
    let mut view = retry_vanished(|| load_index_once(repo))?;
    report.problems.append(&mut view.problems);
    Ok(view)
}

fn load_index_once(repo: &Repository) -> Result<IndexView> {
    let mut view = IndexView::default();
    let mut files = Vec::new();
    let mut superseded = HashSet::new();
    for id in repo.list_index_files()? {
        if let Some(f) = view.take(id.object_name(), repo.load_index_file(&id))? {
            superseded.extend(f.supersedes.iter().copied());
            files.push((id, f));
        }
    }
    let mut seen = HashSet::new();
    for (id, f) in files {
        if !superseded.contains(&id) {
            let fresh = f.packs.into_iter().filter(|p| seen.insert(p.id));
            view.packs.extend(fresh);
        }
    }
    for name in repo.obsolete_names()? {
        if let Some(marker) = view.take(name.clone(), repo.load_obsolete(&name))? {
            for pack in marker.packs {
                if seen.insert(pack.id) {
                    view.retired.insert(pack.id, name.clone());
                    view.packs.push(pack);
                }
            }
        }
    }
    Ok(view)
}

/// A pack known only from an obsolete marker may be deleted by a prune
/// while verify runs. Once its marker is gone as well, that is the
/// protocol at work, not damage: the pack's problems are dropped and it
/// leaves the view (so snapshots that still need one of its blobs are
/// reported by the tree walk). So is such a pack that is gone while its
/// marker is not: prune deletes a settled marker's packs before the
/// marker, and one killed in between leaves exactly that (the next prune
/// deletes the marker). Whether a snapshot needed the pack, the tree walk
/// tells.
fn drop_settled_packs(
    repo: &Repository,
    view: &mut IndexView,
    damaged: &mut HashSet<(BlobKind, BlobId)>,
    report: &mut Report,
) -> Result<()> {
    let troubled: HashSet<&str> = report.problems.iter().map(|p| p.object.as_str()).collect();
    let mut settled = HashSet::new();
    for (pack, marker) in &view.retired {
        let object = format!("pack {pack}");
        if !troubled.contains(object.as_str()) {
            continue;
        }
        if is_gone(repo, marker)? || is_gone(repo, &pack.object_name())? {
            settled.insert(object);
        }
    }
    if settled.is_empty() {
        return Ok(());
    }
    report.problems.retain(|p| !settled.contains(&p.object));
    view.packs.retain(|p| {
        let keep = !settled.contains(&format!("pack {}", p.id));
        if !keep {
            for e in &p.blobs {
                damaged.remove(&(e.kind, e.id));
            }
        }
        keep
    });
    report.packs = view.packs.len() as u64;
    Ok(())
}

fn is_gone(repo: &Repository, name: &str) -> Result<bool> {
    match repo.backend().stat(name) {
        Err(e) if e.is_not_found() => Ok(true),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(false),
    }
}

fn check_keys(repo: &Repository, report: &mut Report) -> Result<()> {
    for object in repo.backend().list("keys/")? {
        match repo.backend().read(&object.name) {
            Ok(bytes) => {
                if let Err(e) = KeyFile::decode(&bytes) {
                    report.problem(&object.name, e);
                } else if content_hash(&bytes).to_vec()
                    != hex::decode(object.name.trim_start_matches("keys/")).unwrap_or_default()
                {
                    report.problem(&object.name, "contents do not match the name");
                }
            }
            Err(e) => report.problem(&object.name, e),
        }
    }
    Ok(())
}

/// Where each pack whose header decoded and agreed with the index has that
/// header.
type CheckedHeaders = HashMap<PackId, u64>;

/// Compares each pack's existence, size and header with the index.
fn check_packs(
    repo: &Repository,
    packs: &[IndexedPack],
    report: &mut Report,
) -> Result<CheckedHeaders> {
    let present: HashMap<String, u64> = repo
        .backend()
        .list("data/")?
        .into_iter()
        .map(|o| (o.name, o.size_bytes))
        .collect();
    let indexed: HashSet<String> = packs.iter().map(|p| p.id.object_name()).collect();
    let mut unreferenced: Vec<String> = present
        .keys()
        .filter(|n| !indexed.contains(*n))
        .cloned()
        .collect();
    unreferenced.sort();
    report.unreferenced_packs = unreferenced;
    let results: Vec<std::result::Result<u64, Problem>> = packs
        .par_iter()
        .map(|p| check_one_pack(repo, p, present.get(&p.id.object_name()).copied()))
        .collect();
    let mut headers = CheckedHeaders::new();
    for (p, result) in packs.iter().zip(results) {
        match result {
            Ok(header_offset) => drop(headers.insert(p.id, header_offset)),
            Err(problem) => report.problems.push(problem),
        }
    }
    report.packs = packs.len() as u64;
    Ok(headers)
}

/// The offset of the pack's header, once it decoded and agreed with the
/// index.
fn check_one_pack(
    repo: &Repository,
    p: &IndexedPack,
    size: Option<u64>,
) -> std::result::Result<u64, Problem> {
    let object = format!("pack {}", p.id);
    let problem = |message: String| Problem {
        object: object.clone(),
        message,
    };
    let Some(size) = size else {
        return Err(problem("missing from the repository".into()));
    };
    if size != p.size_bytes {
        return Err(problem(format!(
            "is {size} bytes, the index says {}",
            p.size_bytes
        )));
    }
    let name = p.id.object_name();
    let header = repo
        .backend()
        .read_range(
            &name,
            size.saturating_sub(pack::TRAILER_BYTES),
            size.min(pack::TRAILER_BYTES),
        )
        .map_err(|e| e.to_string())
        .and_then(|trailer| pack::header_range(&trailer, size).map_err(|e| e.to_string()))
        .and_then(|(offset, len)| {
            let sealed = repo
                .backend()
                .read_range(&name, offset, len)
                .map_err(|e| e.to_string())?;
            let entries =
                pack::decode_header(repo.key(), &sealed, offset).map_err(|e| e.to_string())?;
            Ok((offset, entries))
        });
    let (offset, entries) = header.map_err(|e| problem(format!("header: {e}")))?;
    let mut a: Vec<_> = entries.iter().map(|e| (e.id, e.offset, e.length)).collect();
    let mut b: Vec<_> = p.blobs.iter().map(|e| (e.id, e.offset, e.length)).collect();
    a.sort();
    b.sort();
    if a != b {
        return Err(problem("header does not agree with the index".into()));
    }
    Ok(offset)
}

/// Reads packs and checks every blob. Returns the damaged blobs.
fn read_data(
    repo: &Repository,
    packs: &[IndexedPack],
    headers: &CheckedHeaders,
    subset: DataSubset,
    report: &mut Report,
) -> HashSet<(BlobKind, BlobId)> {
    let mut sorted: Vec<&IndexedPack> = packs.iter().collect();
    sorted.sort_by_key(|p| p.id);
    let chosen: Vec<&IndexedPack> = match subset {
        DataSubset::None => Vec::new(),
        DataSubset::All => sorted,
        DataSubset::Slice { n, m } => sorted
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 % u64::from(m) == u64::from(n - 1))
            .map(|(_, p)| p)
            .collect(),
        DataSubset::Fraction(f) => sorted
            .into_iter()
            .filter(|_| rand::random::<f64>() < f)
            .collect(),
    };
    let results: Vec<PackReadOutcome> = chosen
        .par_iter()
        .map_init(Vec::new, |scratch, p| {
            read_one_pack(repo, p, headers.get(&p.id).copied(), scratch)
        })
        .collect();
    report.packs_read = chosen.len() as u64;
    let mut damaged = HashSet::new();
    for outcome in results {
        report.problems.extend(outcome.problems);
        damaged.extend(outcome.bad);
        report.blobs_checked += outcome.checked;
    }
    damaged
}

/// What reading one pack found.
#[derive(Default)]
struct PackReadOutcome {
    problems: Vec<Problem>,
    /// Blobs that could not be read or did not open.
    bad: Vec<(BlobKind, BlobId)>,
    /// Blobs opened, well or not.
    checked: u64,
}

impl PackReadOutcome {
    fn problem(&mut self, p: &IndexedPack, message: String) {
        self.problems.push(Problem {
            object: format!("pack {}", p.id),
            message,
        });
    }
}

/// Reads `p` a window at a time (`pack::read_windows`), so what a reader
/// holds stays bounded however large packs are, and opens every blob.
/// `header_at` is where the structure check found the pack's header whole;
/// `scratch` is the decompression buffer, reused from pack to pack.
fn read_one_pack(
    repo: &Repository,
    p: &IndexedPack,
    header_at: Option<u64>,
    scratch: &mut Vec<u8>,
) -> PackReadOutcome {
    let mut outcome = PackReadOutcome::default();
    let (mut blobs, outside): (Vec<&PackEntry>, Vec<&PackEntry>) = p
        .blobs
        .iter()
        .partition(|e| e.offset.saturating_add(u64::from(e.length)) <= p.size_bytes);
    for e in outside {
        outcome.problem(
            p,
            format!("{} blob {}: lies outside the pack", e.kind, e.id.short()),
        );
        outcome.bad.push((e.kind, e.id));
    }
    blobs.sort_by_key(|e| (e.offset, e.length));
    let span = |e: &&PackEntry| (e.offset, e.length);
    for (window, read) in repo.read_pack_windows(&p.id, &blobs, span) {
        match read {
            Ok(mut read) => open_window(repo, p, window, &mut read, scratch, &mut outcome),
            // A pack that cannot be read says so once per window; the
            // report drops the repeats.
            Err(e) => {
                outcome.problem(p, e.to_string());
                outcome.bad.extend(window.iter().map(|e| (e.kind, e.id)));
            }
        }
    }
    if !authenticated_throughout(&blobs, header_at) {
        match content_matches(repo, p) {
            Ok(true) => {}
            Ok(false) => outcome.problem(p, "contents do not match the pack id (damaged)".into()),
            Err(e) => outcome.problem(p, e.to_string()),
        }
    }
    outcome
}

/// Opens each blob of `window`, which lie in the bytes `read` brought.
fn open_window(
    repo: &Repository,
    p: &IndexedPack,
    window: &[&PackEntry],
    read: &mut PackWindow,
    scratch: &mut Vec<u8>,
    outcome: &mut PackReadOutcome,
) {
    // Decrypting in place spares a copy of every blob.
    let in_place = !read.overlapping;
    let key = repo.key();
    for e in window {
        outcome.checked += 1;
        let plain_len = e.plain_length as usize;
        let result = match read.stored((e.offset, e.length)) {
            Some(stored) if in_place => {
                blob::open_in_place(key, e.kind, &e.id, stored, plain_len, scratch).map(drop)
            }
            Some(stored) => blob::open(key, e.kind, &e.id, stored, plain_len).map(drop),
            None => {
                outcome.problem(
                    p,
                    format!("{} blob {}: read too short", e.kind, e.id.short()),
                );
                outcome.bad.push((e.kind, e.id));
                continue;
            }
        };
        if let Err(message) = result {
            outcome.problem(p, format!("{} blob {}: {message}", e.kind, e.id.short()));
            outcome.bad.push((e.kind, e.id));
        }
    }
}

/// Whether opening the blobs one by one has authenticated every byte of
/// the pack: the structure check authenticated its header (and so the
/// trailer that points at it), and the blobs lie back to back from the
/// start of the pack up to that header. Otherwise hashing the whole pack
/// for its id is the only check of the bytes in between.
fn authenticated_throughout(sorted: &[&PackEntry], header_at: Option<u64>) -> bool {
    let Some(header_at) = header_at else {
        return false;
    };
    let mut end = 0;
    for e in sorted {
        if e.offset != end {
            return false;
        }
        end = e.offset + u64::from(e.length);
    }
    end == header_at
}

/// Whether the pack's bytes hash to its id, read a window at a time.
fn content_matches(repo: &Repository, p: &IndexedPack) -> Result<bool> {
    let name = p.id.object_name();
    let mut hasher = content_hasher();
    let mut at = 0;
    while at < p.size_bytes {
        let len = pack::READ_WINDOW_BYTES.min(p.size_bytes - at);
        hasher.update(&repo.backend().read_range(&name, at, len)?);
        at += len;
    }
    Ok(PackId(*hasher.finalize().as_bytes()) == p.id)
}

/// The blobs the index names, sorted for binary search: 33 bytes a blob. A
/// hash set of them peaked at about 180 bytes a blob while it grew, so a
/// verify of a repository of 10 million blobs needed gigabytes for it.
struct IndexedBlobs(Vec<(BlobKind, BlobId)>);

impl IndexedBlobs {
    fn of(packs: &[IndexedPack]) -> IndexedBlobs {
        let mut blobs = Vec::with_capacity(packs.iter().map(|p| p.blobs.len()).sum());
        blobs.extend(
            packs
                .iter()
                .flat_map(|p| p.blobs.iter().map(|e| (e.kind, e.id))),
        );
        blobs.sort_unstable();
        blobs.dedup();
        IndexedBlobs(blobs)
    }

    fn contains(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.0.binary_search(&(kind, *id)).is_ok()
    }
}

/// Walks every snapshot; reports undecodable trees and unindexed blobs, and
/// returns, per snapshot, the paths whose blobs are missing or damaged.
fn check_snapshots(
    repo: &Repository,
    ids: Vec<SnapshotId>,
    indexed: &IndexedBlobs,
    damaged: &HashSet<(BlobKind, BlobId)>,
    report: &mut Report,
) -> Result<()> {
    report.snapshots = ids.len() as u64;
    let mut reported_missing: BTreeSet<(BlobKind, BlobId)> = BTreeSet::new();
    let mut trees_seen: HashMap<BlobId, bool> = HashMap::new();
    for id in ids {
        let snap = match repo.load_snapshot(&id) {
            Ok(s) => s,
            Err(e) => {
                report.problem(format!("snapshot {}", id.short()), e);
                continue;
            }
        };
        let mut walk = Walk {
            repo,
            indexed,
            damaged,
            report,
            reported_missing: &mut reported_missing,
            trees_seen: &mut trees_seen,
            affected: BTreeSet::new(),
        };
        walk.tree(&snap.tree, Path::new("/"), None);
        let affected = std::mem::take(&mut walk.affected);
        if !affected.is_empty() {
            report.affected.push(Affected {
                snapshot: id.to_hex(),
                paths: affected.into_iter().collect(),
            });
        }
    }
    Ok(())
}

struct Walk<'a> {
    repo: &'a Repository,
    indexed: &'a IndexedBlobs,
    damaged: &'a HashSet<(BlobKind, BlobId)>,
    report: &'a mut Report,
    reported_missing: &'a mut BTreeSet<(BlobKind, BlobId)>,
    /// Tree id → whether anything below it is affected (trees repeat across
    /// snapshots; only clean ones are skipped).
    trees_seen: &'a mut HashMap<BlobId, bool>,
    affected: BTreeSet<String>,
}

impl Walk<'_> {
    fn bad(&mut self, kind: BlobKind, id: &BlobId) -> bool {
        if self.damaged.contains(&(kind, *id)) {
            return true;
        }
        if !self.indexed.contains(kind, id) {
            if self.reported_missing.insert((kind, *id)) {
                self.report.problem(
                    format!("{kind} blob {}", id.short()),
                    "referenced but in no pack of the index",
                );
            }
            return true;
        }
        false
    }

    /// Walks the tree `id` at `path`, which the caller may have `loaded`
    /// already. Returns whether anything below it is affected.
    fn tree(&mut self, id: &BlobId, path: &Path, loaded: Option<Result<Tree>>) -> bool {
        if self.trees_seen.get(id) == Some(&true) {
            return false;
        }
        let shown = path.display().to_string();
        if self.bad(BlobKind::Tree, id) {
            self.affected.insert(shown);
            return true;
        }
        let tree = match loaded.unwrap_or_else(|| self.repo.load_tree(id)) {
            Ok(t) => t,
            Err(e) => {
                self.report
                    .problem(format!("tree {}", id.short()), format!("{e} (at {shown})"));
                self.affected.insert(shown);
                return true;
            }
        };
        self.report.trees += 1;
        let mut any = false;
        let mut subdirs = Vec::new();
        for node in &tree.nodes {
            let child: PathBuf = path.join(OsStr::from_bytes(&node.name));
            if node.content.iter().any(|c| self.bad(BlobKind::Data, &c.0)) {
                self.affected
                    .insert(String::from_utf8_lossy(child.as_os_str().as_bytes()).into_owned());
                any = true;
            }
            if let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir) {
                subdirs.push((sub, child));
            }
        }
        for batch in subdirs.chunks(SUBTREES_AT_ONCE) {
            let mut loaded = self.load_subtrees(batch.iter().map(|(sub, _)| sub));
            for (sub, child) in batch {
                any |= self.tree(sub, child, loaded.remove(sub));
            }
        }
        self.trees_seen.insert(*id, !any);
        any
    }

    /// Loads, on all cores, those of `ids` that the walk will enter (not
    /// seen clean yet, indexed and not damaged), each once: decrypting and
    /// decoding trees one at a time was most of a structure check's time.
    fn load_subtrees<'i>(
        &self,
        ids: impl Iterator<Item = &'i BlobId>,
    ) -> HashMap<BlobId, Result<Tree>> {
        let mut wanted: Vec<BlobId> = ids
            .filter(|id| self.trees_seen.get(*id) != Some(&true))
            .filter(|id| {
                let key = (BlobKind::Tree, **id);
                self.indexed.contains(key.0, &key.1) && !self.damaged.contains(&key)
            })
            .copied()
            .collect();
        // Empty directories, for one, all share a tree.
        wanted.sort_unstable();
        wanted.dedup();
        let repo = self.repo;
        wanted
            .par_iter()
            .map(|id| (*id, repo.load_tree(id)))
            .collect()
    }
}

/// Subdirectories whose trees the structure check loads at once: enough to
/// keep the cores busy, few enough that the trees held along the path being
/// walked stay few.
const SUBTREES_AT_ONCE: usize = 32;

/// Runs the checks. Repository-level failures (the backend is unreachable)
/// are errors; damage is reported in the `Report`.
pub fn verify(repo: &Repository, subset: DataSubset) -> Result<Report> {
    let mut report = Report::default();
    check_keys(repo, &mut report)?;
    // Snapshots first: each one's index files were written before it, so
    // the index read next covers every snapshot listed.
    let snapshots = repo.list_snapshot_ids()?;
    let mut view = load_index(repo, &mut report)?;
    let headers = check_packs(repo, &view.packs, &mut report)?;
    let mut damaged = read_data(repo, &view.packs, &headers, subset, &mut report);
    drop_settled_packs(repo, &mut view, &mut damaged, &mut report)?;
    let indexed = IndexedBlobs::of(&view.packs);
    // Blobs of packs that are missing or damaged count as damaged too.
    let broken_packs: HashSet<String> = report.problems.iter().map(|p| p.object.clone()).collect();
    for p in &view.packs {
        if broken_packs.contains(&format!("pack {}", p.id)) && subset == DataSubset::None {
            damaged.extend(p.blobs.iter().map(|e| (e.kind, e.id)));
        }
    }
    check_snapshots(repo, snapshots, &indexed, &damaged, &mut report)?;
    report.damaged_blobs = damaged.into_iter().collect();
    report.problems.sort();
    report.problems.dedup();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::PackEntry;

    fn entries(spans: &[(u64, u32)]) -> Vec<PackEntry> {
        let mut entries: Vec<PackEntry> = spans
            .iter()
            .enumerate()
            .map(|(i, &(offset, length))| PackEntry {
                kind: BlobKind::Data,
                id: BlobId([i as u8; 32]),
                offset,
                length,
                plain_length: length,
            })
            .collect();
        entries.sort_by_key(|e| (e.offset, e.length));
        entries
    }

    /// Only blobs back to back from the start up to a checked header spare
    /// hashing the whole pack.
    #[test]
    fn blobs_authenticate_a_pack_only_when_they_fill_it_up_to_its_header() {
        let whole = |spans: &[(u64, u32)], header_at| {
            let entries = entries(spans);
            authenticated_throughout(&entries.iter().collect::<Vec<_>>(), header_at)
        };
        assert!(whole(&[(100, 50), (0, 100)], Some(150)));
        assert!(!whole(&[(100, 50), (0, 100)], None), "header not checked");
        assert!(!whole(&[(100, 50), (0, 90)], Some(150)), "a gap");
        assert!(
            !whole(&[(100, 50), (0, 100)], Some(160)),
            "bytes before the header"
        );
        assert!(
            !whole(&[(10, 90)], Some(100)),
            "bytes before the first blob"
        );
        assert!(!whole(&[(0, 100), (50, 100)], Some(150)), "overlap");
    }

    #[test]
    fn indexed_blobs_are_found_by_kind_and_id() {
        let mut tree = entries(&[(0, 10)]);
        tree[0].kind = BlobKind::Tree;
        let packs = [
            IndexedPack {
                id: PackId([1; 32]),
                size_bytes: 100,
                blobs: entries(&[(0, 10), (10, 10), (20, 10)]),
            },
            IndexedPack {
                id: PackId([2; 32]),
                size_bytes: 100,
                blobs: [entries(&[(0, 10)]), tree].concat(),
            },
        ];
        let indexed = IndexedBlobs::of(&packs);
        assert_eq!(indexed.0.len(), 4, "the second copy of blob 0 counts once");
        for i in 0..3 {
            assert!(indexed.contains(BlobKind::Data, &BlobId([i; 32])));
        }
        assert!(indexed.contains(BlobKind::Tree, &BlobId([0; 32])));
        assert!(!indexed.contains(BlobKind::Tree, &BlobId([1; 32])));
        assert!(!indexed.contains(BlobKind::Data, &BlobId([3; 32])));
    }
}
