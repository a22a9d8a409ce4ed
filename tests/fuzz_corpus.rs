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

/// A cheap, deterministic mutation sweep (not coverage-guided, unlike
/// `fuzz/run.sh`): random bit flips, overwrites, truncations, insertions
/// and splices of every seed, through every decoder.
#[test]
fn random_mutations_of_seeds_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut executions = 0u64;
    for (name, decode) in TARGETS {
        let seeds = inputs(&root.join(name));
        for seed in &seeds {
            for _ in 0..1500 {
                let mut case = seed.clone();
                for _ in 0..1 + next() % 4 {
                    let len = case.len().max(1);
                    let at = (next() as usize) % len;
                    match next() % 5 {
                        0 if !case.is_empty() => case[at] ^= 1 << (next() % 8),
                        1 if !case.is_empty() => case[at] = next() as u8,
                        2 => case.truncate(at),
                        3 => case.insert(at.min(case.len()), next() as u8),
                        _ => {
                            let other = &seeds[(next() as usize) % seeds.len()];
                            let from = (next() as usize) % other.len().max(1);
                            case.splice(
                                at.min(case.len())..at.min(case.len()),
                                other[from..].iter().take(64).copied(),
                            );
                        }
                    }
                }
                decode(&case);
                executions += 1;
            }
        }
    }
    println!("{executions} mutated inputs decoded without a panic");
    assert!(executions > 10_000);
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
            &blob::seal(&key, BlobKind::Data, &id, &data, Compression::Auto),
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
    let marked = chrono::DateTime::parse_from_rfc3339("2026-11-26T06:00:00+01:00").unwrap();
    let obsolete = cairn::repository::marker::ObsoleteMarker {
        marked,
        packs: index.packs.clone(),
    };
    save("marker", "obsolete", &obsolete.seal(&key));
    let mut plain = Vec::new();
    ciborium::into_writer(&obsolete, &mut plain).unwrap();
    save("marker", "obsolete_plain", &plain);
    let run = cairn::repository::marker::RunMarker {
        hostname: "host".into(),
        pid: 4242,
        started: marked,
        heartbeat: marked,
    };
    save("marker", "run", &run.seal(&key));
    let mut plain = Vec::new();
    ciborium::into_writer(&run, &mut plain).unwrap();
    save("marker", "run_plain", &plain);
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
