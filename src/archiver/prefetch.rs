//! Walks the source tree ahead of the archiver, listing each directory and
//! `lstat`ing its entries, so their inodes are cached by the time the
//! archiver gets there. With a cold cache every inode is a disk read, and a
//! snapshot where little changed is mostly those reads. The walk goes in
//! the archiver's order (sorted names, depth first) and stays at most
//! `DIRS_AHEAD` directories ahead: the archiver reports each directory it
//! enters. The walking thread `lstat`s only directories (it must know
//! which to enter); the other entries go to a few threads in batches, so
//! several inode reads are in flight at once. Everything here is a hint;
//! an error just ends that branch.
//!
//! The walk needs no repository, so the command line starts it before the
//! repository is opened (`warm_up`): the first directories are read while
//! the password's key is derived. Its threads are not scoped for that
//! reason; they end soon after the handle is dropped.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::walker::{self, Selection};

/// Directories listed ahead of the archiver: enough to keep the disk busy
/// (also while the key is derived, about 150 ms, before the archiver
/// starts), few enough that the inodes are surely still cached when the
/// archiver arrives (a few hundred KiB of kernel memory per directory of
/// a hundred entries).
const DIRS_AHEAD: usize = 256;

/// How long the walker sleeps when it is far enough ahead.
const PAUSE: Duration = Duration::from_millis(2);

/// Threads `lstat`ing files for the walker. Inode reads wait on the disk,
/// not the CPU: on the 2-core VM, a cold `find` with four in parallel took
/// 0.20 s against 0.32 s for one.
const STAT_THREADS: usize = 3;

/// Directories' worth of files queued for the stat threads.
const QUEUED_BATCHES: usize = 2 * STAT_THREADS;

/// The archiver's handle; dropping it stops the walk.
pub struct Prefetch {
    entered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

struct Walk {
    selection: Selection,
    root_device: u64,
    entered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    listed: usize,
    /// Files to `lstat`, a directory's at a time; `None` without threads.
    stat_queue: Option<crossbeam_channel::Sender<Vec<PathBuf>>>,
}

/// Starts walking the sources of a snapshot of `paths` with `selection`
/// (pass the handle on in `SnapshotOptions::prefetch`). Paths that do not
/// resolve are left for the snapshot to report.
pub fn warm_up(paths: &[PathBuf], selection: &Selection) -> Prefetch {
    let (sources, root_device) = walker::resolved_sources(paths);
    Prefetch::start(sources, selection.clone(), root_device)
}

impl Prefetch {
    /// Starts walking `sources` (in the archiver's order).
    pub(super) fn start(
        mut sources: Vec<PathBuf>,
        selection: Selection,
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
            stat_queue: spawn_stat_threads(&stop),
        };
        sources.sort();
        let spawned = std::thread::Builder::new()
            .name("cairn-prefetch".into())
            .spawn(move || {
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

/// Starts the threads that `lstat` what the walker sends them; they end
/// when the walker drops its sender.
fn spawn_stat_threads(stop: &Arc<AtomicBool>) -> Option<crossbeam_channel::Sender<Vec<PathBuf>>> {
    let (queue, batches) = crossbeam_channel::bounded::<Vec<PathBuf>>(QUEUED_BATCHES);
    let mut spawned = 0;
    for _ in 0..STAT_THREADS {
        let batches = batches.clone();
        let stop = Arc::clone(stop);
        let thread = std::thread::Builder::new()
            .name("cairn-prefetch".into())
            .spawn(move || {
                for batch in batches {
                    for path in batch {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let _ = std::fs::symlink_metadata(path);
                    }
                }
            });
        spawned += usize::from(thread.is_ok());
    }
    (spawned > 0).then_some(queue)
}

impl Walk {
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
        let mut subdirs = Vec::new();
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            // The directory entry tells a directory apart without reading
            // its inode on most file systems; where it cannot, lstat here.
            let maybe_dir = entry.file_type().map_or(true, |kind| kind.is_dir());
            if !maybe_dir && self.stat_queue.is_some() {
                files.push(path);
                continue;
            }
            // The lstat is the point: it brings the inode into the cache.
            if let Ok(meta) = entry.metadata() {
                if self.enters(&path, &meta) {
                    subdirs.push(path);
                }
            }
        }
        if let Some(queue) = self.stat_queue.as_ref().filter(|_| !files.is_empty()) {
            if queue.send(files).is_err() {
                self.stat_queue = None;
            }
        }
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
