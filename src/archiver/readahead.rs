//! Read-ahead for the archiver. With a cold page cache, reading many small
//! files one after another waits for the disk once per file. Helper threads
//! open the files the archiver will read next, in its order and within a
//! bounded window, and ask the kernel to read them
//! (`posix_fadvise(WILLNEED)`, which only queues the I/O), so those waits
//! overlap. The archiver takes each file from here already open.
//!
//! On this project's 2-core VM a system call costs about 2 µs, and a small
//! file took eight of them (two opens and closes, the hint, three reads);
//! now it takes five. Reading small files whole on the helpers instead cost
//! more than it saved: a read that waits for the disk puts its thread to
//! sleep and wakes it, once per file, where the hint does not wait.
//! (Directories are warmed by the `prefetch` walk.)
//!
//! The archiver plans the files of a directory in the order it will read
//! them and takes each from here when it gets to it. A file that could not
//! be opened here the archiver opens itself, and reports the error from
//! there.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Bytes hinted but not yet taken (a large file counts `FILE_BYTES` at
/// most, what is hinted of it).
const WINDOW_BYTES: u64 = 48 << 20;
/// Most of a file hinted at once; the kernel's own read-ahead follows a
/// sequential reader through the rest.
const FILE_BYTES: u64 = 8 << 20;
/// Files held open for the archiver: enough to keep a few milliseconds of
/// small files in flight, and at most an eighth of the process's limit on
/// descriptors (which the binary raises; the index keeps up to 256 open).
const OPEN_FILES: usize = 128;

/// Helper threads: they mostly wait for the disk, and a disk (or virtual
/// disk) serves several requests at once.
const THREADS: usize = 4;

/// `OPEN_FILES`, or fewer under a low limit on descriptors.
fn open_files_allowed() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed, which lives for the
    // duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return OPEN_FILES;
    }
    usize::try_from(limit.rlim_cur / 8).map_or(OPEN_FILES, |n| n.clamp(4, OPEN_FILES))
}

/// A file the archiver will read soon, and its size when listed.
#[derive(Debug, PartialEq, Eq)]
pub struct Ahead {
    pub path: PathBuf,
    pub bytes: u64,
}

enum SlotState {
    Queued,
    /// A helper thread is opening and hinting it.
    Busy,
    /// `None`: it could not be opened; the archiver tries itself.
    Ready(Option<File>),
}

struct Slot {
    /// Numbers the slots in plan order, so that a helper finds its slot
    /// again after the archiver took those before it.
    seq: u64,
    ahead: Ahead,
    state: SlotState,
}

#[derive(Default)]
struct State {
    /// Planned and not yet taken, in plan order; the started ones (busy or
    /// ready) come first.
    slots: VecDeque<Slot>,
    started: usize,
    next_seq: u64,
    window_bytes: u64,
    /// Helper threads waiting for work.
    idle: usize,
    /// The archiver waits for a busy slot (a notification is a system
    /// call even when nobody waits).
    archiver_waits: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Helpers wait here for work or room.
    work: Condvar,
    /// The archiver waits here for a file a helper is opening.
    ready: Condvar,
    open_files: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a helper cannot leave the state inconsistent in a way
        // that matters: a busy slot it held is marked failed (`BusyGuard`).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the next queued slot may start now: it fits the window, or
    /// nothing is started at all.
    fn may_start(&self, state: &State) -> bool {
        let Some(slot) = state.slots.get(state.started) else {
            return false;
        };
        state.started == 0
            || state.started < self.open_files
                && state.window_bytes + counted_bytes(slot.ahead.bytes) <= WINDOW_BYTES
    }

    /// Whether to wake an idle helper: it could start something, and the
    /// window has drained to three quarters. A woken helper fills it up;
    /// waking one for every file taken cost two context switches a file.
    fn wants_a_helper(&self, state: &State) -> bool {
        state.idle > 0
            && self.may_start(state)
            && state.started <= self.open_files / 4 * 3
            && state.window_bytes <= WINDOW_BYTES / 4 * 3
    }

    /// Removes the front slot, giving back what it held of the budgets.
    fn pop_front(&self, state: &mut State) -> Option<Slot> {
        let slot = state.slots.pop_front()?;
        if !matches!(slot.state, SlotState::Queued) {
            state.window_bytes -= counted_bytes(slot.ahead.bytes);
            state.started -= 1;
        }
        Some(slot)
    }

    /// Records a file a helper opened, unless the archiver passed it
    /// meanwhile (then it is closed).
    fn finish(&self, seq: u64, opened: Option<File>) {
        let mut state = self.lock();
        let Some(front) = state.slots.front().map(|s| s.seq) else {
            return;
        };
        let Some(at) = seq.checked_sub(front).and_then(|i| usize::try_from(i).ok()) else {
            return;
        };
        if let Some(slot) = state.slots.get_mut(at).filter(|s| s.seq == seq) {
            slot.state = SlotState::Ready(opened);
            if state.archiver_waits {
                self.ready.notify_all();
            }
        }
    }
}

