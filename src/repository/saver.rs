//! `BlobSaver`: the write half of the snapshot pipeline.
//!
//! Callers (any number of threads) hand over plaintext blobs. A pool of
//! workers (one per core) computes ids, skips blobs the index already has,
//! and seals new ones (compress + encrypt), appending them to one open pack
//! per blob kind, staged in a local file (`staging`). Data blobs go to the
//! workers before their id is known (`save_data_later`), so the callers'
//! threads only read and chunk; a caller collects a file's ids from
//! `PendingIds` when it needs them for the tree. Full packs go to upload
//! workers. Every few packs, and at `finish`, an index file naming the
//! uploaded packs is written; a pack is never named by an index file before
//! it is stored. Channels are bounded (the seal queue by its buffers' bytes,
//! in two lanes, `SealQueue`) and buffers are recycled, so memory stays flat
//! however much data flows through.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::backend::Backend;
use crate::blob::{self, BlobKind, SealBuffers};
use crate::compress::Compression;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::cache::IndexCache;
use crate::index::{IndexFile, IndexedPack};
use crate::repository::staging::{self, StagedFinished, StagedPack};
use crate::repository::{tree_cache_name, Repository};

/// Packs uploaded before an index file is written: bounds what a killed run
/// leaves unindexed (and so re-uploads next time).
const CHECKPOINT_PACKS: usize = 4;

#[derive(Debug, Clone)]
pub struct SaverOptions {
    pub compression: Compression,
    /// Threads compressing and encrypting; 0 = one per core.
    pub seal_threads: usize,
    /// Packs uploaded at once.
    pub upload_threads: usize,
}

impl Default for SaverOptions {
    fn default() -> Self {
        SaverOptions {
            compression: Compression::Auto,
            seal_threads: 0,
            upload_threads: 2,
        }
    }
}

/// What a saver stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveStats {
    pub blobs_added: u64,
    pub added_plain_bytes: u64,
    pub added_stored_bytes: u64,
    pub packs_written: u64,
    pub index_files_written: u64,
    pub uploaded_bytes: u64,
}

enum Job {
    /// A blob whose id the caller already computed.
    Seal {
        kind: BlobKind,
        id: BlobId,
        data: Vec<u8>,
    },
    /// A data blob whose id the worker computes and reports in `ids`.
    HashAndSeal {
        data: Vec<u8>,
        ids: Arc<PendingIds>,
        index: usize,
    },
}

/// The ids of one file's chunks, filled in by the workers as they hash them.
#[derive(Default)]
pub struct PendingIds {
    slots: Mutex<IdSlots>,
    filled: Condvar,
}

#[derive(Default)]
struct IdSlots {
    ids: Vec<Option<BlobId>>,
    missing: usize,
    /// Threads in `wait`: a notify is a system call even when nobody
    /// waits, and most files are complete before anyone asks.
    waiting: usize,
}

impl PendingIds {
    pub fn new() -> Arc<PendingIds> {
        Arc::new(PendingIds::default())
    }

    fn reserve_slot(&self) -> usize {
        let mut slots = lock(&self.slots);
        slots.ids.push(None);
        slots.missing += 1;
        slots.ids.len() - 1
    }

    /// Records an id known at hand-over, after those handed over before.
    fn push(&self, id: BlobId) {
        lock(&self.slots).ids.push(Some(id));
    }

    fn fill(&self, index: usize, id: BlobId) {
        let mut slots = lock(&self.slots);
        if let Some(slot @ None) = slots.ids.get_mut(index) {
            *slot = Some(id);
            slots.missing -= 1;
        }
        if slots.missing == 0 && slots.waiting > 0 {
            self.filled.notify_all();
        }
    }

    /// Whether every chunk handed over so far has its id.
    pub fn is_complete(&self) -> bool {
        lock(&self.slots).missing == 0
    }

