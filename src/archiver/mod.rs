//! The snapshot pipeline: walk the selected paths, store changed files'
//! chunks through a `BlobSaver`, store trees bottom-up, and write the
//! snapshot last.
//!
//! Three kinds of thread share the work. This one walks, compares with the
//! parent snapshot and reads small files whole; the file chunker
//! (`file_chunker`) reads and cuts larger files; the saver's workers hash,
//! dedup, compress and encrypt every chunk. A directory whose files are
//! still being cut or hashed is stored later (`Unfinished`), so the walk
//! goes on meanwhile. Two helpers work ahead of the walk for the kernel's
//! caches: the `prefetch` walk lists directories, and `readahead` opens the
//! files about to be read and asks for their bytes; a third
//! (`tree_prefetch`) loads the parent snapshot's trees.
//!
//! Files whose size, mtime, ctime and inode match the parent snapshot's entry
//! are not opened: their blob list is reused. A file that changed is read
//! expecting the parent's chunks (`parent_chunks`). A directory whose tree comes
//! out as the parent snapshot's keeps that tree's blob. Entries that vanish
//! or cannot be read are reported through `Progress` and skipped; the
//! snapshot is still written and `ArchiveOutcome::errors` tells the caller
//! (exit code 3).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};

use crate::blob::BlobKind;
use crate::chunker::StreamChunker;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::progress::Progress;
use crate::repository::saver::{PendingIds, SaverOptions};
use crate::repository::{BlobSaver, Repository};
use crate::snapshot::{Snapshot, Summary};
use crate::tree::{ContentRef, Node, NodeKind, Tree};
use crate::walker::filter::Decision;
use crate::walker::{self, IdNames, Selection};

pub mod cut_scout;
mod file_chunker;
mod parent_check;
mod parent_chunks;
mod prefetch;
mod readahead;
mod tree_prefetch;
use file_chunker::{FileChunker, PendingFile};
use parent_check::{Distrusted, ParentCheck};
pub use prefetch::{warm_up, Prefetch};
use readahead::{Ahead, ReadAhead};
use tree_prefetch::TreePrefetch;

/// What to back up and how. `Default` gives no paths, no filter, automatic
/// parent choice and default compression, for callers to fill in.
#[derive(Default)]
pub struct SnapshotOptions {
    pub paths: Vec<PathBuf>,
    pub selection: Selection,
    /// Rule texts, recorded in the snapshot for reference.
    pub excludes: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub tags: Vec<String>,
    pub time: Option<DateTime<FixedOffset>>,
    /// `Some(None)`: no parent; `None`: pick the latest matching snapshot.
    pub parent: Option<Option<SnapshotId>>,
    pub saver: SaverOptions,
    /// Threads that help cut large files (`cut_scout`); `None`: as many as
    /// pay on this machine's cores (none on two).
    pub cut_scouts: Option<usize>,
    /// The walk of `paths` started ahead (`warm_up`), before the
    /// repository was opened; `None`: the snapshot starts it.
    pub prefetch: Option<Prefetch>,
}

/// A file or directory that could not be backed up.
#[derive(Debug, Clone)]
pub struct EntryError {
    pub path: PathBuf,
    pub message: String,
}

pub struct ArchiveOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub errors: Vec<EntryError>,
}

/// A node of the virtual tree above the source paths (`/`, `/home`, ...).
#[derive(Default)]
struct PathTrie {
    children: BTreeMap<Vec<u8>, PathTrie>,
    /// This node is one of the source paths: archive it whole.
    is_source: bool,
}

impl PathTrie {
    fn insert(&mut self, path: &Path) {
        let mut node = self;
        for part in path.components().skip(1) {
            node = node
                .children
                .entry(part.as_os_str().as_bytes().to_vec())
                .or_default();
        }
        node.is_source = true;
    }
}

/// An archived entry, perhaps not finished yet (see `Unfinished`).
struct Entry {
    node: Node,
    unfinished: Option<Unfinished>,
}

/// What a node still waits for. A read file waits for its chunks to be cut
/// and hashed; a directory waits for such files in it, so the archiver
/// walks on while the file chunker works. Only directories with a file
/// still being read wait, and the chunker's and saver's queues bound those
/// files.
enum Unfinished {
    File(ReadFile),
    Dir(Box<UnfinishedDir>),
}

