//! Differences between two snapshots' trees. Identical subtrees (same blob
//! id) are skipped without loading them, so a diff of two snapshots of a
//! mostly unchanged system reads few trees.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::id::BlobId;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind, Tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// Contents (or the kind of entry, or a symlink target) differ.
    Modified,
    /// Same contents, different metadata (mode, owner, times, xattrs).
    Metadata,
}

impl Change {
    pub fn symbol(&self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffEntry {
    pub path: String,
    pub change: Change,
    pub is_dir: bool,
}

/// Walks both trees; entries come out in path order.
pub fn diff_trees(repo: &Repository, a: &BlobId, b: &BlobId) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    compare(repo, Path::new("/"), Some(a), Some(b), &mut out)?;
    Ok(out)
}

fn load(repo: &Repository, id: Option<&BlobId>) -> Result<Tree> {
    match id {
        Some(id) => repo.load_tree(id),
        None => Ok(Tree::default()),
    }
}

fn compare(
    repo: &Repository,
    dir: &Path,
    a: Option<&BlobId>,
    b: Option<&BlobId>,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (load(repo, a)?, load(repo, b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                one_sided(repo, dir, &ta.nodes[i], Change::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                one_sided(repo, dir, &tb.nodes[j], Change::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                both(repo, dir, &ta.nodes[i], &tb.nodes[j], out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn path_of(dir: &Path, node: &Node) -> PathBuf {
    dir.join(OsStr::from_bytes(&node.name))
}

fn push(out: &mut Vec<DiffEntry>, path: &Path, change: Change, is_dir: bool) {
    let mut shown = String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned();
    if is_dir {
        shown.push('/');
    }
    out.push(DiffEntry {
        path: shown,
        change,
        is_dir,
    });
}

/// An entry present on one side only, with everything below it.
fn one_sided(
    repo: &Repository,
    dir: &Path,
    node: &Node,
    change: Change,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    let path = path_of(dir, node);
    let is_dir = node.kind == NodeKind::Dir;
    push(out, &path, change, is_dir);
    if is_dir {
        let tree = load(repo, node.subtree.as_ref())?;
        for child in &tree.nodes {
            one_sided(repo, &path, child, change, out)?;
        }
    }
    Ok(())
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    (a.mode, a.uid, a.gid, &a.user, &a.group, a.mtime, &a.xattrs)
        == (b.mode, b.uid, b.gid, &b.user, &b.group, b.mtime, &b.xattrs)
}

fn both(repo: &Repository, dir: &Path, a: &Node, b: &Node, out: &mut Vec<DiffEntry>) -> Result<()> {
    let path = path_of(dir, a);
    if a.kind != b.kind {
        one_sided(repo, dir, a, Change::Removed, out)?;
        return one_sided(repo, dir, b, Change::Added, out);
    }
    if a.kind == NodeKind::Dir {
        if !same_metadata(a, b) {
            push(out, &path, Change::Metadata, true);
        }
        return compare(repo, &path, a.subtree.as_ref(), b.subtree.as_ref(), out);
    }
    let content_differs =
        a.content != b.content || a.link_target != b.link_target || a.rdev != b.rdev;
    if content_differs {
        push(out, &path, Change::Modified, false);
    } else if !same_metadata(a, b) {
        push(out, &path, Change::Metadata, false);
    }
    Ok(())
}
