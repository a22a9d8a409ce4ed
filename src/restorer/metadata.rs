//! Setting restored entries' metadata: ownership (as root), permissions,
//! extended attributes and times, after contents are written. Directories go
//! last and deepest first, so creating their children does not change
//! their times afterwards.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::stat::{fchmodat, utimensat, FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};

use crate::restorer::{record, Plan, RestoreStats};
use crate::tree::{Node, NodeKind, Timestamp};

fn timespec(t: Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

/// The uid/gid to restore: by name when the name exists here, else numeric.
fn owner(node: &Node) -> (u32, u32) {
    let uid = node
        .user
        .as_deref()
        .and_then(|n| nix::unistd::User::from_name(n).ok().flatten())
        .map_or(node.uid, |u| u.uid.as_raw());
    let gid = node
        .group
        .as_deref()
        .and_then(|n| nix::unistd::Group::from_name(n).ok().flatten())
        .map_or(node.gid, |g| g.gid.as_raw());
    (uid, gid)
}

fn apply_one(path: &Path, node: &Node, is_root: bool) -> std::io::Result<()> {
    if node.kind == NodeKind::Socket {
        return Ok(());
    }
    if is_root {
        let (uid, gid) = owner(node);
        fchownat(
            None,
            path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    if node.kind != NodeKind::Symlink {
        // After chown: chown clears setuid/setgid bits.
        fchmodat(
            None,
            path,
            Mode::from_bits_truncate(node.mode),
            FchmodatFlags::FollowSymlink,
        )?;
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        // Some attributes (e.g. security.*) need privileges; others may not
        // be supported by the target file system. Neither loses data.
        let _ = xattr::set(path, name, &x.value);
    }
    // Snapshots do not record atime; the modification time stands in.
    let atime = if node.atime == Timestamp::default() {
        node.mtime
    } else {
        node.atime
    };
    utimensat(
        None,
        path,
        &timespec(atime),
        &timespec(node.mtime),
        UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

pub(super) fn apply_all(
    target: &Path,
    plan: &Plan,
    failed: &BTreeMap<usize, String>,
    stats: &mut RestoreStats,
) {
    let is_root = nix::unistd::geteuid().is_root();
    let mut apply = |i: usize| {
        let node = &plan.entries[i].node;
        if let Err(e) = apply_one(&target.join(plan.rel(i)), node, is_root) {
            let message = format!("metadata not restored: {e}");
            record(stats, &plan.snapshot_path(i), message);
        }
    };
    let is_dir = |i: &usize| plan.entries[*i].node.kind == NodeKind::Dir;
    let all = 0..plan.entries.len();
    for i in all
        .clone()
        .filter(|i| !is_dir(i) && !failed.contains_key(i))
    {
        apply(i);
    }
    // The directory the restore starts at is the target itself, which
    // keeps its own metadata.
    let below_start = |i: &usize| plan.entries[*i].parent.is_some();
    for i in all.rev().filter(is_dir).filter(below_start) {
        apply(i);
    }
}
