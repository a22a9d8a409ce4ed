//! Files replaced, grown, shrunk or deleted while snapshots read them. A
//! snapshot still completes; a file that vanished is reported by name (exit
//! code 3); every file it saved restores to exactly one version the file
//! really had, never a mix or a cut-off one.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

const FILES: u64 = 150;

/// Version `generation` of file `index`: shorter than the smallest chunk
/// (4 KiB here) on even generations, several chunks long on odd ones. The
/// first 16 bytes say which version it is.
fn version(index: u64, generation: u64) -> Vec<u8> {
    let len = if generation % 2 == 0 { 1500 } else { 40_000 };
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&index.to_le_bytes());
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes.extend_from_slice(&random_bytes(len - 16, index * 1_000_003 + generation));
    bytes
}

fn file_name(index: u64) -> String {
    format!("f{index:03}")
}

/// Replaces every file in turn (a new version renamed over it, so the
/// file is always some whole version), deleting every third one for a
/// while, until `stop`.
fn mutate(src: &Path, staging: &Path, stop: &AtomicBool) {
    let mut generation = 1;
    while !stop.load(Ordering::Relaxed) {
        for index in 0..FILES {
            let path = src.join(file_name(index));
            if (index + generation) % 3 == 0 {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let tmp = staging.join(file_name(index));
            std::fs::write(&tmp, version(index, generation)).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
        generation += 1;
    }
}

#[test]
fn files_changing_during_snapshots_are_saved_whole_or_reported() {
    let env = TestEnv::new();
    env.init_small_chunks();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for index in 0..FILES {
        write(&src.join(file_name(index)), &version(index, 0));
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Beside the source, on the same file system, so renames are atomic.
    let staging = env.path("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mutator = {
        let (src, stop) = (src.clone(), Arc::clone(&stop));
        std::thread::spawn(move || mutate(&src, &staging, &stop))
    };
    let src_arg = src.to_str().unwrap();
    let mut reported = 0;
    for _ in 0..6 {
        let out = env.run(&["snapshot", src_arg]);
        let text = stderr(&out);
        match out.status.code() {
            Some(0) => {}
            Some(3) => {
                for line in text.lines().filter(|l| l.contains(src_arg)) {
                    assert!(line.contains("/f"), "names the file: {line}");
                    reported += 1;
                }
            }
            other => panic!("snapshot exited with {other:?}:\n{text}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    mutator.join().unwrap();
    eprintln!("{reported} vanished files reported");

    let snapshots: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let snapshots = snapshots.as_array().unwrap();
    assert_eq!(snapshots.len(), 6);
    for (n, snapshot) in snapshots.iter().enumerate() {
        let id = snapshot["id"].as_str().unwrap();
        let target = env.path(&format!("restored-{n}"));
        env.restore(&format!("{}:{src_arg}", &id[..8]), &target);
        for path in files_under(&target) {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap();
            let (Some(index), Some(generation)) = (
                bytes
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap())),
                bytes
                    .get(8..16)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap())),
            ) else {
                panic!("{name}: {} bytes, not a whole version", bytes.len());
            };
            assert_eq!(name, file_name(index), "{name} holds another file's bytes");
            assert!(
                bytes == version(index, generation),
                "{name}: not version {generation} as written ({} bytes)",
                bytes.len()
            );
        }
    }
    env.assert_verifies("after snapshots of changing files");
}
