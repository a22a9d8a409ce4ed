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
