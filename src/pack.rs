//! Packs: many sealed blobs in one object, with an encrypted header at the end.
//!
//! Layout: `blob ‖ blob ‖ … ‖ sealed header ‖ header length (u32 LE)`.
//! The header lists each blob's kind, id, offset, stored length and plain
//! length, as CBOR, sealed with associated data `cairn pack header`. Blob
//! boundaries are therefore visible only with the key. No I/O: `PackLayout`
//! keeps the books, and whoever holds the bytes (memory, a staging file)
//! appends them.

use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::crypto::MasterKey;
use crate::id::{BlobId, PackId};

const HEADER_AAD: &[u8] = b"cairn pack header";
/// Bytes of the trailing header-length field.
pub const TRAILER_BYTES: u64 = 4;
/// A header longer than this is treated as corrupt (about 1.5 million blobs).
pub const MAX_HEADER_BYTES: u64 = 128 * 1024 * 1024;

/// Where one blob sits in a pack. Encoded as a 5-element CBOR array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireEntry", from = "WireEntry")]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: BlobId,
    pub offset: u64,
    /// Stored (sealed) length.
    pub length: u32,
    /// Length of the plaintext.
    pub plain_length: u32,
}

/// The on-disk shape of an entry: a CBOR array, to keep headers small.
#[derive(Serialize, Deserialize)]
pub struct WireEntry(BlobKind, BlobId, u64, u32, u32);

impl From<PackEntry> for WireEntry {
    fn from(e: PackEntry) -> Self {
        WireEntry(e.kind, e.id, e.offset, e.length, e.plain_length)
    }
}

impl From<WireEntry> for PackEntry {
    fn from(w: WireEntry) -> Self {
        PackEntry {
            kind: w.0,
            id: w.1,
            offset: w.2,
            length: w.3,
            plain_length: w.4,
        }
    }
}

/// Why pack bytes are not a valid pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("pack is too short ({0} bytes) to hold a header")]
    TooShort(u64),
    #[error("header length {header} does not fit in a pack of {pack} bytes")]
    BadHeaderLength { header: u64, pack: u64 },
    #[error("header authentication failed")]
    HeaderAuth,
    #[error("header does not decode: {0}")]
    HeaderDecode(String),
    #[error("blob {id} at {offset}+{length} lies outside the pack's data area")]
    EntryOutOfBounds {
        id: BlobId,
        offset: u64,
        length: u32,
    },
}

pub fn encode_entries(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 56);
    // Writing CBOR into a Vec cannot fail for these plain types.
    if ciborium::into_writer(entries, &mut out).is_err() {
        unreachable!("CBOR encoding into a Vec cannot fail");
    }
    out
}

pub fn decode_entries(bytes: &[u8]) -> Result<Vec<PackEntry>, String> {
    ciborium::from_reader(bytes).map_err(|e| e.to_string())
}

/// The bookkeeping of a pack being written, wherever its bytes go: each
/// blob's entry, and the running content hash that becomes the pack id.
/// The caller appends exactly the bytes it hands to `add`, then the trailer.
#[derive(Default)]
pub struct PackLayout {
    entries: Vec<PackEntry>,
    size_bytes: u64,
    hasher: blake3::Hasher,
}

impl PackLayout {
    /// Records the next sealed blob, appended at the current end.
    pub fn add(&mut self, kind: BlobKind, id: BlobId, plain_length: u32, sealed: &[u8]) {
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.size_bytes,
            length: sealed.len() as u32,
            plain_length,
        });
        self.hasher.update(sealed);
        self.size_bytes += sealed.len() as u64;
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of blob data so far (without the header).
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The bytes that close the pack (sealed header and its length), and
    /// what the finished pack is: its id and entries.
    pub fn finish(mut self, key: &MasterKey) -> (Vec<u8>, PackId, Vec<PackEntry>) {
        let mut trailer = key.seal(&encode_entries(&self.entries), HEADER_AAD);
        trailer.extend_from_slice(&((trailer.len()) as u32).to_le_bytes());
        self.hasher.update(&trailer);
        let id = PackId(*self.hasher.finalize().as_bytes());
        (trailer, id, self.entries)
    }
}

/// Collects sealed blobs for one pack in memory. Blobs are laid out in the
/// order they are added; the order carries no meaning (see format-spec).
#[derive(Default)]
pub struct PackWriter {
    layout: PackLayout,
    bytes: Vec<u8>,
}

/// A finished pack, ready to store under `id.object_name()`.
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, kind: BlobKind, id: BlobId, plain_length: u32, sealed: &[u8]) {
        self.layout.add(kind, id, plain_length, sealed);
        self.bytes.extend_from_slice(sealed);
    }

    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }

    /// Bytes of blob data so far (without the header).
    pub fn size_bytes(&self) -> u64 {
        self.layout.size_bytes()
    }

    /// Appends the sealed header.
    pub fn finish(self, key: &MasterKey) -> FinishedPack {
        let mut bytes = self.bytes;
        let (trailer, id, entries) = self.layout.finish(key);
        bytes.extend_from_slice(&trailer);
        FinishedPack { id, bytes, entries }
    }
}

