//! Crash safety: `cairn snapshot` killed with SIGKILL at many moments spread
//! over a backup. After every kill the repository verifies, the earlier
//! snapshot restores byte-identical, and the next snapshot reuses what the
//! killed run stored instead of uploading it again.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const KILL_POINTS: usize = 30;

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Bytes of the complete packs under `data`: a killed writer's temporary
/// files are not stored data (the next run cannot reuse them).
fn pack_bytes(data: &Path) -> u64 {
    files_under(data)
        .iter()
        .filter(|f| {
            !f.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".tmp-")
        })
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

#[test]
fn kill_nine_at_many_points_loses_nothing() {
    let env = TestEnv::new();
    env.init_with(&[
        "--pack-size",
        "262144",
        "--chunk-min",
        "16384",
        "--chunk-avg",
        "65536",
        "--chunk-max",
        "262144",
    ]);
    let base = env.path("base");
    write(&base.join("keep"), &random_bytes(1 << 20, 1));
    let base_id = env.snapshot(&[base.to_str().unwrap()]);
    let pristine = env.path("pristine-repo");
    copy_dir(&env.repo, &pristine);

    let src = env.path("src");
    for i in 0..200u64 {
        write(
            &src.join(format!("d{}/f{i}", i % 10)),
            &random_bytes(40_000 + (i as usize % 7) * 9_000, 1000 + i),
        );
    }
    write(&src.join("large"), &random_bytes(40 << 20, 2));
    let s = src.to_str().unwrap();

    // How long a full run takes here, to spread the kills over it: the
    // shorter of two, since the first reads the source cold and the killed
    // runs do not (with the longer one, a third of the kills came after
    // the end).
    let probe_run = |n: usize| {
        let probe = env.path(&format!("probe-repo-{n}"));
        copy_dir(&pristine, &probe);
        let started = Instant::now();
        let out = env.run_in(
            &probe,
            &env.path(&format!("probe-cache-{n}")),
            &["snapshot", "--quiet", s],
        );
        assert_success(&out, &["snapshot probe"]);
        started.elapsed()
    };
    let mut full = probe_run(0)
        .min(probe_run(1))
        .max(Duration::from_millis(20));

    // Each kill hits a fresh copy, so every point lands inside a full run.
    // A run that ends before its kill point shows the probe overestimated a
    // full run (the machine's load changes while tests run): the point is
    // tried again, spread over the shorter time.
    let mut hits: Vec<(f64, PathBuf, PathBuf)> = Vec::new();
    for point in 0..KILL_POINTS {
        let fraction = (point as f64 + 0.5) / KILL_POINTS as f64;
        let repo = env.path(&format!("repo-{point}"));
        let cache = env.path(&format!("cache-{point}"));
        for _attempt in 0..3 {
            let _ = std::fs::remove_dir_all(&repo);
            let _ = std::fs::remove_dir_all(&cache);
            copy_dir(&pristine, &repo);
            let started = Instant::now();
            let mut child = env
                .cmd_in(&repo, &cache)
                .args(["snapshot", "--quiet", s])
                .spawn()
                .unwrap();
            let kill_at = started + full.mul_f64(fraction);
            while Instant::now() < kill_at && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
            let was_running = child.try_wait().unwrap().is_none();
            let _ = child.kill();
            let _ = child.wait();
            if was_running {
                hits.push((fraction, repo.clone(), cache.clone()));
                break;
            }
            full = full.min(started.elapsed()).max(Duration::from_millis(20));
        }
        let out = env.run_in(&repo, &cache, &["verify"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "verify after kill {point} at {fraction:.2}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        let target = env.path(&format!("restored-base-{point}"));
        let spec = format!("{}:{}", &base_id[..8], base.display());
        let out = env.run_in(
            &repo,
            &cache,
            &["restore", &spec, "--target", target.to_str().unwrap()],
        );
        assert_success(&out, &["restore base after kill"]);
        assert_same_tree(&base, &target);
        std::fs::remove_dir_all(&target).unwrap();
    }
    assert!(
        hits.len() >= KILL_POINTS * 2 / 3,
        "only {} of {KILL_POINTS} kills hit a running backup",
        hits.len()
    );

    // The kill that left the most stored (the latest, unless the machine's
    // load changed since the probe): the next run completes and reuses
    // what the killed run stored.
    let stored =
        |repo: &PathBuf| pack_bytes(&repo.join("data")) - pack_bytes(&pristine.join("data"));
    let (fraction, repo, cache) = hits
        .iter()
        .max_by_key(|(_, repo, _)| stored(repo))
        .unwrap()
        .clone();
    let stored_by_killed_run = stored(&repo);
    let out = env.run_in(&repo, &cache, &["snapshot", "--json", s]);
    assert_success(&out, &["snapshot after kill"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uploaded = v["summary"]["uploaded_bytes"].as_u64().unwrap();
    let source = v["summary"]["source_bytes"].as_u64().unwrap();
    assert!(
        stored_by_killed_run > source / 4,
        "killed at {fraction:.2}, it stored {stored_by_killed_run}"
    );
    // Whatever the killed run had stored is reused: the new run uploads at
    // most what was left plus a pack or two in flight at the kill.
    assert!(
        uploaded <= source.saturating_sub(stored_by_killed_run) + (1 << 20),
        "re-uploaded {uploaded} of {source} bytes although {stored_by_killed_run} were stored"
    );
    let target = env.path("restored-src");
    let out = env.run_in(
        &repo,
        &cache,
        &[
            "restore",
            &format!("latest:{s}"),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_success(&out, &["restore after kill"]);
    assert_same_tree(&src, &target);
    let out = env.run_in(&repo, &cache, &["verify", "--read-data"]);
    assert_eq!(out.status.code(), Some(0));
}
