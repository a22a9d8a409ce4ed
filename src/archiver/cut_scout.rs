//! Scouts that help the file chunker through a large file. While the
//! chunker reads and cuts the file from its start, scout threads work out
//! the chunk lengths of later segments, each from the segment's first byte
//! as if a chunk began there.
//!
//! A content-defined cut depends only on the bytes after the previous cut,
//! so once the chunker's own cuts land on a chunk start a scout found,
//! every later length the scout found is the one the chunker would cut:
//! from there it takes them instead of cutting (and only copies). Usually
//! the two meet within a chunk or two of the segment's start. The chunks
//! stay exactly those of one pass from the start (dedup across snapshots
//! depends on that); a segment whose scouted starts the chunker never
//! meets, such as one inside a long run of zeros, only costs the scout's
//! time.
//!
//! Scouts run at the kernel's idle priority (`SCHED_IDLE`): they only use
//! a core that the saver's workers, the chunker and the readers leave
//! idle (at the end of a large file, say, whose chunks are all known, the
//! workers wait for the chunker). How many a machine gets is
//! `file_chunker::default_scouts`: none on two cores, where such idle
//! moments became too rare to pay for a scout's memory.
//! So that a scout the scheduler starves never holds the chunker up, the
//! chunker does not wait for a segment a scout is still at: it takes the
//! segment over and the scout's work there is dropped. The board's lock is
//! held only for bookkeeping; should the scheduler stop a scout while it
//! holds it, the chunker waits at most until the workers have emptied
//! their queue and a core falls idle.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Scope;

use crate::chunker::StreamChunker;

/// The share of a file one scout takes at a time. Each costs the chunker a
/// chunk or two of cutting before it meets the scout's starts, so it is
/// many chunks long; a few of them make up a file worth scouting.
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// How far beyond the chunker's segment scouts go: enough to keep them
/// busy, near enough that what they read is still in the page cache when
/// the chunker reads it again.
const SEGMENTS_AHEAD: u64 = 4;

#[derive(Clone)]
enum Segment {
    Open,
    /// A scout is at it.
    Scouting,
    /// The chunker got there first, or the scout gave up.
    Unscouted,
    /// Chunk starts (file offsets, ascending) and the length of each.
    Scouted(Arc<[(u64, u32)]>),
}

/// The file being scouted, shared by the chunker and the scouts.
struct Board {
    state: Mutex<BoardState>,
    changed: Condvar,
    /// Bumped whenever the file changes, so scouts of an old one stop.
    generation: AtomicU64,
    /// The segment the chunker is cutting in.
    chunker_segment: AtomicU64,
}

struct BoardState {
    file: Option<Arc<File>>,
    segments: Vec<Segment>,
    closed: bool,
}

fn lock(board: &Board) -> MutexGuard<'_, BoardState> {
    board.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The chunker's handle on its scouts; dropping it stops them.
pub struct CutScouts {
    board: Arc<Board>,
}

impl CutScouts {
    /// Starts `count` scout threads in `scope`, cutting like `chunker`.
    pub fn spawn<'scope>(
        scope: &'scope Scope<'scope, '_>,
        chunker: &StreamChunker,
        count: usize,
    ) -> CutScouts {
        let board = Arc::new(Board {
            state: Mutex::new(BoardState {
                file: None,
                segments: Vec::new(),
                closed: false,
            }),
            changed: Condvar::new(),
            generation: AtomicU64::new(0),
            chunker_segment: AtomicU64::new(0),
        });
        for _ in 0..count {
            let board = Arc::clone(&board);
            let chunker = chunker.sibling();
            let _ = std::thread::Builder::new()
                .name("cairn-scout".into())
                .spawn_scoped(scope, move || {
                    run_at_idle_priority();
                    scout(&board, chunker)
                });
        }
        CutScouts { board }
    }

    /// Puts `file`, `len` bytes long, up for scouting. While the returned
    /// view lives, the chunker asks its `known` before each cut.
    pub fn start(&self, file: Arc<File>, len: u64) -> ScoutedFile<'_> {
        let mut state = lock(&self.board);
        self.board.generation.fetch_add(1, Ordering::Relaxed);
        self.board.chunker_segment.store(0, Ordering::Relaxed);
        state.file = Some(file);
        state.segments = vec![Segment::Open; len.div_ceil(SEGMENT_BYTES) as usize];
        // The chunker itself starts at the file's first byte.
        if let Some(first) = state.segments.first_mut() {
            *first = Segment::Unscouted;
        }
        drop(state);
        self.board.changed.notify_all();
        ScoutedFile {
            board: &self.board,
            current: None,
        }
    }
}

