//! Faulty storage: with a backend that fails, stalls, or returns short or
//! corrupted data, snapshot, restore and verify either succeed (retrying)
//! or fail with a clear error; never a snapshot referencing missing data,
//! never a panic.

use std::sync::Arc;
use std::time::Duration;

use cairn::archiver::{self, SnapshotOptions};
use cairn::backend::faulty::{Fault, FaultKind, FaultyBackend, Op, Trigger};
use cairn::backend::local::LocalBackend;
use cairn::backend::retry::RetryBackend;
use cairn::backend::Backend;
use cairn::checker::{self, DataSubset};
use cairn::crypto::KdfParams;
use cairn::progress::NoProgress;
use cairn::repository::{CacheOptions, InitOptions, Repository};
use cairn::restorer::{self, RestoreOptions};

const PW: &[u8] = b"pw";

fn cheap() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        pack_target_bytes: Some(256 * 1024),
        ..InitOptions::default()
    }
}

fn source(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("src");
    for i in 0..20u64 {
        let mut data = vec![0u8; 150_000];
        blake3::Hasher::new()
            .update(&i.to_le_bytes())
            .finalize_xof()
            .fill(&mut data);
        std::fs::create_dir_all(src.join(format!("d{}", i % 3))).unwrap();
        std::fs::write(src.join(format!("d{}/f{i}", i % 3)), data).unwrap();
    }
    src
}

fn options(src: &std::path::Path) -> SnapshotOptions {
    SnapshotOptions {
        paths: vec![src.to_path_buf()],
        hostname: "h".into(),
        ..Default::default()
    }
}

fn faulty(root: &std::path::Path, faults: Vec<Fault>, seed: u64) -> Arc<dyn Backend> {
    let inner = FaultyBackend::new(LocalBackend::new(root), faults, seed);
    Arc::new(RetryBackend::new(
        Box::new(inner),
        5,
        Duration::from_millis(1),
    ))
}

fn clean(root: &std::path::Path) -> Arc<dyn Backend> {
    Arc::new(LocalBackend::new(root))
}

/// Restores a whole snapshot into a new directory.
fn restore_into(
    repo: &Repository,
    snap: &cairn::snapshot::Snapshot,
    target: std::path::PathBuf,
) -> cairn::Result<restorer::RestoreStats> {
    let options = RestoreOptions {
        target,
        subpath: None,
        filter: None,
        overwrite: false,
    };
    restorer::restore(repo, snap, &options, &NoProgress)
}

/// After anything happened: the repository opened cleanly verifies, and
/// every snapshot in it restores completely.
fn assert_consistent(root: &std::path::Path, tmp: &std::path::Path) {
    let repo = Repository::open(clean(root), PW, &CacheOptions::default()).unwrap();
    let report = checker::verify(&repo, DataSubset::All).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    for (i, (_, snap)) in repo.list_snapshots().unwrap().into_iter().enumerate() {
        let target = tmp.join(format!("check-{}-{i}", rand::random::<u32>()));
        let stats = restore_into(&repo, &snap, target).unwrap();
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    }
}

/// A repository in `dir` holding one snapshot, taken without faults, of
/// the test source; returns the repository root and the source.
fn repository_with_one_snapshot(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = dir.join("repo");
    Repository::init(clean(&root), PW, &cheap(), &CacheOptions::default()).unwrap();
    let src = source(dir);
    let repo = Repository::open(clean(&root), PW, &CacheOptions::default()).unwrap();
    archiver::snapshot(&repo, &options(&src), &NoProgress).unwrap();
    (root, src)
}

#[test]
fn transient_faults_at_a_rate_are_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    Repository::init(clean(&root), PW, &cheap(), &CacheOptions::default()).unwrap();
    let src = source(tmp.path());
    let faults = vec![
        Fault {
            op: Op::Any,
            kind: FaultKind::Transient,
            trigger: Trigger::Rate(0.2),
        },
        Fault {
            op: Op::Write,
            kind: FaultKind::Stall(Duration::from_millis(5)),
            trigger: Trigger::Rate(0.1),
        },
    ];
    let backend = faulty(&root, faults, 42);
    let repo = Repository::open(backend, PW, &CacheOptions::default()).unwrap();
    let outcome = archiver::snapshot(&repo, &options(&src), &NoProgress).unwrap();
    assert!(outcome.errors.is_empty());
    assert_consistent(&root, tmp.path());
}

#[test]
fn a_failing_write_at_each_call_never_leaves_a_broken_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let mut failures = 0;
    for call in 1..=40u64 {
        let root = tmp.path().join(format!("repo{call}"));
        Repository::init(clean(&root), PW, &cheap(), &CacheOptions::default()).unwrap();
        let faults = vec![Fault {
            op: Op::Write,
            kind: FaultKind::Permanent,
            trigger: Trigger::Call(call),
        }];
        let repo =
            Repository::open(faulty(&root, faults, call), PW, &CacheOptions::default()).unwrap();
        match archiver::snapshot(&repo, &options(&src), &NoProgress) {
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("injected"), "clear error: {e}");
            }
        }
        assert_consistent(&root, tmp.path());
    }
    assert!(failures > 5, "the faults hit real writes ({failures})");
}

#[test]
fn disk_full_is_a_clear_error_and_the_repository_stays_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, src) = repository_with_one_snapshot(tmp.path());
    std::fs::write(src.join("new"), vec![7u8; 2_000_000]).unwrap();
    let faults = vec![Fault {
        op: Op::Write,
        kind: FaultKind::Full,
        trigger: Trigger::Call(3),
    }];
    let repo = Repository::open(faulty(&root, faults, 1), PW, &CacheOptions::default()).unwrap();
    let err = archiver::snapshot(&repo, &options(&src), &NoProgress)
        .err()
        .expect("fails");
    assert!(err.to_string().contains("no space"), "{err}");
    assert_consistent(&root, tmp.path());
}

#[test]
fn corrupted_and_short_reads_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, _) = repository_with_one_snapshot(tmp.path());
    for kind in [FaultKind::Corrupt, FaultKind::Short] {
        for seed in 0..5 {
            let faults = vec![Fault {
                op: Op::Read,
                kind,
                trigger: Trigger::Rate(0.3),
            }];
            let backend = faulty(&root, faults, seed);
            let Ok(repo) = Repository::open(backend, PW, &CacheOptions::default()) else {
                continue;
            };
            let Ok(snaps) = repo.list_snapshots() else {
                continue;
            };
            for (_, snap) in snaps {
                let target = tmp.path().join(format!("r-{}", rand::random::<u32>()));
                if let Ok(stats) = restore_into(&repo, &snap, target) {
                    for e in &stats.errors {
                        assert!(!e.message.is_empty());
                    }
                }
            }
            let _ = checker::verify(&repo, DataSubset::All);
        }
    }
    assert_consistent(&root, tmp.path());
}

/// The fault-injecting wrapper (and the retrying one around it) pass the
/// sweep of leftover temporaries through to the local backend.
#[test]
fn wrapped_backends_pass_the_temporary_sweep_through() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let cache = CacheOptions { root: None };
    let repo = Repository::init(faulty(&root, vec![], 1), PW, &cheap(), &cache).unwrap();
    let stale = root.join("data/00/.tmp-4242-00cc");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&stale).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(25 * 3600))
        .unwrap();
    let stats = cairn::prune::prune(&repo, &cairn::prune::PruneOptions::default()).unwrap();
    assert_eq!(stats.stale_temporaries_removed, 1, "{stats:?}");
    assert!(!stale.exists());
}
