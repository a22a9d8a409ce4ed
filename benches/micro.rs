//! Criterion micro-benchmarks of the hot paths: chunking, keyed hashing,
//! blob sealing and opening, pack writing, and index lookups in the RocksDB
//! cache. `cargo bench --bench micro` reports throughput per stage, with
//! criterion's comparison against the previous run on the same machine.
//! Figures are never asserted.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use cairn::blob::{self, BlobKind};
use cairn::chunker::{ChunkerParams, StreamChunker};
use cairn::compress::Compression;
use cairn::crypto::MasterKey;
use cairn::id::PackId;
use cairn::index::cache::IndexCache;
use cairn::pack::{PackEntry, PackWriter};

const MIB: usize = 1 << 20;

fn random_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut out);
    out
}

fn log_text(len: usize) -> Vec<u8> {
    b"2026-11-26 INFO request served in 3ms path=/api/v1/items\n".repeat(len / 50 + 1)[..len]
        .to_vec()
}

fn key() -> MasterKey {
    MasterKey::from_bytes([1; 32])
}

fn chunking(c: &mut Criterion) {
    let key = key();
    let input = random_bytes(64 * MIB, 1);
    let mut chunker = StreamChunker::new(ChunkerParams::default(), key.chunker_seed());
    let mut group = c.benchmark_group("chunker");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);
    group.bench_function("stream, 1 MiB average, 64 MiB random", |b| {
        b.iter(|| {
            chunker.reset();
            let mut reader = &input[..];
            let mut chunks = 0;
            while let Ok(Some(_)) = chunker.next_chunk(&mut reader) {
                chunks += 1;
            }
            assert!(chunks > 10, "{chunks} chunks");
        })
    });
    group.finish();
}

/// The file chunker's thread on a 256 MiB file in the page cache, alone and
/// with one scout, copying each chunk out as it does for the saver. Nothing
/// else runs, so this is the gain where cores are idle; in a snapshot on
/// two cores the saver's workers take that second core.
fn scouted_chunking(c: &mut Criterion) {
    use cairn::archiver::cut_scout::CutScouts;
    use std::io::Write;
    use std::sync::Arc;

    let key = key();
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("large");
    let mut file = std::fs::File::create(&path).expect("create");
    for seed in 0..4 {
        file.write_all(&random_bytes(64 * MIB, seed))
            .expect("write");
    }
    drop(file);
    let mut chunker = StreamChunker::new(ChunkerParams::default(), key.chunker_seed());
    let mut group = c.benchmark_group("file chunker");
    group.throughput(Throughput::Bytes(256 * MIB as u64));
    group.sample_size(10);
    for scouts in [0, 1] {
        group.bench_function(format!("256 MiB file, {scouts} scouts"), |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    let file = Arc::new(std::fs::File::open(&path).expect("open"));
                    let board = CutScouts::spawn(scope, &chunker, scouts);
                    let mut scouted =
                        (scouts > 0).then(|| board.start(Arc::clone(&file), 256 * MIB as u64));
                    let mut reader = &*file;
                    let mut copy = Vec::with_capacity(8 * MIB);
                    chunker.reset();
                    while let Ok(Some(chunk)) =
                        chunker.next_chunk_known(&mut reader, |at| scouted.as_mut()?.known(at))
                    {
                        copy.clear();
                        copy.extend_from_slice(chunk);
                    }
                })
            })
        });
    }
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let key = key();
    let mut group = c.benchmark_group("keyed BLAKE3 blob id");
    for size in [4 * 1024, MIB] {
        let input = random_bytes(size, 2);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{size} bytes"), |b| {
            b.iter(|| key.blob_id(std::hint::black_box(&input)))
        });
    }
    group.finish();
}

fn sealing(c: &mut Criterion) {
    let key = key();
    let mut group = c.benchmark_group("blob");
    group.throughput(Throughput::Bytes(MIB as u64));
    for (name, plain) in [("random", random_bytes(MIB, 3)), ("text", log_text(MIB))] {
        let id = key.blob_id(&plain);
        group.bench_function(format!("seal 1 MiB {name} (auto compression)"), |b| {
            b.iter(|| blob::seal(&key, BlobKind::Data, &id, &plain, Compression::Auto))
        });
        let sealed = blob::seal(&key, BlobKind::Data, &id, &plain, Compression::Auto);
        group.bench_function(format!("open 1 MiB {name}"), |b| {
            b.iter(|| {
                let opened = blob::open(&key, BlobKind::Data, &id, &sealed, plain.len());
                assert!(opened.is_ok());
                opened
            })
        });
    }
    group.finish();
}

fn pack_writing(c: &mut Criterion) {
    let key = key();
    let blobs = random_bytes(16 * MIB, 4);
    let mut group = c.benchmark_group("pack writer");
    group.throughput(Throughput::Bytes(blobs.len() as u64));
    group.sample_size(20);
    group.bench_function("16 blobs of 1 MiB", |b| {
        b.iter(|| {
            let mut writer = PackWriter::new();
            for (i, part) in blobs.chunks(MIB).enumerate() {
                let id = key.blob_id(&(i as u64).to_le_bytes());
                writer.add(BlobKind::Data, id, part.len() as u32, part);
            }
            writer.finish(&key)
        })
    });
    group.finish();
}

fn index_lookups(c: &mut Criterion) {
    let key = key();
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = IndexCache::open(&dir.path().join("index")).expect("index cache");
    let count = 200_000u32;
    let entries: Vec<PackEntry> = (0..count)
        .map(|i| PackEntry {
            kind: BlobKind::Data,
            id: key.blob_id(&i.to_le_bytes()),
            offset: u64::from(i),
            length: 100,
            plain_length: 90,
        })
        .collect();
    for batch in entries.chunks(10_000) {
        cache
            .merge(None, &[(PackId([0; 32]), batch)])
            .expect("index merge");
    }
    let misses: Vec<_> = (count..2 * count)
        .map(|i| key.blob_id(&i.to_le_bytes()))
        .collect();
    let mut group = c.benchmark_group("index cache, 200k blobs");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000 lookups, hits", |b| {
        let mut at = 0;
        b.iter(|| {
            for _ in 0..1000 {
                at = (at + 7919) % entries.len();
                let found = cache.contains(BlobKind::Data, &entries[at].id);
                assert!(matches!(found, Ok(true)));
            }
        })
    });
    group.bench_function("1000 lookups, misses", |b| {
        let mut at = 0;
        b.iter(|| {
            for _ in 0..1000 {
                at = (at + 7919) % misses.len();
                let found = cache.contains(BlobKind::Data, &misses[at]);
                assert!(matches!(found, Ok(false)));
            }
        })
    });
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("merge 10k entries", |b| {
        let mut round = 0u32;
        b.iter_batched(
            || {
                round += 1;
                (0..10_000u32)
                    .map(|i| PackEntry {
                        kind: BlobKind::Data,
                        id: key.blob_id(&[round.to_le_bytes(), i.to_le_bytes()].concat()),
                        offset: u64::from(i),
                        length: 100,
                        plain_length: 90,
                    })
                    .collect::<Vec<_>>()
            },
            |batch| cache.merge(None, &[(PackId([1; 32]), &batch)]),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(
    micro,
    chunking,
    scouted_chunking,
    hashing,
    sealing,
    pack_writing,
    index_lookups
);
criterion_main!(micro);
