//! The local index cache never outlives the index files it was built
//! from: when a new index file supersedes one already cached (as a prune
//! does, and as a prune killed before deleting the old file leaves
//! behind), the superseded entries must vanish from the cache, or readers
//! would look for blobs in packs that prune deletes.

mod common;

use std::sync::Arc;

use cairn::backend::local::LocalBackend;
use cairn::backend::Backend;
use cairn::blob::BlobKind;
use cairn::id::{BlobId, PackId};
use cairn::index::{IndexFile, IndexedPack};
use cairn::pack::PackEntry;
use cairn::repository::{CacheOptions, Repository};

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
    dir: tempfile::TempDir,
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
        let options = common::cheap_init_options();
        let repo = Repository::init(backend.clone(), PW, &options, &cache).unwrap();
        let fixture = Fixture {
            dir,
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
    use cairn::archiver::snapshot;
    use cairn::checker::{verify, DataSubset};
    use cairn::progress::NoProgress;
    use cairn::prune::{prune, PruneOptions};
    use cairn::restorer::{restore, RestoreOptions};

    let (fx, writer) = Fixture::new();
    let source = fx.dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("sub/file"), b"written after the early open").unwrap();
    // One process per command, each with a cache of its own, all opened
    // before the backup ends.
    let open_early = || Repository::open(fx.backend.clone(), PW, &CacheOptions { root: None });
    let (early, early_restore, early_prune) = (
        open_early().unwrap(),
        open_early().unwrap(),
        open_early().unwrap(),
    );
    let made = snapshot(&writer, &snapshot_options(&source), &NoProgress).unwrap();

    let report = verify(&early, DataSubset::All).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.snapshots, 1);
    let (id, snap) = early_restore.resolve_snapshot("latest").unwrap();
    assert_eq!(id, made.id);
    let target = fx.dir.path().join("restored");
    let restore_options = RestoreOptions {
        target: target.clone(),
        subpath: None,
        filter: None,
        overwrite: false,
    };
    restore(&early_restore, &snap, &restore_options, &NoProgress).unwrap();
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
    let stats = prune(&early_prune, &options).unwrap();
    assert!(stats.blobs_used >= 3, "{stats:?}");
}

fn snapshot_options(source: &std::path::Path) -> cairn::archiver::SnapshotOptions {
    cairn::archiver::SnapshotOptions {
        paths: vec![source.to_path_buf()],
        hostname: "h".into(),
        parent: Some(None),
        ..Default::default()
    }
}

/// The local backend, except that the first listing of `data/` first lets
/// a real prune (grace period 0) run to its end: the moment between a
/// verify reading the index and checking the packs.
fn prune_during_verify(inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
    let pruned = std::sync::atomic::AtomicBool::new(false);
    let backend = inner.clone();
    let hook = move |call: common::Call, prefix: &str| {
        use std::sync::atomic::Ordering;
        let first = call == common::Call::List && prefix == "data/";
        if first && !pruned.swap(true, Ordering::SeqCst) {
            let private = CacheOptions { root: None };
            let other = Repository::open(backend.clone(), PW, &private).unwrap();
            let stats = cairn::prune::prune(&other, &prune_now()).unwrap();
            assert!(stats.packs_deleted > 0, "{stats:?}");
        }
    };
    Arc::new(common::HookedBackend { inner, hook })
}

/// Two snapshots of a folder holding `shared` (if not empty) and a file
/// that changes between them; the first is removed, so a prune has packs
/// to retire.
fn second_of_two_snapshots(fx: &Fixture, repo: &Repository, shared: &[u8]) {
    use cairn::progress::NoProgress;

    let source = fx.dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    if !shared.is_empty() {
        std::fs::write(source.join("shared"), shared).unwrap();
    }
    std::fs::write(source.join("file"), b"first version").unwrap();
    let first = cairn::archiver::snapshot(repo, &snapshot_options(&source), &NoProgress).unwrap();
    std::fs::write(source.join("file"), b"second version").unwrap();
    cairn::archiver::snapshot(repo, &snapshot_options(&source), &NoProgress).unwrap();
    repo.remove_snapshot(&first.id).unwrap();
}

/// Prune options that retire every pack with unused bytes, and delete
/// retired packs at the next run.
fn prune_now() -> cairn::prune::PruneOptions {
    cairn::prune::PruneOptions {
        max_unused: 0.0,
        grace: chrono::Duration::zero(),
        ..Default::default()
    }
}

