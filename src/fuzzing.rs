//! Entry points for fuzzing every decoder of repository bytes.
//!
//! `fuzz/fuzz_targets/*.rs` call these under cargo-fuzz, and
//! `tests/fuzz_corpus.rs` replays the committed corpus and every crash input
//! ever found through the same functions in a normal `cargo test`. Each
//! function feeds the bytes both to the sealed-object decoder (with a fixed
//! key) and to the plaintext decoder behind it, which is where a fuzzer that
//! cannot forge tags still finds bugs. A decoder may return an error for any
//! input; it must never panic, loop or allocate without bound.

use crate::blob::{self, BlobKind};
use crate::crypto::MasterKey;
use crate::id::BlobId;
use crate::index::IndexFile;
use crate::pack;
use crate::repository::config::{Config, KeyFile};
use crate::repository::marker::{ObsoleteMarker, RunMarker};
use crate::snapshot::Snapshot;
use crate::tree::Tree;

/// The key fuzz seeds are sealed with.
pub fn fuzz_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

pub fn config(data: &[u8]) {
    let _ = Config::open(&fuzz_key(), data);
    let _ = Config::decode_plain(data);
}

pub fn key_file(data: &[u8]) {
    // Only decode: unlocking runs Argon2 with the file's own (bounded) cost.
    let _ = KeyFile::decode(data);
}

pub fn pack_header(data: &[u8]) {
    let _ = pack::read_header(&fuzz_key(), data);
    let _ = pack::decode_entries(data);
}

pub fn blob(data: &[u8]) {
    let key = fuzz_key();
    let id = BlobId([0; 32]);
    let plain_len = data.first().map_or(0, |&b| usize::from(b) * 1000);
    let _ = blob::open(&key, BlobKind::Data, &id, data, plain_len);
    let _ = blob::open_in_place(
        &key,
        BlobKind::Data,
        &id,
        &mut data.to_vec(),
        plain_len,
        &mut Vec::new(),
    );
    let _ = crate::compress::decompress(data, plain_len);
}

pub fn index_file(data: &[u8]) {
    let _ = IndexFile::open(&fuzz_key(), data);
    let _ = IndexFile::decode_plain(data);
}

pub fn tree(data: &[u8]) {
    let _ = Tree::decode(data);
}

pub fn snapshot(data: &[u8]) {
    let _ = Snapshot::decode(data);
}

/// Both prune markers (`obsolete/`, `runs/`): the same bytes as either
/// role, sealed and plain; a run marker's staleness check as prune uses it.
pub fn marker(data: &[u8]) {
    let key = fuzz_key();
    let _ = ObsoleteMarker::open(&key, data);
    let _ = ObsoleteMarker::decode_plain(data);
    let now = chrono::DateTime::UNIX_EPOCH.fixed_offset();
    for run in [RunMarker::open(&key, data), RunMarker::decode_plain(data)]
        .into_iter()
        .flatten()
    {
        let _ = run.is_stale(now);
    }
}

/// Every target by name, as the fuzz targets and the corpus replay use them.
pub type Target = (&'static str, fn(&[u8]));

pub const TARGETS: &[Target] = &[
    ("config", config),
    ("key_file", key_file),
    ("pack_header", pack_header),
    ("blob", blob),
    ("index_file", index_file),
    ("tree", tree),
    ("snapshot", snapshot),
    ("marker", marker),
];
