//! A repository: a backend plus the key that opens it and the local index
//! cache that makes it fast.
//!
//! Operations reach storage only through `Repository`. It owns the write
//! order that makes crashes harmless: packs (through `BlobSaver`) before the
//! index files that name them, index files before the snapshot that refers
//! to their blobs.

mod cache_open;
pub mod config;
pub mod index_writer;
pub mod marker;
pub mod pack_windows;
pub mod saver;
pub mod staging;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::{Backend, ErrorKind};
use crate::blob::{self, BlobKind};
use crate::chunker::ChunkerParams;
use crate::crypto::{KdfParams, MasterKey};
use crate::error::{Error, Result};
use crate::id::{IndexId, KeyId, PackId, SnapshotId};
use crate::index::cache::{BlobLocation, IndexCache};
use crate::index::IndexFile;
use crate::snapshot::Snapshot;
use crate::tree::Tree;
use config::{Config, KeyFile};

pub use saver::{BlobSaver, SaveStats};

/// Snapshots with their ids, oldest first.
pub type SnapshotList = Vec<(SnapshotId, Snapshot)>;

/// Keeps a `runs/` marker alive (heartbeat thread) and removes it on drop.
pub struct RunGuard {
    name: String,
    backend: Arc<dyn Backend>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl RunGuard {
    fn start(backend: Arc<dyn Backend>, key: Arc<MasterKey>) -> Result<RunGuard> {
        let now = chrono::Local::now().fixed_offset();
        let mut m = marker::RunMarker {
            hostname: who().0,
            pid: std::process::id(),
            started: now,
            heartbeat: now,
        };
        let name = format!("runs/{}", hex::encode(rand::random::<[u8; 16]>()));
        backend.write(&name, &m.seal(&key))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (b, n) = (Arc::clone(&backend), name.clone());
        let heartbeat = std::thread::spawn(move || {
            let every = std::time::Duration::from_secs(marker::HEARTBEAT_SECS);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                m.heartbeat = chrono::Local::now().fixed_offset();
                // A missed heartbeat only makes a prune wait longer.
                let _ = b.write(&n, &m.seal(&key));
            }
        });
        Ok(RunGuard {
            name,
            backend,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        })
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let _ = self.backend.delete(&self.name);
    }
}

const SNAPSHOT_AAD: &[u8] = b"cairn snapshot";

/// How often a sync starts over because an index file or marker it listed
/// was gone when read. A prune writes the replacement before it deletes
/// the old file, so listing again finds the replacement; only a prune
/// finishing between every attempt could exhaust this.
const VANISHED_RETRIES: usize = 5;

/// Choices made once, at `init`.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: ChunkerParams,
    pub pack_target_bytes: Option<u32>,
}

/// Where the local cache lives; `None` means a private temporary one.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    pub root: Option<PathBuf>,
}

/// Facts about one key file, for `cairn key list`.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: KeyId,
    pub current: bool,
    pub created: String,
    pub hostname: String,
    pub username: String,
}

pub struct Repository {
    backend: Arc<dyn Backend>,
    key: Arc<MasterKey>,
    key_id: KeyId,
    config: Config,
    cache: Arc<IndexCache>,
}

fn who() -> (String, String) {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string());
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    (host, user)
}

const TREE_CACHE_PREFIX: &str = "tree/";

/// The key under which the local cache keeps a tree blob's stored bytes.
pub(crate) fn tree_cache_name(id: &crate::id::BlobId) -> String {
    format!("{TREE_CACHE_PREFIX}{}", id.to_hex())
}

/// Runs `attempt` again while it fails because an object it listed was
/// deleted before it could be read: a concurrent prune replaced it.
pub(crate) fn retry_vanished<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        match attempt() {
            Err(Error::Backend(e)) if e.is_not_found() && tries < VANISHED_RETRIES => tries += 1,
            other => return other,
        }
    }
}

