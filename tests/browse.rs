//! Listing and inspecting snapshots: `snapshots`, `ls`, `diff`, `cat`, and
//! naming snapshots by id prefix or `latest`.

mod common;

use common::*;

#[test]
fn snapshots_ls_diff_and_cat() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("a.txt"), b"first");
    write(&src.join("dir/b.txt"), b"bee");
    let s = src.to_str().unwrap();
    let first = env.snapshot(&[
        "--tag",
        "daily",
        "--host",
        "alpha",
        "--time",
        "2026-01-02 03:04:05",
        s,
    ]);
    write(&src.join("a.txt"), b"second version");
    write(&src.join("new.txt"), b"new");
    std::fs::remove_file(src.join("dir/b.txt")).unwrap();
    let second = env.snapshot(&["--host", "beta", s]);

    let json: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], first.as_str());
    assert_eq!(list[0]["hostname"], "alpha");
    assert_eq!(list[0]["tags"][0], "daily");
    assert!(list[0]["time"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-02T03:04:05"));
    assert_eq!(list[1]["paths"][0], s);

    let only_alpha: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--host", "alpha"])).unwrap();
    assert_eq!(only_alpha.as_array().unwrap().len(), 1);
    let tagged: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", "daily"])).unwrap();
    assert_eq!(tagged[0]["id"], first.as_str());
    let table = env.ok(&["snapshots"]);
    assert!(
        table.contains(&first[..8]) && table.contains("alpha"),
        "{table}"
    );

    let ls_first = env.ok(&["ls", &first[..8], s]);
    assert!(ls_first.contains("dir/b.txt"), "{ls_first}");
    let ls_latest = env.ok(&["ls", "latest", "--long"]);
    assert!(
        ls_latest.contains("new.txt") && ls_latest.contains("-rw"),
        "{ls_latest}"
    );
    let ls_json: serde_json::Value =
        serde_json::from_str(&env.ok(&["ls", "latest", s, "--json"])).unwrap();
    let entry = ls_json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("/a.txt"))
        .unwrap();
    assert_eq!(entry["size"], 14);
    assert_eq!(entry["type"], "file");

    let diff = env.ok(&["diff", &first, &second]);
    assert!(diff.contains(&format!("M    {s}/a.txt")), "{diff}");
    assert!(diff.contains(&format!("+    {s}/new.txt")), "{diff}");
    assert!(diff.contains(&format!("-    {s}/dir/b.txt")), "{diff}");

    let cat: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "snapshot", &first[..10]])).unwrap();
    let tree = cat["snapshot"]["tree"].clone();
    assert!(cat["snapshot"]["paths"].is_array());
    let config: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "config"])).unwrap();
    assert_eq!(config["version"], 1);
    assert_eq!(config["chunker"]["avg_bytes"], 1024 * 1024);
    assert!(tree.is_array() || tree.is_string());

    // Ambiguity and unknown ids are clear errors.
    let out = env.run(&["ls", "0000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no snapshot matches"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["ls", "abc"]);
    assert!(!out.status.success());
}

#[test]
fn index_and_pack_can_be_inspected() {
    let env = TestEnv::new();
    env.init();
    write(&env.path("src/f"), &random_bytes(50_000, 1));
    env.snapshot(&[env.path("src").to_str().unwrap()]);
    let index_name = std::fs::read_dir(env.repo.join("index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let index: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "index", index_name.to_str().unwrap()])).unwrap();
    let packs = index["packs"].as_array().unwrap();
    assert_eq!(packs.len(), 2, "one data pack and one tree pack: {index}");
    let pack_id = packs[0]["id"].as_str().unwrap();
    let pack: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "pack", pack_id])).unwrap();
    assert_eq!(
        pack["blobs"], packs[0]["blobs"],
        "pack header agrees with the index"
    );
}
