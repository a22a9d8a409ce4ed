//! Cuts files larger than one chunk on a thread of its own, so the archiver
//! walks on, and reads small files whole, while a large file is read and
//! cut. Chunks go to the saver's workers, which hash, dedup and seal them.
//! What the archiver gets back is a `PendingFile`: the chunk lengths (or
//! the error that stopped the reading) once the file is cut, and the chunk
//! ids once the workers have hashed them. On a machine with cores to
//! spare, scouts (`cut_scout`) work out the cuts of a large file's later
//! parts meanwhile, so the chunker thread mostly copies. Of a file that
//! changed since the parent snapshot it expects the parent's chunks
//! (`parent_chunks`), and hashes them itself to check.

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Scope;

use super::cut_scout::{CutScouts, SEGMENT_BYTES};
use super::parent_chunks::ParentChunks;
use super::readahead::HintedReader;
use crate::chunker::{is_all_zero, StreamChunker};
use crate::error::Result;
use crate::id::BlobId;
use crate::progress::Progress;
use crate::repository::saver::PendingIds;
use crate::repository::BlobSaver;
use crate::tree::ContentRef;

/// Files queued for the chunker thread beyond the one it is cutting: enough
/// for the walk to go on past a directory of large files (with two, in the
/// benchmark's mutated snapshot, the walk waited 0.2 s on the third log file
/// while the chunker cut an archive, and the chunker idled later while the
/// walk read small files: 1.95 s against 1.70 s with eight), few enough
/// that the directories waiting for them (and their open descriptors) stay
/// few.
const QUEUED_FILES: usize = 8;

/// Scout threads at most, whatever the core count: each holds a window as
/// large as the chunker's.
const MAX_SCOUTS: usize = 3;

/// How many scouts help the chunker by default: one per two cores beyond
/// the first two, none on two. Scouts only use idle cores (`cut_scout`),
/// and on two cores there are too few of those: once the chunker skipped
/// runs of zeros and asked the kernel to read ahead of it, one scout no
/// longer made the benchmark corpus's first snapshot faster (2.88–3.22 s
/// against 2.90–3.09 s without, 4 alternating rounds; its disk image, logs
/// and archive alone the same), and it cost 5% more CPU time and about
/// 12 MiB more peak memory (its window, and its reads of what the chunker
/// reads again). It did pay before those two changes (2.65–2.75 s against
/// 2.95–3.27 s), and still does where a core idles beside the chunker: on
/// a file in the page cache, criterion's file chunker cuts 4.09 GiB/s with
/// one, 2.81 without.
pub(super) fn default_scouts() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).saturating_sub(1).min(MAX_SCOUTS)
}

/// Files shorter than this are cut by the chunker alone: scouts leave it the
/// first two segments.
const MIN_SCOUTED_BYTES: u64 = 3 * SEGMENT_BYTES;

/// Outer error: the repository failed (abort the snapshot). Inner error:
/// the file could not be read (report it and skip it).
type Cut<T = Vec<u32>> = Result<std::io::Result<T>>;

/// A file read for the snapshot whose chunk lengths and ids are still being
/// worked out.
pub(super) struct PendingFile {
    ids: Arc<PendingIds>,
    lengths: Mutex<Option<Cut>>,
    cut: Condvar,
}

impl PendingFile {
    fn new(ids: Arc<PendingIds>) -> Arc<PendingFile> {
        PendingFile::with_lengths(ids, None)
    }

    fn with_lengths(ids: Arc<PendingIds>, lengths: Option<Cut>) -> Arc<PendingFile> {
        Arc::new(PendingFile {
            ids,
            lengths: Mutex::new(lengths),
            cut: Condvar::new(),
        })
    }

    /// A file whose chunks were all handed to the saver already (nobody
    /// can wait for it yet: no notification, which would be a system call
    /// per small file).
    pub(super) fn cut(ids: Arc<PendingIds>, lengths: Vec<u32>) -> Arc<PendingFile> {
        PendingFile::with_lengths(ids, Some(Ok(Ok(lengths))))
    }

    fn finish(&self, cut: Cut) {
        *self.lengths.lock().unwrap_or_else(|e| e.into_inner()) = Some(cut);
        self.cut.notify_all();
    }

