//! `BlobSaver`: the write half of the snapshot pipeline.
//!
//! The caller hands over plaintext blobs on one thread. The saver computes
//! ids, skips blobs the index already has, and sends new ones to a pool of
//! seal workers (compress + encrypt on all cores) that fill one open pack per
//! blob kind. Full packs go to upload workers. Every few packs, and at
//! `finish`, an index file naming the uploaded packs is written; a pack is
//! never named by an index file before it is stored. Channels are bounded,
//! so memory stays flat however much data flows through.

use std::collections::HashSet;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::backend::Backend;
use crate::blob::{self, BlobKind};
use crate::compress::Compression;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::cache::IndexCache;
use crate::index::{IndexFile, IndexedPack};
use crate::pack::{FinishedPack, PackWriter};
use crate::repository::Repository;

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

struct SealJob {
    kind: BlobKind,
    id: BlobId,
    data: Vec<u8>,
}

struct Shared {
    key: Arc<MasterKey>,
    backend: Arc<dyn Backend>,
    cache: Arc<IndexCache>,
    compression: Compression,
    pack_target_bytes: u64,
    pending: Mutex<HashSet<(BlobKind, BlobId)>>,
    packers: [Mutex<PackWriter>; 2],
    upload_tx: Mutex<Option<SyncSender<FinishedPack>>>,
    unindexed: Mutex<Vec<IndexedPack>>,
    /// Pack buffers back from upload, for the next packs to reuse.
    spare_buffers: Mutex<Vec<Vec<u8>>>,
    error: Mutex<Option<Error>>,
    stats: Mutex<SaveStats>,
}

/// Spare pack buffers kept: one per pack that can be in flight.
const SPARE_BUFFERS: usize = 4;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked left the data consistent enough for counting;
    // the panic itself surfaces when the thread is joined.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn packer_slot(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
    }
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

    fn seal_one(&self, job: SealJob) {
        let sealed = blob::seal(&self.key, job.kind, &job.id, &job.data, self.compression);
        {
            let mut stats = lock(&self.stats);
            stats.blobs_added += 1;
            stats.added_plain_bytes += job.data.len() as u64;
            stats.added_stored_bytes += sealed.len() as u64;
        }
        let full = {
            let mut packer = lock(&self.packers[packer_slot(job.kind)]);
            packer.add(job.kind, job.id, job.data.len() as u32, sealed);
            if packer.size_bytes() >= self.pack_target_bytes {
                Some(std::mem::take(&mut *packer))
            } else {
                None
            }
        };
        if let Some(writer) = full {
            self.send_pack(writer);
        }
    }

    fn send_pack(&self, writer: PackWriter) {
        let buffer = lock(&self.spare_buffers).pop().unwrap_or_default();
        let pack = writer.finish_into(&self.key, buffer);
        let tx = lock(&self.upload_tx).clone();
        match tx {
            Some(tx) => {
                if tx.send(pack).is_err() {
                    self.fail(Error::InvalidArgument("upload workers stopped".into()));
                }
            }
            None => self.fail(Error::InvalidArgument("saver already finished".into())),
        }
    }

    fn upload(&self, pack: FinishedPack) -> Result<()> {
        // Transient failures are retried by the backend's retry wrapper.
        self.backend.write(&pack.id.object_name(), &pack.bytes)?;
        lock(&self.stats).packs_written += 1;
        lock(&self.stats).uploaded_bytes += pack.bytes.len() as u64;
        let ready = {
            let mut unindexed = lock(&self.unindexed);
            unindexed.push(IndexedPack {
                id: pack.id,
                size_bytes: pack.bytes.len() as u64,
                blobs: pack.entries,
            });
            if unindexed.len() >= CHECKPOINT_PACKS {
                std::mem::take(&mut *unindexed)
            } else {
                Vec::new()
            }
        };
        let mut spares = lock(&self.spare_buffers);
        if spares.len() < SPARE_BUFFERS {
            spares.push(pack.bytes);
        }
        drop(spares);
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
        let mut stats = lock(&self.stats);
        stats.index_files_written += 1;
        stats.uploaded_bytes += bytes.len() as u64;
        Ok(())
    }
}

