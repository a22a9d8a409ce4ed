//! The conformance suite every backend must pass.
//!
//! `run_all` exercises the contract written in `backend/mod.rs` against a
//! fresh, empty location. Each backend's tests call it with their own
//! instance (local directory, in-process Mega server, loopback S3 server, and
//! each of them through the fault-injecting wrapper). Failures panic with a
//! message naming the broken rule: this module is for tests only.

use crate::backend::{Backend, ErrorKind};

/// Runs every check in order. `backend` must point at an empty location.
pub fn run_all(backend: &dyn Backend) {
    backend.create().expect("create on an empty location");
    backend.create().expect("create is idempotent");
    empty_location_lists_nothing(backend);
    write_read_roundtrip(backend);
    small_and_empty_objects(backend);
    read_range_is_exact(backend);
    list_by_prefix(backend);
    overwrite_replaces(backend);
    missing_objects_are_not_found(backend);
    delete_removes(backend);
    store_file_moves_a_staged_file(backend);
}

fn empty_location_lists_nothing(b: &dyn Backend) {
    assert!(
        b.list("").expect("list").is_empty(),
        "a new location is empty"
    );
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn write_read_roundtrip(b: &dyn Backend) {
    for (name, len) in [
        ("config", 300usize),
        ("data/ab/ab0001", 3 * 1024 * 1024 + 17),
        ("keys/k1", 1024),
    ] {
        let bytes = pattern(len, len as u8);
        b.write(name, &bytes).expect("write");
        assert_eq!(b.read(name).expect("read"), bytes, "{name} reads back");
        assert_eq!(b.stat(name).expect("stat"), len as u64, "{name} stat");
    }
}

fn store_file_moves_a_staged_file(b: &dyn Backend) {
    let fallback = tempfile::tempdir().expect("temp dir");
    let dir = b
        .staging_dir()
        .unwrap_or_else(|| fallback.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("staging dir");
    let staged = dir.join(".tmp-conformance-staged");
    let bytes = pattern(2 * 1024 * 1024 + 5, 11);
    std::fs::write(&staged, &bytes).expect("stage");
    b.store_file("data/cd/cd0002", &staged).expect("store_file");
    assert_eq!(
        b.read("data/cd/cd0002").expect("read"),
        bytes,
        "stored file reads back"
    );
    assert!(!staged.exists(), "store_file takes the staged file away");
    assert!(
        !b.list("")
            .expect("list")
            .iter()
            .any(|o| o.name.contains(".tmp-")),
        "staging files are never listed"
    );
    b.delete("data/cd/cd0002").expect("delete stored file");
}

fn small_and_empty_objects(b: &dyn Backend) {
    for len in [0usize, 1, 15, 16, 17] {
        let name = format!("small/s{len}");
        let bytes = pattern(len, 7);
        b.write(&name, &bytes).expect("write small");
        assert_eq!(b.read(&name).expect("read small"), bytes, "{name}");
        assert_eq!(b.stat(&name).expect("stat small"), len as u64);
    }
}

fn read_range_is_exact(b: &dyn Backend) {
    let bytes = pattern(3 * 1024 * 1024 + 17, (3 * 1024 * 1024 + 17) as u8);
    let name = "data/ab/ab0001";
    for (offset, len) in [
        (0u64, 1u64),
        (5, 100),
        (1_048_570, 20),
        (3 * 1024 * 1024, 17),
    ] {
        let got = b.read_range(name, offset, len).expect("read_range");
        assert_eq!(
            got,
            bytes[offset as usize..(offset + len) as usize],
            "range {offset}+{len}"
        );
    }
    assert!(
        b.read_range(name, 3 * 1024 * 1024 + 10, 100).is_err(),
        "a range past the end is an error, not a short read"
    );
}

fn list_by_prefix(b: &dyn Backend) {
    let names = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = b
            .list(prefix)
            .expect("list")
            .into_iter()
            .map(|o| o.name)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("keys/"), vec!["keys/k1".to_string()]);
    assert_eq!(names("data/"), vec!["data/ab/ab0001".to_string()]);
    assert_eq!(names("snapshots/"), Vec::<String>::new());
    let all = names("");
    assert_eq!(all.len(), 8, "every object listed once: {all:?}");
    let sizes = b.list("data/").expect("list");
    assert_eq!(
        sizes[0].size_bytes,
        3 * 1024 * 1024 + 17,
        "list reports sizes"
    );
}

fn overwrite_replaces(b: &dyn Backend) {
    b.write("keys/k1", b"second").expect("overwrite");
    assert_eq!(b.read("keys/k1").expect("read"), b"second");
    assert_eq!(
        b.list("keys/").expect("list").len(),
        1,
        "no duplicate after overwrite"
    );
}

fn missing_objects_are_not_found(b: &dyn Backend) {
    let kind = |r: Result<(), crate::backend::Error>| r.expect_err("must fail").kind;
    assert_eq!(kind(b.read("nope").map(drop)), ErrorKind::NotFound);
    assert_eq!(kind(b.stat("data/zz/nope").map(drop)), ErrorKind::NotFound);
    assert_eq!(kind(b.delete("nope")), ErrorKind::NotFound);
    assert_eq!(
        kind(b.read_range("nope", 0, 1).map(drop)),
        ErrorKind::NotFound
    );
}

fn delete_removes(b: &dyn Backend) {
    b.delete("config").expect("delete");
    assert_eq!(
        b.read("config").expect_err("deleted").kind,
        ErrorKind::NotFound
    );
    for o in b.list("").expect("list") {
        b.delete(&o.name).expect("delete all");
    }
    assert!(b.list("").expect("list").is_empty(), "all gone");
}