/// A file whose content is being read.
struct ReadFile {
    path: PathBuf,
    /// Its size when listed, counted in the summary already.
    listed_bytes: u64,
    /// The parent snapshot had a file by this name.
    changed: bool,
    pending: Arc<PendingFile>,
}

/// A directory whose tree is not stored yet.
struct UnfinishedDir {
    tree: PendingTree,
    /// The directory's tree id in the parent snapshot.
    old_id: Option<BlobId>,
    /// Left out when nothing below it was selected (`Decision::Scan`).
    drop_if_empty: bool,
}

/// A directory's entries and the parent snapshot's tree of it (to count
/// deletions, and keep the old tree if nothing changed, once the entries
/// are final).
struct PendingTree {
    builder: TreeBuilder,
    old: Option<OldTree>,
}

/// A directory's tree in the parent snapshot.
struct OldTree {
    id: BlobId,
    tree: Tree,
    /// Its files whose chunks may not be taken on trust (`parent_check`).
    distrusted: Distrusted,
}

impl OldTree {
    /// `old`, this tree's entry of a name, if it is a file whose chunks
    /// may be taken from it.
    fn trusted_file<'a>(&self, old: Option<&'a Node>) -> Option<&'a Node> {
        let trusted = |node: &Node| {
            node.kind == NodeKind::File
                && (self.distrusted.is_empty() || !self.distrusted.contains(node.name.as_slice()))
        };
        old.filter(|node| trusted(node))
    }
}

/// A directory's tree while its entries are archived.
#[derive(Default)]
struct TreeBuilder {
    tree: Tree,
    /// Node indexes of files still being read, and those files. Kept apart
    /// from `dirs`: the sweep after each waiting subdirectory looks at the
    /// few directories only, not at every file of a large directory.
    files: Vec<(usize, ReadFile)>,
    /// Node indexes of subdirectories still waiting, and those directories.
    dirs: Vec<(usize, Box<UnfinishedDir>)>,
    /// Indexes of nodes to leave out (removed last: the indexes above
    /// must stay valid).
    dropped: Vec<usize>,
}

impl TreeBuilder {
    fn push(&mut self, entry: Entry) {
        let index = self.tree.nodes.len();
        match entry.unfinished {
            Some(Unfinished::File(read)) => self.files.push((index, read)),
            Some(Unfinished::Dir(dir)) => self.dirs.push((index, dir)),
            None => {}
        }
        self.tree.nodes.push(entry.node);
    }

    /// Whether finishing would not wait.
    fn is_ready(&self) -> bool {
        self.files.iter().all(|(_, read)| read.pending.is_ready())
            && self.dirs.iter().all(|(_, dir)| dir.tree.builder.is_ready())
    }
}

/// A directory archived now, or one that waits for files being read.
enum DirOutcome {
    /// The tree id and how many entries were selected.
    Stored(BlobId, usize),
    Unfinished(PendingTree),
}

/// What became of a regular file.
enum FileOutcome {
    /// Same as in the parent snapshot: its content was reused.
    Unchanged,
    Read(ReadFile),
    /// Could not be opened (reported).
    Skipped,
}

struct Archiver<'a> {
    repo: &'a Repository,
    saver: &'a BlobSaver,
    file_chunker: FileChunker,
    selection: &'a Selection,
    progress: &'a dyn Progress,
    names: IdNames,
    summary: Summary,
    errors: Vec<EntryError>,
    root_device: u64,
    readahead: ReadAhead,
    prefetch: &'a Prefetch,
    /// Loads the parent snapshot's trees ahead (none without a parent).
    old_trees: Option<TreePrefetch>,
    /// Set when the parent's chunks must be found in the index before they
    /// are referred to (`Repository::parent_check_due`).
    parent_check: Option<Arc<ParentCheck>>,
}