pub struct BlobSaver {
    shared: Arc<Shared>,
    seal_tx: Option<SyncSender<SealJob>>,
    seal_workers: Vec<JoinHandle<()>>,
    upload_workers: Vec<JoinHandle<()>>,
}

fn spawn_workers<T: Send + 'static>(
    count: usize,
    rx: Receiver<T>,
    shared: &Arc<Shared>,
    work: fn(&Shared, T),
) -> Vec<JoinHandle<()>> {
    let rx = Arc::new(Mutex::new(rx));
    (0..count)
        .map(|_| {
            let rx = Arc::clone(&rx);
            let shared = Arc::clone(shared);
            std::thread::spawn(move || loop {
                let next = lock(&rx).recv();
                match next {
                    Ok(item) => work(&shared, item),
                    Err(_) => break,
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
        // A rendezvous channel: a finished pack waits in its sealer's hands
        // until an uploader is free, instead of in a queue (each pack is
        // pack_target_bytes of RAM; uploads still overlap sealing).
        let (upload_tx, upload_rx) = sync_channel::<FinishedPack>(0);
        let (seal_tx, seal_rx) = sync_channel::<SealJob>(seal_threads * 2);
        let shared = Arc::new(Shared {
            key: Arc::clone(repo.key()),
            backend: Arc::clone(repo.backend()),
            cache: Arc::clone(repo.cache()),
            compression: options.compression,
            pack_target_bytes: u64::from(repo.config().pack_target_bytes),
            pending: Mutex::new(HashSet::new()),
            packers: [Mutex::new(PackWriter::new()), Mutex::new(PackWriter::new())],
            upload_tx: Mutex::new(Some(upload_tx)),
            unindexed: Mutex::new(Vec::new()),
            spare_buffers: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            stats: Mutex::new(SaveStats::default()),
        });
        let seal_workers = spawn_workers(seal_threads, seal_rx, &shared, |s, job| {
            if !s.failed() {
                s.seal_one(job);
            }
        });
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

    /// The id `data` would get, without storing it.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        self.shared.key.blob_id(data)
    }

    /// Whether the repository (or this saver) already holds the blob.
    pub fn is_known(&self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        if lock(&self.shared.pending).contains(&(kind, *id)) {
            return Ok(true);
        }
        self.shared
            .cache
            .contains(kind, id)
            .map_err(|e| Error::Cache {
                path: self.shared.cache.path().to_path_buf(),
                message: e.message,
            })
    }

    /// Stores a blob unless it is known. Returns its id and whether it was new.
    /// Blocks when the workers are busy (backpressure).
    pub fn save(&self, kind: BlobKind, data: Vec<u8>) -> Result<(BlobId, bool)> {
        let id = self.blob_id(&data);
        self.save_with_id(kind, id, data)
    }

    pub fn save_with_id(
        &self,
        kind: BlobKind,
        id: BlobId,
        data: Vec<u8>,
    ) -> Result<(BlobId, bool)> {
        if let Some(e) = lock(&self.shared.error).take() {
            return Err(e);
        }
        if self.is_known(kind, &id)? {
            return Ok((id, false));
        }
        if !lock(&self.shared.pending).insert((kind, id)) {
            return Ok((id, false));
        }
        let tx = self
            .seal_tx
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("saver already finished".into()))?;
        tx.send(SealJob { kind, id, data })
            .map_err(|_| Error::InvalidArgument("seal workers stopped".into()))?;
        Ok((id, true))
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
            let writer = std::mem::take(&mut *lock(slot));
            if !writer.is_empty() {
                self.shared.send_pack(writer);
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
