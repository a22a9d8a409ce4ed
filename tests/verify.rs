//! `verify` finds damage of every kind and names what it affects.

mod common;

use common::*;

fn setup() -> (TestEnv, String) {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("docs/report.pdf"), &random_bytes(400_000, 1));
    write(&src.join("notes.txt"), &b"notes ".repeat(1000));
    let id = env.snapshot(&[src.to_str().unwrap()]);
    (env, id)
}

fn verify_json(env: &TestEnv, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    (out.status.code().unwrap(), v)
}

/// The data pack holding report.pdf: the largest pack.
fn data_pack(env: &TestEnv) -> std::path::PathBuf {
    let mut packs = files_under(&env.repo.join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    packs.pop().unwrap()
}

#[test]
fn clean_repository_verifies() {
    let (env, _) = setup();
    let (code, v) = verify_json(&env, &["--read-data"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["blobs_checked"].as_u64().unwrap() >= 3);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    let text = env.ok(&["verify"]);
    assert!(text.contains("no errors were found"), "{text}");
}

#[test]
fn flipped_bit_in_data_is_found_by_read_data_with_file_named() {
    let (env, id) = setup();
    let pack = data_pack(&env);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let (code, v) = verify_json(&env, &["--read-data"]);
    assert_eq!(code, 4, "{v}");
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    let text = v.to_string();
    assert!(text.contains(pack_name), "names the pack: {text}");
    assert_eq!(v["affected"][0]["snapshot"], id.as_str());
    assert!(text.contains("report.pdf"), "names the file: {text}");
}

/// `--read-data` may skip hashing a pack whose blobs and header it
/// authenticates one by one; a flipped bit anywhere (first blob byte, last
/// blob byte, sealed header, trailer) must still be found and named.
#[test]
fn flipped_bit_anywhere_in_a_pack_is_found_by_read_data() {
    let (env, _) = setup();
    let pack = data_pack(&env);
    let pristine = std::fs::read(&pack).unwrap();
    let len = pristine.len();
    // The trailer holds the header's length.
    let header_len = u32::from_le_bytes(pristine[len - 4..].try_into().unwrap()) as usize;
    let header_start = len - 4 - header_len;
    for (place, at) in [
        ("first blob byte", 0),
        ("last blob byte", header_start - 1),
        ("header", header_start + header_len / 2),
        ("trailer", len - 4),
    ] {
        let mut bytes = pristine.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&pack, &bytes).unwrap();
        let (code, v) = verify_json(&env, &["--read-data"]);
        assert_eq!(code, 4, "{place}: {v}");
        let pack_name = pack.file_name().unwrap().to_str().unwrap();
        assert!(v.to_string().contains(pack_name), "{place}: {v}");
    }
    std::fs::write(&pack, &pristine).unwrap();
    assert_eq!(verify_json(&env, &["--read-data"]).0, 0);
}

/// A pack larger than one read (verify reads packs a few MiB at a time, so
/// what it holds stays bounded) is still checked from end to end: damage in
/// a later window is found and named, and a clean one has every blob
/// checked.
#[test]
fn a_pack_read_in_several_windows_is_checked_throughout() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    write(&src.join("disk.img"), &random_bytes(13 << 20, 7));
    env.snapshot(&[src.to_str().unwrap()]);
    let pack = data_pack(&env);
    let pristine = std::fs::read(&pack).unwrap();
    assert!(
        pristine.len() > 3 * (4 << 20),
        "the pack spans several reads"
    );
    let (code, v) = verify_json(&env, &["--read-data"]);
    assert_eq!(code, 0, "{v}");
    let chunks = v["blobs_checked"].as_u64().unwrap();
    assert!(chunks >= 3, "{v}");
    let mut bytes = pristine.clone();
    bytes[pristine.len() - (2 << 20)] ^= 0x01;
    std::fs::write(&pack, &bytes).unwrap();
    let (code, v) = verify_json(&env, &["--read-data"]);
    assert_eq!(code, 4, "{v}");
    let text = v.to_string();
    assert!(
        text.contains(pack.file_name().unwrap().to_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("disk.img"), "names the file: {text}");
    assert_eq!(v["blobs_checked"].as_u64().unwrap(), chunks, "{v}");
}

#[test]
fn truncated_pack_is_found_without_reading_data() {
    let (env, _) = setup();
    let pack = data_pack(&env);
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..bytes.len() / 2]).unwrap();
    let (code, v) = verify_json(&env, &[]);
    assert_eq!(code, 4, "{v}");
    assert!(v.to_string().contains("report.pdf"), "{v}");
}

