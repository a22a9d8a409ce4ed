//! Mirroring one repository location to another (`cairn sync`): copies the
//! objects the destination lacks, in the order that keeps the destination
//! consistent at every moment (keys and config, packs, index files,
//! snapshots), and with `delete` removes what the source no longer has, in
//! the reverse order. Objects are copied as stored bytes: both locations
//! hold the same repository, with the same keys.
//!
//! An interrupted sync resumes where it stopped: objects are immutable and
//! written atomically, so "present with the right size" means "done".
//!
//! The source may change while it is copied: a backup may finish, a prune
//! may replace index files and delete packs. Every folder is therefore
//! listed before anything is copied, in the reverse of the copy order. An
//! object refers only to objects written before it (a snapshot to index
//! files, an index file to packs), so whatever a listed object refers to
//! was there when the folders after it were listed: the destination holds a
//! consistent repository at the end, and one a backup finished during the
//! sync is left for the next sync. Should a listed object vanish before it
//! is read (a prune deleted it), the source is listed again.

use std::collections::HashMap;

use crate::backend::{self, Backend, ObjectInfo};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Object folders in the order they are copied.
const COPY_ORDER: [&str; 6] = [
    "keys/",
    "config",
    "data/",
    "index/",
    "obsolete/",
    "snapshots/",
];

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncStats {
    pub objects_copied: u64,
    pub bytes_copied: u64,
    pub objects_present: u64,
    pub objects_deleted: u64,
}

/// How often a sync lists the source again because a listed object was
/// gone when read. Only a prune deleting objects between every listing and
/// its copy could exhaust this.
const VANISHED_RETRIES: usize = 5;

fn listing(backend: &dyn Backend, prefix: &str) -> Result<HashMap<String, u64>> {
    Ok(backend
        .list(prefix)?
        .into_iter()
        .map(|ObjectInfo { name, size_bytes }| (name, size_bytes))
        .collect())
}

/// Every folder of `backend`, listed in the reverse of the copy order.
fn list_all(backend: &dyn Backend) -> Result<Vec<HashMap<String, u64>>> {
    let mut lists = Vec::with_capacity(COPY_ORDER.len());
    for prefix in COPY_ORDER.iter().rev() {
        lists.push(listing(backend, prefix)?);
    }
    lists.reverse();
    Ok(lists)
}

/// Makes `to` hold every object of `from`; with `delete`, only those.
pub fn sync(
    from: &dyn Backend,
    to: &dyn Backend,
    delete: bool,
    progress: &dyn Progress,
) -> Result<SyncStats> {
    match from.stat("config") {
        Err(e) if e.is_not_found() => {
            return Err(Error::RepositoryNotFound {
                location: from.location(),
            })
        }
        other => {
            other?;
        }
    }
    if let Ok(size) = to.stat("config") {
        let same = from.read("config")? == to.read("config")? || size == 0;
        if !same {
            return Err(Error::InvalidArgument(format!(
                "{} holds a different repository; refusing to mix them",
                to.location()
            )));
        }
    }
    to.create()?;
    let mut stats = SyncStats::default();
    let mut attempt = 0;
    let source = loop {
        let source = list_all(from)?;
        stats.objects_present = 0;
        match copy_listed(from, to, &source, &mut stats, progress)? {
            None => break source,
            Some(vanished) if attempt == VANISHED_RETRIES => return Err(vanished.into()),
            Some(_) => attempt += 1,
        }
    };
    if delete {
        for (prefix, keep) in COPY_ORDER.iter().zip(&source).rev() {
            for name in listing(to, prefix)?.into_keys() {
                if !keep.contains_key(&name) && name != "config" {
                    to.delete(&name)?;
                    stats.objects_deleted += 1;
                }
            }
        }
    }
    Ok(stats)
}

/// Copies the objects of `source` (from `list_all`) that `to` lacks, folder
/// by folder in the copy order. `Ok(Some(error))` when a listed object was
/// gone when read.
fn copy_listed(
    from: &dyn Backend,
    to: &dyn Backend,
    source: &[HashMap<String, u64>],
    stats: &mut SyncStats,
    progress: &dyn Progress,
) -> Result<Option<backend::Error>> {
    for (prefix, listed) in COPY_ORDER.iter().zip(source) {
        let have = listing(to, prefix)?;
        let mut want: Vec<(&String, &u64)> = listed.iter().collect();
        want.sort();
        for (name, size) in want {
            if have.get(name) == Some(size) {
                stats.objects_present += 1;
                continue;
            }
            let bytes = match from.read(name) {
                Ok(bytes) => bytes,
                Err(e) if e.is_not_found() => return Ok(Some(e)),
                Err(e) => return Err(e.into()),
            };
            to.write(name, &bytes)?;
            stats.objects_copied += 1;
            stats.bytes_copied += bytes.len() as u64;
            progress.bytes_read(bytes.len() as u64);
        }
    }
    Ok(None)
}
