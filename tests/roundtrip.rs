//! Every kind of file-system entry survives snapshot and restore, byte for
//! byte and metadata for metadata.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = TimeSpec::new(secs, nanos);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds a tree with one of everything. Returns whether xattrs work here.
fn build_everything(src: &Path) -> bool {
    std::fs::create_dir_all(src.join("dir/sub/deeper")).unwrap();
    write(&src.join("empty"), b"");
    write(&src.join("tiny"), b"x");
    write(
        &src.join("dir/sub/text.txt"),
        &b"some compressible text\n".repeat(10_000),
    );
    let mut big = random_bytes(6 << 20, 1);
    big.extend_from_slice(&vec![0u8; 3 << 20]);
    big.extend_from_slice(&random_bytes(1 << 20, 2));
    write(&src.join("big.bin"), &big);
    // Sparse: 64 MiB with data only in the middle.
    let sparse = std::fs::File::create(src.join("sparse.img")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &random_bytes(100_000, 3), 30 << 20).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("dir/sub/text.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink(
        OsStr::from_bytes(b"bad\xff\xfetarget"),
        src.join("odd-link"),
    )
    .unwrap();
    // One chunk each (below the minimum chunk size), ending in zero blocks
    // or all zeros: restored whole by a content worker, holes included.
    let mut zero_tail = random_bytes(100_000, 4);
    zero_tail.resize(400_000, 0);
    write(&src.join("zero-tail.bin"), &zero_tail);
    write(&src.join("zeros.bin"), &[0u8; 300_000]);
    write(&src.join("hard1"), b"hard linked content");
    std::fs::hard_link(src.join("hard1"), src.join("dir/hard2")).unwrap();
    nix::unistd::mkfifo(
        &src.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(src.join("socket")).unwrap();
    write(
        &src.join(OsStr::from_bytes(b"not-utf8-\xff\xfe")),
        b"odd name",
    );
    write(&src.join("new\nline"), b"newline name");
    write(&src.join("setuid"), b"#!/bin/sh\n");
    chmod(&src.join("setuid"), 0o4755);
    std::fs::create_dir(src.join("sticky")).unwrap();
    chmod(&src.join("sticky"), 0o1777);
    write(&src.join("private"), b"secret");
    chmod(&src.join("private"), 0o600);
    // Bits a usual umask (022) takes from newly created files.
    write(&src.join("shared"), b"for the group");
    chmod(&src.join("shared"), 0o666);
    let xattrs_ok = xattr::set(src.join("tiny"), "user.cairn.test", b"value\x00\xff").is_ok();
    if is_root() {
        nix::sys::stat::mknod(
            &src.join("null-dev"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        nix::sys::stat::mknod(
            &src.join("block-dev"),
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o660),
            nix::sys::stat::makedev(7, 200),
        )
        .unwrap();
        write(&src.join("owned"), b"owned by someone else");
        nix::unistd::chown(&src.join("owned"), Some(1234.into()), Some(5678.into())).unwrap();
        std::os::unix::fs::symlink("owned", src.join("owned-link")).unwrap();
        nix::unistd::fchownat(
            None,
            &src.join("owned-link"),
            Some(4321.into()),
            Some(8765.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    // Nanosecond times, set last, on every entry (deepest first).
    let mut all = Vec::new();
    for entry in walk(src) {
        all.push(entry);
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000, 123_456_789 + i as i64);
    }
    xattrs_ok
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.symlink_metadata().unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn every_kind_of_entry_roundtrips() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    let xattrs_ok = build_everything(&src);
    let src_str = src.to_str().unwrap();
    let id = env.snapshot(&[src_str]);

    let target = env.path("restored");
    let spec = format!("{}:{}", &id[..8], src_str);
    env.restore(&spec, &target);

    // Sockets are recorded but not recreated; compare everything else.
    std::fs::remove_file(src.join("socket")).unwrap();
    assert_same_tree(&src, &target);

    let ls = env.ok(&["ls", "latest", src_str]);
    assert!(ls.contains("/socket"), "socket is recorded:\n{ls}");
    assert!(ls.contains("new\nline"));

    let restored_sparse = target.join("sparse.img").metadata().unwrap();
    assert_eq!(restored_sparse.len(), 64 << 20);
    assert!(
        restored_sparse.blocks() * 512 < 2 << 20,
        "sparse file restored with holes, uses {} bytes",
        restored_sparse.blocks() * 512
    );
    let hard1 = target.join("hard1").metadata().unwrap();
    let hard2 = target.join("dir/hard2").metadata().unwrap();
    assert_eq!(
        hard1.ino(),
        hard2.ino(),
        "hard links restored as hard links"
    );
    if xattrs_ok {
        assert_eq!(
            xattr::get(target.join("tiny"), "user.cairn.test")
                .unwrap()
                .unwrap(),
            b"value\x00\xff"
        );
    }
}

#[test]
fn restore_refuses_non_empty_target_without_overwrite() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("a"), b"new contents");
    write(&src.join("b"), b"restored over a symlink");
    env.snapshot(&[src.to_str().unwrap()]);
    let target = env.path("t");
    write(&target.join("a"), b"old");
    // An entry in the way is replaced, never written through.
    let outside = env.path("outside");
    write(&outside, b"must stay");
    std::os::unix::fs::symlink(&outside, target.join("b")).unwrap();
    let spec = format!("latest:{}", src.display());
    let out = env.run(&["restore", &spec, "--target", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(target.join("a")).unwrap(),
        b"old",
        "nothing clobbered"
    );
    env.ok(&[
        "restore",
        &spec,
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(std::fs::read(target.join("a")).unwrap(), b"new contents");
    let b = target.join("b");
    assert!(b.symlink_metadata().unwrap().is_file());
    assert_eq!(std::fs::read(&b).unwrap(), b"restored over a symlink");
    assert_eq!(std::fs::read(&outside).unwrap(), b"must stay");
}

#[test]
fn restore_include_and_exclude_select_paths() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("keep/a.txt"), b"a");
    write(&src.join("keep/skip.log"), b"log");
    write(&src.join("other/b.txt"), b"b");
    env.snapshot(&[src.to_str().unwrap()]);
    let target = env.path("t");
    let include = format!("{}/keep", src.display());
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        &include,
        "--exclude",
        "**/*.log",
    ]);
    let base = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(base.join("keep/a.txt")).unwrap(), b"a");
    assert!(!base.join("keep/skip.log").exists());
    assert!(!base.join("other").exists());
}

