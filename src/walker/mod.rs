//! Reading the file system for a snapshot: which entries are selected, in a
//! stable order, and their metadata as tree `Node`s.
//!
//! This module reads directories and metadata only; it never opens file
//! contents (the archiver does, for files that changed).

pub mod filter;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_bytes::ByteBuf;

use crate::tree::{Node, NodeKind, Timestamp, Xattr};
use filter::{Decision, Filter};

/// Which entries a snapshot takes, beyond the filter rules.
#[derive(Default, Clone)]
pub struct Selection {
    pub filter: Option<Filter>,
    /// A directory holding a file of one of these names is skipped.
    pub exclude_if_present: Vec<String>,
    /// Skip directories holding a valid `CACHEDIR.TAG`.
    pub exclude_caches: bool,
    /// Do not descend into other file systems.
    pub one_file_system: bool,
    /// Skip regular files larger than this.
    pub exclude_larger_than: Option<u64>,
}

/// The signature a `CACHEDIR.TAG` must start with (bford.info/cachedir).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

impl Selection {
    /// What the filter rules say about `path`.
    pub fn decide(&self, path: &Path, is_dir: bool) -> Decision {
        match &self.filter {
            Some(filter) => filter.decide(path.as_os_str().as_bytes(), is_dir),
            None => Decision::Include,
        }
    }

    /// Whether a directory's contents mark it as excluded.
    pub fn excludes_dir_by_contents(&self, dir: &Path) -> bool {
        if self
            .exclude_if_present
            .iter()
            .any(|name| dir.join(name).symlink_metadata().is_ok())
        {
            return true;
        }
        if self.exclude_caches {
            use std::io::Read;
            let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
            if let Ok(mut f) = std::fs::File::open(dir.join("CACHEDIR.TAG")) {
                if f.read_exact(&mut head).is_ok() && head == CACHEDIR_SIGNATURE {
                    return true;
                }
            }
        }
        false
    }

    /// Whether the snapshot takes an entry: `None` to skip it (a directory
    /// with everything below), else the filter's decision for it (`Include`,
    /// or `Scan` for a directory kept only if something below is taken).
    /// A source path named on the command line is never filtered out.
    pub fn admit(&self, path: &Path, meta: &Metadata, is_source: bool) -> Option<Decision> {
        let is_dir = meta.is_dir();
        let decision = match is_source {
            true => Decision::Include,
            false => self.decide(path, is_dir),
        };
        let skipped = decision == Decision::Exclude
            || self.excludes_by_size(meta)
            || (!is_dir && decision == Decision::Scan)
            || (is_dir && !is_source && self.excludes_dir_by_contents(path));
        (!skipped).then_some(decision)
    }

    /// Whether an entry lies on another file system than the first source
    /// (`root_device`) while `--one-file-system` keeps the snapshot off them.
    pub fn is_other_file_system(&self, meta: &Metadata, root_device: u64) -> bool {
        self.one_file_system && meta.dev() != root_device
    }

    pub fn excludes_by_size(&self, meta: &Metadata) -> bool {
        meta.is_file() && self.exclude_larger_than.is_some_and(|max| meta.len() > max)
    }
}

/// A source path as a snapshot records it: absolute, with `.` and `..`
/// resolved lexically. Symlinks in it are kept as the user named them.
pub fn absolute_source(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let abs = std::path::absolute(path)?;
    let mut out = std::path::PathBuf::new();
    for part in abs.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The device of the first source path, which `--one-file-system` keeps
/// the snapshot on (0 when it cannot be read).
pub fn root_device(sources: &[std::path::PathBuf]) -> u64 {
    sources
        .first()
        .and_then(|p| p.symlink_metadata().ok())
        .map_or(0, |m| m.dev())
}

/// The source paths among `paths` that resolve (`absolute_source`), and
/// their `root_device`: for the walks that run beside a snapshot and leave
/// reporting bad paths to it.
pub fn resolved_sources(paths: &[std::path::PathBuf]) -> (Vec<std::path::PathBuf>, u64) {
    let sources: Vec<_> = paths
        .iter()
        .filter_map(|p| absolute_source(p).ok())
        .collect();
    let device = root_device(&sources);
    (sources, device)
}

/// The bytes of the regular files a snapshot of `sources` would select: a
/// metadata-only walk applying the same selection as the archiver, so the
/// ETA of a backup of `/` with `--exclude /proc` does not count (or walk)
/// `/proc`. Unreadable entries count as nothing.
pub fn selected_file_bytes(sources: &[std::path::PathBuf], selection: &Selection) -> u64 {
    let (sources, root_device) = resolved_sources(sources);
    sources
        .iter()
        .filter_map(|p| Some((p.symlink_metadata().ok()?, p)))
        .map(|(meta, p)| selected_bytes(p, &meta, true, selection, root_device))
        .sum()
}

fn selected_bytes(
    path: &Path,
    meta: &Metadata,
    is_source: bool,
    selection: &Selection,
    root_device: u64,
) -> u64 {
    if selection.admit(path, meta, is_source).is_none() {
        return 0;
    }
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() || selection.is_other_file_system(meta, root_device) {
        return 0;
    }
    let Ok(entries) = read_dir_sorted(path) else {
        return 0;
    };
    entries
        .into_iter()
        .filter_map(|(name, meta)| Some((path.join(name), meta.ok()?)))
        .map(|(child, meta)| selected_bytes(&child, &meta, false, selection, root_device))
        .sum()
}

/// Entries of a directory sorted by name bytes, with their `lstat` metadata.
/// An entry that vanishes between listing and `lstat` is returned as an error
/// for that entry, so the caller can report it and go on.
pub fn read_dir_sorted(
    dir: &Path,
) -> std::io::Result<Vec<(std::ffi::OsString, std::io::Result<Metadata>)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        // `DirEntry::metadata` is an `lstat` relative to the open
        // directory (fstatat/statx with its descriptor): the kernel does not
        // walk the whole path again for every entry.
        let meta = entry.metadata();
        entries.push((name, meta));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(entries)
}

