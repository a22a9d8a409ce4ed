//! The restore plan: every selected entry of the snapshot, parents before
//! children, each kept in the compact form the restore needs.
//!
//! A restore holds its whole plan until the last directory's times are set,
//! so the plan's size per entry is the restore's memory per file. A tree
//! `Node` takes 320 bytes and three allocations (name, user, group); a
//! `Planned` entry takes 120 and one. Owners are interned, since a
//! snapshot has few distinct (user, group) pairs, and what only a few
//! entries have (extended attributes, a symlink's target, a device number)
//! sits behind one pointer. On 200,000 small files that took the restore's
//! peak from 171 MiB to about 120.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_bytes::ByteBuf;

use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::{ContentRef, Node, NodeKind, Timestamp, Xattr};
use crate::walker::filter::{Decision, Filter};

/// Every entry to restore, parents before children.
pub(super) struct Plan {
    pub(super) entries: Vec<Planned>,
    /// The (user, group) names that `Planned::owner` indexes.
    pub(super) owners: Vec<OwnerNames>,
    /// Where the restore starts in the snapshot ("/home/ann"), or the
    /// directory above it when it starts at a file.
    pub(super) snapshot_base: PathBuf,
}

/// The names of an entry's user and group, as the snapshot recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct OwnerNames {
    pub(super) user: Option<String>,
    pub(super) group: Option<String>,
}

/// One entry to restore. Its path is worked out from its parent's when
/// needed: keeping two full paths per entry cost more than the entries.
pub(super) struct Planned {
    /// The entry of its directory; `None` for the entry the restore starts at.
    parent: Option<u32>,
    /// For a hard link: the entry it links to.
    link_to: Option<u32>,
    /// A file of one chunk, not hard-linked: the worker that writes the
    /// chunk creates the file and sets its metadata, so nothing else opens
    /// or names it.
    pub(super) written_whole: bool,
    pub(super) kind: NodeKind,
    pub(super) name: Box<[u8]>,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Index into `Plan::owners`.
    pub(super) owner: u32,
    pub(super) mtime: Timestamp,
    pub(super) atime: Timestamp,
    pub(super) size: u64,
    /// Taken out when the contents are planned.
    pub(super) content: Box<[ContentRef]>,
    rare: Option<Box<RareFields>>,
}

/// The fields most entries leave empty.
struct RareFields {
    xattrs: Vec<Xattr>,
    link_target: Option<ByteBuf>,
    rdev: u64,
}

impl Planned {
    pub(super) fn parent(&self) -> Option<usize> {
        self.parent.map(|i| i as usize)
    }

    pub(super) fn link_to(&self) -> Option<usize> {
        self.link_to.map(|i| i as usize)
    }

    pub(super) fn xattrs(&self) -> &[Xattr] {
        self.rare.as_ref().map_or(&[], |r| &r.xattrs)
    }

    pub(super) fn link_target(&self) -> &[u8] {
        let target = self.rare.as_ref().and_then(|r| r.link_target.as_ref());
        target.map_or(&[], |t| t.as_slice())
    }

    pub(super) fn rdev(&self) -> u64 {
        self.rare.as_ref().map_or(0, |r| r.rdev)
    }
}

impl Plan {
    /// Walks the snapshot from `start` (found at `start_path`) and plans
    /// every entry `filter` selects.
    pub(super) fn build(
        repo: &Repository,
        start: Node,
        start_path: &Path,
        filter: Option<&Filter>,
    ) -> Result<Plan> {
        let snapshot_base = match start.kind {
            NodeKind::Dir => start_path.to_path_buf(),
            _ => start_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let mut builder = PlanBuilder {
            repo,
            filter,
            entries: Vec::new(),
            owners: Vec::new(),
            owner_index: HashMap::new(),
            first_link: HashMap::new(),
        };
        builder.add(start, None, start_path)?;
        let mut plan = Plan {
            entries: builder.entries,
            owners: builder.owners,
            snapshot_base,
        };
        plan.mark_written_whole();
        Ok(plan)
    }

    /// The entry's path below the target: empty for the directory the
    /// restore starts at, which is the target itself.
    pub(super) fn rel(&self, index: usize) -> PathBuf {
        let mut names = Vec::new();
        let mut at = Some(index);
        while let Some(i) = at {
            let entry = &self.entries[i];
            if entry.parent.is_some() || entry.kind != NodeKind::Dir {
                names.push(OsStr::from_bytes(&entry.name));
            }
            at = entry.parent();
        }
        names.iter().rev().collect()
    }

    /// The entry's path in the snapshot, for messages.
    pub(super) fn snapshot_path(&self, index: usize) -> PathBuf {
        self.snapshot_base.join(self.rel(index))
    }

    /// Marks the files the worker writing their only chunk can restore
    /// whole. A file another entry hard-links to must exist before the
    /// link is made.
    fn mark_written_whole(&mut self) {
        let mut linked_to = vec![false; self.entries.len()];
        for j in self.entries.iter().filter_map(Planned::link_to) {
            linked_to[j] = true;
        }
        for (entry, linked_to) in self.entries.iter_mut().zip(linked_to) {
            entry.written_whole = entry.kind == NodeKind::File
                && entry.content.len() == 1
                && entry.link_to.is_none()
                && !linked_to;
        }
    }
}

struct PlanBuilder<'a> {
    repo: &'a Repository,
    filter: Option<&'a Filter>,
    entries: Vec<Planned>,
    owners: Vec<OwnerNames>,
    owner_index: HashMap<OwnerNames, u32>,
    /// The first entry of each multiply-linked (device, inode).
    first_link: HashMap<(u64, u64), u32>,
}