impl Drop for CutScouts {
    fn drop(&mut self) {
        let mut state = lock(&self.board);
        self.board.generation.fetch_add(1, Ordering::Relaxed);
        state.closed = true;
        state.file = None;
        drop(state);
        self.board.changed.notify_all();
    }
}

/// The chunker's view of the file being scouted; dropping it takes the file
/// off the board.
pub struct ScoutedFile<'a> {
    board: &'a Board,
    /// The segment the chunker was last in, and what is known of it
    /// (never `Open` or `Scouting`).
    current: Option<(u64, Segment)>,
}

impl ScoutedFile<'_> {
    /// The length of the chunk starting at `offset`, if a scout found it.
    pub fn known(&mut self, offset: u64) -> Option<u32> {
        let segment = offset / SEGMENT_BYTES;
        if self.current.as_ref().map(|(k, _)| *k) != Some(segment) {
            self.current = Some((segment, self.enter(segment)));
        }
        let Some((_, Segment::Scouted(starts))) = &self.current else {
            return None;
        };
        let at = starts
            .binary_search_by_key(&offset, |(start, _)| *start)
            .ok()?;
        Some(starts[at].1)
    }

    /// What is known of the segment the chunker is in, telling the scouts
    /// when it moved on. An open segment, or one a scout is still at, is
    /// the chunker's from then on: waiting for a scout could mean waiting
    /// for a thread the scheduler runs only on an idle core.
    fn enter(&self, segment: u64) -> Segment {
        let board = self.board;
        let mut state = lock(board);
        if board.chunker_segment.swap(segment, Ordering::Relaxed) != segment {
            board.changed.notify_all();
        }
        let Some(slot) = state.segments.get_mut(segment as usize) else {
            return Segment::Unscouted;
        };
        if matches!(slot, Segment::Open | Segment::Scouting) {
            *slot = Segment::Unscouted;
        }
        slot.clone()
    }
}

impl Drop for ScoutedFile<'_> {
    fn drop(&mut self) {
        let mut state = lock(self.board);
        self.board.generation.fetch_add(1, Ordering::Relaxed);
        state.file = None;
        state.segments.clear();
    }
}

/// A scout's work: the next open segment far enough ahead of the chunker.
struct Assignment {
    generation: u64,
    segment: u64,
    file: Arc<File>,
}

fn scout(board: &Board, mut chunker: StreamChunker) {
    let mut state = lock(board);
    loop {
        if state.closed {
            return;
        }
        let Some(work) = claim(board, &mut state) else {
            state = board.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        drop(state);
        let mut claimed = Claimed {
            board,
            work,
            starts: None,
        };
        claimed.starts = scout_segment(board, &mut chunker, &claimed.work);
        drop(claimed);
        state = lock(board);
    }
}

/// A segment a scout is at. It is settled when this drops, also should the
/// scout panic, unless the chunker took it over meanwhile.
struct Claimed<'a> {
    board: &'a Board,
    work: Assignment,
    starts: Option<Arc<[(u64, u32)]>>,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        let board = self.board;
        let mut state = lock(board);
        if board.generation.load(Ordering::Relaxed) == self.work.generation {
            let slot = state.segments.get_mut(self.work.segment as usize);
            if let Some(slot) = slot.filter(|slot| matches!(slot, Segment::Scouting)) {
                *slot = self
                    .starts
                    .take()
                    .map_or(Segment::Unscouted, Segment::Scouted);
            }
        }
        drop(state);
        board.changed.notify_all();
    }
}