pub struct ReadAhead {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ReadAhead {
    pub fn new() -> ReadAhead {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            ready: Condvar::new(),
            open_files: open_files_allowed(),
        });
        let threads = (0..THREADS)
            .filter_map(|_| {
                let helper = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("cairn-readahead".into())
                    .spawn(move || helper_loop(&helper))
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
        let mut state = self.shared.lock();
        for ahead in items {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.slots.push_back(Slot {
                seq,
                ahead,
                state: SlotState::Queued,
            });
        }
        if self.shared.wants_a_helper(&state) {
            self.shared.work.notify_one();
        }
    }

    /// The archiver is at `path`: takes it from the window, open, or
    /// `None` when it was not planned, not started or could not be opened
    /// (the archiver opens it itself). Everything planned before it is
    /// dropped. Waits when a helper is opening it right now.
    pub fn take(&self, path: &Path) -> Option<File> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let at = state.slots.iter().position(|s| s.ahead.path == path)?;
        for _ in 0..at {
            shared.pop_front(&mut state);
        }
        while matches!(state.slots.front()?.state, SlotState::Busy) {
            state.archiver_waits = true;
            state = shared.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.archiver_waits = false;
        }
        let slot = shared.pop_front(&mut state)?;
        if shared.wants_a_helper(&state) {
            shared.work.notify_one();
        }
        match slot.state {
            SlotState::Ready(opened) => opened,
            SlotState::Queued | SlotState::Busy => None,
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Marks a busy slot failed should its helper panic, so that the archiver
/// does not wait for it forever.
struct BusyGuard<'a> {
    shared: &'a Shared,
    seq: Option<u64>,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq {
            self.shared.finish(seq, None);
        }
    }
}

fn helper_loop(shared: &Shared) {
    loop {
        let (seq, path, bytes) = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                if shared.may_start(&state) {
                    break;
                }
                state.idle += 1;
                state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
                state.idle -= 1;
            }
            let at = state.started;
            state.started += 1;
            let slot = &mut state.slots[at];
            slot.state = SlotState::Busy;
            let (seq, path, bytes) = (slot.seq, slot.ahead.path.clone(), slot.ahead.bytes);
            state.window_bytes += counted_bytes(bytes);
            if shared.wants_a_helper(&state) {
                // Plenty to prepare: another helper joins in.
                shared.work.notify_one();
            }
            (seq, path, bytes)
        };
        let mut guard = BusyGuard {
            shared,
            seq: Some(seq),
        };
        let opened = open_and_hint(&path, bytes);
        guard.seq = None;
        shared.finish(seq, opened);
    }
}

fn counted_bytes(bytes: u64) -> u64 {
    bytes.min(FILE_BYTES)
}

/// Opens `path` and asks the kernel to read the start of it.
fn open_and_hint(path: &Path, bytes: u64) -> Option<File> {
    let file = super::open_noatime(path).ok()?;
    hint(&file, 0, counted_bytes(bytes));
    Some(file)
}

/// Asks the kernel to read `len` bytes of `file` from `offset` into its
/// cache, without waiting for them.
fn hint(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(offset).unwrap_or(libc::off_t::MAX);
    let len = libc::off_t::try_from(len).unwrap_or(libc::off_t::MAX);
    // SAFETY: the descriptor is open for the duration of the call; the
    // advice has no effect on memory safety.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED);
    }
}

/// How far ahead of a large file's reader the kernel is asked to read,
/// and in steps of how much. The kernel's own read-ahead grows to 128 KiB
/// by default: a reader that cuts what it reads then waits for the disk
/// every few hundred KiB, where with this it finds its bytes cached.
const STREAM_AHEAD: u64 = 32 << 20;
const STREAM_STEP: u64 = 8 << 20;

/// Reads a file from where it stands, asking the kernel to read up to
/// `STREAM_AHEAD` bytes ahead of it (a large file, read through once).
pub(super) struct HintedReader<'a> {
    file: &'a File,
    position: u64,
    hinted_to: u64,
}

impl<'a> HintedReader<'a> {
    /// `position`: where the file's offset stands (bytes already read).
    pub(super) fn new(file: &'a File, position: u64) -> HintedReader<'a> {
        HintedReader {
            file,
            position,
            hinted_to: position,
        }
    }
}

impl std::io::Read for HintedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.hinted_to < self.position + STREAM_AHEAD {
            hint(self.file, self.hinted_to, STREAM_STEP);
            self.hinted_to += STREAM_STEP;
        }
        let read = (&mut &*self.file).read(buf)?;
        self.position += read as u64;
        Ok(read)
    }
}

