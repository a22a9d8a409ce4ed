//! Replays the committed fuzz corpus and every crash input ever found
//! (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`) through the
//! decoders, so a normal `cargo test` guards against regressions without
//! cargo-fuzz. `generate_seed_corpus` (ignored) writes valid encodings of
//! every object as seeds.

use std::path::Path;

use cairn::fuzzing::TARGETS;

fn inputs(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect()
}

#[test]
fn corpus_and_crash_inputs_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut total = 0;
    for (name, decode) in TARGETS {
        let mut cases = inputs(&root.join("corpus").join(name));
        assert!(!cases.is_empty(), "fuzz/corpus/{name} has seeds");
        cases.extend(inputs(&root.join("artifacts").join(name)));
        for case in &cases {
            decode(case);
            // Truncations and bit flips of every seed, as a cheap extra sweep.
            for cut in [0, 1, case.len() / 2, case.len().saturating_sub(1)] {
                decode(&case[..cut.min(case.len())]);
            }
            for i in (0..case.len()).step_by(7) {
                let mut flipped = case.clone();
                flipped[i] ^= 0x41;
                decode(&flipped);
            }
        }
        total += cases.len();
    }
    assert!(total >= TARGETS.len());
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn generate_seed_corpus() {
    use cairn::blob::{self, BlobKind};
    use cairn::chunker::ChunkerParams;
    use cairn::compress::Compression;
    use cairn::crypto::KdfParams;
    use cairn::fuzzing::fuzz_key;
    use cairn::repository::config::{Config, KeyFile};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let key = fuzz_key();
    let save = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let config = Config::new(ChunkerParams::default());
    save("config", "sealed", &config.seal(&key));
    let mut plain = Vec::new();
    ciborium::into_writer(&config, &mut plain).unwrap();
    save("config", "plain", &plain);
    let cheap = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    save(
        "key_file",
        "key",
        &KeyFile::create(&key, b"pw", cheap, "h", "u")
            .unwrap()
            .encode(),
    );
    let mut writer = cairn::pack::PackWriter::new();
    let mut tree = cairn::tree::Tree::default();
    for i in 0..3u8 {
        let data = vec![i; 100 * (i as usize + 1)];
        let id = key.blob_id(&data);
        writer.add(
            BlobKind::Data,
            id,
            data.len() as u32,
            blob::seal(&key, BlobKind::Data, &id, &data, Compression::Auto),
        );
        let mut node =
            cairn::tree::Node::new(format!("file{i}").as_bytes(), cairn::tree::NodeKind::File);
        node.content
            .push(cairn::tree::ContentRef(id, data.len() as u32));
        tree.nodes.push(node);
        save(
            "blob",
            &format!("blob{i}"),
            &blob::seal(&key, BlobKind::Data, &id, &data, Compression::Level(3)),
        );
    }
    let pack = writer.finish(&key);
    save("pack_header", "pack", &pack.bytes);
    save(
        "pack_header",
        "entries",
        &cairn::pack::encode_entries(&pack.entries),
    );
    let index = cairn::index::IndexFile {
        supersedes: vec![],
        packs: vec![cairn::index::IndexedPack {
            id: pack.id,
            size_bytes: pack.bytes.len() as u64,
            blobs: pack.entries.clone(),
        }],
    };
    save("index_file", "sealed", &index.seal(&key).1);
    let mut plain = Vec::new();
    ciborium::into_writer(&index, &mut plain).unwrap();
    save("index_file", "plain", &plain);
    save("tree", "tree", &tree.encode());
    let snapshot = cairn::snapshot::Snapshot {
        time: chrono::DateTime::parse_from_rfc3339("2026-11-26T06:00:00+01:00").unwrap(),
        tree: key.blob_id(&tree.encode()),
        paths: vec!["/home".into()],
        hostname: "host".into(),
        username: "user".into(),
        uid: 1000,
        gid: 1000,
        tags: vec!["t".into()],
        parent: None,
        excludes: vec![],
        program_version: "cairn".into(),
        summary: Some(Default::default()),
    };
    save("snapshot", "snapshot", &snapshot.encode());
}