/// Picks the snapshot to compare against: the latest one with the same
/// host and the same set of paths.
fn find_parent(repo: &Repository, host: &str, paths: &[String]) -> Result<Option<SnapshotId>> {
    let mut wanted = paths.to_vec();
    wanted.sort();
    let found = repo
        .list_snapshots_lossy()?
        .0
        .into_iter()
        .rev()
        .find(|(_, s)| {
            let mut p = s.paths.clone();
            p.sort();
            s.hostname == host && p == wanted
        })
        .map(|(id, _)| id);
    Ok(found)
}

/// Runs a snapshot of `options.paths` into `repo`.
pub fn snapshot(
    repo: &Repository,
    options: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<ArchiveOutcome> {
    let _run = repo.start_run()?;
    // Re-read the index now that the run is announced: a prune that marked
    // packs obsolete before this point is seen, one after it waits for us.
    repo.sync_index()?;
    repo.adopt_orphan_packs()?;
    let started = Instant::now();
    let start_time = chrono::Local::now().fixed_offset();
    let mut sources = Vec::new();
    for path in &options.paths {
        let abs = walker::absolute_source(path).map_err(|e| Error::io(path, e))?;
        abs.symlink_metadata().map_err(|e| Error::io(&abs, e))?;
        sources.push(abs);
    }
    let paths: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    let parent_id = match &options.parent {
        Some(choice) => *choice,
        None => find_parent(repo, &options.hostname, &paths)?,
    };
    let parent_check = match &parent_id {
        Some(id) if repo.parent_check_due(id)? => Some(Arc::new(ParentCheck::default())),
        _ => None,
    };
    let parent_tree = match &parent_id {
        Some(id) => {
            let root = repo.load_snapshot(id)?.tree;
            load_old_tree(repo, root, parent_check.is_some())?
        }
        None => None,
    };
    let mut trie = PathTrie::default();
    for source in &sources {
        trie.insert(source);
    }
    let root_device = walker::root_device(&sources);
    let saver = repo.blob_saver(options.saver.clone());
    let mut own_prefetch = None;
    let (root_tree, mut summary, errors) = std::thread::scope(|scope| {
        let chunker = StreamChunker::new(repo.config().chunker, repo.key().chunker_seed());
        let mut archiver = Archiver {
            repo,
            saver: &saver,
            file_chunker: FileChunker::spawn(
                scope,
                &saver,
                chunker,
                options
                    .cut_scouts
                    .unwrap_or_else(file_chunker::default_scouts),
                progress,
            ),
            selection: &options.selection,
            progress,
            names: IdNames::default(),
            summary: Summary::default(),
            errors: Vec::new(),
            root_device,
            readahead: ReadAhead::new(),
            prefetch: match &options.prefetch {
                Some(started) => started,
                None => own_prefetch.insert(Prefetch::start(
                    sources.clone(),
                    options.selection.clone(),
                    root_device,
                )),
            },
            old_trees: parent_tree
                .as_ref()
                .map(|old| TreePrefetch::spawn(scope, repo, &old.tree, parent_check.clone())),
            parent_check: parent_check.clone(),
        };
        let root_tree = archiver.virtual_dir(Path::new("/"), &trie, parent_tree.as_ref())?;
        Ok::<_, Error>((root_tree, archiver.summary, archiver.errors))
    })?;
    let stats = saver.finish()?;
    summary.blobs_added = stats.blobs_added;
    summary.added_plain_bytes = stats.added_plain_bytes;
    summary.added_stored_bytes = stats.added_stored_bytes;
    summary.uploaded_bytes = stats.uploaded_bytes;
    summary.errors = errors.len() as u64;
    summary.start_time = start_time.to_rfc3339();
    summary.end_time = chrono::Local::now().fixed_offset().to_rfc3339();
    summary.duration_secs = started.elapsed().as_secs_f64();
    let snapshot = Snapshot {
        time: options.time.unwrap_or(start_time),
        tree: root_tree,
        paths,
        hostname: options.hostname.clone(),
        username: options.username.clone(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        tags: options.tags.clone(),
        parent: parent_id.map(|id| id.to_hex()),
        excludes: options.excludes.clone(),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary),
    };
    let id = repo.save_snapshot(&snapshot)?;
    if let Some(parent) = parent_id.filter(|_| parent_check.is_some()) {
        repo.parent_checked(&parent)?;
    }
    Ok(ArchiveOutcome {
        id,
        snapshot,
        errors,
    })
}

/// Opens without updating the access time where the kernel allows it (only
/// the file's owner or root may), so backups do not disturb atimes.
pub(crate) fn open_noatime(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::File::open(path),
        other => other,
    }
}