/// Caches uid/gid → name lookups (NSS calls are slow).
#[derive(Default)]
pub struct IdNames {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl IdNames {
    pub fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    pub fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

pub fn kind_of(meta: &Metadata) -> NodeKind {
    let ft = meta.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::File
    }
}

fn timestamp(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// Extended attributes of `path` (not following symlinks). File systems
/// without xattr support simply yield none.
pub fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(Xattr {
                name: ByteBuf::from(name.as_bytes().to_vec()),
                value: ByteBuf::from(value),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The node for one file-system entry, without file contents or subtree.
/// `old` is the entry of that name in the last snapshot, if any: while the
/// inode's change time is the same, its extended attributes and symlink
/// target are taken from there (see `same_inode_state`).
pub fn node_from_metadata(
    name: &OsStr,
    path: &Path,
    meta: &Metadata,
    old: Option<&Node>,
    names: &mut IdNames,
) -> std::io::Result<Node> {
    let kind = kind_of(meta);
    let mut node = Node::new(name.as_bytes(), kind);
    node.mode = meta.mode() & 0o7777;
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.user = names.user(meta.uid());
    node.group = names.group(meta.gid());
    node.mtime = timestamp(meta.mtime(), meta.mtime_nsec());
    // atime is not recorded: reading a file changes it, and recording it
    // would make every tree differ from the last snapshot's.
    node.ctime = timestamp(meta.ctime(), meta.ctime_nsec());
    node.inode = meta.ino();
    node.device = meta.dev();
    node.links = meta.nlink();
    let kept = old.filter(|o| same_inode_state(o, &node));
    match kind {
        NodeKind::File => node.size = meta.len(),
        NodeKind::Symlink => {
            node.link_target = match kept {
                Some(old) if old.link_target.is_some() => old.link_target.clone(),
                _ => {
                    let target = std::fs::read_link(path)?;
                    Some(ByteBuf::from(target.as_os_str().as_bytes().to_vec()))
                }
            };
        }
        NodeKind::CharDevice | NodeKind::BlockDevice => node.rdev = meta.rdev(),
        _ => {}
    }
    node.xattrs = match kept {
        Some(old) => old.xattrs.clone(),
        None => read_xattrs(path),
    };
    Ok(node)
}

/// Whether `old` describes the same inode as `now` with no change since:
/// setting or removing an extended attribute, like any other change to an
/// inode, sets its change time (which no system call can set back), and a
/// symlink's target never changes in place. Listing attributes costs a
/// path lookup and a system call or two per entry, and in a snapshot where
/// little changed that was a sixth of the walking thread's time.
fn same_inode_state(old: &Node, now: &Node) -> bool {
    old.kind == now.kind && old.inode == now.inode && old.ctime == now.ctime
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter::FilterRule;

    #[test]
    fn selected_file_bytes_follows_the_selection() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("keep/deep")).unwrap();
        std::fs::create_dir_all(root.join("skip/wanted")).unwrap();
        std::fs::write(root.join("keep/a"), [0u8; 100]).unwrap();
        std::fs::write(root.join("keep/deep/b"), [0u8; 20]).unwrap();
        std::fs::write(root.join("keep/huge"), [0u8; 5000]).unwrap();
        std::fs::write(root.join("skip/c"), [0u8; 300]).unwrap();
        std::fs::write(root.join("skip/wanted/d"), [0u8; 7]).unwrap();
        let rules = [
            FilterRule::Include(format!("{}/skip/wanted", root.display())),
            FilterRule::Exclude(format!("{}/skip", root.display())),
        ];
        let selection = Selection {
            filter: Some(Filter::new(&rules).unwrap()),
            exclude_larger_than: Some(1000),
            ..Selection::default()
        };
        let total = selected_file_bytes(&[root.to_path_buf()], &selection);
        assert_eq!(total, 100 + 20 + 7);
        assert_eq!(
            selected_file_bytes(&[root.to_path_buf()], &Selection::default()),
            100 + 20 + 5000 + 300 + 7
        );
    }
}
