//! Fills a repository's index with synthetic entries, for the scale
//! scenario of `benches/scale.sh`: a repository whose index holds millions
//! of blobs, without storing terabytes. The entries name packs that do not
//! exist, so only commands that never read those packs (snapshot of new
//! data, `prune --dry-run`) make sense on the result.
//!
//! With `--real`, the blobs are stored for real instead: BLOBS distinct
//! 32-byte blobs, sealed into packs by the same saver a snapshot uses, so
//! that `verify` (which reads every pack's header) has a whole repository
//! of that many blobs to check. Few bytes a blob keep it to about 70 bytes
//! of packs a blob; give the repository small packs (`init --pack-size`)
//! so that its index files stay the size a real one's are.
//!
//! Usage: synthetic_index REPO BLOBS [BLOBS_PER_PACK | --real]
//! (password from CAIRN_PASSWORD; uses a throw-away cache).

use std::sync::Arc;

use cairn::backend::local::LocalBackend;
use cairn::blob::BlobKind;
use cairn::compress::Compression;
use cairn::id::{BlobId, PackId};
use cairn::index::{IndexFile, IndexedPack};
use cairn::pack::PackEntry;
use cairn::repository::saver::SaverOptions;
use cairn::repository::{CacheOptions, Repository};

const BLOBS_PER_FILE: u64 = 100_000;

fn id(domain: u8, n: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[domain]);
    h.update(&n.to_le_bytes());
    *h.finalize().as_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: synthetic_index REPO BLOBS [BLOBS_PER_PACK | --real]".into());
    }
    let blobs: u64 = args[2].parse()?;
    let real = args.get(3).is_some_and(|a| a == "--real");
    let per_pack: u64 = match args.get(3).filter(|_| !real) {
        Some(n) => n.parse()?,
        None => 16,
    };
    let password = std::env::var("CAIRN_PASSWORD")?;
    let cache = tempfile::tempdir()?;
    let repo = Repository::open(
        Arc::new(LocalBackend::new(&args[1])),
        password.as_bytes(),
        &CacheOptions {
            root: Some(cache.path().to_path_buf()),
        },
    )?;
    if real {
        return store_real_blobs(&repo, blobs);
    }
    let mut file = IndexFile::default();
    let mut in_file = 0;
    let mut blob = 0u64;
    let mut pack_no = 0u64;
    while blob < blobs {
        let n = per_pack.min(blobs - blob);
        let mut pack = IndexedPack {
            id: PackId(id(b'p', pack_no)),
            size_bytes: n * 1_048_576,
            blobs: Vec::with_capacity(n as usize),
        };
        for i in 0..n {
            pack.blobs.push(PackEntry {
                kind: BlobKind::Data,
                id: BlobId(id(b'b', blob + i)),
                offset: i * 1_048_576,
                length: 1_048_576,
                plain_length: 1_048_000,
            });
        }
        blob += n;
        pack_no += 1;
        in_file += n;
        file.packs.push(pack);
        if in_file >= BLOBS_PER_FILE {
            repo.save_index_file(&std::mem::take(&mut file))?;
            in_file = 0;
        }
    }
    if !file.packs.is_empty() {
        repo.save_index_file(&file)?;
    }
    println!("{blobs} synthetic blobs in {pack_no} packs");
    Ok(())
}

/// Stores `blobs` distinct blobs of 32 bytes, uncompressed.
fn store_real_blobs(repo: &Repository, blobs: u64) -> Result<(), Box<dyn std::error::Error>> {
    let saver = repo.blob_saver(SaverOptions {
        compression: Compression::Off,
        ..SaverOptions::default()
    });
    for n in 0..blobs {
        saver.save(BlobKind::Data, id(b'r', n).to_vec())?;
    }
    let stats = saver.finish()?;
    println!("{blobs} real blobs stored: {stats:?}");
    Ok(())
}