/// From the last 4 bytes of a pack of `pack_size` bytes, the range of the
/// sealed header: `(offset, length)`.
pub fn header_range(trailer: &[u8], pack_size: u64) -> Result<(u64, u64), PackError> {
    if pack_size < TRAILER_BYTES || trailer.len() != TRAILER_BYTES as usize {
        return Err(PackError::TooShort(pack_size));
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(trailer);
    let header = u64::from(u32::from_le_bytes(len_bytes));
    if header > MAX_HEADER_BYTES || header + TRAILER_BYTES > pack_size {
        return Err(PackError::BadHeaderLength {
            header,
            pack: pack_size,
        });
    }
    Ok((pack_size - TRAILER_BYTES - header, header))
}

/// Opens and checks a sealed header. Every entry must lie inside the data
/// area that precedes the header (`data_end` = header offset).
pub fn decode_header(
    key: &MasterKey,
    sealed: &[u8],
    data_end: u64,
) -> Result<Vec<PackEntry>, PackError> {
    let plain = key
        .open(sealed, HEADER_AAD)
        .map_err(|_| PackError::HeaderAuth)?;
    let entries = decode_entries(&plain).map_err(PackError::HeaderDecode)?;
    for e in &entries {
        let end = e.offset.checked_add(u64::from(e.length));
        if end.is_none_or(|end| end > data_end) {
            return Err(PackError::EntryOutOfBounds {
                id: e.id,
                offset: e.offset,
                length: e.length,
            });
        }
    }
    Ok(entries)
}

/// Decodes the header of a whole pack held in memory.
pub fn read_header(key: &MasterKey, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    let size = pack.len() as u64;
    let trailer_start = size.saturating_sub(TRAILER_BYTES) as usize;
    let (offset, length) = header_range(&pack[trailer_start..], size)?;
    decode_header(
        key,
        &pack[offset as usize..(offset + length) as usize],
        offset,
    )
}

/// Pack bytes a reader of blobs (restore, verify, prune's repacking) asks
/// for at once: large reads, and a bound on what each reader holds however
/// large the repository's packs were made (16 MiB by default, up to 1 GiB).
pub const READ_WINDOW_BYTES: u64 = 4 << 20;

/// Splits `items`, sorted by offset, into runs whose bytes (`span` gives
/// each item's offset and length) lie within `READ_WINDOW_BYTES`, or one
/// item when it alone is larger. Each run is one read.
pub fn read_windows<T>(items: &[T], span: impl Fn(&T) -> (u64, u32)) -> Vec<&[T]> {
    let mut windows = Vec::new();
    let mut first = 0;
    let mut start = 0;
    for (i, item) in items.iter().enumerate() {
        let (offset, length) = span(item);
        let end = offset.saturating_add(u64::from(length));
        if i == first {
            start = offset;
        } else if end.saturating_sub(start) > READ_WINDOW_BYTES {
            windows.push(&items[first..i]);
            (first, start) = (i, offset);
        }
    }
    if first < items.len() {
        windows.push(&items[first..]);
    }
    windows
}

/// The bytes one read must cover for `window`: from its first item's
/// offset to the furthest end (`None` for no items).
pub fn window_range<T>(window: &[T], span: impl Fn(&T) -> (u64, u32)) -> Option<(u64, u64)> {
    let start = span(window.first()?).0;
    let end = window
        .iter()
        .map(|item| {
            let (offset, length) = span(item);
            offset.saturating_add(u64::from(length))
        })
        .max()?;
    Some((start, end.saturating_sub(start)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::compress::Compression;
    use crate::id::content_hash;

    #[test]
    fn read_windows_bound_each_read() {
        let mib: u32 = 1 << 20;
        let at = |n: u32| u64::from(n * mib);
        let blobs = [
            (0, mib),
            (at(1), 2 * mib),
            (at(3), mib),
            (at(4), 9 * mib),
            (at(13), 10),
        ];
        let windows = read_windows(&blobs, |&span| span);
        let counts: Vec<usize> = windows.iter().map(|w| w.len()).collect();
        assert_eq!(counts, [3, 1, 1]);
        assert_eq!(window_range(windows[0], |&span| span), Some((0, at(4))));
        assert!(read_windows(&[], |&span: &(u64, u32)| span).is_empty());
    }

    #[test]
    fn a_window_reaches_the_furthest_end_of_overlapping_items() {
        let items = [(100, 50), (110, 10)];
        assert_eq!(window_range(&items, |&span| span), Some((100, 50)));
        assert_eq!(window_range(&[], |&span: &(u64, u32)| span), None);
    }

    fn sample_pack(key: &MasterKey) -> (FinishedPack, Vec<Vec<u8>>) {
        let mut writer = PackWriter::new();
        let datas: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + i as usize]).collect();
        for d in &datas {
            let id = key.blob_id(d);
            let sealed = blob::seal(key, BlobKind::Data, &id, d, Compression::Off);
            writer.add(BlobKind::Data, id, d.len() as u32, &sealed);
        }
        (writer.finish(key), datas)
    }

    #[test]
    fn header_roundtrip_and_blobs_open() {
        let key = MasterKey::from_bytes([9; 32]);
        let (pack, datas) = sample_pack(&key);
        assert_eq!(pack.id, PackId(content_hash(&pack.bytes)));
        let entries = read_header(&key, &pack.bytes).unwrap();
        assert_eq!(entries, pack.entries);
        for d in &datas {
            let id = key.blob_id(d);
            let e = entries.iter().find(|e| e.id == id).unwrap();
            let stored = &pack.bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
            assert_eq!(&blob::open(&key, e.kind, &id, stored, d.len()).unwrap(), d);
        }
    }

    #[test]
    fn damaged_packs_are_errors_not_panics() {
        let key = MasterKey::from_bytes([9; 32]);
        let (pack, _) = sample_pack(&key);
        for cut in [0usize, 1, 3, 4, 10, pack.bytes.len() - 1] {
            assert!(read_header(&key, &pack.bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut flipped = pack.bytes.clone();
        let n = flipped.len();
        flipped[n - 10] ^= 1;
        assert_eq!(read_header(&key, &flipped), Err(PackError::HeaderAuth));
        let mut bad_len = pack.bytes.clone();
        bad_len[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_header(&key, &bad_len),
            Err(PackError::BadHeaderLength { .. })
        ));
    }
}
