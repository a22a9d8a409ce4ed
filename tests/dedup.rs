//! Deduplication: unchanged data is not stored twice, unchanged files are
//! not even read, and an insertion near the start of a file reuses almost
//! all of its chunks.

mod common;

use common::*;

fn repo_bytes(env: &TestEnv) -> u64 {
    dir_bytes(&env.repo)
}

#[test]
fn second_snapshot_of_unchanged_data_adds_almost_nothing() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    for i in 0..50 {
        write(
            &src.join(format!("d{}/f{i}", i % 5)),
            &random_bytes(20_000 + i * 100, i as u64),
        );
    }
    write(&src.join("big"), &random_bytes(5 << 20, 99));
    let s = src.to_str().unwrap();
    let first = env.snapshot_summary(&[s]);
    assert_eq!(first["summary"]["files_new"], 51);
    let before = repo_bytes(&env);
    let second = env.snapshot_summary(&[s]);
    let after = repo_bytes(&env);
    assert_eq!(second["summary"]["files_unchanged"], 51, "{second}");
    assert_eq!(
        second["summary"]["read_bytes"], 0,
        "unchanged files are not read"
    );
    // No data blob is new; at most the root tree changes, because /tmp
    // (an ancestor of the source) changes whenever another test runs.
    assert!(
        second["summary"]["added_plain_bytes"].as_u64().unwrap() < 4096,
        "{second}"
    );
    assert!(
        after - before < 16 * 1024,
        "second snapshot added {} bytes",
        after - before
    );
    assert!(second["parent"].as_str().is_some());

    // Same data under a forced full read: still nothing new stored.
    let third = env.snapshot_summary(&["--force", s]);
    assert!(
        third["summary"]["added_plain_bytes"].as_u64().unwrap() < 4096,
        "{third}"
    );
    assert!(third["summary"]["read_bytes"].as_u64().unwrap() > 5 << 20);
}

#[test]
fn insertion_near_start_reuses_most_chunks() {
    let env = TestEnv::new();
    env.init_small_chunks();
    let src = env.path("src");
    let data = random_bytes(4 << 20, 7);
    write(&src.join("file"), &data);
    let s = src.to_str().unwrap();
    let first = env.snapshot_summary(&[s]);
    let first_blobs = first["summary"]["blobs_added"].as_u64().unwrap();
    assert!(
        first_blobs > 100,
        "small chunks give many blobs: {first_blobs}"
    );
    let mut edited = data.clone();
    edited.splice(1000..1000, b"a few inserted bytes".iter().copied());
    write(&src.join("file"), &edited);
    let second = env.snapshot_summary(&[s]);
    assert_eq!(second["summary"]["files_changed"], 1);
    let new_blobs = second["summary"]["blobs_added"].as_u64().unwrap();
    // One or two data chunks around the edit, plus the changed trees.
    assert!(new_blobs <= 6, "insertion stored {new_blobs} new blobs");

    let target = env.path("t");
    env.restore(&format!("latest:{s}/file"), &target);
    assert_eq!(std::fs::read(target.join("file")).unwrap(), edited);
}

/// A changed file is read expecting its chunks in the parent snapshot;
/// whatever the edits, the chunks must come out as a full read cuts them,
/// or dedup against other copies of the data would suffer.
#[test]
fn a_changed_file_is_cut_as_a_read_without_parent_cuts_it() {
    let env = TestEnv::new();
    env.init_small_chunks();
    let src = env.path("src");
    let data = random_bytes(4 << 20, 8);
    write(&src.join("file"), &data);
    let s = src.to_str().unwrap();
    env.snapshot_summary(&[s]);
    let mut edited = data.clone();
    edited.splice(1000..1000, b"inserted".iter().copied());
    edited[2 << 20..(2 << 20) + 100].fill(0xee);
    edited.drain(3 << 20..(3 << 20) + 5000);
    edited.extend_from_slice(&random_bytes(100_000, 9));
    write(&src.join("file"), &edited);
    let second = env.snapshot_summary(&[s]);
    assert_eq!(second["summary"]["files_changed"], 1, "{second}");

    // Without a parent every chunk is cut; none may be new.
    let forced = env.snapshot_summary(&["--force", s]);
    assert!(
        forced["summary"]["added_plain_bytes"].as_u64().unwrap() < 4096,
        "a full read cut chunks the expecting read did not: {forced}"
    );
    let target = env.path("t");
    env.restore(&format!("latest:{s}/file"), &target);
    assert_eq!(std::fs::read(target.join("file")).unwrap(), edited);
}

