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
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::blob::{self, BlobKind};
use crate::error::Result;
use crate::id::{content_hash, content_hasher, BlobId, PackId, SnapshotId};
use crate::index::IndexedPack;
use crate::pack::{self, PackEntry};
use crate::repository::config::KeyFile;
use crate::repository::pack_windows::PackWindow;
use crate::repository::Repository;
use crate::tree::{NodeKind, Tree};

mod index_spool;
mod indexed_blobs;
pub mod repair;

use index_spool::{IndexSpool, Source};
use indexed_blobs::IndexedBlobs;

/// Which packs `read_data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataSubset {
    None,
    All,
    /// Slice `n` of `m` (1-based): packs whose id, its first eight bytes
    /// read as a big-endian number, is `n-1` modulo `m`. `m` runs with
    /// n = 1..m cover everything, and a pack stays in its slice however
    /// many packs come and go between the runs.
    Slice {
        n: u32,
        m: u32,
    },
    /// A random share of the packs, 0.0..=1.0.
    Fraction(f64),
}

impl DataSubset {
    /// Whether `read_data` reads pack `id`.
    fn chooses(&self, id: &PackId) -> bool {
        match *self {
            DataSubset::None => false,
            DataSubset::All => true,
            DataSubset::Slice { n, m } => {
                let mut first = [0; 8];
                first.copy_from_slice(&id.as_bytes()[..8]);
                // Parsing refuses n = 0 and m = 0; a caller of the library
                // that builds one anyway gets an empty slice, not a panic.
                let slice = u64::from_be_bytes(first).checked_rem(u64::from(m));
                slice.is_some() && slice == u64::from(n).checked_sub(1)
            }
            DataSubset::Fraction(f) => rand::random::<f64>() < f,
        }
    }
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

/// What checking and reading the packs found, beyond the report.
struct PackChecks {
    /// Blobs that could not be read or did not open, by pack; every blob
    /// of a pack with a problem that was not read.
    damaged: HashMap<PackId, Vec<(BlobKind, BlobId)>>,
    /// Packs known only from an obsolete marker, with the marker's name.
    retired: HashMap<PackId, String>,
    /// Packs with a problem in the report.
    troubled: HashSet<PackId>,
}

/// A pack met for the first time in the spool, with the size the listing
/// of `data/` gave it (if it is there) and whether to read its data.
struct PackToCheck {
    pack: IndexedPack,
    size: Option<u64>,
    read: bool,
}

/// Feeds `check_packs` the spool's packs, each the first time it is met,
/// and adds each frame's blobs to the indexed set as the frame is read, so
/// that filling the set overlaps with checking packs.
struct PackFeed<'a, F> {
    frames: F,
    current: std::vec::IntoIter<IndexedPack>,
    source: Option<&'a Source>,
    seen: HashSet<PackId>,
    /// Packs the listing of `data/` holds that the feed has not met.
    present: HashMap<PackId, u64>,
    retired: HashMap<PackId, String>,
    subset: DataSubset,
    indexed: IndexedBlobs,
}

impl<'a, F> Iterator for PackFeed<'a, F>
where
    F: Iterator<Item = Result<(&'a Source, Vec<IndexedPack>)>>,
{
    type Item = Result<PackToCheck>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(pack) = self.current.next() else {
                let (source, packs) = match self.frames.next()? {
                    Ok(frame) => frame,
                    Err(e) => return Some(Err(e)),
                };
                let blobs = packs.iter().flat_map(|p| p.blobs.iter());
                if let Err(e) = self.indexed.add(blobs.map(|e| (e.kind, e.id))) {
                    return Some(Err(e));
                }
                self.source = Some(source);
                self.current = packs.into_iter();
                continue;
            };
            if !self.seen.insert(pack.id) {
                continue;
            }
            if let Some(Source::Marker(name)) = self.source {
                self.retired.insert(pack.id, name.clone());
            }
            let size = self.present.remove(&pack.id);
            let read = self.subset.chooses(&pack.id);
            return Some(Ok(PackToCheck { pack, size, read }));
        }
    }
}

/// Checks every pack the spool names, once each (existence, size, header),
/// and reads those `subset` chooses. Packs stream from the spool to all
/// cores, so that only the packs in hand are in memory. Returns, besides,
/// the blobs of every pack the spool names.
fn check_packs(
    repo: &Repository,
    spool: &IndexSpool,
    subset: DataSubset,
    report: &mut Report,
) -> Result<(PackChecks, IndexedBlobs)> {
    let mut present: HashMap<PackId, u64> = HashMap::new();
    let mut unreferenced = Vec::new();
    for object in repo.backend().list("data/")? {
        match pack_id_of(&object.name) {
            Some(id) => drop(present.insert(id, object.size_bytes)),
            None => unreferenced.push(object.name),
        }
    }
    let mut feed = PackFeed {
        frames: spool.frames(),
        current: Vec::new().into_iter(),
        source: None,
        seen: HashSet::new(),
        present,
        retired: HashMap::new(),
        subset,
        indexed: IndexedBlobs::new(),
    };
    let tally = Mutex::new(Tally::default());
    (&mut feed)
        .par_bridge()
        .try_for_each_init(Vec::new, |scratch, item| -> Result<()> {
            let item = item?;
            let outcome = check_one_pack(repo, &item, scratch);
            let mut tally = tally
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            tally.add(&item, outcome);
            Ok(())
        })?;
    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let PackFeed {
        seen,
        present,
        retired,
        mut indexed,
        ..
    } = feed;
    indexed.finish()?;
    unreferenced.extend(present.into_keys().map(|id| id.object_name()));
    unreferenced.sort();
    report.unreferenced_packs = unreferenced;
    report.packs = seen.len() as u64;
    report.packs_read = tally.packs_read;
    report.blobs_checked = tally.blobs_checked;
    report.problems.extend(tally.problems);
    let checks = PackChecks {
        damaged: tally.damaged,
        retired,
        troubled: tally.troubled,
    };
    Ok((checks, indexed))
}