#[test]
fn owners_are_restored_into_a_set_group_id_target() {
    if !is_root() {
        eprintln!("skipped: only root restores ownership");
        return;
    }
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("dir/root-owned"), b"gid 0");
    write(&src.join("top"), b"also gid 0");
    let target = env.path("t");
    std::fs::create_dir(&target).unwrap();
    nix::unistd::chown(&target, None, Some(4242.into())).unwrap();
    chmod(&target, 0o2775);
    env.snapshot(&[src.to_str().unwrap()]);
    // New entries in a set-group-ID directory take its group; the
    // restore must still give them the group they had.
    env.restore(&format!("latest:{}", src.display()), &target);
    for name in ["top", "dir/root-owned", "dir"] {
        let meta = target.join(name).symlink_metadata().unwrap();
        assert_eq!(meta.gid(), 0, "{name}");
    }
}

/// The next snapshot takes extended attributes and symlink targets from the
/// last one while an inode's change time stays, and keeps the tree of a
/// directory where nothing changed: a change to an attribute alone, or a
/// symlink replaced, must still reach it.
#[test]
fn changed_attributes_and_link_targets_reach_the_next_snapshot() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("a/f"), b"same content");
    write(&src.join("b/g"), b"untouched");
    std::os::unix::fs::symlink("first-target", src.join("a/link")).unwrap();
    let xattrs_ok = xattr::set(src.join("a/f"), "user.cairn.v", b"1").is_ok();
    let s = src.to_str().unwrap();
    env.snapshot(&[s]);

    if xattrs_ok {
        xattr::set(src.join("a/f"), "user.cairn.v", b"2").unwrap();
    }
    std::fs::remove_file(src.join("a/link")).unwrap();
    std::os::unix::fs::symlink("second-target", src.join("a/link")).unwrap();
    let second = env.snapshot_summary(&[s]);
    // Setting an attribute changes the ctime: the file is read again.
    let unchanged = if xattrs_ok { 1 } else { 2 };
    assert_eq!(second["summary"]["files_unchanged"], unchanged, "{second}");
    assert_eq!(second["summary"]["dirs_unchanged"], 1, "only b: {second}");

    let target = env.path("restored");
    let id = second["snapshot_id"].as_str().unwrap();
    env.restore(&format!("{}:{s}", &id[..8]), &target);
    assert_same_tree(&src, &target);
    assert_eq!(
        std::fs::read_link(target.join("a/link")).unwrap(),
        Path::new("second-target")
    );
    if xattrs_ok {
        let value = xattr::get(target.join("a/f"), "user.cairn.v").unwrap();
        assert_eq!(value.as_deref(), Some(&b"2"[..]));
    }
}

