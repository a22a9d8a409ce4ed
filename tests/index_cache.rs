//! The local index cache never outlives the index files it was built
//! from: when a new index file supersedes one already cached (as a prune
//! does, and as a prune killed before deleting the old file leaves
//! behind), the superseded entries must vanish from the cache, or readers
//! would look for blobs in packs that prune deletes.

use std::sync::Arc;

use cairn::backend::local::LocalBackend;
use cairn::backend::Backend;
use cairn::blob::BlobKind;
use cairn::crypto::KdfParams;
use cairn::id::{BlobId, PackId};
use cairn::index::{IndexFile, IndexedPack};
use cairn::pack::PackEntry;
use cairn::repository::{CacheOptions, InitOptions, Repository};

const PW: &[u8] = b"pw";

fn pack_with(pack: u8, blob: u8) -> IndexedPack {
    IndexedPack {
        id: PackId([pack; 32]),
        size_bytes: 100,
        blobs: vec![PackEntry {
            kind: BlobKind::Data,
            id: BlobId([blob; 32]),
            offset: 0,
            length: 50,
            plain_length: 40,
        }],
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    backend: Arc<dyn Backend>,
    cache: CacheOptions,
}

impl Fixture {
    fn new() -> (Fixture, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let cache = CacheOptions {
            root: Some(dir.path().join("cache")),
        };
        let options = InitOptions {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..InitOptions::default()
        };
        let repo = Repository::init(backend.clone(), PW, &options, &cache).unwrap();
        let fixture = Fixture {
            _dir: dir,
            backend,
            cache,
        };
        (fixture, repo)
    }

    fn reopen(&self) -> Repository {
        Repository::open(self.backend.clone(), PW, &self.cache).unwrap()
    }
}

fn knows(repo: &Repository, blob: u8) -> bool {
    repo.lookup_blob(BlobKind::Data, &BlobId([blob; 32]))
        .unwrap()
        .is_some()
}

#[test]
fn a_file_written_by_another_process_that_supersedes_a_cached_one_evicts_it() {
    let (fx, repo) = Fixture::new();
    let old = repo
        .save_index_file(&IndexFile {
            supersedes: vec![],
            packs: vec![pack_with(1, 7)],
        })
        .unwrap();
    assert!(knows(&repo, 7));
    drop(repo);
    // Another process (a prune) writes the superseding file straight to
    // the backend and dies before deleting the old one.
    let repo = fx.reopen();
    let (id, bytes) = IndexFile {
        supersedes: vec![old],
        packs: vec![pack_with(2, 8)],
    }
    .seal(repo.key());
    drop(repo);
    fx.backend.write(&id.object_name(), &bytes).unwrap();
    let repo = fx.reopen();
    assert!(knows(&repo, 8), "the new file's blob is found");
    assert!(!knows(&repo, 7), "the superseded file's blob is gone");
}

#[test]
fn a_superseding_file_saved_in_process_evicts_the_old_entries() {
    let (fx, repo) = Fixture::new();
    let old = repo
        .save_index_file(&IndexFile {
            supersedes: vec![],
            packs: vec![pack_with(1, 7), pack_with(3, 9)],
        })
        .unwrap();
    repo.save_index_file(&IndexFile {
        supersedes: vec![old],
        packs: vec![pack_with(3, 9)],
    })
    .unwrap();
    // Killed here: the old file is still listed.
    drop(repo);
    let repo = fx.reopen();
    assert!(knows(&repo, 9));
    assert!(!knows(&repo, 7));
}
