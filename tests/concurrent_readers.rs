//! Long readers beside a changing repository: a restore and a sync caught
//! in the middle of their work (their reads of packs held at a gate) while
//! backups and prunes change the repository, then let go. The restore must
//! still restore every byte; the sync must leave a destination that
//! verifies, whatever it copied.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cairn::archiver::{self, SnapshotOptions};
use cairn::backend::local::LocalBackend;
use cairn::backend::Backend;
use cairn::checker::{self, DataSubset};
use cairn::chunker::ChunkerParams;
use cairn::crypto::KdfParams;
use cairn::id::SnapshotId;
use cairn::progress::NoProgress;
use cairn::prune::{self, PruneOptions, PruneStats};
use cairn::repository::{CacheOptions, InitOptions, Repository};
use cairn::restorer::{self, RestoreOptions};

mod common;

const PW: &[u8] = b"pw";

/// Holds readers' reads of packs until the test opens it. The first read
/// to arrive tells the test the reader got there.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    reached: bool,
    open: bool,
}

impl Gate {
    fn pass(&self, name: &str) {
        if !name.starts_with("data/") {
            return;
        }
        let mut state = self.state.lock().unwrap();
        state.reached = true;
        self.changed.notify_all();
        while !state.open {
            state = self.changed.wait(state).unwrap();
        }
    }

    /// Waits until a reader is held at the gate.
    fn wait_reached(&self) {
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, Duration::from_secs(60), |s| !s.reached)
            .unwrap();
        assert!(!timeout.timed_out(), "no reader reached the gate");
        drop(state);
    }

    fn open(&self) {
        // Also while a failed assertion unwinds: the held reader must end
        // for the test to end.
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.open = true;
        self.changed.notify_all();
    }
}

/// Opens the gate when dropped, so that a test failing while a reader is
/// held fails instead of waiting forever.
struct OpensOnDrop<'a>(&'a Gate);

impl Drop for OpensOnDrop<'_> {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// The local backend at `root`, whose reads of packs pass `gate` first.
fn gated(root: &Path, gate: &Arc<Gate>) -> Arc<dyn Backend> {
    let gate = Arc::clone(gate);
    let hook = move |call: common::Call, name: &str| {
        if call == common::Call::Read {
            gate.pass(name);
        }
    };
    Arc::new(common::HookedBackend {
        inner: local(root),
        hook,
    })
}

fn local(root: &Path) -> Arc<dyn Backend> {
    Arc::new(LocalBackend::new(root))
}

fn open(backend: Arc<dyn Backend>) -> Repository {
    Repository::open(backend, PW, &CacheOptions::default()).unwrap()
}

/// A repository whose every snapshot run writes one pack: the first holds
/// `shared` and the first version of `changing`, so forgetting that
/// snapshot makes a prune repack `shared` and retire the pack a reader
/// with the older view of the index reads it from.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    snapshots: Vec<SnapshotId>,
}

impl Fixture {
    fn new(versions: u64) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        let options = InitOptions {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            chunker: ChunkerParams {
                min_bytes: 16 << 10,
                avg_bytes: 64 << 10,
                max_bytes: 256 << 10,
            },
            pack_target_bytes: Some(16 << 20),
        };
        Repository::init(local(&root), PW, &options, &CacheOptions::default()).unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("shared"), common::random_bytes(1 << 20, 1)).unwrap();
        let mut fixture = Fixture {
            _tmp: tmp,
            root,
            src,
            snapshots: Vec::new(),
        };
        for version in 0..versions {
            fixture.snapshot(version);
        }
        fixture
    }

    /// Writes version `version` of `changing` and takes a snapshot.
    fn snapshot(&mut self, version: u64) {
        std::fs::write(
            self.src.join("changing"),
            common::random_bytes(2 << 20, 100 + version),
        )
        .unwrap();
        let options = SnapshotOptions {
            paths: vec![self.src.clone()],
            hostname: "h".into(),
            ..Default::default()
        };
        let repo = open(local(&self.root));
        let outcome = archiver::snapshot(&repo, &options, &NoProgress).unwrap();
        self.snapshots.push(outcome.id);
    }

    /// Forgets every snapshot but the last and prunes with no grace period.
    fn forget_all_but_last_and_prune(&self, instant: bool) -> PruneStats {
        let repo = open(local(&self.root));
        for id in &self.snapshots[..self.snapshots.len() - 1] {
            repo.remove_snapshot(id).unwrap();
        }
        prune_now(&repo, instant)
    }

    fn packs(&self) -> Vec<String> {
        pack_names(&self.root)
    }
}

fn prune_now(repo: &Repository, instant: bool) -> PruneStats {
    let options = PruneOptions {
        max_unused: 0.0,
        grace: chrono::Duration::zero(),
        instant,
        dry_run: false,
    };
    prune::prune(repo, &options).unwrap()
}

fn pack_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = LocalBackend::new(root)
        .list("data/")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    names
}

