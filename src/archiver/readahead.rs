//! Read-ahead for the archiver. With a cold page cache, reading many small
//! files one after another waits for the disk once per file. A helper
//! thread asks the kernel to start reading the files the archiver will read
//! next (`posix_fadvise(WILLNEED)`, which only queues the I/O), keeping a
//! bounded window ahead of the archiver, so those waits overlap.
//!
//! The archiver plans the files of a directory in the order it will read
//! them and reports each one when it is done with it. Hints are only hints:
//! a file that changes or vanishes meanwhile costs nothing but a wasted read.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Bytes hinted but not yet read by the archiver.
const WINDOW_BYTES: u64 = 48 << 20;
/// Most of a file hinted at once; the kernel's own read-ahead follows a
/// sequential reader through the rest.
const FILE_BYTES: u64 = 8 << 20;

#[derive(Default)]
struct State {
    /// Planned, not yet hinted.
    queue: VecDeque<(PathBuf, u64)>,
    /// Hinted, not yet reported done, with the bytes counted for each.
    window: VecDeque<(PathBuf, u64)>,
    window_bytes: u64,
    stop: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub struct ReadAhead {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic in the hint thread cannot leave the state half-updated in a
    // way that matters: everything in it is advisory.
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReadAhead {
    pub fn new() -> ReadAhead {
        let shared: Shared = Arc::default();
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-readahead".into())
            .spawn(move || hint_loop(&worker))
            .ok();
        ReadAhead { shared, thread }
    }

    /// Files the archiver will read next, in the order it will read them.
    pub fn plan(&self, files: Vec<(PathBuf, u64)>) {
        if files.is_empty() || self.thread.is_none() {
            return;
        }
        lock(&self.shared).queue.extend(files);
        self.shared.1.notify_all();
    }

    /// The archiver is done with `path` (and with everything planned
    /// before it, read or not).
    pub fn done(&self, path: &Path) {
        let mut state = lock(&self.shared);
        if let Some(at) = state.window.iter().position(|(p, _)| p == path) {
            for (_, bytes) in state.window.drain(..=at).collect::<Vec<_>>() {
                state.window_bytes -= bytes;
            }
        } else if let Some(at) = state.queue.iter().position(|(p, _)| p == path) {
            // The hints fell behind: skip what the archiver already read.
            let hinted: u64 = state.window.iter().map(|(_, b)| b).sum();
            state.window.clear();
            state.window_bytes -= hinted;
            state.queue.drain(..=at);
        }
        drop(state);
        self.shared.1.notify_all();
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
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn hint_loop(shared: &Shared) {
    loop {
        let (path, bytes) = {
            let mut state = lock(shared);
            loop {
                if state.stop {
                    return;
                }
                if state.window_bytes < WINDOW_BYTES {
                    if let Some(next) = state.queue.pop_front() {
                        break next;
                    }
                }
                state = shared.1.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let counted = bytes.min(FILE_BYTES);
        hint(&path, counted);
        let mut state = lock(shared);
        state.window_bytes += counted;
        state.window.push_back((path, counted));
    }
}

fn hint(path: &Path, bytes: u64) {
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