fn unchanged(old: &Node, meta: &Metadata) -> bool {
    old.kind == NodeKind::File
        && old.size == meta.len()
        && old.inode == meta.ino()
        && (old.mtime.secs, i64::from(old.mtime.nanos)) == (meta.mtime(), meta.mtime_nsec())
        && (old.ctime.secs, i64::from(old.ctime.nanos)) == (meta.ctime(), meta.ctime_nsec())
}

/// The parent snapshot's tree `id`, loaded on this thread, with its files
/// checked (`parent_check`) if `check`. `Ok(None)` when it cannot be read:
/// an unreadable parent tree only costs speed, as every file below it is
/// read and every tree stored (again, after a lost pack and `repair
/// index`).
fn load_old_tree(repo: &Repository, id: BlobId, check: bool) -> Result<Option<OldTree>> {
    let Ok(tree) = repo.load_tree(&id) else {
        return Ok(None);
    };
    let distrusted = if check {
        parent_check::distrusted_files(repo, &tree)?
    } else {
        Distrusted::new()
    };
    Ok(Some(OldTree {
        id,
        tree,
        distrusted,
    }))
}

impl Archiver<'_> {
    /// The parent snapshot's tree of a directory whose entry there is `old`.
    fn old_subtree(&self, old: Option<&Node>) -> Option<OldTree> {
        let node = old?;
        if node.kind != NodeKind::Dir {
            return None;
        }
        let id = node.subtree?;
        let check = self.parent_check.as_deref();
        let Some(tree) = self.old_trees.as_ref().and_then(|t| t.take(&id)) else {
            return load_old_tree(self.repo, id, check.is_some()).ok()?;
        };
        // The loader that loaded it checked it.
        let distrusted = check.map(|c| c.take(&id)).unwrap_or_default();
        Some(OldTree {
            id,
            tree,
            distrusted,
        })
    }

    fn report(&mut self, path: &Path, message: String) {
        self.progress.error(path, &message);
        self.errors.push(EntryError {
            path: path.to_path_buf(),
            message,
        });
    }

    /// A directory above (or at) the source paths.
    fn virtual_dir(
        &mut self,
        path: &Path,
        trie: &PathTrie,
        old: Option<&OldTree>,
    ) -> Result<BlobId> {
        let parent = old.map(|o| &o.tree);
        let mut tree = TreeBuilder::default();
        for (name, child) in &trie.children {
            let name_os = OsStr::from_bytes(name);
            let child_path = path.join(name_os);
            let meta = match child_path.symlink_metadata() {
                Ok(meta) => meta,
                Err(e) => {
                    self.report(&child_path, e.to_string());
                    continue;
                }
            };
            if child.is_source {
                if let Some(entry) = self.entry(name_os, &child_path, &meta, old, true)? {
                    tree.push(entry);
                }
                continue;
            }
            let old_node = parent.and_then(|t| t.find(name));
            let mut node = match walker::node_from_metadata(
                name_os,
                &child_path,
                &meta,
                old_node,
                &mut self.names,
            ) {
                Ok(node) => node,
                Err(e) => {
                    self.report(&child_path, e.to_string());
                    continue;
                }
            };
            let old_subtree = self.old_subtree(old_node);
            node.subtree = Some(self.virtual_dir(&child_path, child, old_subtree.as_ref())?);
            tree.push(Entry {
                node,
                unfinished: None,
            });
        }
        let tree = self.finish_tree(tree)?;
        self.save_tree(tree, old)
    }

    /// Waits for what a directory's entries wait for and completes their
    /// nodes; entries that turn out unreadable or empty are left out. The
    /// tree comes out sorted by name.
    fn finish_tree(&mut self, mut builder: TreeBuilder) -> Result<Tree> {
        for (index, read) in std::mem::take(&mut builder.files) {
            match read.pending.wait()? {
                Ok(content) => self.file_read(&mut builder.tree.nodes[index], &read, content),
                Err(e) => {
                    self.summary.source_entries -= 1;
                    self.summary.source_bytes -= read.listed_bytes;
                    self.report(&read.path, e.to_string());
                    builder.dropped.push(index);
                }
            }
        }
        for (index, dir) in std::mem::take(&mut builder.dirs) {
            if !self.finish_dir(&mut builder.tree.nodes[index], *dir)? {
                builder.dropped.push(index);
            }
        }
        let TreeBuilder {
            mut tree,
            mut dropped,
            ..
        } = builder;
        dropped.sort_unstable();
        for index in dropped.into_iter().rev() {
            tree.nodes.remove(index);
        }
        // Files were taken before subdirectories; `Tree::find` (comparing
        // with the parent's tree) needs the stored order.
        tree.sort();
        Ok(tree)
    }

    fn file_read(&mut self, node: &mut Node, read: &ReadFile, content: Vec<ContentRef>) {
        let size: u64 = content.iter().map(|c| u64::from(c.1)).sum();
        node.size = size;
        node.content = content;
        self.summary.read_bytes += size;
        if read.changed {
            self.summary.files_changed += 1;
            self.summary.changed_bytes += size;
        } else {
            self.summary.files_new += 1;
            self.summary.new_bytes += size;
        }
        self.progress.file_done(&read.path, size, true);
    }

    /// Stores a directory's tree. One that came out as `old`, the parent
    /// snapshot's, keeps that tree's blob: no encoding, no hashing, no
    /// lookup (the parent's tree was found in the index to be loaded).
    fn save_tree(&mut self, mut tree: Tree, old: Option<&OldTree>) -> Result<BlobId> {
        tree.sort();
        if let Some(old) = old.filter(|old| old.tree == tree) {
            return Ok(old.id);
        }
        let (id, _) = self.saver.save(BlobKind::Tree, tree.encode())?;
        Ok(id)
    }

    /// Archives one entry. `None` when it was skipped (excluded, vanished,
    /// or a scanned directory with nothing selected below it).
    fn entry(
        &mut self,
        name: &OsStr,
        path: &Path,
        meta: &Metadata,
        parent: Option<&OldTree>,
        is_source: bool,
    ) -> Result<Option<Entry>> {
        let Some(decision) = self.selection.admit(path, meta, is_source) else {
            return Ok(None);
        };
        let old = parent.and_then(|p| p.tree.find(name.as_bytes()));
        let mut node = match walker::node_from_metadata(name, path, meta, old, &mut self.names) {
            Ok(node) => node,
            Err(e) => {
                self.report(path, e.to_string());
                return Ok(None);
            }
        };
        self.summary.source_entries += 1;
        let mut unfinished = None;
        match node.kind {
            NodeKind::Dir => {
                let other_fs = self.selection.is_other_file_system(meta, self.root_device);
                let old_tree = self.old_subtree(old);
                let outcome = if other_fs {
                    DirOutcome::Stored(self.save_tree(Tree::default(), None)?, 0)
                } else {
                    self.dir(path, old_tree)?
                };
                let old_id = old.and_then(|o| o.subtree);
                let drop_if_empty = decision == Decision::Scan;
                match outcome {
                    DirOutcome::Stored(id, selected) => {
                        if !self.place_dir(&mut node, old_id, id, selected, drop_if_empty) {
                            return Ok(None);
                        }
                    }
                    DirOutcome::Unfinished(tree) => {
                        unfinished = Some(Unfinished::Dir(Box::new(UnfinishedDir {
                            tree,
                            old_id,
                            drop_if_empty,
                        })));
                    }
                }
            }
            NodeKind::File => {
                let trusted = parent.and_then(|p| p.trusted_file(old));
                match self.file(path, meta, old, trusted, &mut node)? {
                    FileOutcome::Unchanged => {}
                    FileOutcome::Read(file) => unfinished = Some(Unfinished::File(file)),
                    FileOutcome::Skipped => {
                        self.summary.source_entries -= 1;
                        return Ok(None);
                    }
                }
            }
            _ => {}
        }
        Ok(Some(Entry { node, unfinished }))
    }

    /// Puts a stored directory tree in its node; `false` when the
    /// directory is left out, as nothing below it was selected.
    fn place_dir(
        &mut self,
        node: &mut Node,
        old_id: Option<BlobId>,
        id: BlobId,
        selected: usize,
        drop_if_empty: bool,
    ) -> bool {
        if drop_if_empty && selected == 0 {
            self.summary.source_entries -= 1;
            return false;
        }
        match old_id {
            None => self.summary.dirs_new += 1,
            Some(old_id) if old_id == id => self.summary.dirs_unchanged += 1,
            Some(_) => self.summary.dirs_changed += 1,
        }
        node.subtree = Some(id);
        true
    }

    /// Archives a directory's selected entries. `old` is the parent
    /// snapshot's tree of it.
    fn dir(&mut self, path: &Path, old: Option<OldTree>) -> Result<DirOutcome> {
        let parent = old.as_ref();
        self.prefetch.entered();
        let entries = match walker::read_dir_sorted(path) {
            Ok(entries) => entries,
            Err(e) => {
                self.report(path, format!("cannot read directory: {e}"));
                return Ok(DirOutcome::Stored(
                    self.save_tree(Tree::default(), None)?,
                    0,
                ));
            }
        };
        // Files first, then subdirectories: the read-ahead follows the
        // files, the prefetch walk the subdirectories. (Trees are sorted
        // when stored, so order is free.)
        let (files, dirs): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(_, meta)| !meta.as_ref().is_ok_and(|m| m.is_dir()));
        self.plan_reads(path, &files, parent);
        let mut builder = TreeBuilder::default();
        for (name, meta) in files.into_iter().chain(dirs) {
            let child = path.join(&name);
            let meta = match meta {
                Ok(meta) => meta,
                Err(e) => {
                    self.report(&child, e.to_string());
                    continue;
                }
            };
            if let Some(entry) = self.entry(&name, &child, &meta, parent, false)? {
                let is_dir = matches!(entry.unfinished, Some(Unfinished::Dir(_)));
                builder.push(entry);
                if is_dir {
                    // Keeps the waiting subdirectories few: those whose
                    // files are done are stored now.
                    self.finish_ready_dirs(&mut builder)?;
                }
            }
        }
        let tree = PendingTree { builder, old };
        if !tree.builder.is_ready() {
            return Ok(DirOutcome::Unfinished(tree));
        }
        let (id, selected) = self.store_dir(tree)?;
        Ok(DirOutcome::Stored(id, selected))
    }

    /// Stores a directory's tree once its files are read; returns the tree
    /// id and how many entries were selected.
    fn store_dir(&mut self, tree: PendingTree) -> Result<(BlobId, usize)> {
        let PendingTree { builder, old } = tree;
        let tree = self.finish_tree(builder)?;
        if let Some(old) = &old {
            self.count_deleted(&old.tree, &tree);
        }
        let selected = tree.nodes.len();
        Ok((self.save_tree(tree, old.as_ref())?, selected))
    }

    /// Stores the waiting subdirectories whose files are all read.
    fn finish_ready_dirs(&mut self, builder: &mut TreeBuilder) -> Result<()> {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut builder.dirs)
            .into_iter()
            .partition(|(_, dir)| dir.tree.builder.is_ready());
        builder.dirs = waiting;
        for (index, dir) in ready {
            if !self.finish_dir(&mut builder.tree.nodes[index], *dir)? {
                builder.dropped.push(index);
            }
        }
        Ok(())
    }

    fn finish_dir(&mut self, node: &mut Node, dir: UnfinishedDir) -> Result<bool> {
        let (id, selected) = self.store_dir(dir.tree)?;
        Ok(self.place_dir(node, dir.old_id, id, selected, dir.drop_if_empty))
    }

    /// Tells the read-ahead which of a directory's files will be read:
    /// selected, non-empty regular files that changed since the parent.
    fn plan_reads(
        &self,
        dir: &Path,
        files: &[(std::ffi::OsString, std::io::Result<Metadata>)],
        parent: Option<&OldTree>,
    ) {
        let files = files.iter().filter_map(|(name, meta)| {
            let meta = meta.as_ref().ok()?;
            if !meta.is_file() || meta.len() == 0 || self.selection.excludes_by_size(meta) {
                return None;
            }
            let old = parent.and_then(|p| p.trusted_file(p.tree.find(name.as_bytes())));
            if old.is_some_and(|o| unchanged(o, meta)) {
                return None;
            }
            let path = dir.join(name);
            (self.selection.decide(&path, false) == Decision::Include).then_some(Ahead {
                path,
                bytes: meta.len(),
            })
        });
        self.readahead.plan(files.collect());
    }

    fn count_deleted(&mut self, parent: &Tree, now: &Tree) {
        for old in &parent.nodes {
            if now.find(&old.name).is_none() {
                match old.kind {
                    NodeKind::Dir => self.summary.dirs_deleted += 1,
                    NodeKind::File => {
                        self.summary.files_deleted += 1;
                        self.summary.deleted_bytes += old.size;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Fills a file node's content, or starts reading it (see `ReadFile`).
    /// `old` is the parent's entry of the same name, `trusted` the same if
    /// it is a file whose chunks may be taken from it.
    fn file(
        &mut self,
        path: &Path,
        meta: &Metadata,
        old: Option<&Node>,
        trusted: Option<&Node>,
        node: &mut Node,
    ) -> Result<FileOutcome> {
        self.summary.source_bytes += meta.len();
        if let Some(old) = trusted.filter(|o| unchanged(o, meta)) {
            node.content = old.content.clone();
            self.summary.files_unchanged += 1;
            self.progress.file_done(path, meta.len(), false);
            return Ok(FileOutcome::Unchanged);
        }
        let parent_chunks = trusted.map(|o| o.content.clone());
        let opened = self.readahead.take(path);
        let started = self.start_read(path, meta.len(), parent_chunks, opened);
        match started? {
            Ok(pending) => Ok(FileOutcome::Read(ReadFile {
                path: path.to_path_buf(),
                listed_bytes: meta.len(),
                changed: old.is_some_and(|o| o.kind == NodeKind::File),
                pending,
            })),
            Err(e) => {
                self.summary.source_bytes -= meta.len();
                self.report(path, e.to_string());
                Ok(FileOutcome::Skipped)
            }
        }
    }

    /// Opens a file listed with `listed_bytes`, unless the read-ahead
    /// `opened` it. One longer than the shortest chunk goes to the file
    /// chunker; a shorter one is read whole and handed to the saver as one
    /// blob (unless it grew meanwhile). `parent_chunks` are the chunks of
    /// the parent snapshot's version. Outer error: the repository failed
    /// (abort). Inner error: the file could not be read (report and skip).
    fn start_read(
        &mut self,
        path: &Path,
        listed_bytes: u64,
        parent_chunks: Option<Vec<ContentRef>>,
        opened: Option<std::fs::File>,
    ) -> Result<std::io::Result<Arc<PendingFile>>> {
        let min = u64::from(self.repo.config().chunker.min_bytes);
        let mut file = match opened.map_or_else(|| open_noatime(path), Ok) {
            Ok(file) => file,
            Err(e) => return Ok(Err(e)),
        };
        if listed_bytes > min {
            return Ok(Ok(self.file_chunker.chunk(file, Vec::new(), parent_chunks)));
        }
        let head = match readahead::read_head(&mut file, listed_bytes, min, self.saver.buffer()) {
            Ok(head) => head,
            Err(e) => return Ok(Err(e)),
        };
        if head.len() as u64 > min {
            return Ok(Ok(self.file_chunker.chunk(file, head, parent_chunks)));
        }
        self.save_small(head)
    }

    /// Hands a file read whole (and not longer than the shortest chunk) to
    /// the saver as one blob.
    fn save_small(&mut self, head: Vec<u8>) -> Result<std::io::Result<Arc<PendingFile>>> {
        let ids = PendingIds::new();
        let lengths = match head.len() {
            0 => {
                self.saver.recycle(head);
                Vec::new()
            }
            len => {
                self.progress.bytes_read(len as u64);
                self.saver.save_data_later(head, &ids)?;
                vec![len as u32]
            }
        };
        Ok(Ok(PendingFile::cut(ids, lengths)))
    }
}