fn claim(board: &Board, state: &mut BoardState) -> Option<Assignment> {
    let file = state.file.as_ref()?;
    // The segment after the chunker's is left to it: a scout starting there
    // would often still be at it when the chunker arrives, and keep it
    // waiting.
    let chunker_at = board.chunker_segment.load(Ordering::Relaxed);
    let first = chunker_at as usize + 2;
    let last = (chunker_at + SEGMENTS_AHEAD) as usize;
    let segment = (first..=last.min(state.segments.len().saturating_sub(1)))
        .find(|&k| matches!(state.segments[k], Segment::Open))?;
    state.segments[segment] = Segment::Scouting;
    Some(Assignment {
        generation: board.generation.load(Ordering::Relaxed),
        segment: segment as u64,
        file: Arc::clone(file),
    })
}

/// The chunk starts in one segment, from its first byte; `None` if reading
/// failed or the chunker no longer needs them. A read error is the
/// chunker's to report when it reads the same bytes.
fn scout_segment(
    board: &Board,
    chunker: &mut StreamChunker,
    work: &Assignment,
) -> Option<Arc<[(u64, u32)]>> {
    let start = work.segment * SEGMENT_BYTES;
    let mut reader = ReadAt {
        file: &work.file,
        offset: start,
        end: start + SEGMENT_BYTES + chunker.max_chunk_bytes() as u64,
    };
    let stale = || {
        board.generation.load(Ordering::Relaxed) != work.generation
            || board.chunker_segment.load(Ordering::Relaxed) >= work.segment
    };
    chunker.reset();
    let lengths = chunker
        .chunk_lengths_until(&mut reader, SEGMENT_BYTES, stale)
        .ok()?;
    if stale() {
        return None;
    }
    let mut offset = start;
    let starts = lengths
        .into_iter()
        .map(|len| {
            let at = offset;
            offset += u64::from(len);
            (at, len)
        })
        .collect();
    Some(starts)
}

/// Moves the calling thread to `SCHED_IDLE`. Where that fails (or on
/// another kernel) it stays at normal priority, which is only slower.
fn run_at_idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: changes only the calling thread's (pid 0) policy; `param`
        // outlives the call.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    }
}

