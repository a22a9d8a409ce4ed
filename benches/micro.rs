//! Micro-benchmarks of the hot paths: chunking, keyed hashing, blob sealing
//! and opening, pack writing, and index lookups in the RocksDB cache.
//! `cargo bench --bench micro` prints throughput per stage; numbers are
//! for comparison between commits on one machine, never asserted.

use std::time::Instant;

use cairn::blob::{self, BlobKind};
use cairn::chunker::{Chunker, ChunkerParams};
use cairn::compress::Compression;
use cairn::crypto::MasterKey;
use cairn::index::cache::IndexCache;
use cairn::pack::{PackEntry, PackWriter};

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut out);
    out
}

fn report(name: &str, bytes: usize, runs: u32, f: impl Fn()) {
    f();
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    let secs = start.elapsed().as_secs_f64() / f64::from(runs);
    println!(
        "{name:<28} {:>9.1} MiB/s  ({:.3} ms per run)",
        bytes as f64 / secs / 1048576.0,
        secs * 1e3
    );
}

fn main() {
    let key = MasterKey::from_bytes([1; 32]);
    let random = data(64 << 20, 1);
    let text: Vec<u8> = b"2026-11-26 INFO request served in 3ms path=/api/v1/items\n"
        .repeat(1 << 20)[..64 << 20]
        .to_vec();

    report("chunker (FastCDC, 1 MiB avg)", random.len(), 3, || {
        let n = Chunker::new(&random[..], ChunkerParams::default(), key.chunker_seed()).count();
        assert!(n > 10);
    });
    report("keyed BLAKE3 blob id", random.len(), 5, || {
        std::hint::black_box(key.blob_id(&random));
    });
    let chunk = &random[..1 << 20];
    let id = key.blob_id(chunk);
    report("seal 1 MiB random (auto)", chunk.len(), 50, || {
        std::hint::black_box(blob::seal(
            &key,
            BlobKind::Data,
            &id,
            chunk,
            Compression::Auto,
        ));
    });
    let tchunk = &text[..1 << 20];
    let tid = key.blob_id(tchunk);
    report("seal 1 MiB text (auto)", tchunk.len(), 50, || {
        std::hint::black_box(blob::seal(
            &key,
            BlobKind::Data,
            &tid,
            tchunk,
            Compression::Auto,
        ));
    });
    let sealed = blob::seal(&key, BlobKind::Data, &tid, tchunk, Compression::Auto);
    report("open 1 MiB text", tchunk.len(), 50, || {
        std::hint::black_box(blob::open(&key, BlobKind::Data, &tid, &sealed, tchunk.len()).ok());
    });
    report("pack writer (16 x 1 MiB)", 16 << 20, 10, || {
        let mut w = PackWriter::new();
        for i in 0..16 {
            let part = &random[i << 20..(i + 1) << 20];
            w.add(
                BlobKind::Data,
                key.blob_id(&part[..64]),
                part.len() as u32,
                part,
            );
        }
        std::hint::black_box(w.finish(&key));
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let cache = IndexCache::open(&dir.path().join("idx")).expect("cache");
    let n = 200_000u32;
    let entries: Vec<PackEntry> = (0..n)
        .map(|i| PackEntry {
            kind: BlobKind::Data,
            id: key.blob_id(&i.to_le_bytes()),
            offset: u64::from(i),
            length: 100,
            plain_length: 90,
        })
        .collect();
    let start = Instant::now();
    for batch in entries.chunks(10_000) {
        cache
            .merge(None, &[(cairn::id::PackId([0; 32]), batch)])
            .expect("merge");
    }
    println!(
        "index insert                 {:>9.0} entries/s",
        f64::from(n) / start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    for e in &entries {
        assert!(cache.contains(BlobKind::Data, &e.id).expect("lookup"));
    }
    println!(
        "index lookup (hit)           {:>9.0} lookups/s",
        f64::from(n) / start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    for i in 0..n {
        let miss = key.blob_id(&(i + n).to_le_bytes());
        assert!(!cache.contains(BlobKind::Data, &miss).expect("lookup"));
    }
    println!(
        "index lookup (miss)          {:>9.0} lookups/s",
        f64::from(n) / start.elapsed().as_secs_f64()
    );
}
