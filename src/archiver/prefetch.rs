//! Walks the source tree ahead of the archiver, listing each directory and
//! `lstat`ing its entries, so their inodes are cached by the time the
//! archiver gets there. With a cold cache every inode is a disk read, and a
//! snapshot where little changed is mostly those reads. The walk goes in
//! the archiver's order (sorted names, depth first) and stays at most
//! `DIRS_AHEAD` directories ahead: the archiver reports each directory it
//! enters. Everything here is a hint; an error just ends that branch.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Scope;
use std::time::Duration;

use crate::walker::Selection;

/// Directories listed ahead of the archiver: enough to keep the disk busy,
/// few enough that the inodes are still cached when the archiver arrives.
const DIRS_AHEAD: usize = 64;

/// How long the walker sleeps when it is far enough ahead.
const PAUSE: Duration = Duration::from_millis(2);

/// The archiver's handle; dropping it stops the walk.
pub(super) struct Prefetch {
    entered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

struct Walk<'env> {
    selection: &'env Selection,
    root_device: u64,
    entered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    listed: usize,
}

impl Prefetch {
    /// Starts walking `sources` (in the archiver's order) in `scope`.
    pub(super) fn spawn<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        mut sources: Vec<PathBuf>,
        selection: &'env Selection,
        root_device: u64,
    ) -> Prefetch {
        let entered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut walk = Walk {
            selection,
            root_device,
            entered: Arc::clone(&entered),
            stop: Arc::clone(&stop),
            listed: 0,
        };
        sources.sort();
        let spawned = std::thread::Builder::new()
            .name("cairn-prefetch".into())
            .spawn_scoped(scope, move || {
                for source in sources {
                    walk.dir(&source);
                }
            });
        // Without the thread the snapshot is only slower.
        drop(spawned);
        Prefetch { entered, stop }
    }

    /// The archiver entered a directory.
    pub(super) fn entered(&self) {
        self.entered.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Walk<'_> {
    /// Lists `dir`, then walks its subdirectories; `false` once stopped.
    fn dir(&mut self, dir: &Path) -> bool {
        while self.listed >= self.entered.load(Ordering::Relaxed) + DIRS_AHEAD {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(PAUSE);
        }
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        self.listed += 1;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return true;
        };
        let mut subdirs: Vec<PathBuf> = entries
            .flatten()
            .filter_map(|entry| {
                // The lstat is the point: it brings the inode into the cache.
                let meta = entry.metadata().ok()?;
                let path = entry.path();
                self.enters(&path, &meta).then_some(path)
            })
            .collect();
        subdirs.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        subdirs.iter().all(|sub| self.dir(sub))
    }

    /// Whether the archiver will enter this entry as a directory: the same
    /// selection, and never another (perhaps network) file system under
    /// --one-file-system.
    fn enters(&self, path: &Path, meta: &Metadata) -> bool {
        meta.is_dir()
            && !self.selection.is_other_file_system(meta, self.root_device)
            && self.selection.admit(path, meta, false).is_some()
    }
}
