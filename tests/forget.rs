//! `cairn forget` applies retention per group and leaves every kept
//! snapshot restorable.

mod common;

use common::*;

fn ids_by_time(env: &TestEnv) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["time"].as_str().unwrap()[..19].to_string(),
                s["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn keep_daily_and_last_per_group() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    let s = src.to_str().unwrap();
    let times = [
        "2026-03-01 10:00:00",
        "2026-03-01 18:00:00",
        "2026-03-02 09:00:00",
        "2026-03-03 09:00:00",
        "2026-03-03 21:00:00",
    ];
    for (i, t) in times.iter().enumerate() {
        write(&src.join("f"), format!("version {i}").as_bytes());
        env.snapshot(&["--time", t, s]);
    }
    // Another host's snapshot is a separate group and untouched.
    env.snapshot(&["--host", "other", "--time", "2020-01-01 00:00:00", s]);

    let dry = env.ok(&["forget", "--keep-daily", "2", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(plan["groups"].as_array().unwrap().len(), 2);
    assert_eq!(ids_by_time(&env).len(), 6, "dry run removes nothing");

    env.ok(&["forget", "--keep-daily", "2"]);
    let left: Vec<String> = ids_by_time(&env).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        left,
        vec![
            "2020-01-01T00:00:00",
            "2026-03-02T09:00:00",
            "2026-03-03T21:00:00"
        ],
    );
    // Kept snapshots still restore their own contents.
    let target = env.path("t");
    let (_, id) = ids_by_time(&env)[1].clone();
    env.restore(&format!("{}:{s}", &id[..8]), &target);
    assert_eq!(std::fs::read(target.join("f")).unwrap(), b"version 2");
}

#[test]
fn forget_by_id_and_refusal_without_policy() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    let a = env.snapshot(&[src.to_str().unwrap()]);
    let b = env.snapshot(&[src.to_str().unwrap()]);
    let out = env.run(&["forget"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    env.ok(&["forget", &a[..8]]);
    let left: Vec<String> = ids_by_time(&env).into_iter().map(|(_, id)| id).collect();
    assert_eq!(left, vec![b]);
}

#[test]
fn profile_holds_snapshot_rules_and_retention() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("keep.txt"), b"k");
    write(&src.join("cache/junk"), b"j");
    let s = src.to_str().unwrap();
    let profile = env.path("server.toml");
    std::fs::write(
        &profile,
        format!(
            "[snapshot]\nargs = [\"--exclude={s}/cache\", \"--tag\", \"nightly\", \"{s}\"]\n\n[forget]\nkeep_last = 1\n"
        ),
    )
    .unwrap();
    let p = profile.to_str().unwrap();
    env.ok(&["snapshot", "--profile", p]);
    env.ok(&["snapshot", "--profile", p]);
    let ls = env.ok(&["ls", "latest", s]);
    assert!(ls.contains("keep.txt") && !ls.contains("junk"), "{ls}");
    assert_eq!(ids_by_time(&env).len(), 2);
    env.ok(&["forget", "--profile", p]);
    assert_eq!(ids_by_time(&env).len(), 1, "keep_last = 1 from the profile");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(v[0]["tags"][0], "nightly");
}