    /// Waits until every chunk handed over so far has its id, in order.
    pub fn wait(&self) -> Vec<BlobId> {
        let mut slots = lock(&self.slots);
        slots.waiting += 1;
        while slots.missing > 0 {
            slots = self
                .filled
                .wait(slots)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        slots.waiting -= 1;
        slots.ids.iter().flatten().copied().collect()
    }
}

struct Shared {
    key: Arc<MasterKey>,
    backend: Arc<dyn Backend>,
    cache: Arc<IndexCache>,
    compression: Compression,
    pack_target_bytes: u64,
    staging_dir: PathBuf,
    /// Blobs claimed by this saver whose packs are not in the cache yet.
    pending: Mutex<HashSet<(BlobKind, BlobId)>>,
    packers: [Mutex<Option<StagedPack>>; 2],
    upload_tx: Mutex<Option<Sender<StagedFinished>>>,
    unindexed: Mutex<Vec<IndexedPack>>,
    /// Plaintext buffers back from the seal workers, for the caller's next
    /// blobs: a steady set of buffers instead of an allocation per chunk.
    spare_buffers: Mutex<Vec<Vec<u8>>>,
    /// Buffers grown beyond this are freed rather than kept.
    spare_buffer_limit: usize,
    error: Mutex<Option<Error>>,
    stats: Mutex<SaveStats>,
    seal_queue: SealQueue,
}

/// A staging file untouched for this long was left by a killed run.
const STALE_STAGING_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Blobs queued for the seal workers at most, however small (the queue is
/// bounded by bytes, `SealQueueBudget`).
const SEAL_QUEUE_JOBS: usize = 1024;

/// Spare plaintext buffers kept: about one per blob that can be in flight
/// (queued, in a worker's hands, being filled by the two producers).
const SPARE_BUFFERS: usize = 6;

thread_local! {
    static SEAL_BUFFERS: RefCell<SealBuffers> = RefCell::new(SealBuffers::default());
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked left the data consistent enough for counting;
    // the panic itself surfaces when the thread is joined.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn failed(&self) -> bool {
        lock(&self.error).is_some()
    }

    fn work(&self, job: Job) {
        match job {
            Job::Seal { kind, id, data } => {
                if !self.failed() {
                    self.seal_one(kind, id, data);
                }
            }
            Job::HashAndSeal { data, ids, index } => {
                // The id is reported even after a failure: the caller may be
                // waiting for it, and learns of the failure on its next call.
                let id = self.key.blob_id(&data);
                ids.fill(index, id);
                if self.failed() {
                    return self.recycle(data);
                }
                match self.claim(BlobKind::Data, &id) {
                    Ok(true) => self.seal_one(BlobKind::Data, id, data),
                    Ok(false) => self.recycle(data),
                    Err(e) => {
                        self.recycle(data);
                        self.fail(e);
                    }
                }
            }
        }
    }

    /// Whether the repository (or this saver) already holds the blob.
    fn is_known(&self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        if lock(&self.pending).contains(&(kind, *id)) {
            return Ok(true);
        }
        self.cache.contains(kind, id).map_err(|e| Error::Cache {
            path: self.cache.path().to_path_buf(),
            message: e.message,
        })
    }

    /// `true` when the blob is new and this caller must store it: from then
    /// on it counts as known, so a second copy in flight is skipped.
    fn claim(&self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        Ok(!self.is_known(kind, id)? && lock(&self.pending).insert((kind, *id)))
    }

    fn seal_one(&self, kind: BlobKind, id: BlobId, data: Vec<u8>) {
        let full = SEAL_BUFFERS.with(|buffers| {
            let mut buffers = buffers.borrow_mut();
            let sealed =
                blob::seal_into(&self.key, kind, &id, &data, self.compression, &mut buffers);
            {
                let mut stats = lock(&self.stats);
                stats.blobs_added += 1;
                stats.added_plain_bytes += data.len() as u64;
                stats.added_stored_bytes += sealed.len() as u64;
            }
            if kind == BlobKind::Tree {
                // The next snapshot loads this tree as its parent: from the
                // cache, one lookup instead of a read from the pack. A
                // failure to cache costs only that read.
                let _ = self.cache.put_object(&tree_cache_name(&id), sealed);
            }
            self.append(kind, id, data.len() as u32, sealed)
        });
        self.recycle(data);
        match full {
            Ok(Some(pack)) => self.send_pack(pack),
            Ok(None) => {}
            Err(e) => self.fail(e),
        }
    }

    /// Appends a sealed blob to the open pack of its kind; returns the pack
    /// when it is full.
    fn append(
        &self,
        kind: BlobKind,
        id: BlobId,
        plain_length: u32,
        sealed: &[u8],
    ) -> Result<Option<StagedPack>> {
        let mut slot = lock(&self.packers[staging::pack_slot(kind)]);
        staging::append_to_open_pack(
            &mut slot,
            &self.staging_dir,
            self.pack_target_bytes,
            (kind, id, plain_length),
            sealed,
        )
    }

    fn recycle(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() > 0 && buffer.capacity() <= self.spare_buffer_limit {
            let mut spares = lock(&self.spare_buffers);
            if spares.len() < SPARE_BUFFERS {
                buffer.clear();
                spares.push(buffer);
            }
        }
    }

    fn send_pack(&self, pack: StagedPack) {
        let path = pack.path().to_path_buf();
        let finished = match pack.finish(&self.key) {
            Ok(finished) => finished,
            Err(e) => return self.fail(Error::io(&path, e)),
        };
        let tx = lock(&self.upload_tx).clone();
        match tx {
            Some(tx) => {
                if tx.send(finished).is_err() {
                    self.fail(Error::InvalidArgument("upload workers stopped".into()));
                }
            }
            None => self.fail(Error::InvalidArgument("saver already finished".into())),
        }
    }

    fn upload(&self, pack: StagedFinished) -> Result<()> {
        // Transient failures are retried by the backend's retry wrapper.
        self.backend
            .store_file(&pack.id.object_name(), pack.path.path())?;
        lock(&self.stats).packs_written += 1;
        lock(&self.stats).uploaded_bytes += pack.size_bytes;
        let ready = {
            let mut unindexed = lock(&self.unindexed);
            unindexed.push(IndexedPack {
                id: pack.id,
                size_bytes: pack.size_bytes,
                blobs: pack.entries,
            });
            if unindexed.len() >= CHECKPOINT_PACKS {
                std::mem::take(&mut *unindexed)
            } else {
                Vec::new()
            }
        };
        if !ready.is_empty() {
            self.write_index(ready)?;
        }
        Ok(())
    }

    fn write_index(&self, packs: Vec<IndexedPack>) -> Result<()> {
        let file = IndexFile {
            supersedes: Vec::new(),
            packs,
        };
        let (id, bytes) = file.seal(&self.key);
        self.backend.write(&id.object_name(), &bytes)?;
        let merge = crate::index::pack_entries(&file.packs);
        self.cache
            .merge(Some(&id), &merge)
            .map_err(|e| Error::Cache {
                path: self.cache.path().to_path_buf(),
                message: e.message,
            })?;
        // The cache knows these blobs now. Forgetting them only after the
        // merge leaves no moment when neither answers for one, and keeps
        // `pending` to the blobs of packs not indexed yet: it held every
        // blob of the run (about 190 bytes each, with the set's growth)
        // until it ended.
        let mut pending = lock(&self.pending);
        for (_, entries) in &merge {
            for e in entries.iter() {
                pending.remove(&(e.kind, e.id));
            }
        }
        drop(pending);
        let mut stats = lock(&self.stats);
        stats.index_files_written += 1;
        stats.uploaded_bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Bounds the memory of the blobs queued for the seal workers by their
/// buffers' sizes rather than by their number: a walk through many small
/// files can queue hundreds of them (and read on while the workers are
/// busy, instead of stopping at every second file), while chunks of a
/// large file still queue only a few at a time.
struct SealQueueBudget {
    state: Mutex<BudgetState>,
    room: Condvar,
    limit: usize,
}

#[derive(Default)]
struct BudgetState {
    queued_bytes: usize,
    /// Producers get room in the order they asked: without it, the walker's
    /// small files would keep a large file's chunks waiting for an empty
    /// queue.
    next_ticket: u64,
    serving: u64,
    waiting: usize,
    /// Seal workers still taking jobs; once none is, nobody waits for
    /// room (the send fails instead).
    live_workers: usize,
}

impl SealQueueBudget {
    fn new(limit: usize, workers: usize) -> SealQueueBudget {
        SealQueueBudget {
            state: Mutex::new(BudgetState {
                live_workers: workers,
                ..BudgetState::default()
            }),
            room: Condvar::new(),
            limit,
        }
    }

    /// Waits for its turn and until `bytes` more fit (one blob always fits
    /// in an empty queue), then counts them.
    fn take(&self, bytes: usize) {
        let mut state = lock(&self.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while state.live_workers > 0
            && (state.serving != ticket
                || state.queued_bytes > 0 && state.queued_bytes + bytes > self.limit)
        {
            state.waiting += 1;
            state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
        state.queued_bytes += bytes;
        state.serving += 1;
        if state.waiting > 0 {
            self.room.notify_all();
        }
    }

    fn give_back(&self, bytes: usize) {
        let mut state = lock(&self.state);
        state.queued_bytes = state.queued_bytes.saturating_sub(bytes);
        if state.waiting > 0 {
            self.room.notify_all();
        }
    }
}

/// The seal workers' queue, in two lanes with a budget each: blobs shorter
/// than the shortest chunk (whole small files, the walk's) and chunks of
/// large files (the file chunker's). With one lane the walk got a turn per
/// chunk while a large file was being cut, so its reads, which wait on the
/// disk, did not overlap the workers' compressing. The workers take jobs
/// in the order they were queued, whatever their lane.
struct SealQueue {
    small: SealQueueBudget,
    large: SealQueueBudget,
    small_below: usize,
}

impl SealQueue {
    fn new(limit: usize, workers: usize, small_below: usize) -> SealQueue {
        SealQueue {
            small: SealQueueBudget::new(limit, workers),
            large: SealQueueBudget::new(limit, workers),
            small_below,
        }
    }

    /// A job's lane, and the bytes it counts there. A small blob counts its
    /// length: its buffer may be a spare grown by an earlier chunk, and the
    /// spares are bounded on their own (`SPARE_BUFFERS`).
    fn lane(&self, job: &Job) -> (&SealQueueBudget, usize) {
        let data = job.data();
        if data.len() < self.small_below {
            (&self.small, data.len())
        } else {
            (&self.large, data.capacity())
        }
    }
}

/// Held by a seal worker while it takes jobs, also should it panic.
struct LiveWorker<'a>(&'a SealQueueBudget);

impl Drop for LiveWorker<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).live_workers -= 1;
        self.0.room.notify_all();
    }
}

impl Job {
    fn data(&self) -> &Vec<u8> {
        match self {
            Job::Seal { data, .. } | Job::HashAndSeal { data, .. } => data,
        }
    }
}

pub struct BlobSaver {
    shared: Arc<Shared>,
    seal_tx: Option<Sender<Job>>,
    seal_workers: Vec<JoinHandle<()>>,
    upload_workers: Vec<JoinHandle<()>>,
}

fn spawn_workers<T: Send + 'static>(
    count: usize,
    rx: Receiver<T>,
    shared: &Arc<Shared>,
    work: fn(&Shared, T),
) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let rx = rx.clone();
            let shared = Arc::clone(shared);
            std::thread::spawn(move || {
                for item in rx {
                    work(&shared, item);
                }
            })
        })
        .collect()
}