/// `data/<2 hex digits>/<64 hex digits>` names the pack with that id; any
/// other object under `data/` is no pack of the index.
fn pack_id_of(name: &str) -> Option<PackId> {
    let id: PackId = name.rsplit('/').next()?.parse().ok()?;
    (id.object_name() == name).then_some(id)
}

/// The sum of the packs' outcomes.
#[derive(Default)]
struct Tally {
    problems: Vec<Problem>,
    damaged: HashMap<PackId, Vec<(BlobKind, BlobId)>>,
    troubled: HashSet<PackId>,
    packs_read: u64,
    blobs_checked: u64,
}

impl Tally {
    /// Of a pack that was read, the blobs that did not open are damaged;
    /// of one with a problem that was not read, every blob is.
    fn add(&mut self, item: &PackToCheck, outcome: PackReadOutcome) {
        let id = item.pack.id;
        self.packs_read += u64::from(item.read);
        self.blobs_checked += outcome.checked;
        if !outcome.problems.is_empty() {
            self.troubled.insert(id);
            self.problems.extend(outcome.problems);
            if !item.read {
                let all = item.pack.blobs.iter().map(|e| (e.kind, e.id));
                self.damaged.insert(id, all.collect());
            }
        }
        if !outcome.bad.is_empty() {
            self.damaged.insert(id, outcome.bad);
        }
    }
}

