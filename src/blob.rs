//! One blob's stored form: compress, then seal; and back. No I/O.
//!
//! Plaintext inside the seal is one flag byte (0 raw, 1 zstd) followed by the
//! payload. The associated data binds the blob's kind and id, so a stored
//! blob cannot be passed off as another blob or as a tree. After opening, the
//! id is recomputed from the plaintext and compared.

use serde::{Deserialize, Serialize};

use crate::compress::{self, Compression};
use crate::crypto::{self, CryptoError, MasterKey};
use crate::id::BlobId;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum BlobKind {
    /// A chunk of a file's contents.
    Data,
    /// A serialized directory.
    Tree,
}

impl From<BlobKind> for u8 {
    fn from(kind: BlobKind) -> u8 {
        match kind {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
}

impl TryFrom<u8> for BlobKind {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            _ => Err(format!("unknown blob kind {v}")),
        }
    }
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
        })
    }
}

const FLAG_RAW: u8 = 0;
const FLAG_ZSTD: u8 = 1;

/// Why stored blob bytes could not be turned back into the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("empty blob plaintext")]
    Empty,
    #[error("unknown compression flag {0}")]
    UnknownFlag(u8),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("raw blob is {actual} bytes, index says {expected}")]
    LengthMismatch { expected: usize, actual: usize },
    #[error("content does not match its id (hash is {actual})")]
    IdMismatch { actual: BlobId },
}

fn associated_data(kind: BlobKind, id: &BlobId) -> [u8; 43] {
    let mut aad = [0u8; 43];
    aad[..10].copy_from_slice(b"cairn blob");
    aad[10] = kind.into();
    aad[11..].copy_from_slice(id.as_bytes());
    aad
}

/// Compresses (when worth it) and seals a blob whose id is already known.
pub fn seal(
    key: &MasterKey,
    kind: BlobKind,
    id: &BlobId,
    plaintext: &[u8],
    compression: Compression,
) -> Vec<u8> {
    let mut buffers = SealBuffers::default();
    seal_into(key, kind, id, plaintext, compression, &mut buffers);
    buffers.sealed
}

/// The buffer one thread reuses from blob to blob, so sealing allocates
/// nothing once it has grown to the largest blob. The blob is compressed
/// straight into it, after room for the nonce and the flag, and encrypted
/// there.
#[derive(Default)]
pub struct SealBuffers {
    sealed: Vec<u8>,
}

/// Like `seal`; the sealed bytes live in `buffers` until the next call.
pub fn seal_into<'a>(
    key: &MasterKey,
    kind: BlobKind,
    id: &BlobId,
    plaintext: &[u8],
    compression: Compression,
    buffers: &'a mut SealBuffers,
) -> &'a [u8] {
    let sealed = &mut buffers.sealed;
    let flag_at = crypto::NONCE_BYTES;
    sealed.clear();
    sealed.reserve(flag_at + 1 + plaintext.len() + crypto::TAG_BYTES);
    sealed.resize(flag_at + 1, 0);
    sealed[flag_at] = match compress::compress_append(plaintext, compression, sealed) {
        true => FLAG_ZSTD,
        false => {
            sealed.extend_from_slice(plaintext);
            FLAG_RAW
        }
    };
    key.seal_in_place(sealed, &associated_data(kind, id));
    sealed
}

/// Opens a stored blob, decompresses it and checks it against its id.
pub fn open(
    key: &MasterKey,
    kind: BlobKind,
    id: &BlobId,
    stored: &[u8],
    plain_len: usize,
) -> Result<Vec<u8>, BlobError> {
    let mut inner = key.open(stored, &associated_data(kind, id))?;
    let mut decompressed = Vec::new();
    let plaintext = match unpack(&inner, plain_len, &mut decompressed)? {
        Unpacked::Stored => {
            inner.remove(0);
            inner
        }
        Unpacked::Decompressed => decompressed,
    };
    check_id(key, id, &plaintext)?;
    Ok(plaintext)
}

/// Whether any of `spans` (stored byte ranges `start..end` in one buffer,
/// sorted by start) overlaps the one before it: then opening one in place
/// would garble the next, so a reader must open them by copy. Only a
/// damaged index says blobs overlap.
pub fn spans_overlap(spans: impl IntoIterator<Item = (u64, u64)>) -> bool {
    let mut end = 0;
    spans.into_iter().any(|(start, stop)| {
        let overlaps = start < end;
        end = end.max(stop);
        overlaps
    })
}