/// Makes `cmd` start with a soft limit of `soft` open files (or the hard
/// limit, if that is lower), as if run from a shell that set it so.
fn start_with_soft_open_files_limit(cmd: &mut std::process::Command, soft: libc::rlim_t) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getrlimit and setrlimit are async-signal-safe; the closure
    // touches nothing else of the parent's.
    unsafe {
        cmd.pre_exec(move || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            limit.rlim_cur = soft.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
}

/// Run from a shell whose soft limit on open files is low, a snapshot of
/// many small files still reads every one: the binary raises the limit to
/// the hard one (the read-ahead alone keeps 128 files open).
#[test]
fn a_low_soft_limit_on_open_files_is_raised() {
    let env = common::TestEnv::new();
    env.init();
    let src = env.path("src");
    for i in 0..400 {
        common::write(
            &src.join(format!("d{}/f{i}", i % 4)),
            format!("file {i}").as_bytes(),
        );
    }
    let mut cmd = env.cmd();
    cmd.args(["snapshot", src.to_str().unwrap()]);
    start_with_soft_open_files_limit(&mut cmd, 40);
    let out = cmd.output().unwrap();
    common::assert_success(&out, &["snapshot (soft limit of 40 open files)"]);
    let target = env.path("restored");
    env.restore("latest", &target);
    common::assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

/// The raised limit on open files is `cairn`'s own: a password command
/// starts with the soft limit `cairn` was started with.
#[test]
fn a_password_command_gets_the_limit_on_open_files_cairn_started_with() {
    let env = common::TestEnv::new();
    env.init();
    let seen = env.path("seen-limit");
    let command = format!(
        "ulimit -Sn > '{}'; echo '{}'",
        seen.display(),
        common::PASSWORD
    );
    let mut cmd = env.cmd();
    cmd.args(["--password-command", &command, "snapshots"]);
    start_with_soft_open_files_limit(&mut cmd, 200);
    let out = cmd.output().unwrap();
    common::assert_success(&out, &["--password-command", "snapshots"]);
    let limit = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(limit.trim(), "200", "the password command's soft limit");
}

/// Pages of `path` in the page cache, by `mincore` on a mapping of it.
fn cached_pages(path: &std::path::Path) -> usize {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: a private read-only mapping of a file nobody changes while
    // the test looks at it, unmapped before returning.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap {}", path.display());
        assert_eq!(libc::mincore(map, len, resident.as_mut_ptr()), 0);
        libc::munmap(map, len);
    }
    resident.iter().filter(|&&page| page & 1 == 1).count()
}

/// The packs a snapshot stores in a local repository do not stay in the
/// page cache (written once, read back rarely: see `backend::local`), and
/// they read back whole all the same.
#[test]
fn stored_packs_leave_the_page_cache() {
    let mut env = common::TestEnv::new();
    // The repository on the build directory's file system: a tmpfs keeps
    // all its pages.
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    env.repo = disk.path().join("repo");
    env.cache = disk.path().join("cache");
    env.init();
    let src = env.path("src");
    common::write(&src.join("big"), &common::random_bytes(6 << 20, 7));
    env.snapshot(&[src.to_str().unwrap()]);
    let packs = common::files_under(&env.repo.join("data"));
    assert!(!packs.is_empty(), "the snapshot stored packs");
    let pack_bytes: u64 = packs.iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(pack_bytes >= 6 << 20, "{pack_bytes} bytes of packs");
    for pack in &packs {
        assert_eq!(cached_pages(pack), 0, "{} is cached", pack.display());
    }
    let target = env.path("restored");
    env.restore("latest", &target);
    common::assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
