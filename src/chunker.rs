//! Content-defined chunking: FastCDC (2020) with a gear table seeded from the
//! repository key, so chunk boundaries depend on a secret and reveal less
//! about contents. No I/O beyond the reader it is handed.

use std::io::Read;

use fastcdc::v2020::{Normalization, StreamCDC};
use serde::{Deserialize, Serialize};

/// Chunk size bounds, fixed at `init` and stored in the encrypted config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_bytes: u32,
    pub avg_bytes: u32,
    pub max_bytes: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_bytes: 512 * 1024,
            avg_bytes: 1024 * 1024,
            max_bytes: 8 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// FastCDC's own bounds; a config outside them is corrupt (the crate
    /// asserts on them, so they must be checked before use).
    pub fn validate(&self) -> Result<(), String> {
        let ok = (64..=1_048_576).contains(&self.min_bytes)
            && (256..=4_194_304).contains(&self.avg_bytes)
            && (1024..=16_777_216).contains(&self.max_bytes)
            && self.min_bytes <= self.avg_bytes
            && self.avg_bytes <= self.max_bytes;
        if ok {
            Ok(())
        } else {
            Err(format!("chunker parameters out of range: {self:?}"))
        }
    }
}

/// Splits a reader into chunks. Yields owned buffers of at most `max_bytes`.
pub struct Chunker<R: Read> {
    inner: StreamCDC<R>,
}

impl<R: Read> Chunker<R> {
    /// `params` must have passed `validate`.
    pub fn new(reader: R, params: ChunkerParams, seed: u64) -> Self {
        Chunker {
            inner: StreamCDC::with_level_and_seed(
                reader,
                params.min_bytes,
                params.avg_bytes,
                params.max_bytes,
                Normalization::Level1,
                seed,
            ),
        }
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.next()? {
            Ok(chunk) => Some(Ok(chunk.data)),
            Err(fastcdc::v2020::Error::IoError(e)) => Some(Err(e)),
            Err(other) => Some(Err(std::io::Error::other(other.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_bytes: 2048,
            avg_bytes: 8192,
            max_bytes: 65536,
        }
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let data = pseudo_random(1 << 20, 1);
        let chunks: Vec<Vec<u8>> = Chunker::new(&data[..], small(), 42)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(chunks.len() > 50);
        assert_eq!(chunks.concat(), data);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.len() >= 2048 && c.len() <= 65536);
        }
    }

    #[test]
    fn insertion_shifts_only_nearby_boundaries() {
        let data = pseudo_random(1 << 20, 2);
        let mut edited = data.clone();
        edited.splice(100..100, b"inserted".iter().copied());
        let ids = |d: &[u8]| -> std::collections::HashSet<Vec<u8>> {
            Chunker::new(d, small(), 7).map(|c| c.unwrap()).collect()
        };
        let (a, b) = (ids(&data), ids(&edited));
        let shared = a.intersection(&b).count();
        assert!(shared + 3 >= a.len(), "shared {shared} of {}", a.len());
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(1 << 20, 3);
        let lens = |seed| -> Vec<usize> {
            Chunker::new(&data[..], small(), seed)
                .map(|c| c.unwrap().len())
                .collect()
        };
        assert_ne!(lens(1), lens(2));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert!(ChunkerParams::default().validate().is_ok());
        let bad = ChunkerParams {
            min_bytes: 10,
            avg_bytes: 5,
            max_bytes: 1,
        };
        assert!(bad.validate().is_err());
    }
}