    /// Whether `wait` would return at once.
    pub(super) fn is_ready(&self) -> bool {
        let cut = self.lengths.lock().unwrap_or_else(|e| e.into_inner());
        cut.is_some() && self.ids.is_complete()
    }

    /// Waits until the file is cut and its chunks hashed.
    pub(super) fn wait(&self) -> Result<std::io::Result<Vec<ContentRef>>> {
        let mut slot = self.lengths.lock().unwrap_or_else(|e| e.into_inner());
        let cut = loop {
            if let Some(cut) = slot.take() {
                break cut;
            }
            slot = self.cut.wait(slot).unwrap_or_else(|e| e.into_inner());
        };
        drop(slot);
        let lengths = match cut? {
            Ok(lengths) => lengths,
            Err(e) => return Ok(Err(e)),
        };
        let ids: Vec<BlobId> = self.ids.wait();
        Ok(Ok(ids
            .into_iter()
            .zip(lengths)
            .map(|(id, len)| ContentRef(id, len))
            .collect()))
    }
}

struct ChunkJob {
    file: Option<File>,
    /// The bytes already read from the start of `file` (usually none).
    head: Vec<u8>,
    /// The chunks of the parent snapshot's version of the file.
    parent: Option<Vec<ContentRef>>,
    pending: Arc<PendingFile>,
    answered: bool,
}

impl ChunkJob {
    fn answer(&mut self, cut: Cut) {
        self.pending.finish(cut);
        self.answered = true;
    }
}

impl Drop for ChunkJob {
    /// A job dropped unanswered (its thread panicked, or stopped with jobs
    /// queued) still answers, so the archiver never waits forever.
    fn drop(&mut self) {
        if !self.answered {
            let stopped = std::io::Error::other("the file chunker stopped before this file");
            self.pending.finish(Ok(Err(stopped)));
        }
    }
}

/// The handle the archiver keeps; dropping it stops the thread after the
/// file it is cutting.
pub(super) struct FileChunker {
    jobs: Option<SyncSender<ChunkJob>>,
    cancelled: Arc<AtomicBool>,
}

impl FileChunker {
    /// Starts the chunker thread, and `scouts` scout threads, in `scope`;
    /// they end when the handle is dropped.
    pub(super) fn spawn<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        saver: &'env BlobSaver,
        mut chunker: StreamChunker,
        scouts: usize,
        progress: &'env dyn Progress,
    ) -> FileChunker {
        let (jobs, queue) = sync_channel::<ChunkJob>(QUEUED_FILES);
        let cancelled = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&cancelled);
        let scouts = match scouts.min(MAX_SCOUTS) {
            0 => None,
            count => Some(CutScouts::spawn(scope, &chunker, count)),
        };
        scope.spawn(move || {
            let cutter = Cutter {
                saver,
                progress,
                stop: &stop,
                scouts: scouts.as_ref(),
                zero_chunk: Cell::new(None),
            };
            for mut job in queue {
                let cut = cutter.cut_file(&mut chunker, &mut job);
                job.answer(cut);
            }
        });
        FileChunker {
            jobs: Some(jobs),
            cancelled,
        }
    }

    /// Queues `file`, whose first `head` bytes were read already, for
    /// cutting; `parent` are the chunks of the parent snapshot's version.
    /// Blocks while the queue is full.
    pub(super) fn chunk(
        &self,
        file: File,
        head: Vec<u8>,
        parent: Option<Vec<ContentRef>>,
    ) -> Arc<PendingFile> {
        let pending = PendingFile::new(PendingIds::new());
        let job = ChunkJob {
            file: Some(file),
            head,
            parent,
            pending: Arc::clone(&pending),
            answered: false,
        };
        if let Some(jobs) = &self.jobs {
            // A job that cannot be sent (the thread died, which the scope
            // reports on exit) answers as it is dropped.
            let _ = jobs.send(job);
        }
        pending
    }
}

impl Drop for FileChunker {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
        drop(self.jobs.take());
    }
}