#[test]
fn deleted_pack_and_index_are_reported() {
    let (env, _) = setup();
    std::fs::remove_file(data_pack(&env)).unwrap();
    let (code, v) = verify_json(&env, &[]);
    assert_eq!(code, 4);
    assert!(v.to_string().contains("missing from the repository"), "{v}");

    let (env, _) = setup();
    for f in files_under(&env.repo.join("index")) {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::remove_dir_all(&env.cache).unwrap();
    let (code, v) = verify_json(&env, &[]);
    assert_eq!(code, 4, "{v}");
    assert!(
        v["unreferenced_packs"].as_array().unwrap().len() >= 2,
        "{v}"
    );
}

#[test]
fn subsets_cover_everything() {
    let (env, _) = setup();
    let mut read = 0;
    for n in 1..=3 {
        let (code, v) = verify_json(&env, &["--read-data-subset", &format!("{n}/3")]);
        assert_eq!(code, 0);
        read += v["packs_read"].as_u64().unwrap();
    }
    let (_, all) = verify_json(&env, &["--read-data"]);
    assert_eq!(read, all["packs_read"].as_u64().unwrap());
    let (code, _) = verify_json(&env, &["--read-data-subset", "50%"]);
    assert_eq!(code, 0);
    assert_eq!(
        env.run(&["verify", "--read-data-subset", "4/3"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn index_files_a_prune_superseded_are_ignored_and_every_live_pack_checked() {
    let env = TestEnv::new();
    env.init();
    let src = env.path("src");
    let mut ids = Vec::new();
    for round in 0..3u64 {
        write(
            &src.join(format!("v{round}.bin")),
            &random_bytes(300_000, round),
        );
        ids.push(env.snapshot(&[src.to_str().unwrap()]));
        std::fs::remove_file(src.join(format!("v{round}.bin"))).unwrap();
    }
    let old_index = files_under(&env.repo.join("index"));
    let kept: Vec<Vec<u8>> = old_index
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    env.ok(&["forget", &ids[0][..8]]);
    let out = env
        .cmd()
        .args(["prune", "--instant", "--max-unused", "0"])
        .env("CAIRN_INDEX_FILE_BLOBS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // A prune killed before it deleted the files it superseded leaves them
    // behind; their entries name a pack that is gone.
    for (file, bytes) in old_index.iter().zip(&kept) {
        std::fs::write(file, bytes).unwrap();
    }
    assert!(files_under(&env.repo.join("index")).len() > old_index.len());
    let live_packs = files_under(&env.repo.join("data")).len() as u64;
    let (code, v) = verify_json(&env, &["--read-data"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["packs"].as_u64(), Some(live_packs), "{v}");
    assert_eq!(v["packs_read"].as_u64(), Some(live_packs), "{v}");
    assert!(
        v["unreferenced_packs"].as_array().unwrap().is_empty(),
        "{v}"
    );
    // A live pack deleted now is missed.
    let victim = data_pack(&env);
    std::fs::remove_file(&victim).unwrap();
    let (code, v) = verify_json(&env, &[]);
    assert_eq!(code, 4, "{v}");
    assert!(v.to_string().contains("missing from the repository"), "{v}");
}

#[test]
fn a_missing_temporary_directory_is_named_and_not_taken_for_damage() {
    let (env, _) = setup();
    let out = env
        .cmd()
        .args(["verify"])
        .env("TMPDIR", env.path("no-such-dir"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("no-such-dir") && message.contains("verify's temporary file"),
        "{message}"
    );
    assert!(!message.contains("damage"), "{message}");
    env.ok(&["verify"]);
}