impl PlanBuilder<'_> {
    /// Adds `node` and the selected entries below it, parents before
    /// children. `Ok(false)` when nothing was selected; then nothing was
    /// added either.
    fn add(&mut self, node: Node, parent: Option<u32>, snapshot_path: &Path) -> Result<bool> {
        let is_dir = node.kind == NodeKind::Dir;
        // The directory the restore starts at is taken whole.
        let is_start_dir = parent.is_none() && is_dir;
        let decision = match self.filter {
            Some(f) if !is_start_dir => f.decide(snapshot_path.as_os_str().as_bytes(), is_dir),
            _ => Decision::Include,
        };
        if decision == Decision::Exclude || (decision == Decision::Scan && !is_dir) {
            return Ok(false);
        }
        let index = u32::try_from(self.entries.len()).map_err(|_| {
            Error::InvalidArgument(format!(
                "more than {} entries to restore: restore part of the snapshot at a time",
                u32::MAX
            ))
        })?;
        let subtree = node.subtree;
        let entry = self.planned(node, parent, index);
        self.entries.push(entry);
        if !is_dir {
            return Ok(true);
        }
        let mut any = false;
        if let Some(subtree) = &subtree {
            let tree = self.repo.load_tree(subtree)?;
            for child in tree.nodes {
                let path = snapshot_path.join(OsStr::from_bytes(&child.name));
                any |= self.add(child, Some(index), &path)?;
            }
        }
        if decision == Decision::Scan && !any {
            // Only this directory is taken back: every child that added
            // nothing left nothing. So no hard link refers to it (nor could:
            // directories are never linked).
            self.entries.truncate(index as usize);
            return Ok(false);
        }
        Ok(true)
    }

    /// `node` as entry number `index`.
    fn planned(&mut self, node: Node, parent: Option<u32>, index: u32) -> Planned {
        let linked = node.kind != NodeKind::Dir && node.links >= 2 && node.inode != 0;
        let link_to = if linked {
            let first = *self
                .first_link
                .entry((node.device, node.inode))
                .or_insert(index);
            (first != index).then_some(first)
        } else {
            None
        };
        let owner = self.owner(OwnerNames {
            user: node.user,
            group: node.group,
        });
        let rare =
            (!node.xattrs.is_empty() || node.link_target.is_some() || node.rdev != 0).then(|| {
                Box::new(RareFields {
                    xattrs: node.xattrs,
                    link_target: node.link_target,
                    rdev: node.rdev,
                })
            });
        Planned {
            parent,
            link_to,
            written_whole: false,
            kind: node.kind,
            name: node.name.into_vec().into_boxed_slice(),
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            owner,
            mtime: node.mtime,
            atime: node.atime,
            size: node.size,
            content: node.content.into_boxed_slice(),
            rare,
        }
    }

    /// The index of `names` in the owner table, added when new. There are
    /// never more distinct owners than entries, whose count fits a `u32`.
    fn owner(&mut self, names: OwnerNames) -> u32 {
        if let Some(&i) = self.owner_index.get(&names) {
            return i;
        }
        let i = self.owners.len() as u32;
        self.owners.push(names.clone());
        self.owner_index.insert(names, i);
        i
    }
}

/// Finds the node at `path` ("/home/ann") in the snapshot.
pub(super) fn find_node(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Node> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_entry_stays_small() {
        // The restore's memory per file; a field added carelessly to
        // `Planned` multiplies by every entry of a snapshot.
        assert!(
            std::mem::size_of::<Planned>() <= 120,
            "{} bytes",
            std::mem::size_of::<Planned>()
        );
    }
}