/// What the chunker thread cuts files with.
struct Cutter<'a> {
    saver: &'a BlobSaver,
    progress: &'a dyn Progress,
    stop: &'a AtomicBool,
    scouts: Option<&'a CutScouts>,
    /// The id of the last all-zero chunk and its length: runs of zeros are
    /// cut into chunks of one length, which need neither hashing again nor
    /// copying for the workers (they are stored once).
    zero_chunk: Cell<Option<(usize, BlobId)>>,
}

impl Cutter<'_> {
    fn cut_file(&self, chunker: &mut StreamChunker, job: &mut ChunkJob) -> Cut {
        let Some(file) = job.file.take() else {
            return Ok(Err(std::io::Error::other("the file was handed over twice")));
        };
        let file = Arc::new(file);
        let head = std::mem::take(&mut job.head);
        let mut scouted = self.scouts.filter(|_| head.is_empty()).and_then(|scouts| {
            let len = file.metadata().ok()?.len();
            (len >= MIN_SCOUTED_BYTES).then(|| scouts.start(Arc::clone(&file), len))
        });
        let read = head.len() as u64;
        let mut stream = std::io::Cursor::new(head).chain(HintedReader::new(&file, read));
        let mut parent = job.parent.take().and_then(ParentChunks::new);
        chunker.reset();
        let mut lengths = Vec::new();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "snapshot stopped",
                )));
            }
            if let Some(parent) = parent.as_mut() {
                match self.take_expected(chunker, &mut stream, parent, job)? {
                    Ok(Some(len)) => {
                        lengths.push(len);
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => return Ok(Err(e)),
                }
            }
            let known = |offset| scouted.as_mut()?.known(offset);
            let chunk = match chunker.next_chunk_known(&mut stream, known) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Ok(Err(e)),
            };
            self.progress.bytes_read(chunk.len() as u64);
            lengths.push(chunk.len() as u32);
            match parent.as_mut().filter(|p| p.could_be(chunk.len())) {
                Some(parent) => {
                    let id = self.saver.blob_id(chunk);
                    if parent.cut(&id, chunk.len()) {
                        self.saver.reuse_data(id, &job.pending.ids)?;
                    } else {
                        self.saver.save_data_hashed(id, chunk, &job.pending.ids)?;
                    }
                }
                None => match self.zero_chunk_id(chunk) {
                    Some(id) => self.saver.save_data_hashed(id, chunk, &job.pending.ids)?,
                    None => {
                        let mut data = self.saver.buffer();
                        data.extend_from_slice(chunk);
                        self.saver.save_data_later(data, &job.pending.ids)?;
                    }
                },
            }
        }
        let (head, _) = stream.into_inner();
        self.saver.recycle(head.into_inner());
        Ok(Ok(lengths))
    }

    /// The id of `chunk` if it is all zeros (hashed once per length).
    fn zero_chunk_id(&self, chunk: &[u8]) -> Option<BlobId> {
        if chunk.first() != Some(&0) || !is_all_zero(chunk) {
            return None;
        }
        match self.zero_chunk.get() {
            Some((len, id)) if len == chunk.len() => Some(id),
            _ => {
                let id = self.saver.blob_id(chunk);
                self.zero_chunk.set(Some((chunk.len(), id)));
                Some(id)
            }
        }
    }

    /// Takes the chunk `parent` expects next if the file goes on with it,
    /// and returns its length; `None` if it does not (nothing taken).
    fn take_expected(
        &self,
        chunker: &mut StreamChunker,
        stream: &mut impl Read,
        parent: &mut ParentChunks,
        job: &ChunkJob,
    ) -> Cut<Option<u32>> {
        let Some(&ContentRef(id, len)) = parent.expected() else {
            return Ok(Ok(None));
        };
        let confirm = |bytes: &[u8]| self.saver.blob_id(bytes) == id;
        let chunk = match chunker.next_chunk_if(stream, len as usize, confirm) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                parent.missed();
                return Ok(Ok(None));
            }
            Err(e) => return Ok(Err(e)),
        };
        parent.found();
        self.progress.bytes_read(chunk.len() as u64);
        self.saver.reuse_data(id, &job.pending.ids)?;
        Ok(Ok(Some(len)))
    }
}
