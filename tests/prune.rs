//! `prune` reclaims the space of forgotten snapshots, keeps every remaining
//! snapshot restorable, and defers deletion by a grace period unless told
//! `--instant`.

mod common;

use common::*;

fn setup() -> (TestEnv, String, Vec<String>) {
    let env = TestEnv::new();
    env.init_small_chunks();
    let src = env.path("src");
    let s = src.to_str().unwrap().to_string();
    write(&src.join("shared"), &random_bytes(1 << 20, 1));
    let mut ids = Vec::new();
    for i in 0..3u64 {
        write(&src.join("changing"), &random_bytes(2 << 20, 100 + i));
        ids.push(env.snapshot(&[&s]));
    }
    (env, s, ids)
}

#[test]
fn instant_prune_frees_forgotten_data_and_keeps_the_rest() {
    let (env, s, ids) = setup();
    let before = dir_bytes(&env.repo.join("data"));
    env.ok(&["forget", &ids[0][..8], &ids[1][..8]]);
    let out = env.ok(&["prune", "--instant", "--max-unused", "0", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(stats["packs_deleted"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["packs_repacked"].as_u64().unwrap() > 0, "{stats}");
    // Repacked blobs were staged in files; none is left behind.
    let staged: Vec<_> = files_under(&env.repo)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    let after = dir_bytes(&env.repo.join("data"));
    // Two of three 2 MiB versions are gone.
    assert!(after + (3 << 20) < before, "before {before}, after {after}");
    let target = env.path("t");
    env.restore(&format!("{}:{s}", &ids[2][..8]), &target);
    assert_same_tree(std::path::Path::new(&s), &target);
    // The new index came as several bounded files (CAIRN_INDEX_FILE_BLOBS)
    // plus the one that superseded the old files.
    let index_files = files_under(&env.repo.join("index")).len();
    assert!(index_files >= 3, "{index_files} index files");
    env.ok(&["verify", "--read-data"]);
    // A second prune has nothing left to do.
    let again: serde_json::Value =
        serde_json::from_str(&env.ok(&["prune", "--instant", "--max-unused", "0", "--json"]))
            .unwrap();
    assert_eq!(again["packs_deleted"], 0, "{again}");
}

#[test]
fn grace_period_defers_deletion() {
    let (env, s, ids) = setup();
    env.ok(&["forget", &ids[0][..8]]);
    let first: serde_json::Value =
        serde_json::from_str(&env.ok(&["prune", "--max-unused", "0", "--json"])).unwrap();
    assert!(
        first["bytes_marked_obsolete"].as_u64().unwrap() > 0,
        "{first}"
    );
    assert_eq!(
        first["packs_deleted"], 0,
        "nothing deleted within the grace period"
    );
    // One marker per CAIRN_INDEX_FILE_BLOBS entries.
    assert!(
        std::fs::read_dir(env.repo.join("obsolete"))
            .unwrap()
            .count()
            >= 1
    );
    // Still within grace: a second prune waits.
    let second: serde_json::Value = serde_json::from_str(&env.ok(&["prune", "--json"])).unwrap();
    assert_eq!(second["packs_deleted"], 0);
    assert!(second["packs_waiting"].as_u64().unwrap() > 0);
    // Grace over: deleted.
    let third: serde_json::Value =
        serde_json::from_str(&env.ok(&["prune", "--grace-hours", "0", "--json"])).unwrap();
    assert!(third["packs_deleted"].as_u64().unwrap() > 0, "{third}");
    assert_eq!(
        std::fs::read_dir(env.repo.join("obsolete"))
            .unwrap()
            .count(),
        0
    );
    for id in &ids[1..] {
        let target = env.path(&format!("t-{}", &id[..8]));
        env.restore(&format!("{}:{s}", &id[..8]), &target);
    }
}

#[test]
fn dry_run_changes_nothing() {
    let (env, _s, ids) = setup();
    env.ok(&["forget", &ids[0][..8]]);
    let before = dir_bytes(&env.repo);
    let out: serde_json::Value = serde_json::from_str(&env.ok(&[
        "prune",
        "--dry-run",
        "--instant",
        "--max-unused",
        "0",
        "--json",
    ]))
    .unwrap();
    assert!(out["bytes_marked_obsolete"].as_u64().unwrap() > 0);
    assert_eq!(dir_bytes(&env.repo), before);
}

#[test]
fn prune_killed_at_any_point_leaves_a_verifying_repository() {
    let (env, s, ids) = setup();
    env.ok(&["forget", &ids[0][..8], &ids[1][..8]]);
    let probe_env = {
        let (probe, _, probe_ids) = setup();
        probe.ok(&["forget", &probe_ids[0][..8], &probe_ids[1][..8]]);
        let t = std::time::Instant::now();
        probe.ok(&["prune", "--instant", "--max-unused", "0"]);
        t.elapsed()
    };
    for point in 0..12u32 {
        let delay = probe_env.mul_f64(f64::from(point) / 12.0);
        let mut child = env
            .cmd()
            .args(["prune", "--max-unused", "0", "--grace-hours", "0"])
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        env.assert_verifies(&format!("after kill {point}"));
    }
    env.ok(&["prune", "--max-unused", "0", "--grace-hours", "0"]);
    env.ok(&["prune", "--max-unused", "0", "--grace-hours", "0"]);
    let target = env.path("t");
    env.restore(&format!("{}:{s}", &ids[2][..8]), &target);
    assert_same_tree(std::path::Path::new(&s), &target);
    env.assert_verifies("after the final prunes");
}

/// Snapshots, prunes (grace period 0, so only the run markers protect
/// concurrent backups) and verifies run at the same time, in loops. Every
/// snapshot that reported success must still restore completely
/// afterwards, and no verify may report damage.
#[test]
fn concurrent_snapshots_and_prunes_never_lose_a_reported_snapshot() {
    let env = TestEnv::new();
    env.init_small_chunks();
    let src = env.path("src");
    let s = src.to_str().unwrap().to_string();
    let mut saved: Vec<(String, Vec<u8>)> = Vec::new();
    for round in 0..6u64 {
        // Half the data changes every round, so prunes have work to do.
        write(&src.join("stable"), &random_bytes(300_000, 1));
        let changing = random_bytes(600_000, 100 + round);
        write(&src.join("changing"), &changing);
        if round >= 2 {
            // Keep the last two snapshots only.
            env.ok(&["forget", "--keep-last", "2"]);
        }
        let (snap, prune, verify) = std::thread::scope(|scope| {
            let snap = scope.spawn(|| env.cmd().args(["snapshot", "--json", &s]).output().unwrap());
            let prune = scope.spawn(|| {
                env.cmd()
                    .args(["prune", "--max-unused", "0", "--grace-hours", "0"])
                    .output()
                    .unwrap()
            });
            // A reader beside them must not mistake their work for damage.
            let verify = scope.spawn(|| env.cmd().args(["verify"]).output().unwrap());
            (
                snap.join().unwrap(),
                prune.join().unwrap(),
                verify.join().unwrap(),
            )
        });
        assert_success(&prune, &["prune"]);
        assert_success(&verify, &["verify"]);
        if snap.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&snap.stdout).unwrap();
            saved.push((v["snapshot_id"].as_str().unwrap().to_string(), changing));
        }
        env.assert_verifies(&format!("round {round}"));
    }
    assert!(saved.len() >= 5, "snapshots succeeded: {}", saved.len());
    let present: String = env.ok(&["snapshots", "--json"]);
    for (id, changing) in saved.iter().rev().take(2) {
        assert!(present.contains(id.as_str()));
        let target = env.path(&format!("t-{}", &id[..8]));
        env.restore(&format!("{}:{s}", &id[..8]), &target);
        assert_eq!(std::fs::read(target.join("changing")).unwrap(), *changing);
    }
}

#[test]
fn second_copies_from_concurrent_writers_are_reclaimed() {
    let env = TestEnv::new();
    env.init_small_chunks();
    let src = env.path("src");
    let s = src.to_str().unwrap().to_string();
    write(&src.join("big"), &random_bytes(6 << 20, 7));
    // Two runs that both start with an empty index store every blob twice.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            env.cmd()
                .args(["snapshot", "--json", &s])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success());
    }
    let before = dir_bytes(&env.repo.join("data"));
    assert!(before > (10 << 20), "both runs stored the file: {before}");
    let stats: serde_json::Value =
        serde_json::from_str(&env.ok(&["prune", "--instant", "--max-unused", "0", "--json"]))
            .unwrap();
    let after = dir_bytes(&env.repo.join("data"));
    assert!(
        after < (7 << 20),
        "one copy is left: {before} -> {after}, {stats}"
    );
    env.ok(&["verify", "--read-data"]);
    let out = env.ok(&["snapshots", "--json"]);
    let snaps: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(snaps.len(), 2);
    for snap in snaps {
        let id = snap["id"].as_str().unwrap();
        let target = env.path(&format!("t-{}", &id[..8]));
        env.restore(&format!("{}:{s}", &id[..8]), &target);
        assert_same_tree(&src, &target);
    }
}