/// Packs that only an obsolete marker still names may be deleted by a
/// prune while a verify runs; once their marker is gone too, that is no
/// damage, and verify must not report it as such.
#[test]
fn verify_does_not_report_packs_a_concurrent_prune_settled() {
    use cairn::checker::{verify, DataSubset};
    use cairn::prune::prune;

    let (fx, repo) = Fixture::new();
    second_of_two_snapshots(&fx, &repo, &[]);
    // Retires the first snapshot's packs: an obsolete marker names them.
    let options = prune_now();
    let stats = prune(&repo, &options).unwrap();
    assert!(stats.bytes_marked_obsolete > 0, "{stats:?}");
    assert!(!fx.backend.list("obsolete/").unwrap().is_empty());
    drop(repo);

    let racing = prune_during_verify(fx.backend.clone());
    let repo = Repository::open(racing, PW, &fx.cache).unwrap();
    let report = verify(&repo, DataSubset::All).unwrap();
    assert!(
        fx.backend.list("obsolete/").unwrap().is_empty(),
        "the prune ran"
    );
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.snapshots, 1);
}

/// A command opens the cache the repository's location had last time
/// while the key is derived. When the location holds another repository
/// by now (created with another cache), that guess must be dropped: its
/// index names packs this repository does not have, and a snapshot
/// deduplicated against it would lose data.
#[test]
fn a_location_that_holds_another_repository_now_gets_its_own_cache() {
    use cairn::checker::{verify, DataSubset};
    use cairn::progress::NoProgress;

    let (fx, first) = Fixture::new();
    let source = fx.dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("file"), b"the same bytes in both repositories").unwrap();
    cairn::archiver::snapshot(&first, &snapshot_options(&source), &NoProgress).unwrap();
    let first_id = first.config().id.clone();
    drop(first);

    std::fs::remove_dir_all(fx.dir.path().join("repo")).unwrap();
    let elsewhere = CacheOptions {
        root: Some(fx.dir.path().join("other-cache")),
    };
    let init = common::cheap_init_options();
    let second_id = Repository::init(fx.backend.clone(), PW, &init, &elsewhere)
        .unwrap()
        .config()
        .id
        .clone();
    assert_ne!(first_id, second_id);

    // The first cache still remembers the first repository here.
    let repo = fx.reopen();
    assert_eq!(repo.config().id, second_id);
    assert!(
        repo.cache()
            .path()
            .starts_with(fx.dir.path().join("cache").join(&second_id)),
        "{}",
        repo.cache().path().display()
    );
    cairn::archiver::snapshot(&repo, &snapshot_options(&source), &NoProgress).unwrap();
    let report = verify(&repo, DataSubset::All).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    drop(repo);
    // And it remembers the second one from now on.
    assert_eq!(
        fx.reopen().cache().path(),
        fx.dir.path().join("cache").join(&second_id).join("index")
    );
}

/// Prune deletes a settled marker's packs before the marker itself. A
/// prune killed in between leaves a marker that names packs which are
/// gone; the data is all in live packs, so verify must not call that
/// damage (it did, naming the snapshot whose blobs the gone packs had
/// also held), and the next prune finishes the job.
#[test]
fn a_marker_left_after_its_packs_were_deleted_is_not_damage() {
    use cairn::checker::{verify, DataSubset};
    use cairn::prune::prune;

    let (fx, repo) = Fixture::new();
    let mut shared = vec![0u8; 300_000];
    blake3::Hasher::new()
        .update(b"shared")
        .finalize_xof()
        .fill(&mut shared);
    second_of_two_snapshots(&fx, &repo, &shared);
    let options = prune_now();
    prune(&repo, &options).unwrap();
    // What a prune killed after deleting the retired packs leaves.
    let mut deleted = 0;
    for name in repo.obsolete_names().unwrap() {
        for pack in repo.load_obsolete(&name).unwrap().packs {
            fx.backend.delete(&pack.id.object_name()).unwrap();
            deleted += 1;
        }
    }
    assert!(deleted > 0, "the prune retired no pack");

    let report = verify(&repo, DataSubset::All).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.snapshots, 1);
    prune(&repo, &options).unwrap();
    assert!(fx.backend.list("obsolete/").unwrap().is_empty());
    let report = verify(&repo, DataSubset::All).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

