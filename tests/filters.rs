//! Filter rules select exactly what duplicity selects, end to end: real
//! files, the real binary, and the listing of the stored snapshot.

mod common;

use std::collections::BTreeSet;

use common::*;

fn listing(env: &TestEnv, root: &str) -> BTreeSet<String> {
    env.ok(&["ls", "latest", root])
        .lines()
        .filter_map(|l| l.strip_prefix(root).map(|s| s.to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The rule list of the duplicity + MegaFuse setup cairn replaces, on a
/// miniature root file system.
#[test]
fn docker_and_plex_rules_select_what_duplicity_selects() {
    let env = TestEnv::new();
    env.init();
    let root = env.path("source");
    let r = root.to_str().unwrap().to_string();
    let plex = "var/lib/plexmediaserver/Library/Application Support/Plex Media Server";
    for f in [
        "etc/hostname",
        "home/ann/notes.txt",
        "var/lib/docker/containers/abc/config.v2.json",
        "var/lib/docker/volumes/big/data.img",
        "var/lib/docker/overlay2/layer/file",
        &format!("{plex}/Preferences.xml"),
        &format!("{plex}/Cache/huge.bin"),
        "proc/cpuinfo",
        "tmp/scratch",
        "var/tmp/x",
        "var/cache/apt/pkg.deb",
        "var/log/syslog",
        "var/lib/dpkg/status",
        "mnt/usb/file",
    ] {
        write(&root.join(f), f.as_bytes());
    }
    let args: Vec<String> = vec![
        format!("--include={r}/var/lib/docker/containers"),
        format!("--include={r}/{plex}/Preferences.xml"),
        format!("--exclude={r}/proc"),
        format!("--exclude={r}/mnt"),
        format!("--exclude={r}/var/lib/docker"),
        format!("--exclude={r}/var/lib/plexmediaserver/"),
        format!("--exclude={r}/tmp"),
        format!("--exclude={r}/var/tmp"),
        format!("--exclude={r}/var/cache"),
        format!("--exclude={r}/var/log"),
        r.clone(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.snapshot(&args);
    let got = listing(&env, &r);
    let expected: BTreeSet<String> = [
        "/etc",
        "/etc/hostname",
        "/home",
        "/home/ann",
        "/home/ann/notes.txt",
        "/var",
        "/var/lib",
        "/var/lib/docker",
        "/var/lib/docker/containers",
        "/var/lib/docker/containers/abc",
        "/var/lib/docker/containers/abc/config.v2.json",
        "/var/lib/plexmediaserver",
        "/var/lib/plexmediaserver/Library",
        "/var/lib/plexmediaserver/Library/Application Support",
        "/var/lib/plexmediaserver/Library/Application Support/Plex Media Server",
        "/var/lib/plexmediaserver/Library/Application Support/Plex Media Server/Preferences.xml",
        "/var/lib/dpkg",
        "/var/lib/dpkg/status",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, expected);
}

#[test]
fn filelists_regexp_and_special_excludes() {
    let env = TestEnv::new();
    env.init();
    let root = env.path("src");
    let r = root.to_str().unwrap().to_string();
    for f in [
        "a/keep.txt",
        "a/drop.tmp",
        "b/x.txt",
        "cache/CACHEDIR.TAG",
        "cache/blob",
        "marked/.nobackup",
        "marked/f",
        "c/big",
        "c/small",
    ] {
        write(&root.join(f), b"x");
    }
    write(
        &root.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    write(&root.join("c/big"), &vec![1u8; 200_000]);
    let list = env.path("exclude.list");
    std::fs::write(&list, format!("# comment\n- {r}/b\n")).unwrap();
    let args: Vec<String> = vec![
        "--exclude-regexp=\\.tmp$".into(),
        format!("--exclude-filelist={}", list.display()),
        "--exclude-caches".into(),
        "--exclude-if-present=.nobackup".into(),
        "--exclude-larger-than=100k".into(),
        r.clone(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.snapshot(&args);
    let got = listing(&env, &r);
    let expected: BTreeSet<String> = ["/a", "/a/keep.txt", "/c", "/c/small"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn duplicity_sanity_checks_are_usage_errors() {
    let env = TestEnv::new();
    env.init();
    let root = env.path("src");
    write(&root.join("a"), b"x");
    let r = root.to_str().unwrap();
    // Only includes: duplicity refuses, since everything is included anyway.
    let out = env.run(&["snapshot", &format!("--include={r}/a"), r]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A pattern outside the source can never match.
    let out = env.run(&["snapshot", "--exclude=/elsewhere/x", r]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A malformed regexp names itself.
    let out = env.run(&["snapshot", "--exclude-regexp=(", r]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains('('), "{}", stderr(&out));
}

#[test]
fn include_regexp_then_exclude_everything_else() {
    let env = TestEnv::new();
    env.init();
    let root = env.path("src");
    write(&root.join("a.txt"), b"a");
    write(&root.join("b.log"), b"b");
    let r = root.to_str().unwrap().to_string();
    let args = [
        "--include-regexp=\\.txt$".to_string(),
        format!("--exclude={r}/**"),
        r.clone(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.snapshot(&args);
    let expected: BTreeSet<String> = ["/a.txt".to_string()].into_iter().collect();
    assert_eq!(listing(&env, &r), expected);
}