impl Repository {
    /// Creates a new repository at the backend's location.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        options: &InitOptions,
        cache: &CacheOptions,
    ) -> Result<Repository> {
        match backend.stat("config") {
            Ok(_) => {
                return Err(Error::RepositoryExists {
                    location: backend.location(),
                })
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        options.chunker.validate().map_err(Error::InvalidArgument)?;
        backend.create()?;
        let key = MasterKey::generate();
        let mut config = Config::new(options.chunker);
        if let Some(bytes) = options.pack_target_bytes {
            config.pack_target_bytes = bytes;
        }
        let (host, user) = who();
        let key_file = KeyFile::create(&key, password, options.kdf, &host, &user)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let key_bytes = key_file.encode();
        let key_id = KeyId(crate::id::content_hash(&key_bytes));
        // The key goes first: a config without a key would be a repository
        // nobody can open, while a key without a config is simply ignored.
        backend.write(&key_id.object_name(), &key_bytes)?;
        backend.write("config", &config.seal(&key))?;
        let cache_options = cache;
        let cache = cache_open::open(cache_options, &config.id)?;
        cache_open::remember_id(cache_options, &backend.location(), &config.id);
        Ok(Repository {
            backend,
            key: Arc::new(key),
            key_id,
            config,
            cache: Arc::new(cache),
        })
    }

    /// Opens an existing repository with a password.
    pub fn open(
        backend: Arc<dyn Backend>,
        password: &[u8],
        cache: &CacheOptions,
    ) -> Result<Repository> {
        let config_bytes = match backend.read("config") {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                if !backend.list("keys/")?.is_empty() {
                    return Err(Error::corrupt(
                        "config",
                        "missing, although the location holds key files: the repository is damaged",
                    ));
                }
                return Err(Error::RepositoryNotFound {
                    location: backend.location(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let location = backend.location();
        let guess = cache_open::guess_id(cache, &location);
        // The cache the location had last time opens while the key is
        // derived (see `cache_open`).
        let (unlocked, early_cache) = std::thread::scope(|scope| {
            let early = guess.as_deref().and_then(|id| {
                std::thread::Builder::new()
                    .name("cairn-cache-open".into())
                    .spawn_scoped(scope, move || cache_open::open(cache, id))
                    .ok()
            });
            let unlocked = Self::unlock(backend.as_ref(), password);
            (unlocked, early.and_then(|thread| thread.join().ok()))
        });
        let (key, key_id) = unlocked?;
        let config = Config::open(&key, &config_bytes).map_err(|e| Error::corrupt("config", e))?;
        let cache = match early_cache {
            Some(opened) if guess.as_deref() == Some(config.id.as_str()) => opened?,
            wrong => {
                drop(wrong);
                cache_open::remember_id(cache, &location, &config.id);
                cache_open::open(cache, &config.id)?
            }
        };
        let repo = Repository {
            backend,
            key: Arc::new(key),
            key_id,
            config,
            cache: Arc::new(cache),
        };
        repo.sync_index()?;
        Ok(repo)
    }

    fn unlock(backend: &dyn Backend, password: &[u8]) -> Result<(MasterKey, KeyId)> {
        let keys = backend.list("keys/")?;
        if keys.is_empty() {
            return Err(Error::corrupt("keys/", "the repository has no key files"));
        }
        let mut damaged = Vec::new();
        for object in keys {
            let bytes = backend.read(&object.name)?;
            let file = match KeyFile::decode(&bytes) {
                Ok(file) => file,
                Err(e) => {
                    damaged.push(format!("{}: {e}", object.name));
                    continue;
                }
            };
            if let Ok(key) = file.unlock(password) {
                return Ok((key, KeyId(crate::id::content_hash(&bytes))));
            }
        }
        match damaged.len() {
            0 => Err(Error::WrongPassword),
            _ => Err(Error::corrupt(
                "keys",
                format!(
                    "no key opens with this password, and some key files are damaged: {}",
                    damaged.join("; ")
                ),
            )),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn key(&self) -> &Arc<MasterKey> {
        &self.key
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn cache(&self) -> &Arc<IndexCache> {
        &self.cache
    }

    /// Where packs are staged before the backend stores them: the
    /// backend's choice, else beside the local cache.
    pub fn staging_dir(&self) -> PathBuf {
        self.backend
            .staging_dir()
            .unwrap_or_else(|| self.cache.path().with_file_name("staging"))
    }

    fn cache_error(&self, e: crate::index::cache::CacheError) -> Error {
        Error::Cache {
            path: self.cache.path().to_path_buf(),
            message: e.message,
        }
    }

    /// Brings the local index cache up to date with the repository's index
    /// files. If an index file the cache had merged is gone (prune replaced
    /// it), the cache is rebuilt from scratch.
    pub fn sync_index(&self) -> Result<()> {
        retry_vanished(|| self.sync_index_once())
    }

    fn sync_index_once(&self) -> Result<()> {
        let listed = self.list_index_files()?;
        let listed_set: HashSet<IndexId> = listed.iter().copied().collect();
        let merged: HashSet<IndexId> = self
            .cache
            .merged_indexes()
            .map_err(|e| self.cache_error(e))?
            .into_iter()
            .collect();
        let merged = if merged.is_subset(&listed_set) {
            merged
        } else {
            self.cache.clear_index().map_err(|e| self.cache_error(e))?;
            HashSet::new()
        };
        // Built from nothing: a first use, or after a prune (this process's
        // or another's) superseded index files.
        let rebuilt = merged.is_empty();
        // Files are merged one at a time as they load, so memory does not
        // grow with the index.
        let fresh: Vec<IndexId> = listed
            .iter()
            .copied()
            .filter(|id| !merged.contains(id))
            .collect();
        let mut superseded = HashSet::new();
        for id in &fresh {
            if let Some(file) = self.load_index_file_lenient(id)? {
                superseded.extend(file.supersedes.iter().copied());
                self.merge_index_file(id, &file)?;
            }
        }
        // A file that supersedes one already merged (a prune killed before
        // it deleted the old file) makes cached entries stale: their packs
        // may be gone. Start over, merging only the live files.
        let restarted = superseded.iter().any(|id| listed_set.contains(id));
        if restarted {
            self.cache.clear_index().map_err(|e| self.cache_error(e))?;
            let (_, live) = self.live_index_files()?;
            for id in &live {
                if let Some(file) = self.load_index_file_lenient(id)? {
                    self.merge_index_file(id, &file)?;
                }
            }
        }
        self.sync_obsolete()?;
        if rebuilt || restarted {
            let present = self.list_snapshot_ids_unsynced()?;
            self.cache
                .set_unchecked_parents(&present)
                .map_err(|e| self.cache_error(e))?;
            self.evict_unindexed_trees()?;
        }
        Ok(())
    }

    /// Drops cached trees the index no longer names, live or obsolete: a
    /// prune deleted them, and a cache that kept every tree ever loaded
    /// would grow for as long as the repository lives. Only when the index
    /// was built anew, as after every prune: it costs a lookup per cached
    /// tree.
    fn evict_unindexed_trees(&self) -> Result<()> {
        let still_indexed = |name: &str| {
            let id = name
                .strip_prefix(TREE_CACHE_PREFIX)
                .and_then(|hex| hex.parse().ok());
            match id {
                Some(id) => Ok(self.cache.lookup(BlobKind::Tree, &id)?.is_some()),
                None => Ok(false),
            }
        };
        self.cache
            .evict_objects(TREE_CACHE_PREFIX, still_indexed)
            .map_err(|e| self.cache_error(e))?;
        Ok(())
    }

    /// Loads an index file; `None` for a damaged one, which verify reports
    /// and `repair index` replaces, so that the rest stays usable.
    fn load_index_file_lenient(&self, id: &IndexId) -> Result<Option<IndexFile>> {
        match self.load_index_file(id) {
            Ok(file) => Ok(Some(file)),
            Err(Error::Corrupt { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn merge_index_file(&self, id: &IndexId, file: &IndexFile) -> Result<()> {
        let packs = crate::index::pack_entries(&file.packs);
        self.cache
            .merge(Some(id), &packs)
            .map_err(|e| self.cache_error(e))
    }

    fn sync_obsolete(&self) -> Result<()> {
        let mut listed: Vec<String> = self
            .backend
            .list("obsolete/")?
            .into_iter()
            .map(|o| o.name)
            .collect();
        listed.sort();
        let mut merged = self
            .cache
            .merged_markers()
            .map_err(|e| self.cache_error(e))?;
        merged.sort();
        if listed == merged {
            return Ok(());
        }
        self.cache
            .clear_obsolete()
            .map_err(|e| self.cache_error(e))?;
        for name in listed {
            let marker = self.load_obsolete(&name)?;
            let packs = crate::index::pack_entries(&marker.packs);
            self.cache
                .merge_obsolete(&name, &packs)
                .map_err(|e| self.cache_error(e))?;
        }
        Ok(())
    }

    /// Every pack object in `data/` with its size; foreign files are ignored.
    pub fn list_packs(&self) -> Result<Vec<(PackId, u64)>> {
        Ok(self
            .backend
            .list("data/")?
            .into_iter()
            .filter_map(|o| {
                let id = o.name.rsplit('/').next()?.parse::<PackId>().ok()?;
                Some((id, o.size_bytes))
            })
            .collect())
    }

    /// Indexes packs that are in `data/` but named by no index file or
    /// obsolete marker: what a killed run had already stored. Packs are
    /// complete objects, so their headers can be trusted as far as they
    /// authenticate. Returns how many packs were adopted.
    pub fn adopt_orphan_packs(&self) -> Result<usize> {
        let mut adopted = Vec::new();
        for (id, size_bytes) in self.list_packs()? {
            if self
                .cache
                .knows_pack(&id)
                .map_err(|e| self.cache_error(e))?
            {
                continue;
            }
            // An unreadable orphan is left alone: verify reports it.
            if let Ok(blobs) = self.read_pack_header(&id, size_bytes) {
                adopted.push(crate::index::IndexedPack {
                    id,
                    size_bytes,
                    blobs,
                });
            }
        }
        let count = adopted.len();
        if count > 0 {
            self.save_index_file(&IndexFile {
                supersedes: Vec::new(),
                packs: adopted,
            })?;
        }
        Ok(count)
    }

    /// Reads and decodes a pack's header with two ranged reads.
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<Vec<crate::pack::PackEntry>> {
        let name = id.object_name();
        let trailer = self.backend.read_range(
            &name,
            size.saturating_sub(crate::pack::TRAILER_BYTES),
            size.min(crate::pack::TRAILER_BYTES),
        )?;
        let (offset, length) =
            crate::pack::header_range(&trailer, size).map_err(|e| Error::corrupt(&name, e))?;
        let sealed = self.backend.read_range(&name, offset, length)?;
        crate::pack::decode_header(&self.key, &sealed, offset).map_err(|e| Error::corrupt(&name, e))
    }

    /// Names of the obsolete markers, for callers that load one at a time.
    pub fn obsolete_names(&self) -> Result<Vec<String>> {
        Ok(self
            .backend
            .list("obsolete/")?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    pub fn load_obsolete(&self, name: &str) -> Result<marker::ObsoleteMarker> {
        let bytes = self.backend.read(name)?;
        marker::ObsoleteMarker::open(&self.key, &bytes).map_err(|e| Error::corrupt(name, e))
    }

    /// Every index file, and those no other file supersedes (the live
    /// index). Each file is loaded and dropped in turn; a damaged one
    /// supersedes nothing and stays in the live list, for its reader to
    /// report.
    pub fn live_index_files(&self) -> Result<(Vec<IndexId>, Vec<IndexId>)> {
        retry_vanished(|| self.live_index_files_once())
    }

    fn live_index_files_once(&self) -> Result<(Vec<IndexId>, Vec<IndexId>)> {
        let all = self.list_index_files()?;
        let mut superseded = HashSet::new();
        for id in &all {
            if let Some(file) = self.load_index_file_lenient(id)? {
                superseded.extend(file.supersedes);
            }
        }
        let live = all
            .iter()
            .copied()
            .filter(|id| !superseded.contains(id))
            .collect();
        Ok((all, live))
    }

    pub fn save_obsolete(&self, m: &marker::ObsoleteMarker) -> Result<String> {
        let bytes = m.seal(&self.key);
        let name = format!("obsolete/{}", hex::encode(crate::id::content_hash(&bytes)));
        self.backend.write(&name, &bytes)?;
        Ok(name)
    }

    /// Live run markers (stale ones are returned too; callers judge).
    pub fn list_runs(&self) -> Result<Vec<(String, marker::RunMarker)>> {
        let mut out = Vec::new();
        for object in self.backend.list("runs/")? {
            // A marker deleted between list and read simply ended.
            let Ok(bytes) = self.backend.read(&object.name) else {
                continue;
            };
            if let Ok(m) = marker::RunMarker::open(&self.key, &bytes) {
                out.push((object.name, m));
            }
        }
        Ok(out)
    }

    /// Announces a run (a snapshot, or a restore) to concurrent prunes
    /// until the guard drops: they delete no pack it may still read.
    pub fn start_run(&self) -> Result<RunGuard> {
        RunGuard::start(Arc::clone(&self.backend), Arc::clone(&self.key))
    }

    pub fn list_index_files(&self) -> Result<Vec<IndexId>> {
        let mut out = Vec::new();
        for object in self.backend.list("index/")? {
            let name = object.name.trim_start_matches("index/");
            // Foreign files in the folder are ignored, not fatal.
            if let Ok(id) = name.parse() {
                out.push(id);
            }
        }
        Ok(out)
    }

    pub fn load_index_file(&self, id: &IndexId) -> Result<IndexFile> {
        let name = id.object_name();
        let bytes = self.backend.read(&name)?;
        IndexFile::open(&self.key, &bytes).map_err(|e| Error::corrupt(name, e))
    }

    /// Writes an index file and merges it into the cache. A file that
    /// supersedes others empties the cache instead, because the entries
    /// of the superseded files may name packs about to be deleted; the
    /// next `sync_index` rebuilds it from the files that remain.
    pub fn save_index_file(&self, file: &IndexFile) -> Result<IndexId> {
        let (id, bytes) = file.seal(&self.key);
        self.backend.write(&id.object_name(), &bytes)?;
        if file.supersedes.is_empty() {
            let packs = crate::index::pack_entries(&file.packs);
            self.cache.merge(Some(&id), &packs)
        } else {
            self.cache.clear_index()
        }
        .map_err(|e| self.cache_error(e))?;
        Ok(id)
    }

    /// Whether a live pack holds the blob: what a writer may refer to
    /// without storing it (obsolete packs do not count).
    pub fn is_indexed(&self, kind: BlobKind, id: &crate::id::BlobId) -> Result<bool> {
        self.cache
            .contains(kind, id)
            .map_err(|e| self.cache_error(e))
    }

    /// Whether a snapshot taking `parent` as its parent must check that
    /// the parent's blobs are still indexed before it refers to them: true
    /// for the snapshots present when the blob index was last built anew
    /// (after a prune, a `repair index`, or in a new cache), until a
    /// snapshot checked (`parent_checked`).
    pub fn parent_check_due(&self, parent: &SnapshotId) -> Result<bool> {
        self.cache
            .is_unchecked_parent(parent)
            .map_err(|e| self.cache_error(e))
    }

    pub fn parent_checked(&self, parent: &SnapshotId) -> Result<()> {
        self.cache
            .parent_checked(parent)
            .map_err(|e| self.cache_error(e))
    }

    pub fn lookup_blob(
        &self,
        kind: BlobKind,
        id: &crate::id::BlobId,
    ) -> Result<Option<BlobLocation>> {
        self.cache.lookup(kind, id).map_err(|e| self.cache_error(e))
    }

    /// Reads, decrypts and checks one blob.
    pub fn load_blob(&self, kind: BlobKind, id: &crate::id::BlobId) -> Result<Vec<u8>> {
        let loc = self
            .lookup_blob(kind, id)?
            .ok_or(Error::MissingBlob { kind, id: *id })?;
        let name = loc.pack.object_name();
        let stored = self
            .backend
            .read_range(&name, loc.offset, u64::from(loc.length))?;
        self.open_stored_blob(kind, id, &loc, &stored)
    }

    /// Decrypts a blob already read from its pack.
    pub fn open_stored_blob(
        &self,
        kind: BlobKind,
        id: &crate::id::BlobId,
        loc: &BlobLocation,
        stored: &[u8],
    ) -> Result<Vec<u8>> {
        blob::open(&self.key, kind, id, stored, loc.plain_length as usize)
            .map_err(|e| damaged_blob(kind, id, loc, e))
    }

    /// Like `open_stored_blob`, with `blob::open_in_place`.
    pub fn open_stored_blob_in_place<'a>(
        &self,
        kind: BlobKind,
        id: &crate::id::BlobId,
        loc: &BlobLocation,
        stored: &'a mut [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        let plain_len = loc.plain_length as usize;
        blob::open_in_place(&self.key, kind, id, stored, plain_len, scratch)
            .map_err(|e| damaged_blob(kind, id, loc, e))
    }

    /// Loads a tree, from the local cache when it was seen before.
    pub fn load_tree(&self, id: &crate::id::BlobId) -> Result<Tree> {
        let cache_name = tree_cache_name(id);
        if let Ok(Some(stored)) = self.cache.get_object(&cache_name) {
            if let Some(loc) = self.lookup_blob(BlobKind::Tree, id)? {
                if let Ok(plain) = self.open_stored_blob(BlobKind::Tree, id, &loc, &stored) {
                    return Tree::decode(&plain)
                        .map_err(|e| Error::corrupt(format!("tree {}", id.short()), e));
                }
            }
        }
        let loc = self
            .lookup_blob(BlobKind::Tree, id)?
            .ok_or(Error::MissingBlob {
                kind: BlobKind::Tree,
                id: *id,
            })?;
        let stored =
            self.backend
                .read_range(&loc.pack.object_name(), loc.offset, u64::from(loc.length))?;
        let plain = self.open_stored_blob(BlobKind::Tree, id, &loc, &stored)?;
        let tree =
            Tree::decode(&plain).map_err(|e| Error::corrupt(format!("tree {}", id.short()), e))?;
        // Caching is an optimisation; a failure to cache is not an error.
        let _ = self.cache.put_object(&cache_name, &stored);
        Ok(tree)
    }

    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let bytes = self.key.seal(&snapshot.encode(), SNAPSHOT_AAD);
        let id = SnapshotId(crate::id::content_hash(&bytes));
        self.backend.write(&id.object_name(), &bytes)?;
        Ok(id)
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let name = id.object_name();
        let bytes = match self.cache.get_object(&name) {
            Ok(Some(bytes)) => bytes,
            _ => {
                let bytes = self.backend.read(&name)?;
                let _ = self.cache.put_object(&name, &bytes);
                bytes
            }
        };
        let plain = self
            .key
            .open(&bytes, SNAPSHOT_AAD)
            .map_err(|e| Error::corrupt(&name, e))?;
        Snapshot::decode(&plain).map_err(|e| Error::corrupt(&name, e))
    }

    /// Every snapshot id, and then the index cache brought up to date, so
    /// that every listed snapshot's blobs can be found. (A snapshot is
    /// written after its index files, so a sync after the listing sees
    /// them; one before it, at open, may not, when a backup finished in
    /// between.)
    pub fn list_snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let out = self.list_snapshot_ids_unsynced()?;
        // Snapshots forgotten elsewhere leave the cache too.
        let listed: HashSet<String> = out.iter().map(SnapshotId::object_name).collect();
        self.cache
            .evict_objects("snapshots/", |name| Ok(listed.contains(name)))
            .map_err(|e| self.cache_error(e))?;
        self.sync_index()?;
        Ok(out)
    }

    /// Every snapshot id, in listing order, without bringing the index up
    /// to date.
    fn list_snapshot_ids_unsynced(&self) -> Result<Vec<SnapshotId>> {
        let listed = self.backend.list("snapshots/")?;
        let ids = listed
            .iter()
            .filter_map(|o| o.name.trim_start_matches("snapshots/").parse().ok());
        Ok(ids.collect())
    }

    /// Every snapshot, oldest first. A snapshot that cannot be read is an
    /// error naming it.
    pub fn list_snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut out = Vec::new();
        for id in self.list_snapshot_ids()? {
            out.push((id, self.load_snapshot(&id)?));
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Every readable snapshot, oldest first, and the errors of those that
    /// could not be read. For listing and browsing; operations that delete
    /// data use the strict `list_snapshots`.
    pub fn list_snapshots_lossy(&self) -> Result<(SnapshotList, Vec<Error>)> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for id in self.list_snapshot_ids()? {
            match self.load_snapshot(&id) {
                Ok(s) => out.push((id, s)),
                Err(e @ Error::Corrupt { .. }) => errors.push(e),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((out, errors))
    }

    /// Resolves `latest`, a full id, or a unique prefix of at least 8 hex digits.
    pub fn resolve_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return self
                .list_snapshots_lossy()?
                .0
                .pop()
                .ok_or_else(|| Error::SnapshotNotFound(spec.to_string()));
        }
        if spec.len() < 8 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument(format!(
                "{spec:?} is not a snapshot id: give `latest` or at least 8 hex digits"
            )));
        }
        let spec_lower = spec.to_ascii_lowercase();
        let matches: Vec<SnapshotId> = self
            .list_snapshot_ids()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec_lower))
            .collect();
        match matches.as_slice() {
            [id] => Ok((*id, self.load_snapshot(id)?)),
            [] => Err(Error::SnapshotNotFound(spec.to_string())),
            _ => Err(Error::AmbiguousSnapshot(spec.to_string())),
        }
    }

    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let name = id.object_name();
        self.backend.delete(&name)?;
        let _ = self.cache.remove_object(&name);
        Ok(())
    }

    /// A saver that stores blobs into new packs of this repository.
    pub fn blob_saver(&self, options: saver::SaverOptions) -> BlobSaver {
        BlobSaver::new(self, options)
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for object in self.backend.list("keys/")? {
            let Ok(id) = object.name.trim_start_matches("keys/").parse::<KeyId>() else {
                continue;
            };
            let bytes = self.backend.read(&object.name)?;
            let file = KeyFile::decode(&bytes).map_err(|e| Error::corrupt(&object.name, e))?;
            out.push(KeyInfo {
                id,
                current: id == self.key_id,
                created: file.created,
                hostname: file.hostname,
                username: file.username,
            });
        }
        Ok(out)
    }

    /// Adds a key file that opens this repository with `password`.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        let (host, user) = who();
        let file = KeyFile::create(&self.key, password, kdf, &host, &user)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let bytes = file.encode();
        let id = KeyId(crate::id::content_hash(&bytes));
        self.backend.write(&id.object_name(), &bytes)?;
        Ok(id)
    }

    /// Removes a key; refuses to remove the one in use (or the last one).
    pub fn remove_key(&self, id: &KeyId) -> Result<()> {
        if *id == self.key_id {
            return Err(Error::InvalidArgument(format!(
                "key {} is the one this command was opened with; open with another key to remove it",
                id.short()
            )));
        }
        match self.backend.delete(&id.object_name()) {
            Err(e) if e.kind == ErrorKind::NotFound => {
                Err(Error::InvalidArgument(format!("no key {}", id.short())))
            }
            other => Ok(other?),
        }
    }

    /// Replaces the current key by one for `new_password`.
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        let new_id = self.add_key(new_password, kdf)?;
        self.backend.delete(&self.key_id.object_name())?;
        self.key_id = new_id;
        Ok(new_id)
    }

    /// Resolves a key id prefix.
    pub fn resolve_key(&self, spec: &str) -> Result<KeyId> {
        let matches: Vec<KeyId> = self
            .list_keys()?
            .into_iter()
            .map(|k| k.id)
            .filter(|id| id.to_hex().starts_with(&spec.to_ascii_lowercase()))
            .collect();
        match matches.as_slice() {
            [id] if spec.len() >= 8 => Ok(*id),
            [] => Err(Error::InvalidArgument(format!("no key matches {spec:?}"))),
            _ => Err(Error::InvalidArgument(format!(
                "{spec:?} does not name exactly one key: give at least 8 hex digits"
            ))),
        }
    }
}

/// The error for a stored blob that does not open.
fn damaged_blob(
    kind: BlobKind,
    id: &crate::id::BlobId,
    loc: &BlobLocation,
    e: blob::BlobError,
) -> Error {
    Error::corrupt(
        format!("pack {} ({kind} blob {})", loc.pack.short(), id.short()),
        e,
    )
}