impl BlobSaver {
    pub(crate) fn new(repo: &Repository, options: SaverOptions) -> BlobSaver {
        let seal_threads = match options.seal_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let upload_threads = options.upload_threads.max(1);
        // Finished packs wait in staging files, not in memory, so a few may
        // queue for the uploaders without growing the footprint.
        let (upload_tx, upload_rx) = bounded::<StagedFinished>(upload_threads * 2);
        // An average chunk's worth of queued bytes keeps the workers busy
        // (each holds one more blob); every further chunk is a buffer held
        // for nothing.
        let (seal_tx, seal_rx) = bounded::<Job>(SEAL_QUEUE_JOBS);
        let staging_dir = repo.staging_dir();
        staging::remove_stale(&staging_dir, STALE_STAGING_AGE);
        let shared = Arc::new(Shared {
            key: Arc::clone(repo.key()),
            backend: Arc::clone(repo.backend()),
            cache: Arc::clone(repo.cache()),
            compression: options.compression,
            pack_target_bytes: u64::from(repo.config().pack_target_bytes),
            staging_dir,
            pending: Mutex::new(HashSet::new()),
            packers: [Mutex::new(None), Mutex::new(None)],
            upload_tx: Mutex::new(Some(upload_tx)),
            unindexed: Mutex::new(Vec::new()),
            spare_buffers: Mutex::new(Vec::new()),
            spare_buffer_limit: 2 * repo.config().chunker.avg_bytes as usize,
            error: Mutex::new(None),
            stats: Mutex::new(SaveStats::default()),
            seal_queue: SealQueue::new(
                repo.config().chunker.avg_bytes as usize,
                seal_threads,
                repo.config().chunker.min_bytes as usize,
            ),
        });
        let seal_workers = (0..seal_threads)
            .map(|_| {
                let jobs = seal_rx.clone();
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let queue = &shared.seal_queue;
                    let _live = [LiveWorker(&queue.small), LiveWorker(&queue.large)];
                    for job in jobs {
                        let (lane, bytes) = queue.lane(&job);
                        lane.give_back(bytes);
                        shared.work(job);
                    }
                })
            })
            .collect();
        let upload_workers = spawn_workers(upload_threads, upload_rx, &shared, |s, pack| {
            if s.failed() {
                return;
            }
            if let Err(e) = s.upload(pack) {
                s.fail(e);
            }
        });
        BlobSaver {
            shared,
            seal_tx: Some(seal_tx),
            seal_workers,
            upload_workers,
        }
    }

    /// An empty buffer for the next blob's plaintext (hand it to `save`).
    pub fn buffer(&self) -> Vec<u8> {
        lock(&self.shared.spare_buffers).pop().unwrap_or_default()
    }

    /// Gives back a buffer from `buffer` that was not handed to `save`.
    pub fn recycle(&self, buffer: Vec<u8>) {
        self.shared.recycle(buffer);
    }

    /// Stores a blob unless it is known. Returns its id and whether it was new.
    /// Blocks when the workers are busy (backpressure).
    pub fn save(&self, kind: BlobKind, data: Vec<u8>) -> Result<(BlobId, bool)> {
        self.check_failed()?;
        let id = self.shared.key.blob_id(&data);
        if !self.shared.claim(kind, &id)? {
            self.shared.recycle(data);
            return Ok((id, false));
        }
        self.send(Job::Seal { kind, id, data })?;
        Ok((id, true))
    }

    /// Hands a data blob to the workers, which compute its id, store it
    /// unless known, and record the id in `ids` after those handed over
    /// before. Blocks when the workers are busy (backpressure).
    pub fn save_data_later(&self, data: Vec<u8>, ids: &Arc<PendingIds>) -> Result<()> {
        self.check_failed()?;
        let index = ids.reserve_slot();
        self.send(Job::HashAndSeal {
            data,
            ids: Arc::clone(ids),
            index,
        })
    }

    /// Like `save_data_later` for a chunk the caller has hashed already
    /// (to compare it with the parent snapshot's): records `id` at once,
    /// and copies the bytes for the workers only if the repository lacks
    /// them. Blocks when the workers are busy (backpressure).
    pub fn save_data_hashed(&self, id: BlobId, data: &[u8], ids: &PendingIds) -> Result<()> {
        self.check_failed()?;
        ids.push(id);
        if !self.shared.claim(BlobKind::Data, &id)? {
            return Ok(());
        }
        let mut buffer = self.buffer();
        buffer.extend_from_slice(data);
        self.send(Job::Seal {
            kind: BlobKind::Data,
            id,
            data: buffer,
        })
    }

    /// Records a chunk of the parent snapshot's, found again in a changed
    /// file, without looking it up: like an unchanged file's chunks, it is
    /// referenced as the parent references it (a prune that marked its pack
    /// obsolete meanwhile resurrects what a run that began before the marking
    /// references; format-spec section 10).
    pub fn reuse_data(&self, id: BlobId, ids: &PendingIds) -> Result<()> {
        self.check_failed()?;
        ids.push(id);
        Ok(())
    }

    /// The id this saver's repository gives `data`.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        self.shared.key.blob_id(data)
    }

    fn check_failed(&self) -> Result<()> {
        match lock(&self.shared.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send(&self, job: Job) -> Result<()> {
        let tx = self
            .seal_tx
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("saver already finished".into()))?;
        let (lane, bytes) = self.shared.seal_queue.lane(&job);
        lane.take(bytes);
        tx.send(job).map_err(|_| {
            lane.give_back(bytes);
            Error::InvalidArgument("seal workers stopped".into())
        })
    }

    /// Flushes open packs, waits for every upload and writes the last index
    /// file. Only after this returns may a snapshot refer to the saved blobs.
    pub fn finish(mut self) -> Result<SaveStats> {
        drop(self.seal_tx.take());
        for worker in self.seal_workers.drain(..) {
            if worker.join().is_err() {
                self.shared
                    .fail(Error::InvalidArgument("a seal worker panicked".into()));
            }
        }
        for slot in &self.shared.packers {
            let open = lock(slot).take();
            if let Some(pack) = open.filter(|p| !p.is_empty()) {
                self.shared.send_pack(pack);
            }
        }
        drop(lock(&self.shared.upload_tx).take());
        for worker in self.upload_workers.drain(..) {
            if worker.join().is_err() {
                self.shared
                    .fail(Error::InvalidArgument("an upload worker panicked".into()));
            }
        }
        if let Some(e) = lock(&self.shared.error).take() {
            return Err(e);
        }
        let rest = std::mem::take(&mut *lock(&self.shared.unindexed));
        if !rest.is_empty() {
            self.shared.write_index(rest)?;
        }
        Ok(lock(&self.shared.stats).clone())
    }
}

