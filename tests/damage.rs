//! Corruption of every kind of object — config, key, index, snapshot, tree
//! pack, data pack — by a flipped bit, truncation, a zeroed range, or
//! deletion: each case gives an error that names the object, unaffected
//! files still restore, affected ones fail by name, and `repair` brings
//! the repository back to a verifying state without deleting packs.

mod common;

use std::path::{Path, PathBuf};

use common::*;

#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipBit,
    Truncate,
    ZeroRange,
    Delete,
}

const DAMAGES: [Damage; 4] = [
    Damage::FlipBit,
    Damage::Truncate,
    Damage::ZeroRange,
    Damage::Delete,
];

fn apply(path: &Path, damage: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    match damage {
        Damage::FlipBit => {
            let i = bytes.len() / 3;
            bytes[i] ^= 0x20;
        }
        Damage::Truncate => bytes.truncate(bytes.len() / 2),
        Damage::ZeroRange => {
            let (a, b) = (bytes.len() / 4, bytes.len() / 4 + 64.min(bytes.len() / 2));
            bytes[a..b].iter_mut().for_each(|x| *x = 0);
        }
        Damage::Delete => {
            std::fs::remove_file(path).unwrap();
            return;
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// A repository with two files in separate data packs (small pack size).
fn base() -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    env.init_with(&["--pack-size", "65536"]);
    let src = env.path("src");
    write(&src.join("victim.bin"), &random_bytes(200_000, 1));
    write(&src.join("other/safe.bin"), &random_bytes(200_000, 2));
    env.snapshot(&[src.to_str().unwrap()]);
    (env, src)
}

/// Data packs holding the victim file's blobs, found through `cat`.
fn victim_packs(env: &TestEnv, src: &Path) -> Vec<PathBuf> {
    let snap: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "snapshot", "latest"])).unwrap();
    let mut tree_id = snap["snapshot"]["tree"].clone();
    let mut blobs = Vec::new();
    let parts: Vec<String> = src
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let id_hex = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|b| format!("{:02x}", b.as_u64().unwrap()))
                .collect(),
            other => panic!("unexpected id {other}"),
        }
    };
    for part in parts
        .iter()
        .chain(std::iter::once(&"victim.bin".to_string()))
    {
        let tree: serde_json::Value =
            serde_json::from_str(&env.ok(&["cat", "tree", &id_hex(&tree_id)])).unwrap();
        let node = tree["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == part.as_str())
            .unwrap()
            .clone();
        if part == "victim.bin" {
            blobs = node["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c[0].as_str().unwrap().to_string())
                .collect();
        } else {
            tree_id = node["subtree"].clone();
        }
    }
    let mut packs = Vec::new();
    for index in files_under(&env.repo.join("index")) {
        let name = index.file_name().unwrap().to_str().unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "index", &name])).unwrap();
        for p in v["packs"].as_array().unwrap() {
            if p["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| blobs.contains(&b["id"].as_str().unwrap().to_string()))
            {
                let id = p["id"].as_str().unwrap();
                packs.push(env.repo.join("data").join(&id[..2]).join(id));
            }
        }
    }
    assert!(!packs.is_empty());
    packs
}

fn tree_packs(env: &TestEnv) -> Vec<PathBuf> {
    let mut packs = Vec::new();
    for index in files_under(&env.repo.join("index")) {
        let name = index.file_name().unwrap().to_str().unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "index", &name])).unwrap();
        for p in v["packs"].as_array().unwrap() {
            if p["blobs"][0]["type"] == "tree" {
                let id = p["id"].as_str().unwrap();
                packs.push(env.repo.join("data").join(&id[..2]).join(id));
            }
        }
    }
    packs
}

fn verify(env: &TestEnv, read_data: bool) -> (Option<i32>, String) {
    let mut args = vec!["verify"];
    if read_data {
        args.push("--read-data");
    }
    let out = env.run(&args);
    (
        out.status.code(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)),
    )
}