/// A pack known only from an obsolete marker may be deleted by a prune
/// while verify runs. Once its marker is gone as well, that is the
/// protocol at work, not damage: the pack's problems are dropped and it
/// leaves the view (so snapshots that still need one of its blobs are
/// reported by the tree walk). So is such a pack that is gone while its
/// marker is not: prune deletes a settled marker's packs before the
/// marker, and one killed in between leaves exactly that (the next prune
/// deletes the marker). Whether a snapshot needed the pack, the tree walk
/// tells. Returns the packs dropped.
fn drop_settled_packs(
    repo: &Repository,
    checks: &mut PackChecks,
    report: &mut Report,
) -> Result<HashSet<PackId>> {
    let mut settled = HashSet::new();
    for (pack, marker) in &checks.retired {
        if checks.troubled.contains(pack)
            && (is_gone(repo, marker)? || is_gone(repo, &pack.object_name())?)
        {
            settled.insert(*pack);
        }
    }
    if settled.is_empty() {
        return Ok(settled);
    }
    let objects: HashSet<String> = settled.iter().map(|id| format!("pack {id}")).collect();
    report.problems.retain(|p| !objects.contains(&p.object));
    for id in &settled {
        checks.damaged.remove(id);
        checks.troubled.remove(id);
    }
    report.packs -= settled.len() as u64;
    Ok(settled)
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

/// Checks one pack's structure, and reads its data if chosen.
fn check_one_pack(repo: &Repository, item: &PackToCheck, scratch: &mut Vec<u8>) -> PackReadOutcome {
    let header = check_header(repo, &item.pack, item.size);
    let header_at = header.as_ref().ok().copied();
    let mut outcome = if item.read {
        read_one_pack(repo, &item.pack, header_at, scratch)
    } else {
        PackReadOutcome::default()
    };
    if let Err(problem) = header {
        outcome.problems.push(problem);
    }
    outcome
}

/// The offset of the pack's header, once it decoded and agreed with the
/// index.
fn check_header(
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

impl IndexedBlobs {
    /// The blobs of every pack the spool names but `settled` ones: when a
    /// prune deleted packs while verify ran, the set is made again without
    /// them (a blob may be in another pack too, so none can be taken out).
    fn without(spool: &IndexSpool, settled: &HashSet<PackId>) -> Result<IndexedBlobs> {
        let mut indexed = IndexedBlobs::new();
        for frame in spool.frames() {
            let (_, packs) = frame?;
            let kept = packs.iter().filter(|p| !settled.contains(&p.id));
            indexed.add(kept.flat_map(|p| p.blobs.iter().map(|e| (e.kind, e.id))))?;
        }
        indexed.finish()?;
        Ok(indexed)
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
        walk.tree(&snap.tree, Path::new("/"), None)?;
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
    fn bad(&mut self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        if self.damaged.contains(&(kind, *id)) {
            return Ok(true);
        }
        if !self.indexed.contains(kind, id)? {
            if self.reported_missing.insert((kind, *id)) {
                self.report.problem(
                    format!("{kind} blob {}", id.short()),
                    "referenced but in no pack of the index",
                );
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether any of a file's blobs is bad (the first one found is
    /// reported).
    fn any_bad(&mut self, content: &[crate::tree::ContentRef]) -> Result<bool> {
        for c in content {
            if self.bad(BlobKind::Data, &c.0)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Walks the tree `id` at `path`, which the caller may have `loaded`
    /// already. Returns whether anything below it is affected; an error
    /// only if the table of indexed blobs fails.
    fn tree(&mut self, id: &BlobId, path: &Path, loaded: Option<Result<Tree>>) -> Result<bool> {
        if self.trees_seen.get(id) == Some(&true) {
            return Ok(false);
        }
        let shown = path.display().to_string();
        if self.bad(BlobKind::Tree, id)? {
            self.affected.insert(shown);
            return Ok(true);
        }
        let tree = match loaded.unwrap_or_else(|| self.repo.load_tree(id)) {
            Ok(t) => t,
            Err(e) => {
                self.report
                    .problem(format!("tree {}", id.short()), format!("{e} (at {shown})"));
                self.affected.insert(shown);
                return Ok(true);
            }
        };
        self.report.trees += 1;
        let mut any = false;
        let mut subdirs = Vec::new();
        for node in &tree.nodes {
            let child: PathBuf = path.join(OsStr::from_bytes(&node.name));
            if self.any_bad(&node.content)? {
                self.affected
                    .insert(String::from_utf8_lossy(child.as_os_str().as_bytes()).into_owned());
                any = true;
            }
            if let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir) {
                subdirs.push((sub, child));
            }
        }
        for batch in subdirs.chunks(SUBTREES_AT_ONCE) {
            let mut loaded = self.load_subtrees(batch.iter().map(|(sub, _)| sub))?;
            for (sub, child) in batch {
                any |= self.tree(sub, child, loaded.remove(sub))?;
            }
        }
        self.trees_seen.insert(*id, !any);
        Ok(any)
    }

    /// Loads, on all cores, those of `ids` that the walk will enter (not
    /// seen clean yet, indexed and not damaged), each once: decrypting and
    /// decoding trees one at a time was most of a structure check's time.
    fn load_subtrees<'i>(
        &self,
        ids: impl Iterator<Item = &'i BlobId>,
    ) -> Result<HashMap<BlobId, Result<Tree>>> {
        let mut wanted = Vec::new();
        for id in ids.filter(|id| self.trees_seen.get(*id) != Some(&true)) {
            let key = (BlobKind::Tree, *id);
            if !self.damaged.contains(&key) && self.indexed.contains(key.0, &key.1)? {
                wanted.push(*id);
            }
        }
        // Empty directories, for one, all share a tree.
        wanted.sort_unstable();
        wanted.dedup();
        let repo = self.repo;
        Ok(wanted
            .par_iter()
            .map(|id| (*id, repo.load_tree(id)))
            .collect())
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
    let mut spool = IndexSpool::load(repo)?;
    report.problems.append(&mut spool.problems);
    let (mut checks, mut indexed) = check_packs(repo, &spool, subset, &mut report)?;
    let settled = drop_settled_packs(repo, &mut checks, &mut report)?;
    if !settled.is_empty() {
        indexed = IndexedBlobs::without(&spool, &settled)?;
    }
    drop(spool);
    let damaged: HashSet<_> = checks.damaged.into_values().flatten().collect();
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
    fn slices_share_the_packs_out_by_id() {
        let ids: Vec<PackId> = (0u32..300)
            .map(|i| PackId(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let m = 7;
        let slices: Vec<DataSubset> = (1..=m).map(|n| DataSubset::Slice { n, m }).collect();
        for id in &ids {
            let choosing = slices.iter().filter(|s| s.chooses(id)).count();
            assert_eq!(choosing, 1, "pack {id} is in exactly one slice");
        }
        for slice in &slices {
            let chosen = ids.iter().filter(|id| slice.chooses(id)).count();
            assert!((20..=70).contains(&chosen), "{slice:?} chose {chosen}");
        }
        assert!(ids.iter().all(|id| DataSubset::All.chooses(id)));
        assert!(!ids.iter().any(|id| DataSubset::None.chooses(id)));
        for bad in [
            DataSubset::Slice { n: 0, m: 0 },
            DataSubset::Slice { n: 0, m: 3 },
        ] {
            assert!(!ids.iter().any(|id| bad.chooses(id)), "{bad:?}");
        }
    }

    #[test]
    fn only_pack_object_names_name_packs() {
        let id = PackId([0xab; 32]);
        assert_eq!(pack_id_of(&id.object_name()), Some(id));
        let hex = id.to_hex();
        for name in [
            format!("data/cd/{hex}"),
            format!("data/{hex}"),
            format!("data/ab/{hex}.tmp"),
            "data/ab/notes".to_string(),
        ] {
            assert_eq!(pack_id_of(&name), None, "{name}");
        }
    }
}
