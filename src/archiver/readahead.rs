//! Read-ahead for the archiver. With a cold page cache, reading many small
//! files one after another waits for the disk once per file. Helper
//! threads ask the kernel to start reading the files the archiver will read
//! next (`posix_fadvise(WILLNEED)`, which only queues the I/O), keeping a
//! bounded window ahead of the archiver, so those waits overlap.
//! (Directories are warmed by the `prefetch` walk.)
//!
//! The archiver plans the files of a directory in the order it will read
//! them, and reports each file when it is done with it. Hints are only hints: an entry that changes or vanishes
//! meanwhile costs nothing but a wasted read.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Bytes hinted but not yet read by the archiver.
const WINDOW_BYTES: u64 = 48 << 20;
/// Most of a file hinted at once; the kernel's own read-ahead follows a
/// sequential reader through the rest.
const FILE_BYTES: u64 = 8 << 20;
/// Hint threads: they mostly wait for the disk, and a disk (or virtual
/// disk) serves several requests at once.
const THREADS: usize = 4;

/// A file the archiver will read soon, and its size.
#[derive(Debug, PartialEq, Eq)]
pub struct Ahead {
    pub path: PathBuf,
    pub bytes: u64,
}

impl Ahead {
    fn counted_bytes(&self) -> u64 {
        self.bytes.min(FILE_BYTES)
    }
}

#[derive(Default)]
struct State {
    /// Planned, not yet hinted.
    queue: VecDeque<Ahead>,
    /// Hinted, not yet reported done, with the bytes counted for each.
    window: VecDeque<(PathBuf, u64)>,
    window_bytes: u64,
    /// Hint threads waiting for work.
    idle: usize,
    stop: bool,
}

impl State {
    /// Whether an idle hint thread could hint something now. Waking one
    /// for nothing costs two context switches, once per file read.
    fn wants_a_thread(&self) -> bool {
        self.idle > 0 && !self.queue.is_empty() && self.window_bytes < WINDOW_BYTES
    }
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub struct ReadAhead {
    shared: Shared,
    threads: Vec<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic in a hint thread cannot leave the state half-updated in a
    // way that matters: everything in it is advisory.
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReadAhead {
    pub fn new() -> ReadAhead {
        let shared: Shared = Arc::default();
        let threads = (0..THREADS)
            .filter_map(|_| {
                let worker = shared.clone();
                std::thread::Builder::new()
                    .name("cairn-readahead".into())
                    .spawn(move || hint_loop(&worker))
                    .ok()
            })
            .collect();
        ReadAhead { shared, threads }
    }

    /// What the archiver will read next, in the order it will read it.
    pub fn plan(&self, items: Vec<Ahead>) {
        if items.is_empty() || self.threads.is_empty() {
            return;
        }
        let mut state = lock(&self.shared);
        state.queue.extend(items);
        if state.wants_a_thread() {
            self.shared.1.notify_one();
        }
    }

    /// The archiver is done with `path` (and with everything planned
    /// before it, read or not).
    pub fn done(&self, path: &Path) {
        let mut state = lock(&self.shared);
        if let Some(at) = state.window.iter().position(|(p, _)| p == path) {
            for (_, bytes) in state.window.drain(..=at).collect::<Vec<_>>() {
                state.window_bytes -= bytes;
            }
        } else if let Some(at) = state.queue.iter().position(|a| a.path == path) {
            // The hints fell behind: skip what the archiver already read.
            let hinted: u64 = state.window.iter().map(|(_, b)| b).sum();
            state.window.clear();
            state.window_bytes -= hinted;
            state.queue.drain(..=at);
        }
        if state.wants_a_thread() {
            self.shared.1.notify_one();
        }
    }
}

impl Default for ReadAhead {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn hint_loop(shared: &Shared) {
    loop {
        let next = {
            let mut state = lock(shared);
            loop {
                if state.stop {
                    return;
                }
                if state.window_bytes < WINDOW_BYTES {
                    if let Some(next) = state.queue.pop_front() {
                        if state.wants_a_thread() {
                            // Plenty to hint: another thread helps.
                            shared.1.notify_one();
                        }
                        break next;
                    }
                }
                state.idle += 1;
                state = shared.1.wait(state).unwrap_or_else(|e| e.into_inner());
                state.idle -= 1;
            }
        };
        let counted = next.counted_bytes();
        hint_file(&next.path, counted);
        let mut state = lock(shared);
        state.window_bytes += counted;
        state.window.push_back((next.path, counted));
    }
}

fn hint_file(path: &Path, bytes: u64) {
    use std::os::fd::AsRawFd;
    if let Ok(file) = super::open_noatime(path) {
        let len = libc::off_t::try_from(bytes).unwrap_or(libc::off_t::MAX);
        // SAFETY: the descriptor is open for the duration of the call;
        // the advice has no effect on memory safety.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, len, libc::POSIX_FADV_WILLNEED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_run_ahead_within_the_window_and_done_releases_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = Vec::new();
        for i in 0..50 {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, vec![1u8; 4096]).unwrap();
            // Counted as 8 MiB each: the window holds six of them.
            plan.push(Ahead {
                path,
                bytes: 1 << 30,
            });
        }
        let ahead = ReadAhead::new();
        ahead.plan(plan);
        let settled = |ahead: &ReadAhead| {
            for _ in 0..15_000 {
                let state = lock(&ahead.shared);
                if state.window_bytes >= WINDOW_BYTES || state.queue.is_empty() {
                    return (state.window.len(), state.queue.len());
                }
                drop(state);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            panic!("the hint threads did not fill the window");
        };
        let (hinted, waiting) = settled(&ahead);
        assert!(hinted <= 6 + THREADS, "{hinted} hinted");
        assert!(waiting > 30, "{waiting} still planned");
        // Done with the 20th file: it and all before it leave the window,
        // so the threads move on.
        ahead.done(&dir.path().join("f19"));
        let (_, waiting_after) = settled(&ahead);
        assert!(waiting_after < waiting, "{waiting_after} vs {waiting}");
        // Done with the last one: nothing is left to hint.
        ahead.done(&dir.path().join("f49"));
        assert!(lock(&ahead.shared).queue.is_empty());
        drop(ahead);
    }
}