/// Reads `file` from `offset` up to `end` without moving its file position,
/// which belongs to the chunker.
struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = self.end.saturating_sub(self.offset);
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..len], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::testing::small_params as params;
    use crate::chunker::Chunker;
    use std::io::Write;

    /// Random bytes with a long run of zeros across the third segment's
    /// start (where scouted and true cuts cannot meet until it ends) and a
    /// short tail segment.
    fn sample() -> Vec<u8> {
        let len = 4 * SEGMENT_BYTES as usize + 123_457;
        let mut data = vec![0u8; len];
        blake3::Hasher::new()
            .update(b"scout")
            .finalize_xof()
            .fill(&mut data);
        let seam = 2 * SEGMENT_BYTES as usize;
        data[seam - 300_000..seam + 200_000].fill(0);
        data
    }

    /// Waits until the scouts are done with every segment they may take
    /// while the chunker is in the first.
    fn wait_for_scouts(board: &Board) {
        for segment in 2..=SEGMENTS_AHEAD as usize {
            loop {
                let state = lock(board);
                match state.segments.get(segment) {
                    Some(Segment::Open | Segment::Scouting) => {}
                    _ => break,
                }
                drop(state);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    /// The chunker, taking every length the scouts found, cuts exactly
    /// where one pass from the start does, and the scouts found many.
    #[test]
    fn scouted_cuts_are_the_cuts_of_one_pass() {
        let data = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let expected: Vec<usize> = Chunker::new(&data[..], params(), 77)
            .map(|c| c.unwrap().len())
            .collect();

        let mut chunker = StreamChunker::new(params(), 77);
        let (lengths, from_scouts) = std::thread::scope(|scope| {
            let scouts = CutScouts::spawn(scope, &chunker, 2);
            let file = Arc::new(File::open(&path).unwrap());
            let mut scouted = scouts.start(Arc::clone(&file), data.len() as u64);
            wait_for_scouts(&scouts.board);
            let mut reader = &*file;
            chunker.reset();
            let (mut lengths, mut from_scouts, mut offset) = (Vec::new(), 0, 0u64);
            loop {
                let known = scouted.known(offset);
                let chunk = chunker
                    .next_chunk_known(&mut reader, |at| scouted.known(at))
                    .unwrap();
                let Some(chunk) = chunk else { break };
                from_scouts += usize::from(known.is_some());
                offset += chunk.len() as u64;
                lengths.push(chunk.len());
            }
            (lengths, from_scouts)
        });
        assert_eq!(lengths, expected);
        assert!(
            from_scouts > expected.len() / 3,
            "{from_scouts} of {} lengths came from scouts",
            expected.len()
        );
    }

    /// The chunker takes over a segment a scout is still at instead of
    /// waiting for it (a scout at idle priority may not run for a long
    /// while), the scout sees its work is stale, and its late result does
    /// not replace the chunker's claim.
    #[test]
    fn the_chunker_takes_over_a_segment_a_scout_is_still_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large");
        std::fs::write(&path, b"").unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let chunker = StreamChunker::new(params(), 3);
        std::thread::scope(|scope| {
            let scouts = CutScouts::spawn(scope, &chunker, 0);
            let board = &scouts.board;
            let mut scouted = scouts.start(file, 5 * SEGMENT_BYTES);
            let work = claim(board, &mut lock(board)).unwrap();
            assert_eq!(work.segment, 2);
            std::thread::scope(|inner| {
                let (done_tx, done_rx) = std::sync::mpsc::channel();
                let chunker = inner.spawn(move || {
                    let _ = done_tx.send(scouted.known(2 * SEGMENT_BYTES));
                    scouted
                });
                let known = done_rx.recv_timeout(std::time::Duration::from_secs(5));
                let stale = board.chunker_segment.load(Ordering::Relaxed) >= work.segment;
                // Settling the segment also wakes a chunker that waits.
                drop(Claimed {
                    board,
                    work,
                    starts: Some(Arc::from([(2 * SEGMENT_BYTES, 1000)])),
                });
                assert_eq!(known, Ok(None), "the chunker waited for the scout");
                assert!(stale, "the scout was not told to stop");
                let scouted = chunker.join().unwrap();
                assert!(matches!(lock(board).segments[2], Segment::Unscouted));
                drop(scouted);
            });
        });
    }

    /// A file that shrinks after it was scouted is cut from what is there.
    #[test]
    fn a_file_shorter_than_scouted_is_cut_from_what_is_there() {
        let data = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large");
        std::fs::write(&path, &data).unwrap();
        let short = 3 * SEGMENT_BYTES as usize + 5_000;
        let expected: Vec<usize> = Chunker::new(&data[..short], params(), 5)
            .map(|c| c.unwrap().len())
            .collect();

        let mut chunker = StreamChunker::new(params(), 5);
        let lengths = std::thread::scope(|scope| {
            let scouts = CutScouts::spawn(scope, &chunker, 1);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path);
            let file = Arc::new(file.unwrap());
            let mut scouted = scouts.start(Arc::clone(&file), data.len() as u64);
            wait_for_scouts(&scouts.board);
            file.set_len(short as u64).unwrap();
            let mut reader = &*file;
            chunker.reset();
            let mut lengths = Vec::new();
            while let Some(chunk) = chunker
                .next_chunk_known(&mut reader, |at| scouted.known(at))
                .unwrap()
            {
                lengths.push(chunk.len());
            }
            lengths
        });
        assert_eq!(lengths, expected);
    }
}
