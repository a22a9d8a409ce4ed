//! Setting restored entries' metadata: ownership (as root), permissions,
//! extended attributes and times, after contents are written. A file with
//! one chunk gets its metadata from the worker that wrote it, through the
//! open descriptor; the rest are set here at the end: files, then
//! directories deepest first, so creating their children does not change
//! their times afterwards.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::stat::{fchmod, fchmodat, futimens, utimensat, FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, Gid, Uid};
use xattr::FileExt;

use crate::restorer::plan::{Plan, Planned};
use crate::restorer::{record, RestoreStats};
use crate::tree::{NodeKind, Timestamp};

fn timespec(t: Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

/// How a snapshot's metadata maps onto this machine. Only root may give
/// files away; for root the snapshot's user and group names are looked up
/// once each, since every lookup reads `/etc/passwd` or asks nscd. A file
/// the restore creates may already have the owner and mode it needs, and
/// then needs no `chown` or `chmod`: on 200,000 small files each took about
/// 8% of the restore's system-call time.
pub(super) struct Owners {
    is_root: bool,
    /// The local (uid, gid) of each of the plan's owners, by name; `None`
    /// for names unknown here. Empty unless root.
    ids_by_owner: Vec<(Option<u32>, Option<u32>)>,
    /// The owner of a file the restore creates, when known for certain.
    creates_as: Option<(Uid, Gid)>,
    /// The process's umask, when known (`/proc/self/status`).
    umask: Option<u32>,
}

impl Owners {
    /// `fresh_target`: the target was empty or missing, so every directory
    /// below it was made by this restore.
    pub(super) fn for_plan(plan: &Plan, target: &Path, fresh_target: bool) -> Owners {
        let mut owners = Owners {
            is_root: nix::unistd::geteuid().is_root(),
            ids_by_owner: Vec::new(),
            creates_as: None,
            umask: umask(),
        };
        // A set-group-ID directory hands its group down to new entries.
        let setgid = |p: &Path| p.metadata().map_or(true, |m| m.mode() & 0o2000 != 0);
        if fresh_target && !setgid(target) {
            owners.creates_as = Some((nix::unistd::geteuid(), nix::unistd::getegid()));
        }
        if !owners.is_root {
            return owners;
        }
        let mut users = HashMap::new();
        let mut groups = HashMap::new();
        for names in &plan.owners {
            let uid = look_up(&mut users, names.user.as_deref(), |name| {
                let user = nix::unistd::User::from_name(name).ok()??;
                Some(user.uid.as_raw())
            });
            let gid = look_up(&mut groups, names.group.as_deref(), |name| {
                let group = nix::unistd::Group::from_name(name).ok()??;
                Some(group.gid.as_raw())
            });
            owners.ids_by_owner.push((uid, gid));
        }
        owners
    }

    /// The uid/gid to restore: by name when the name exists here, else
    /// numeric.
    fn ids(&self, entry: &Planned) -> (Uid, Gid) {
        let by_name = self.ids_by_owner.get(entry.owner as usize);
        let (uid, gid) = by_name.copied().unwrap_or_default();
        (
            Uid::from_raw(uid.unwrap_or(entry.uid)),
            Gid::from_raw(gid.unwrap_or(entry.gid)),
        )
    }
}

/// The id of `name`, looked up once per name (a miss is remembered too).
fn look_up(
    known: &mut HashMap<String, Option<u32>>,
    name: Option<&str>,
    find: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    let name = name?;
    if let Some(&id) = known.get(name) {
        return id;
    }
    let id = find(name);
    known.insert(name.to_string(), id);
    id
}

/// The umask from `/proc/self/status`: `umask(2)` cannot read it without
/// changing it for every thread for a moment.
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// The permission bits to create a file with; `chmod` after writing fixes
/// what the umask takes away.
pub(super) fn create_mode(entry: &Planned) -> u32 {
    entry.mode & 0o777
}

/// A restored entry, by path or (for a file still open) by descriptor.
enum Target<'a> {
    Path(&'a Path),
    File(&'a File),
}

impl Target<'_> {
    fn chown(&self, (uid, gid): (Uid, Gid)) -> nix::Result<()> {
        match self {
            Target::Path(path) => fchownat(
                None,
                *path,
                Some(uid),
                Some(gid),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
            Target::File(file) => fchown(file.as_raw_fd(), Some(uid), Some(gid)),
        }
    }

    fn chmod(&self, mode: Mode) -> nix::Result<()> {
        match self {
            Target::Path(path) => fchmodat(None, *path, mode, FchmodatFlags::FollowSymlink),
            Target::File(file) => fchmod(file.as_raw_fd(), mode),
        }
    }

    fn set_xattr(&self, name: &OsStr, value: &[u8]) -> std::io::Result<()> {
        match self {
            Target::Path(path) => xattr::set(path, name, value),
            Target::File(file) => file.set_xattr(name, value),
        }
    }

    fn set_times(&self, atime: &TimeSpec, mtime: &TimeSpec) -> nix::Result<()> {
        match self {
            Target::Path(path) => {
                utimensat(None, *path, atime, mtime, UtimensatFlags::NoFollowSymlink)
            }
            Target::File(file) => futimens(file.as_raw_fd(), atime, mtime),
        }
    }
}

/// `created`: the entry is a file this restore just created with
/// `create_mode`, so what it already has need not be set again.
fn apply_one(
    target: Target<'_>,
    entry: &Planned,
    owners: &Owners,
    created: bool,
) -> std::io::Result<()> {
    if entry.kind == NodeKind::Socket {
        return Ok(());
    }
    let ids = owners.ids(entry);
    let owned = created && owners.creates_as == Some(ids);
    if owners.is_root && !owned {
        target.chown(ids)?;
    }
    let has_mode = created
        && owners
            .umask
            .is_some_and(|umask| create_mode(entry) & !umask == entry.mode & 0o7777);
    if entry.kind != NodeKind::Symlink && !has_mode {
        // After chown: chown clears setuid/setgid bits.
        target.chmod(Mode::from_bits_truncate(entry.mode))?;
    }
    for x in entry.xattrs() {
        // Some attributes (e.g. security.*) need privileges; others may not
        // be supported by the target file system. Neither loses data.
        let _ = target.set_xattr(OsStr::from_bytes(&x.name), &x.value);
    }
    // Snapshots do not record atime; the modification time stands in.
    let atime = if entry.atime == Timestamp::default() {
        entry.mtime
    } else {
        entry.atime
    };
    target.set_times(&timespec(atime), &timespec(entry.mtime))?;
    Ok(())
}

/// Sets the metadata of a file just created with `create_mode`, through its
/// open descriptor, after its last write.
pub(super) fn apply_to_created(
    file: &File,
    entry: &Planned,
    owners: &Owners,
) -> std::io::Result<()> {
    apply_one(Target::File(file), entry, owners, true)
}

/// Sets the metadata of every entry not failed and not already done by the
/// worker that wrote it.
pub(super) fn apply_all(
    target: &Path,
    plan: &Plan,
    owners: &Owners,
    failed: &BTreeMap<usize, String>,
    stats: &mut RestoreStats,
) {
    let mut apply = |i: usize| {
        let path = target.join(plan.rel(i));
        if let Err(e) = apply_one(Target::Path(&path), &plan.entries[i], owners, false) {
            let message = format!("metadata not restored: {e}");
            record(stats, &plan.snapshot_path(i), message);
        }
    };
    let is_dir = |i: &usize| plan.entries[*i].kind == NodeKind::Dir;
    let all = 0..plan.entries.len();
    let left = |i: &usize| !plan.entries[*i].written_whole && !failed.contains_key(i);
    for i in all.clone().filter(|i| !is_dir(i)).filter(left) {
        apply(i);
    }
    // The directory the restore starts at is the target itself, which
    // keeps its own metadata.
    let below_start = |i: &usize| plan.entries[*i].parent().is_some();
    for i in all.rev().filter(is_dir).filter(below_start) {
        apply(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_looked_up_once_found_or_not() {
        let mut known = HashMap::new();
        let calls = std::cell::Cell::new(0);
        for name in ["alice", "gone", "alice", "gone", "gone"] {
            let id = look_up(&mut known, Some(name), |n| {
                calls.set(calls.get() + 1);
                (n == "alice").then_some(1000)
            });
            assert_eq!(id, (name == "alice").then_some(1000));
        }
        let id = look_up(&mut known, None, |_| unreachable!("no name, no lookup"));
        assert_eq!(id, None);
        assert_eq!(calls.get(), 2);
        assert_eq!(known["alice"], Some(1000));
        assert_eq!(known["gone"], None);
    }
}