/// Every snapshot of the repository at `root` verifies, data included.
fn assert_verifies(root: &Path) {
    let report = checker::verify(&open(local(root)), DataSubset::All).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

fn restore(repo: &Repository, id: &SnapshotId, target: &Path) -> restorer::RestoreStats {
    let snapshot = repo.load_snapshot(id).unwrap();
    let options = RestoreOptions {
        target: target.to_path_buf(),
        subpath: None,
        filter: None,
        overwrite: false,
    };
    restorer::restore(repo, &snapshot, &options, &NoProgress).unwrap()
}

fn restored_file(target: &Path, src: &Path, name: &str) -> Vec<u8> {
    let inside = src.strip_prefix("/").unwrap().join(name);
    std::fs::read(target.join(inside)).unwrap()
}

#[test]
fn a_restore_keeps_prune_from_deleting_the_packs_it_reads() {
    let fixture = Fixture::new(3);
    let gate = Arc::new(Gate::default());
    let reader = open(gated(&fixture.root, &gate));
    let last = *fixture.snapshots.last().unwrap();
    let target = fixture.root.with_file_name("restored");
    std::thread::scope(|scope| {
        let restoring = scope.spawn(|| restore(&reader, &last, &target));
        let _opens = OpensOnDrop(&gate);
        gate.wait_reached();
        // The first prune retires the pack `shared` is read from; the second
        // would delete it at once but for the restore's run.
        let first = fixture.forget_all_but_last_and_prune(false);
        assert!(first.packs_repacked > 0, "{first:?}");
        let second = prune_now(&open(local(&fixture.root)), false);
        assert_eq!(second.packs_deleted, 0, "{second:?}");
        assert!(second.packs_waiting > 0, "{second:?}");
        gate.open();
        let stats = restoring.join().unwrap();
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    });
    for name in ["shared", "changing"] {
        let restored = restored_file(&target, &fixture.src, name);
        assert!(restored == std::fs::read(fixture.src.join(name)).unwrap());
    }
    // The restore's run ended with it: now the packs go.
    let runs = std::fs::read_dir(fixture.root.join("runs"))
        .unwrap()
        .count();
    assert_eq!(runs, 0);
    let third = prune_now(&open(local(&fixture.root)), false);
    assert!(third.packs_deleted > 0, "{third:?}");
    assert_verifies(&fixture.root);
}

/// Syncs the repository at `root` to `to` (with `delete`), running
/// `meanwhile` while the sync is held at its first read of a pack; the
/// sync must succeed.
fn sync_beside(root: &Path, to: &LocalBackend, delete: bool, meanwhile: impl FnOnce()) {
    let gate = Arc::new(Gate::default());
    let from = gated(root, &gate);
    std::thread::scope(|scope| {
        let syncing = scope.spawn(|| cairn::sync::sync(&*from, to, delete, &NoProgress));
        let _opens = OpensOnDrop(&gate);
        gate.wait_reached();
        meanwhile();
        gate.open();
        syncing.join().unwrap().unwrap();
    });
}

#[test]
fn a_backup_finished_during_a_sync_is_copied_whole_or_not_at_all() {
    let mut fixture = Fixture::new(1);
    let root = fixture.root.clone();
    let mirror = fixture.root.with_file_name("mirror");
    let to = LocalBackend::new(&mirror);
    sync_beside(&root, &to, false, || fixture.snapshot(1));
    assert_verifies(&mirror);
    let copied = open(local(&mirror)).list_snapshot_ids().unwrap();
    assert_eq!(copied, vec![fixture.snapshots[0]]);
    // The next sync brings the new snapshot, with its data.
    cairn::sync::sync(&LocalBackend::new(&fixture.root), &to, false, &NoProgress).unwrap();
    assert_verifies(&mirror);
    assert_eq!(open(local(&mirror)).list_snapshot_ids().unwrap().len(), 2);
}

#[test]
fn a_sync_lists_again_when_a_prune_deletes_what_it_listed() {
    let fixture = Fixture::new(3);
    let listed = fixture.packs();
    let mirror = fixture.root.with_file_name("mirror");
    let to = LocalBackend::new(&mirror);
    sync_beside(&fixture.root, &to, true, || {
        let pruned = fixture.forget_all_but_last_and_prune(true);
        assert!(pruned.packs_deleted > 0, "{pruned:?}");
        let left = fixture.packs();
        assert!(
            listed.iter().any(|p| !left.contains(p)),
            "no listed pack went"
        );
    });
    assert_verifies(&mirror);
    assert_eq!(pack_names(&mirror), fixture.packs());
    let mirrored = open(local(&mirror));
    let last = *fixture.snapshots.last().unwrap();
    assert_eq!(mirrored.list_snapshot_ids().unwrap(), vec![last]);
    let target = mirror.with_file_name("restored");
    let stats = restore(&mirrored, &last, &target);
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let changing = restored_file(&target, &fixture.src, "changing");
    assert!(changing == std::fs::read(fixture.src.join("changing")).unwrap());
}

/// A verify that listed packs only an obsolete marker still names, held
/// at its first read of a pack while a prune deletes those packs and the
/// marker, reports no damage: that is the protocol at work. It counts only
/// the packs left, and the last snapshot, whose blobs are all in those,
/// checks out (the set of indexed blobs is made again without the deleted
/// packs).
#[test]
fn packs_a_prune_deletes_under_a_verify_are_no_damage() {
    let fixture = Fixture::new(3);
    let first = fixture.forget_all_but_last_and_prune(false);
    assert!(first.packs_repacked > 0, "{first:?}");
    let markers = std::fs::read_dir(fixture.root.join("obsolete"))
        .unwrap()
        .count();
    assert!(markers > 0, "the first prune retired packs");
    let gate = Arc::new(Gate::default());
    let verifier = open(gated(&fixture.root, &gate));
    std::thread::scope(|scope| {
        let verifying = scope.spawn(|| checker::verify(&verifier, DataSubset::All));
        let _opens = OpensOnDrop(&gate);
        gate.wait_reached();
        let second = prune_now(&open(local(&fixture.root)), false);
        assert!(second.packs_deleted > 0, "{second:?}");
        gate.open();
        let report = verifying.join().unwrap().unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.packs as usize, fixture.packs().len());
        assert!(report.snapshots == 1 && report.trees > 0, "{report:?}");
    });
}