/// Reads a file listed `listed` bytes long from its start into `buf`
/// (cleared first), up to one byte more than `small_bytes`, so the caller
/// can tell it grew past them. The buffer is sized for the listed length,
/// so an unchanged file takes two reads: its bytes, and the end.
pub(super) fn read_head(
    file: &mut File,
    listed: u64,
    small_bytes: u64,
    mut buf: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let limit = small_bytes.saturating_add(1);
    let first = usize::try_from(listed.min(small_bytes) + 1).unwrap_or(usize::MAX);
    buf.clear();
    buf.resize(first, 0);
    let mut filled = 0;
    while filled < first {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    if filled == first && (filled as u64) < limit {
        // Longer than listed: read on, still bounded.
        file.take(limit - filled as u64).read_to_end(&mut buf)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn state_of(ahead: &ReadAhead) -> MutexGuard<'_, State> {
        ahead.shared.lock()
    }

    /// Waits until the helpers are all asleep, none to be woken; returns
    /// how many slots are started and how many wait.
    fn settled(ahead: &ReadAhead) -> (usize, usize) {
        for _ in 0..15_000 {
            let state = state_of(ahead);
            let busy = state
                .slots
                .iter()
                .any(|s| matches!(s.state, SlotState::Busy));
            if !busy && state.idle == ahead.threads.len() && !ahead.shared.wants_a_helper(&state) {
                return (state.started, state.slots.len() - state.started);
            }
            drop(state);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("the helpers did not settle");
    }

    fn plan_files(dir: &Path, count: usize, listed: u64) -> Vec<Ahead> {
        (0..count)
            .map(|i| {
                let path = dir.join(format!("f{i}"));
                std::fs::write(&path, format!("file {i}")).unwrap();
                Ahead {
                    path,
                    bytes: listed,
                }
            })
            .collect()
    }

    fn read_all(mut file: File) -> String {
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn files_are_opened_ahead_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = ReadAhead::new();
        // Listed far larger than they are: counted as 8 MiB each, so the
        // window holds six of them.
        ahead.plan(plan_files(dir.path(), 50, 1 << 30));
        assert_eq!(settled(&ahead), (6, 44));
        // Taking the 20th drops it and all before it, so the helpers move
        // on; it was not started, so the archiver opens it itself.
        assert!(ahead.take(&dir.path().join("f19")).is_none());
        assert_eq!(settled(&ahead), (6, 24));
        let file = ahead.take(&dir.path().join("f20")).expect("opened ahead");
        assert_eq!(read_all(file), "file 20");
        // A path never planned leaves the window alone.
        assert!(ahead.take(&dir.path().join("elsewhere")).is_none());
        assert_eq!(state_of(&ahead).slots.len(), 29);
        // The last one: nothing is left, and nothing is counted.
        let _ = ahead.take(&dir.path().join("f49"));
        let state = state_of(&ahead);
        assert!(state.slots.is_empty());
        assert_eq!((state.started, state.window_bytes), (0, 0));
    }

    #[test]
    fn open_files_are_bounded_however_small() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = ReadAhead::new();
        let open = ahead.shared.open_files;
        assert!((4..=OPEN_FILES).contains(&open), "{open}");
        ahead.plan(plan_files(dir.path(), open + 40, 10));
        assert_eq!(settled(&ahead), (open, 40));
        let mut fewest_started = open;
        for i in 0..open + 40 {
            let file = ahead.take(&dir.path().join(format!("f{i}")));
            assert_eq!(read_all(file.expect("opened ahead")), format!("file {i}"));
            let (started, waiting) = settled(&ahead);
            if waiting > 0 {
                fewest_started = fewest_started.min(started);
            }
        }
        // The helpers were woken once a quarter had drained (by the take
        // that got it there), not for every file taken.
        assert_eq!(fewest_started, open / 4 * 3 + 1, "{open} open at most");
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_left_to_the_archiver() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let ahead = ReadAhead::new();
        ahead.plan(vec![Ahead {
            path: gone.clone(),
            bytes: 10,
        }]);
        settled(&ahead);
        assert!(ahead.take(&gone).is_none());
    }

    /// The file chunker reads a file's head, then the rest through the
    /// hints: the bytes are the file's, and the hints run ahead of them.
    #[test]
    fn a_hinted_reader_reads_the_file_on_from_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut file = File::open(&path).unwrap();
        let head = read_head(&mut file, 10, 1000, Vec::new()).unwrap();
        let mut reader = HintedReader::new(&file, head.len() as u64);
        let mut all = Vec::new();
        std::io::Cursor::new(head)
            .chain(&mut reader)
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, bytes);
        assert_eq!(reader.position, 100_000);
        assert!(reader.hinted_to >= reader.position + STREAM_AHEAD - STREAM_STEP);
    }

    #[test]
    fn read_head_reads_what_the_file_holds_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let read = |listed, small| {
            let mut file = File::open(&path).unwrap();
            let head = read_head(&mut file, listed, small, b"stale".to_vec()).unwrap();
            (head, read_all(file))
        };
        // As listed, shrunk, grown within the limit, grown past it (the
        // rest stays to be read).
        assert_eq!(read(10, 100), (b"0123456789".to_vec(), String::new()));
        assert_eq!(read(20, 100), (b"0123456789".to_vec(), String::new()));
        assert_eq!(read(3, 100), (b"0123456789".to_vec(), String::new()));
        assert_eq!(read(3, 5), (b"012345".to_vec(), "6789".into()));
        assert_eq!(read(0, 0), (b"0".to_vec(), "123456789".into()));
    }
}
