//! Disk full: a repository on a tiny tmpfs that fills up during a snapshot.
//! The snapshot fails with a clear error and the repository still
//! verifies, with every earlier snapshot intact. Needs root (for mount);
//! CI runs as root.

mod common;

use common::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn filling_the_disk_fails_cleanly() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mut env = TestEnv::new();
    let mount_point = env.path("small-fs");
    std::fs::create_dir_all(&mount_point).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mount_point)
        .status()
        .unwrap();
    if !status.success() {
        eprintln!("skipped: this machine does not allow mounting a tmpfs");
        return;
    }
    let _mount = Mount(mount_point.clone());
    env.repo = mount_point.join("repo");
    env.init();
    let src = env.path("src");
    write(&src.join("first"), &random_bytes(1 << 20, 1));
    let first = env.snapshot(&[src.to_str().unwrap()]);

    write(&src.join("second"), &random_bytes(4 << 20, 2));
    let out = env.run(&["snapshot", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("No space left") || stderr(&out).contains("quota"),
        "clear error: {}",
        stderr(&out)
    );
    // No temporary files are left behind, and the repository verifies.
    let leftovers: Vec<_> = walk(&env.repo)
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    env.assert_verifies("after the disk filled up");
    std::fs::remove_file(src.join("second")).unwrap();
    let target = env.path("t");
    env.restore(&format!("{}:{}", &first[..8], src.display()), &target);
    assert_same_tree(&src, &target);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
