//! Bad input gets a clear error, a documented exit code, and loses nothing.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn wrong_password_exits_12_and_names_the_problem() {
    let env = TestEnv::new();
    env.init();
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "not the password")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
}

#[test]
fn missing_repository_exits_10() {
    let env = TestEnv::new();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("no repository"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    assert_eq!(env.run(&["snapshot"]).status.code(), Some(2));
    assert_eq!(env.run(&["no-such-command"]).status.code(), Some(2));
    let out = env.run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cairn "));
}

#[test]
fn init_twice_is_refused() {
    let env = TestEnv::new();
    env.init();
    let mut init = vec!["init"];
    init.extend_from_slice(&CHEAP_KDF);
    let out = env.run(&init);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn flipped_bit_in_a_data_pack_fails_restore_naming_the_file() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("precious.bin"), &random_bytes(300_000, 1));
    env.snapshot(&[src.to_str().unwrap()]);
    // The data pack is the largest object under data/.
    let mut packs: Vec<_> = files_under(&env.repo.join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let data_pack = packs.last().unwrap();
    let mut bytes = std::fs::read(data_pack).unwrap();
    bytes[1000] ^= 0x10;
    std::fs::write(data_pack, bytes).unwrap();
    let target = env.path("t");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("precious.bin"), "error names the file: {err}");
    assert!(err.contains("pack "), "error names the pack: {err}");
}

#[test]
fn deleting_the_cache_changes_nothing_but_speed() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("a/b/c"), &random_bytes(100_000, 3));
    let s = src.to_str().unwrap();
    env.snapshot(&[s]);
    let listing = env.ok(&["ls", "latest"]);
    std::fs::remove_dir_all(&env.cache).unwrap();
    assert_eq!(env.ok(&["ls", "latest"]), listing);
    // The next snapshot still deduplicates against the rebuilt index: no
    // file data is stored again (only trees above src change, because
    // removing the cache touched the scratch directory holding it).
    let v = env.snapshot_summary(&["--force", s]);
    assert!(
        v["summary"]["added_plain_bytes"].as_u64().unwrap() < 4096,
        "{v}"
    );
    assert_eq!(v["summary"]["read_bytes"], 100_000);
    let target = env.path("t");
    env.ok(&[
        "restore",
        &format!("latest:{s}"),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &target);
}

#[test]
fn unreadable_files_are_skipped_and_exit_3() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("readable"), b"fine");
    write(&src.join("locked"), b"cannot read me");
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let s = src.to_str().unwrap();
    let mut cmd = env.cmd();
    if is_root() {
        // Root reads anything: run as nobody, on a world-writable repository.
        for dir in [env.dir.path(), &env.repo, &env.cache] {
            std::process::Command::new("chmod")
                .args(["-R", "a+rwX"])
                .arg(dir)
                .status()
                .unwrap();
        }
        std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_cairn"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CAIRN_REPOSITORY", &env.repo)
            .env("CAIRN_PASSWORD", PASSWORD)
            .env("CAIRN_CACHE_DIR", env.path("nobody-cache"));
    }
    let out = cmd.args(["snapshot", s]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("readable"));
    assert!(!ls.contains("locked"));
}

#[test]
fn key_management() {
    let env = TestEnv::new();
    env.init();
    let cheap = CHEAP_KDF;
    let mut add = vec!["key", "add"];
    add.extend_from_slice(&cheap);
    let out = env
        .cmd()
        .env("CAIRN_NEW_PASSWORD", "second")
        .args(&add)
        .output()
        .unwrap();
    assert_success(&out, &add);
    let list = env.ok(&["key", "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    let with_second = env
        .cmd()
        .env("CAIRN_PASSWORD", "second")
        .args(["key", "list"])
        .output()
        .unwrap();
    assert_success(&with_second, &["key", "list"]);
    // Remove the first key while opened with the second.
    let first_id = list.lines().find(|l| l.starts_with('*')).unwrap()[1..9].to_string();
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "second")
        .args(["key", "remove", &first_id])
        .output()
        .unwrap();
    assert_success(&out, &["key", "remove"]);
    assert_eq!(
        env.run(&["snapshots"]).status.code(),
        Some(12),
        "old password no longer opens"
    );
    // passwd replaces the key in use.
    let mut passwd = vec!["key", "passwd"];
    passwd.extend_from_slice(&cheap);
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "second")
        .env("CAIRN_NEW_PASSWORD", "third")
        .args(&passwd)
        .output()
        .unwrap();
    assert_success(&out, &passwd);
    let ok = env
        .cmd()
        .env("CAIRN_PASSWORD", "third")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_success(&ok, &["snapshots"]);
    let old = env
        .cmd()
        .env("CAIRN_PASSWORD", "second")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(old.status.code(), Some(12));
}