/// Trees a prune deleted leave the cache at the next command that reads the
/// new index, and snapshots forgotten elsewhere at the next listing: a
/// cache that kept everything ever loaded would grow for as long as the
/// repository lives.
#[test]
fn trees_and_snapshots_that_are_gone_leave_the_cache() {
    use cairn::progress::NoProgress;

    let (fx, repo) = Fixture::new();
    let source = fx.dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    let mut made = Vec::new();
    for version in ["first version", "second version"] {
        std::fs::write(source.join("sub/file"), version).unwrap();
        let options = snapshot_options(&source);
        made.push(cairn::archiver::snapshot(&repo, &options, &NoProgress).unwrap());
    }
    let (first, second) = (&made[0], &made[1]);
    assert_eq!(repo.list_snapshots().unwrap().len(), 2, "both loaded");
    let cached = |repo: &Repository, name: &str| repo.cache().get_object(name).unwrap().is_some();
    let tree = |snapshot: &cairn::archiver::ArchiveOutcome| {
        format!("tree/{}", snapshot.snapshot.tree.to_hex())
    };
    for made in [first, second] {
        assert!(cached(&repo, &tree(made)));
        assert!(cached(&repo, &made.id.object_name()));
    }
    // Forgotten by another process, then pruned.
    fx.backend.delete(&first.id.object_name()).unwrap();
    let options = cairn::prune::PruneOptions {
        max_unused: 0.0,
        instant: true,
        ..Default::default()
    };
    let stats = cairn::prune::prune(&repo, &options).unwrap();
    assert!(stats.packs_deleted > 0, "{stats:?}");
    drop(repo);

    let repo = fx.reopen();
    assert_eq!(repo.list_snapshot_ids().unwrap(), vec![second.id]);
    assert!(!cached(&repo, &tree(first)), "the pruned tree left");
    assert!(!cached(&repo, &first.id.object_name()), "the snapshot left");
    assert!(cached(&repo, &tree(second)));
    assert!(cached(&repo, &second.id.object_name()));
    let restored = fx.dir.path().join("restored");
    let snapshot = repo.load_snapshot(&second.id).unwrap();
    let options = cairn::restorer::RestoreOptions {
        target: restored.clone(),
        subpath: None,
        filter: None,
        overwrite: false,
    };
    cairn::restorer::restore(&repo, &snapshot, &options, &NoProgress).unwrap();
    let file = restored
        .join(source.strip_prefix("/").unwrap())
        .join("sub/file");
    assert_eq!(std::fs::read(file).unwrap(), b"second version");
}

/// The index built anew (in a new cache, or after a prune or `repair
/// index` replaced index files) makes a snapshot check that its parent's
/// chunks are still indexed, if that parent existed then; after that
/// snapshot, its parent is trusted again, and so is the new snapshot.
#[test]
fn a_rebuilt_index_makes_snapshots_check_older_parents_once() {
    use cairn::progress::NoProgress;

    let (fx, repo) = Fixture::new();
    let source = fx.dir.path().join("src");
    second_of_two_snapshots(&fx, &repo, &[]);
    let parent = repo.list_snapshot_ids().unwrap()[0];
    assert!(
        !repo.parent_check_due(&parent).unwrap(),
        "made after the build"
    );
    drop(repo);
    let repo = fx.reopen();
    repo.sync_index().unwrap();
    assert!(!repo.parent_check_due(&parent).unwrap(), "nothing rebuilt");

    let stats = cairn::prune::prune(&repo, &prune_now()).unwrap();
    assert!(stats.bytes_marked_obsolete > 0, "{stats:?}");
    drop(repo);
    let repo = fx.reopen();
    repo.sync_index().unwrap();
    assert!(
        repo.parent_check_due(&parent).unwrap(),
        "the prune replaced the index"
    );
    let mut options = snapshot_options(&source);
    options.parent = Some(Some(parent));
    let made = cairn::archiver::snapshot(&repo, &options, &NoProgress).unwrap();
    assert_eq!(made.snapshot.parent, Some(parent.to_hex()));
    assert!(!repo.parent_check_due(&parent).unwrap());
    assert!(!repo.parent_check_due(&made.id).unwrap());
}
