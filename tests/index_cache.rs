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

/// A process that opened the repository before another one finished a
/// backup must still handle that backup: it lists the snapshot, so it must
/// find the snapshot's blobs, although its cache was filled before the
/// backup's index files existed. (prune failed here with "tree blob … is
/// not in any pack of the index" when a snapshot ended beside it.)
#[test]
fn a_snapshot_finished_after_open_is_readable_by_prune_verify_and_restore() {
    use cairn::archiver::{snapshot, SnapshotOptions};
    use cairn::checker::{verify, DataSubset};
    use cairn::progress::NoProgress;
    use cairn::prune::{prune, PruneOptions};
    use cairn::restorer::{restore, RestoreOptions};

    let (fx, early) = Fixture::new();
    let source = fx._dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("sub/file"), b"written after the early open").unwrap();
    // The writer has a cache of its own, like a second process would.
    let writer = Repository::open(fx.backend.clone(), PW, &CacheOptions { root: None }).unwrap();
    let options = SnapshotOptions {
        paths: vec![source.clone()],
        selection: Default::default(),
        excludes: vec![],
        hostname: "h".into(),
        username: "u".into(),
        tags: vec![],
        time: None,
        parent: Some(None),
        saver: Default::default(),
    };
    let made = snapshot(&writer, &options, &NoProgress).unwrap();

    let report = verify(&early, DataSubset::All).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.snapshots, 1);
    let (id, snap) = early.resolve_snapshot("latest").unwrap();
    assert_eq!(id, made.id);
    let target = fx._dir.path().join("restored");
    let restore_options = RestoreOptions {
        target: target.clone(),
        subpath: None,
        filter: None,
        overwrite: false,
    };
    restore(&early, &snap, &restore_options, &NoProgress).unwrap();
    let restored = target
        .join(source.strip_prefix("/").unwrap())
        .join("sub/file");
    assert_eq!(
        std::fs::read(restored).unwrap(),
        b"written after the early open"
    );
    let options = PruneOptions {
        max_unused: 0.0,
        instant: true,
        ..PruneOptions::default()
    };
    let stats = prune(&early, &options).unwrap();
    assert!(stats.blobs_used >= 3, "{stats:?}");
}