#[test]
fn incompressible_and_compressible_data_are_stored_sensibly() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(
        &src.join("log"),
        &b"2026-11-26 INFO request served in 3ms\n".repeat(200_000),
    );
    let s = src.to_str().unwrap();
    let v = env.snapshot_summary(&[s]);
    let plain = v["summary"]["added_plain_bytes"].as_u64().unwrap();
    let stored = v["summary"]["added_stored_bytes"].as_u64().unwrap();
    assert!(stored * 20 < plain, "log compresses: {stored} of {plain}");

    let env2 = TestEnv::new();
    env2.init();
    write(&env2.path("src/media"), &random_bytes(3 << 20, 5));
    let v = env2.snapshot_summary(&[env2.path("src").to_str().unwrap(), "--compression", "auto"]);
    let plain = v["summary"]["added_plain_bytes"].as_u64().unwrap();
    let stored = v["summary"]["added_stored_bytes"].as_u64().unwrap();
    assert!(
        stored < plain + 4096,
        "random data stored raw, overhead small: {stored} vs {plain}"
    );
}

/// Large files are cut on the file chunker's thread while the walk goes
/// on, so directories holding them are finished later than their
/// siblings. The snapshot must still be exact: trees, restored bytes, and
/// every count in the summary.
#[test]
fn trees_and_counts_are_exact_when_large_files_are_cut_beside_the_walk() {
    let env = TestEnv::new();
    env.init_small_chunks();
    let src = env.path("src");
    // 4 top directories, each with 3 subdirectories; every directory holds
    // a multi-chunk file and two small ones.
    let mut dirs = Vec::new();
    for a in 0..4 {
        let top = src.join(format!("d{a}"));
        dirs.push(top.clone());
        for b in 0..3 {
            dirs.push(top.join(format!("s{b}")));
        }
    }
    for (i, dir) in dirs.iter().enumerate() {
        write(
            &dir.join("big"),
            &random_bytes(300_000 + i * 1000, i as u64),
        );
        write(&dir.join("a.txt"), format!("small {i}").as_bytes());
        write(&dir.join("b.txt"), &random_bytes(3000, 100 + i as u64));
    }
    let s = src.to_str().unwrap();
    let first = env.snapshot_summary(&[s]);
    assert_eq!(first["summary"]["files_new"], 3 * dirs.len() as u64);
    // The 16 directories and src itself (at least).
    let dirs_new = first["summary"]["dirs_new"].as_u64().unwrap();
    assert!(dirs_new >= 17, "{dirs_new} new directories");
    let target = env.path("t1");
    env.restore(&format!("latest:{s}"), &target);
    assert_same_tree(&src, &target);

    // Change one large file deep down, delete one, add one elsewhere.
    write(&dirs[6].join("big"), &random_bytes(310_000, 999));
    std::fs::remove_file(dirs[9].join("big")).unwrap();
    write(&dirs[13].join("new-big"), &random_bytes(200_000, 1000));
    let second = env.snapshot_summary(&[s]);
    let summary = &second["summary"];
    assert_eq!(summary["files_changed"], 1);
    assert_eq!(summary["files_new"], 1);
    assert_eq!(summary["files_deleted"], 1);
    assert_eq!(summary["files_unchanged"], 3 * dirs.len() as u64 - 2);
    // Changed: the three leaf directories (d1/s1, d2/s0, d3/s0), their
    // parents, and src with what is counted above it; the rest unchanged.
    let changed_leaves = [&dirs[6], &dirs[9], &dirs[13]];
    let changed_tops: std::collections::BTreeSet<_> =
        changed_leaves.iter().map(|d| d.parent().unwrap()).collect();
    let above_and_src = dirs_new - dirs.len() as u64;
    assert_eq!(
        summary["dirs_changed"],
        changed_leaves.len() as u64 + changed_tops.len() as u64 + above_and_src
    );
    assert_eq!(
        summary["dirs_unchanged"],
        (dirs.len() - changed_leaves.len() - changed_tops.len()) as u64
    );
    let target = env.path("t2");
    env.restore(&format!("latest:{s}"), &target);
    assert_same_tree(&src, &target);

    // Nothing changed: the same root tree, every directory unchanged.
    let third = env.snapshot_summary(&[s]);
    assert_eq!(third["summary"]["dirs_changed"], 0);
    assert_eq!(third["summary"]["read_bytes"], 0);
    env.assert_verifies("after three snapshots");
}

/// Files are taken before subdirectories, but a tree is compared with its
/// parent's in name order: a file named after a subdirectory ("z" after
/// "m") must not count as deleted when nothing changed.
#[test]
fn nothing_changed_counts_nothing_deleted() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    for name in ["a", "m/inner", "z"] {
        write(&src.join(name), name.as_bytes());
    }
    let s = src.to_str().unwrap();
    env.snapshot(&[s]);
    let again = env.snapshot_summary(&[s]);
    let summary = &again["summary"];
    assert_eq!(summary["files_unchanged"], 3, "{again}");
    assert_eq!(summary["files_deleted"], 0, "{again}");
    assert_eq!(summary["dirs_deleted"], 0, "{again}");
    assert_eq!(summary["deleted_bytes"], 0, "{again}");
}
