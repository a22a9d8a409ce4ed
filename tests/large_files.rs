//! Large files cut with scouts helping the file chunker (`cut_scout`) get
//! exactly the chunks of one pass from the start: the same blobs as without
//! scouts, so snapshots dedup against each other whatever the machine's
//! core count.

mod common;

use std::path::Path;
use std::sync::Arc;

use cairn::archiver::cut_scout::SEGMENT_BYTES;
use cairn::archiver::{snapshot, SnapshotOptions};
use cairn::backend::local::LocalBackend;
use cairn::backend::Backend;
use cairn::chunker::Chunker;
use cairn::progress::NoProgress;
use cairn::repository::{CacheOptions, Repository};
use cairn::tree::{ContentRef, Node};

fn options(source: &Path, cut_scouts: usize) -> SnapshotOptions {
    SnapshotOptions {
        paths: vec![source.to_path_buf()],
        hostname: "h".into(),
        parent: Some(None),
        cut_scouts: Some(cut_scouts),
        ..Default::default()
    }
}

/// The node of `path` in the snapshot `id`.
fn node_at(repo: &Repository, id: &cairn::id::SnapshotId, path: &Path) -> Node {
    let mut tree = repo
        .load_tree(&repo.load_snapshot(id).unwrap().tree)
        .unwrap();
    let names: Vec<_> = path.iter().skip(1).collect();
    for (i, name) in names.iter().enumerate() {
        let node = tree
            .find(name.as_encoded_bytes())
            .unwrap_or_else(|| panic!("{name:?} not in the snapshot"))
            .clone();
        if i + 1 == names.len() {
            return node;
        }
        tree = repo.load_tree(&node.subtree.unwrap()).unwrap();
    }
    unreachable!("empty path")
}

#[test]
fn scouted_large_files_get_the_chunks_of_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
    let cache = CacheOptions {
        root: Some(dir.path().join("cache")),
    };
    let repo = Repository::init(backend, b"pw", &common::cheap_init_options(), &cache).unwrap();

    // Random bytes with runs of zeros (where scouted cuts and true ones
    // meet late) around two segment starts, and a short last segment.
    let source = dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    let mut data = vec![0u8; 5 * SEGMENT_BYTES as usize + 77_777];
    blake3::Hasher::new()
        .update(b"large")
        .finalize_xof()
        .fill(&mut data);
    for seam in [2, 4] {
        let at = seam * SEGMENT_BYTES as usize;
        data[at - 3_000_000..at + 1_000_000].fill(0);
    }
    // A run of zeros to the end: chunks of one length whose cut and id are
    // known, then a shorter all-zero chunk at the end.
    let max = repo.config().chunker.max_bytes as usize;
    data.resize(data.len() + 2 * max + 1_234_567, 0);
    let large = source.join("large.img");
    std::fs::write(&large, &data).unwrap();

    let alone = snapshot(&repo, &options(&source, 0), &NoProgress).unwrap();
    let scouted = snapshot(&repo, &options(&source, 2), &NoProgress).unwrap();
    let (alone, scouted) = (
        node_at(&repo, &alone.id, &large).content,
        node_at(&repo, &scouted.id, &large).content,
    );
    let one_pass: Vec<ContentRef> =
        Chunker::new(&data[..], repo.config().chunker, repo.key().chunker_seed())
            .map(|chunk| {
                let chunk = chunk.unwrap();
                ContentRef(repo.key().blob_id(&chunk), chunk.len() as u32)
            })
            .collect();
    assert!(one_pass.len() > 40, "{} chunks", one_pass.len());
    let zero_lengths: std::collections::BTreeSet<u32> = one_pass
        .iter()
        .rev()
        .take_while(|chunk| chunk.0 == repo.key().blob_id(&vec![0; chunk.1 as usize]))
        .map(|chunk| chunk.1)
        .collect();
    assert!(
        zero_lengths.len() >= 2,
        "zero chunks of two lengths: {zero_lengths:?}"
    );
    assert!(alone == one_pass, "without scouts");
    assert!(scouted == one_pass, "with scouts");
}