/// A writer killed mid-write leaves a `.tmp-` file beside the object it
/// was writing. Prune removes those a day old, wherever they are, and
/// leaves younger ones: they may belong to a writer still at work.
#[test]
fn temporaries_of_killed_writers_are_removed_once_a_day_old() {
    let (env, _, _) = setup();
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(25 * 3600);
    let plant = |rel: &str, old: bool| {
        let path = env.repo.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        if old {
            file.set_modified(day_ago).unwrap();
        }
        path
    };
    let stale = [
        plant("index/.tmp-4242-00aa", true),
        plant("snapshots/.tmp-4242-00bb", true),
        plant("data/00/.tmp-4242-00cc", true),
    ];
    let fresh = plant("data/01/.tmp-4243-00dd", false);
    let stats: serde_json::Value = serde_json::from_str(&env.ok(&["prune", "--json"])).unwrap();
    assert_eq!(stats["stale_temporaries_removed"], 3, "{stats}");
    for path in &stale {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    assert!(fresh.exists(), "a young temporary file was removed");
    env.assert_verifies("after removing temporaries");
}

/// A killed backup leaves its run marker behind. Prune removes the markers
/// whose heartbeat is 6 hours old, and keeps those of live runs.
#[test]
fn run_markers_of_dead_processes_are_removed() {
    use cairn::repository::marker::RunMarker;

    let (env, _, _) = setup();
    let backend = std::sync::Arc::new(cairn::backend::local::LocalBackend::new(&env.repo));
    let repo = cairn::repository::Repository::open(
        backend,
        PASSWORD.as_bytes(),
        &cairn::repository::CacheOptions::default(),
    )
    .unwrap();
    let now = chrono::Local::now().fixed_offset();
    let plant = |name: &str, heartbeat| {
        let marker = RunMarker {
            hostname: "h".into(),
            pid: 4242,
            started: heartbeat,
            heartbeat,
        };
        let path = env.repo.join("runs").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, marker.seal(repo.key())).unwrap();
        path
    };
    let dead = plant("00aa", now - chrono::Duration::hours(7));
    let live = plant("00bb", now - chrono::Duration::minutes(20));
    let stats: serde_json::Value = serde_json::from_str(&env.ok(&["prune", "--json"])).unwrap();
    assert_eq!(stats["dead_runs_removed"], 1, "{stats}");
    assert!(!dead.exists(), "the dead run's marker is still there");
    assert!(live.exists(), "a live run's marker was removed");
}