#[test]
fn damaged_data_pack_is_named_and_repaired() {
    for damage in DAMAGES {
        let (env, src) = base();
        let packs = victim_packs(&env, &src);
        apply(&packs[0], damage);
        let (code, text) = verify(&env, true);
        assert_eq!(code, Some(4), "{damage:?}: {text}");
        let pack_name = packs[0].file_name().unwrap().to_str().unwrap();
        assert!(
            text.contains(pack_name),
            "{damage:?} names the pack: {text}"
        );
        assert!(
            text.contains("victim.bin"),
            "{damage:?} names the file: {text}"
        );
        assert!(!text.contains("safe.bin"), "{damage:?}: {text}");

        // The unaffected file restores; the affected one fails by name.
        let target = env.path("t");
        let spec = format!("latest:{}", src.display());
        let out = env.run(&["restore", &spec, "--target", target.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{damage:?}");
        assert!(
            stderr(&out).contains("victim.bin"),
            "{damage:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(target.join("other/safe.bin")).unwrap(),
            random_bytes(200_000, 2)
        );

        // Repair: the snapshot drops the lost file and verifies again.
        let data_before = files_under(&env.repo.join("data"));
        let dry = env.ok(&["repair", "snapshots", "--read-data", "--dry-run"]);
        assert!(dry.contains("victim.bin"), "{dry}");
        env.ok(&["repair", "snapshots", "--read-data"]);
        let data_after = files_under(&env.repo.join("data"));
        assert!(
            data_before.iter().all(|p| data_after.contains(p)),
            "repair deletes no pack"
        );
        let ls = env.ok(&["ls", "latest"]);
        assert!(
            !ls.contains("victim.bin") && ls.contains("safe.bin"),
            "{ls}"
        );
        let (code, text) = verify(&env, false);
        // A damaged (not deleted) pack is still reported as damaged; what
        // the snapshots need is intact.
        assert!(
            code == Some(0) || !text.contains("is damaged at"),
            "{damage:?}: {text}"
        );
    }
}

#[test]
fn damaged_tree_pack_is_named() {
    for damage in DAMAGES {
        let (env, _src) = base();
        let packs = tree_packs(&env);
        apply(&packs[0], damage);
        let (code, text) = verify(&env, true);
        assert_eq!(code, Some(4), "{damage:?}: {text}");
        let name = packs[0].file_name().unwrap().to_str().unwrap();
        assert!(text.contains(&name[..8]), "{damage:?}: {text}");
    }
}

#[test]
fn damaged_index_is_repaired_from_pack_headers() {
    for damage in DAMAGES {
        let (env, src) = base();
        for index in files_under(&env.repo.join("index")) {
            apply(&index, damage);
        }
        std::fs::remove_dir_all(&env.cache).unwrap();
        let (code, text) = verify(&env, false);
        assert_eq!(code, Some(4), "{damage:?}: {text}");
        if !matches!(damage, Damage::Delete) {
            assert!(
                text.contains("index/"),
                "{damage:?} names the index file: {text}"
            );
        }
        let out = env.ok(&["repair", "index"]);
        assert!(out.contains("indexed"), "{out}");
        let (code, text) = verify(&env, true);
        assert_eq!(code, Some(0), "{damage:?} after repair: {text}");
        let target = env.path("t");
        env.ok(&[
            "restore",
            &format!("latest:{}", src.display()),
            "--target",
            target.to_str().unwrap(),
        ]);
        assert_same_tree(&src, &target);
    }
}

/// A lost pack, then `repair index` alone (no `repair snapshots`): the next
/// snapshot must not take the lost chunks from its parent. It stores them
/// again, which also heals the older snapshot that refers to the same
/// chunks; and the snapshot after it trusts its parent again.
#[test]
fn a_snapshot_after_repair_index_stores_what_was_lost_again() {
    let (env, src) = base();
    let s = src.to_str().unwrap();
    for pack in victim_packs(&env, &src) {
        std::fs::remove_file(pack).unwrap();
    }
    env.ok(&["repair", "index"]);
    let (code, _) = verify(&env, true);
    assert_eq!(code, Some(4), "the first snapshot lost the victim");
    // A backup of other paths first (cron runs several): it has no parent
    // older than the rebuilt index, and must leave the check to the next.
    let elsewhere = env.path("elsewhere");
    write(&elsewhere.join("f"), b"another path set");
    env.snapshot(&[elsewhere.to_str().unwrap()]);

    let healing = env.snapshot_summary(&[s]);
    let summary = &healing["summary"];
    assert_eq!(summary["files_unchanged"], 1, "{healing}");
    assert_eq!(summary["files_changed"], 1, "{healing}");
    assert!(summary["blobs_added"].as_u64().unwrap() > 0, "{healing}");
    let (code, text) = verify(&env, true);
    assert_eq!(code, Some(0), "every snapshot is whole again: {text}");
    let target = env.path("t");
    env.restore(&format!("latest:{s}"), &target);
    assert_same_tree(&src, &target);

    let trusting = env.snapshot_summary(&[s]);
    assert_eq!(trusting["summary"]["files_unchanged"], 2, "{trusting}");
}

/// Lost tree packs and `repair index`: the parent's root tree is gone, so
/// the next snapshot reads everything and stores the trees again, which
/// makes the older snapshot whole too.
#[test]
fn a_snapshot_whose_parent_trees_are_lost_stores_them_again() {
    let (env, src) = base();
    let s = src.to_str().unwrap();
    for pack in tree_packs(&env) {
        std::fs::remove_file(pack).unwrap();
    }
    env.ok(&["repair", "index"]);
    let again = env.snapshot_summary(&[s]);
    assert_eq!(again["summary"]["files_unchanged"], 0, "{again}");
    let (code, text) = verify(&env, true);
    assert_eq!(code, Some(0), "every snapshot is whole again: {text}");
    let target = env.path("t");
    env.restore(&format!("latest:{s}"), &target);
    assert_same_tree(&src, &target);
}

#[test]
fn damaged_snapshot_config_and_key_are_named() {
    for damage in DAMAGES {
        let (env, _src) = base();
        let snap = files_under(&env.repo.join("snapshots")).pop().unwrap();
        apply(&snap, damage);
        let (code, text) = verify(&env, false);
        if matches!(damage, Damage::Delete) {
            // A deleted snapshot is simply gone; the rest verifies.
            assert_eq!(code, Some(0), "{text}");
        } else {
            assert_eq!(code, Some(4), "{damage:?}: {text}");
            assert!(
                text.contains(&snap.file_name().unwrap().to_str().unwrap()[..8]),
                "{damage:?}: {text}"
            );
            let listing = env.run(&["snapshots"]);
            assert!(
                stderr(&listing).contains("snapshots/"),
                "{damage:?}: listing warns by name"
            );
        }

        let (env, _src) = base();
        apply(&env.repo.join("config"), damage);
        let out = env.run(&["verify"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "config {damage:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("config"),
            "config {damage:?}: {}",
            stderr(&out)
        );

        let (env, _src) = base();
        let key = files_under(&env.repo.join("keys")).pop().unwrap();
        apply(&key, damage);
        let out = env.run(&["verify"]);
        assert!(
            matches!(out.status.code(), Some(1) | Some(12)),
            "key {damage:?}"
        );
        assert!(
            stderr(&out).contains("key"),
            "key {damage:?}: {}",
            stderr(&out)
        );
    }
}
