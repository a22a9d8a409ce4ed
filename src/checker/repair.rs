//! Repairs that make a damaged repository usable again without deleting
//! any pack: `repair_index` rebuilds the index from the pack headers;
//! `repair_snapshots` rewrites snapshots so that files whose data is lost
//! are dropped (and listed), keeping everything else restorable.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::blob::BlobKind;
use crate::error::Result;
use crate::id::BlobId;
use crate::index::IndexedPack;
use crate::repository::index_writer::IndexWriter;
use crate::repository::saver::SaverOptions;
use crate::repository::{BlobSaver, Repository};
use crate::tree::{NodeKind, Tree};

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexStats {
    pub packs_indexed: u64,
    pub blobs_indexed: u64,
    pub index_files_replaced: u64,
    /// Packs whose header could not be read, with the reason.
    pub packs_unreadable: Vec<String>,
}

/// Writes index files naming every pack whose header reads, superseding
/// (then deleting) all existing index files.
pub fn repair_index(repo: &Repository) -> Result<RepairIndexStats> {
    let mut stats = RepairIndexStats::default();
    let old = repo.list_index_files()?;
    let mut index = IndexWriter::new(repo);
    for (id, size_bytes) in repo.list_packs()? {
        match repo.read_pack_header(&id, size_bytes) {
            Ok(blobs) => {
                stats.blobs_indexed += blobs.len() as u64;
                stats.packs_indexed += 1;
                index.add(IndexedPack {
                    id,
                    size_bytes,
                    blobs,
                })?;
            }
            Err(e) => stats
                .packs_unreadable
                .push(format!("{}: {e}", id.object_name())),
        }
    }
    let written = index.finish(&old)?;
    IndexWriter::delete_superseded(repo, &old, &written)?;
    stats.index_files_replaced = old.iter().filter(|id| !written.contains(id)).count() as u64;
    repo.sync_index()?;
    Ok(stats)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairedSnapshot {
    pub old_id: String,
    /// `None` in a dry run.
    pub new_id: Option<String>,
    /// Files dropped because their data is lost.
    pub dropped_files: Vec<String>,
    /// Directories whose listing was lost (now empty).
    pub lost_directories: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSnapshotsReport {
    pub snapshots_checked: u64,
    pub repaired: Vec<RepairedSnapshot>,
}

struct TreeFixer<'a> {
    repo: &'a Repository,
    damaged: &'a HashSet<(BlobKind, BlobId)>,
    saver: Option<&'a BlobSaver>,
    /// Tree id → its repaired id (same id if nothing below it was lost).
    memo: HashMap<BlobId, BlobId>,
    current: RepairedSnapshot,
}

impl TreeFixer<'_> {
    fn usable(&self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        Ok(!self.damaged.contains(&(kind, *id)) && self.repo.lookup_blob(kind, id)?.is_some())
    }

    fn save(&self, tree: &Tree) -> Result<BlobId> {
        match self.saver {
            Some(saver) => Ok(saver.save(BlobKind::Tree, tree.encode())?.0),
            // Dry run: the id the tree would get.
            None => Ok(self.repo.key().blob_id(&tree.encode())),
        }
    }

    fn fix(&mut self, id: &BlobId, path: &Path) -> Result<BlobId> {
        if let Some(done) = self.memo.get(id) {
            return Ok(*done);
        }
        let shown = || String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned();
        let loaded = if self.usable(BlobKind::Tree, id)? {
            self.repo.load_tree(id).ok()
        } else {
            None
        };
        let Some(mut tree) = loaded else {
            self.current.lost_directories.push(shown());
            let empty = self.save(&Tree::default())?;
            self.memo.insert(*id, empty);
            return Ok(empty);
        };
        let mut changed = false;
        let mut kept = Vec::with_capacity(tree.nodes.len());
        for mut node in std::mem::take(&mut tree.nodes) {
            let child: PathBuf = path.join(OsStr::from_bytes(&node.name));
            if node.kind == NodeKind::Dir {
                if let Some(sub) = node.subtree {
                    let fixed = self.fix(&sub, &child)?;
                    changed |= fixed != sub;
                    node.subtree = Some(fixed);
                }
            }
            let mut lost = false;
            for c in &node.content {
                if !self.usable(BlobKind::Data, &c.0)? {
                    lost = true;
                    break;
                }
            }
            if lost {
                self.current
                    .dropped_files
                    .push(String::from_utf8_lossy(child.as_os_str().as_bytes()).into_owned());
                changed = true;
                continue;
            }
            kept.push(node);
        }
        tree.nodes = kept;
        let new_id = if changed { self.save(&tree)? } else { *id };
        self.memo.insert(*id, new_id);
        Ok(new_id)
    }
}

/// Rewrites every snapshot that refers to lost data. `damaged` holds blobs
/// known to be bad (from `verify --read-data`); blobs missing from the
/// index count as lost too. Replaced snapshots are removed; no pack is
/// ever deleted.
pub fn repair_snapshots(
    repo: &Repository,
    damaged: &HashSet<(BlobKind, BlobId)>,
    dry_run: bool,
) -> Result<RepairSnapshotsReport> {
    let mut report = RepairSnapshotsReport::default();
    let snapshots = repo.list_snapshots()?;
    report.snapshots_checked = snapshots.len() as u64;
    let saver = (!dry_run).then(|| repo.blob_saver(SaverOptions::default()));
    let mut pending = Vec::new();
    {
        let mut fixer = TreeFixer {
            repo,
            damaged,
            saver: saver.as_ref(),
            memo: HashMap::new(),
            current: RepairedSnapshot::default(),
        };
        for (id, snap) in &snapshots {
            fixer.current = RepairedSnapshot {
                old_id: id.to_hex(),
                ..RepairedSnapshot::default()
            };
            let root = fixer.fix(&snap.tree, Path::new("/"))?;
            if root != snap.tree {
                pending.push((*id, snap.clone(), root, std::mem::take(&mut fixer.current)));
            }
        }
    }
    if let Some(saver) = saver {
        saver.finish()?;
    }
    for (old_id, mut snap, root, mut repaired) in pending {
        if !dry_run {
            snap.tree = root;
            if !snap.tags.iter().any(|t| t == "repaired") {
                snap.tags.push("repaired".to_string());
            }
            let new_id = repo.save_snapshot(&snap)?;
            repo.remove_snapshot(&old_id)?;
            repaired.new_id = Some(new_id.to_hex());
        }
        report.repaired.push(repaired);
    }
    Ok(report)
}

/// The damaged blobs a check finds (missing or damaged packs; with
/// `read_data`, every blob that fails to decrypt), for `repair_snapshots`.
pub fn damaged_blobs(repo: &Repository, read_data: bool) -> Result<HashSet<(BlobKind, BlobId)>> {
    let subset = if read_data {
        crate::checker::DataSubset::All
    } else {
        crate::checker::DataSubset::None
    };
    let report = crate::checker::verify(repo, subset)?;
    Ok(report.damaged_blobs.iter().copied().collect())
}