/// Like `open`, for a reader that only looks at each blob (verify,
/// restore): decrypts `stored` in place, and decompresses into `scratch`,
/// which it reuses from blob to blob. The plaintext lies in one of the two.
/// On failure `stored` holds garbage.
pub fn open_in_place<'a>(
    key: &MasterKey,
    kind: BlobKind,
    id: &BlobId,
    stored: &'a mut [u8],
    plain_len: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], BlobError> {
    let inner = key.open_in_place(stored, &associated_data(kind, id))?;
    let plaintext = match unpack(inner, plain_len, scratch)? {
        Unpacked::Stored => &inner[1..],
        Unpacked::Decompressed => &scratch[..],
    };
    check_id(key, id, plaintext)?;
    Ok(plaintext)
}

/// Where `unpack` left the plaintext.
enum Unpacked {
    /// After the flag byte, as stored.
    Stored,
    /// In the buffer it was given.
    Decompressed,
}

/// Reads the flag byte of a decrypted blob and decompresses what follows
/// into `decompressed` if it says so; the plaintext must be `plain_len`
/// bytes long either way.
fn unpack(
    inner: &[u8],
    plain_len: usize,
    decompressed: &mut Vec<u8>,
) -> Result<Unpacked, BlobError> {
    let (&flag, payload) = inner.split_first().ok_or(BlobError::Empty)?;
    match flag {
        FLAG_RAW if payload.len() == plain_len => Ok(Unpacked::Stored),
        FLAG_RAW => Err(BlobError::LengthMismatch {
            expected: plain_len,
            actual: payload.len(),
        }),
        FLAG_ZSTD => compress::decompress_into(payload, plain_len, decompressed)
            .map(|()| Unpacked::Decompressed)
            .map_err(BlobError::Decompress),
        other => Err(BlobError::UnknownFlag(other)),
    }
}

fn check_id(key: &MasterKey, id: &BlobId, plaintext: &[u8]) -> Result<(), BlobError> {
    let actual = key.blob_id(plaintext);
    if actual != *id {
        return Err(BlobError::IdMismatch { actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_raw_and_compressed() {
        let key = MasterKey::from_bytes([3; 32]);
        for data in [b"tiny".to_vec(), vec![0u8; 100_000], Vec::new()] {
            let id = key.blob_id(&data);
            let stored = seal(&key, BlobKind::Data, &id, &data, Compression::Auto);
            assert_eq!(
                open(&key, BlobKind::Data, &id, &stored, data.len()).unwrap(),
                data
            );
        }
    }

    /// One thread's buffer, reused for blobs that compress and blobs that
    /// do not, of every size: each seals alone.
    #[test]
    fn reused_buffers_seal_each_blob_alone() {
        let key = MasterKey::from_bytes([3; 32]);
        let mut random = vec![0u8; 200_000];
        blake3::Hasher::new().finalize_xof().fill(&mut random);
        let text = b"the same line again\n".repeat(50_000);
        let mut buffers = SealBuffers::default();
        for (data, raw) in [
            (&text[..], false),
            (&random[..], true),
            (b"x", true),
            (&text[..100], false),
        ] {
            let id = key.blob_id(data);
            let stored = seal_into(
                &key,
                BlobKind::Data,
                &id,
                data,
                Compression::Auto,
                &mut buffers,
            );
            let raw_len = data.len() + 1 + crypto::SEAL_OVERHEAD;
            assert_eq!(
                stored.len() == raw_len,
                raw,
                "{} bytes stored",
                stored.len()
            );
            assert_eq!(
                open(&key, BlobKind::Data, &id, stored, data.len()).unwrap(),
                data
            );
        }
    }

    #[test]
    fn kind_and_id_are_bound() {
        let key = MasterKey::from_bytes([3; 32]);
        let id = key.blob_id(b"abc");
        let stored = seal(&key, BlobKind::Data, &id, b"abc", Compression::Off);
        assert!(open(&key, BlobKind::Tree, &id, &stored, 3).is_err());
        let other = key.blob_id(b"abd");
        assert!(open(&key, BlobKind::Data, &other, &stored, 3).is_err());
        assert!(open(&key, BlobKind::Data, &id, &stored, 4).is_err());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let key = MasterKey::from_bytes([3; 32]);
        let id = BlobId([0; 32]);
        for len in 0..64 {
            let junk = vec![0x5a; len];
            assert!(open(&key, BlobKind::Data, &id, &junk, 10).is_err());
        }
    }
}
