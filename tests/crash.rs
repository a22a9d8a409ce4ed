//! Crash safety: `cairn snapshot` killed with SIGKILL at many moments spread
//! over a backup. After every kill the repository verifies, the earlier
//! snapshot restores byte-identical, and the next snapshot reuses what the
//! killed runs stored instead of uploading it again.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                if m.is_dir() { dir_bytes(&e.path()) } else { m.len() }
            })
            .sum()
        })
        .unwrap_or(0)
}

const KILL_POINTS: usize = 30;

#[test]
fn kill_nine_at_many_points_loses_nothing() {
    let env = TestEnv::new();
    env.ok(&[
        "init", "--kdf-memory-kib", "64", "--kdf-iterations", "1", "--kdf-parallelism", "1",
        "--pack-size", "262144", "--chunk-min", "16384", "--chunk-avg", "65536", "--chunk-max", "262144",
    ]);
    let base = env.path("base");
    write(&base.join("keep"), &random_bytes(1 << 20, 1));
    let base_id = env.snapshot(&[base.to_str().unwrap()]);

    let src = env.path("src");
    for i in 0..200u64 {
        write(&src.join(format!("d{}/f{i}", i % 10)), &random_bytes(40_000 + (i as usize % 7) * 9_000, 1000 + i));
    }
    write(&src.join("large"), &random_bytes(12 << 20, 2));
    let s = src.to_str().unwrap();

    // How long a full run takes here, to spread the kills over it.
    let probe = env.path("probe-repo");
    let started = Instant::now();
    let out = env
        .cmd()
        .env("CAIRN_REPOSITORY", &probe)
        .args(["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1", "--kdf-parallelism", "1", "--pack-size", "262144"])
        .output()
        .unwrap();
    assert_success(&out, &["init probe"]);
    let init_time = started.elapsed();
    let started = Instant::now();
    let out = env.cmd().env("CAIRN_REPOSITORY", &probe).args(["snapshot", "--quiet", s]).output().unwrap();
    assert_success(&out, &["snapshot probe"]);
    let full = started.elapsed().max(Duration::from_millis(200));
    let _ = init_time;

    let mut killed_during_run = 0;
    for point in 0..KILL_POINTS {
        let delay = full.mul_f64((point as f64 + 0.5) / KILL_POINTS as f64);
        let mut child = env.cmd().args(["snapshot", "--quiet", s]).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_during_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();

        let out = env.run(&["verify"]);
        assert_eq!(out.status.code(), Some(0), "verify after kill {point} at {delay:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout), stderr(&out));
    }
    assert!(killed_during_run >= KILL_POINTS / 2, "only {killed_during_run} kills hit a running backup");

    // The earlier snapshot is intact.
    let target = env.path("restored-base");
    env.ok(&["restore", &format!("{}:{}", &base_id[..8], base.display()), "--target", target.to_str().unwrap()]);
    assert_same_tree(&base, &target);

    // The next run completes and reuses what the killed runs stored.
    let stored_before = dir_bytes(&env.repo.join("data"));
    let v = env.snapshot_summary(&[s]);
    let uploaded = v["summary"]["uploaded_bytes"].as_u64().unwrap();
    let source = v["summary"]["source_bytes"].as_u64().unwrap();
    assert!(stored_before > source / 2, "killed runs stored data: {stored_before}");
    assert!(uploaded < source / 4, "re-uploaded {uploaded} of {source} bytes");
    let target = env.path("restored-src");
    env.ok(&["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
    assert_eq!(env.run(&["verify", "--read-data"]).status.code(), Some(0));
}