impl Drop for BlobSaver {
    fn drop(&mut self) {
        // Unfinished saver (an error path): stop the workers without writing
        // an index; the packs already stored are found again by the next run
        // through the index files written so far.
        drop(self.seal_tx.take());
        drop(lock(&self.shared.upload_tx).take());
        for worker in self
            .seal_workers
            .drain(..)
            .chain(self.upload_workers.drain(..))
        {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Room is given in the order it was asked for, so a large blob is not
    /// kept waiting behind small ones that asked later; and nobody waits
    /// for room once no worker is left to make it.
    #[test]
    fn the_seal_queue_budget_is_first_come_first_served_and_never_hangs() {
        let budget = Arc::new(SealQueueBudget::new(10, 1));
        budget.take(6);
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiting = |budget: &SealQueueBudget| lock(&budget.state).waiting;
        // Returns once the taker waits, so tickets go out in spawn order
        // however slowly threads start on a loaded machine.
        let spawn_waiting_taker = |name: &'static str, bytes: usize| {
            let (shared, order) = (Arc::clone(&budget), Arc::clone(&order));
            let before = waiting(&budget);
            let thread = std::thread::spawn(move || {
                shared.take(bytes);
                order.lock().unwrap().push(name);
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while waiting(&budget) == before {
                assert!(std::time::Instant::now() < deadline, "{name} never waited");
                std::thread::sleep(Duration::from_millis(1));
            }
            thread
        };
        let large = spawn_waiting_taker("large", 8);
        // With 4 bytes free the small blob fits, yet waits its turn.
        let small = spawn_waiting_taker("small", 1);
        // Room for the large blob alone: had the small one gone first, the
        // large one would not fit.
        budget.give_back(4);
        large.join().unwrap();
        assert_eq!(
            waiting(&budget),
            1,
            "the small blob found room in a full queue"
        );
        assert_eq!(*order.lock().unwrap(), ["large"]);
        budget.give_back(1);
        small.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["large", "small"]);

        let stuck = spawn_waiting_taker("stuck", 8);
        drop(LiveWorker(&budget));
        stuck.join().unwrap();
        assert_eq!(order.lock().unwrap().len(), 3);
    }

    /// A small blob queues beside a full lane of chunks, and each lane
    /// gives its room back to itself.
    #[test]
    fn small_blobs_queue_beside_a_full_lane_of_chunks() {
        let queue = SealQueue::new(100, 1, 10);
        let chunk = Job::HashAndSeal {
            data: vec![1; 100],
            ids: PendingIds::new(),
            index: 0,
        };
        let mut small_file = Vec::with_capacity(1000);
        small_file.extend_from_slice(b"tiny");
        let small_file = Job::HashAndSeal {
            data: small_file,
            ids: PendingIds::new(),
            index: 0,
        };
        let (lane, bytes) = queue.lane(&chunk);
        assert!(std::ptr::eq(lane, &queue.large));
        assert_eq!(bytes, 100);
        lane.take(bytes);
        let (lane, bytes) = queue.lane(&small_file);
        assert!(std::ptr::eq(lane, &queue.small));
        assert_eq!(bytes, 4, "counted by its length, not its spare buffer's");
        // Returns at once: the chunk fills only its own lane.
        lane.take(bytes);
        assert_eq!(lock(&queue.small.state).queued_bytes, 4);
        assert_eq!(lock(&queue.large.state).queued_bytes, 100);
    }

    /// A blob leaves `pending` once its pack is indexed in the cache, so
    /// the set stays the size of the packs in flight however long the run;
    /// and the cache then answers for it, so a second copy is not stored.
    #[test]
    fn indexed_blobs_leave_the_pending_set_and_stay_deduplicated() {
        use crate::backend::local::LocalBackend;
        use crate::crypto::KdfParams;
        use crate::repository::{CacheOptions, InitOptions, Repository};

        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            kdf: KdfParams::cheapest(),
            pack_target_bytes: Some(64 * 1024),
            ..Default::default()
        };
        let cache = CacheOptions {
            root: Some(dir.path().join("cache")),
        };
        let backend = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let repo = Repository::init(backend, b"pw", &options, &cache).unwrap();
        let saver = repo.blob_saver(SaverOptions {
            compression: Compression::Off,
            ..SaverOptions::default()
        });
        // 16 KiB each: four to a pack, 50 packs, a dozen index files.
        let blob = |n: u32| n.to_le_bytes().repeat(4096);
        let blobs = 200;
        for n in 0..blobs {
            assert!(saver.save(BlobKind::Data, blob(n)).unwrap().1);
        }
        let in_flight = 4 * (CHECKPOINT_PACKS + 2);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while lock(&saver.shared.pending).len() > in_flight {
            assert!(std::time::Instant::now() < deadline, "pending never shrank");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (_, stored_again) = saver.save(BlobKind::Data, blob(0)).unwrap();
        assert!(!stored_again, "the first blob was stored twice");
        let stats = saver.finish().unwrap();
        assert_eq!(stats.blobs_added, u64::from(blobs));
        assert!(stats.index_files_written >= 10, "{stats:?}");
    }
}
