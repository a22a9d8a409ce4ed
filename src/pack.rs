//! Packs: many sealed blobs in one object, with an encrypted header at the end.
//!
//! Layout: `blob ‖ blob ‖ … ‖ sealed header ‖ header length (u32 LE)`.
//! The header lists each blob's kind, id, offset, stored length and plain
//! length, as CBOR, sealed with associated data `cairn pack header`. Blob
//! boundaries are therefore visible only with the key, and `PackWriter`
//! shuffles blob order on `finish` so that the order in a pack does not
//! follow the order of a file. No I/O: the writer returns bytes.

use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::crypto::MasterKey;
use crate::id::{content_hash, BlobId, PackId};

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

/// Collects sealed blobs for one pack.
#[derive(Default)]
pub struct PackWriter {
    blobs: Vec<(PackEntry, Vec<u8>)>,
    size_bytes: u64,
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

    pub fn add(&mut self, kind: BlobKind, id: BlobId, plain_length: u32, sealed: Vec<u8>) {
        let entry = PackEntry {
            kind,
            id,
            offset: 0,
            length: sealed.len() as u32,
            plain_length,
        };
        self.size_bytes += sealed.len() as u64;
        self.blobs.push((entry, sealed));
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Bytes of blob data so far (without the header).
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Shuffles the blobs, lays them out and appends the sealed header.
    pub fn finish(self, key: &MasterKey) -> FinishedPack {
        self.finish_into(key, Vec::new())
    }

    /// Like `finish`, writing into `bytes` (cleared first): a writer that
    /// recycles its buffers keeps a steady footprint instead of leaving the
    /// allocator a pack-sized hole per pack.
    pub fn finish_into(mut self, key: &MasterKey, mut bytes: Vec<u8>) -> FinishedPack {
        use rand::seq::SliceRandom;
        self.blobs.shuffle(&mut rand::thread_rng());
        bytes.clear();
        bytes.reserve(self.size_bytes as usize + 64 * self.blobs.len() + 64);
        let mut entries = Vec::with_capacity(self.blobs.len());
        for (mut entry, sealed) in self.blobs {
            entry.offset = bytes.len() as u64;
            bytes.extend_from_slice(&sealed);
            entries.push(entry);
        }
        let header = key.seal(&encode_entries(&entries), HEADER_AAD);
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        FinishedPack {
            id: PackId(content_hash(&bytes)),
            bytes,
            entries,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::compress::Compression;

    fn sample_pack(key: &MasterKey) -> (FinishedPack, Vec<Vec<u8>>) {
        let mut writer = PackWriter::new();
        let datas: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + i as usize]).collect();
        for d in &datas {
            let id = key.blob_id(d);
            let sealed = blob::seal(key, BlobKind::Data, &id, d, Compression::Off);
            writer.add(BlobKind::Data, id, d.len() as u32, sealed);
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
