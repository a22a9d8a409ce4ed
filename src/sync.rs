//! Mirroring one repository location to another (`cairn sync`): copies the
//! objects the destination lacks, in the order that keeps the destination
//! consistent at every moment (keys and config, packs, index files,
//! snapshots), and with `delete` removes what the source no longer has, in
//! the reverse order. Objects are copied as stored bytes: both locations
//! hold the same repository, with the same keys.
//!
//! An interrupted sync resumes where it stopped: objects are immutable and
//! written atomically, so "present with the right size" means "done".

use std::collections::HashMap;

use crate::backend::{Backend, ObjectInfo};
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

fn listing(backend: &dyn Backend, prefix: &str) -> Result<HashMap<String, u64>> {
    Ok(backend
        .list(prefix)?
        .into_iter()
        .map(|ObjectInfo { name, size_bytes }| (name, size_bytes))
        .collect())
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
    for prefix in COPY_ORDER {
        let have = listing(to, prefix)?;
        let mut want: Vec<(String, u64)> = listing(from, prefix)?.into_iter().collect();
        want.sort();
        for (name, size) in want {
            if have.get(&name) == Some(&size) {
                stats.objects_present += 1;
                continue;
            }
            let bytes = from.read(&name)?;
            to.write(&name, &bytes)?;
            stats.objects_copied += 1;
            stats.bytes_copied += bytes.len() as u64;
            progress.bytes_read(bytes.len() as u64);
        }
    }
    if delete {
        for prefix in COPY_ORDER.iter().rev() {
            let keep = listing(from, prefix)?;
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
