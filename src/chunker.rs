//! Content-defined chunking: FastCDC (2020) with a gear table seeded from the
//! repository key, so chunk boundaries depend on a secret and reveal less
//! about contents. No I/O beyond the reader it is handed.
//!
//! `StreamChunker` reads into one window that it keeps from file to file and
//! lends out each chunk in place: no allocation per chunk, and the window is
//! compacted only when a read needs room at its end (FastCDC's own stream
//! chunker moves the whole remainder of its buffer after every chunk).

use std::io::Read;

use fastcdc::v2020::{get_gear_with_seed, logarithm2, Normalization, MASKS};
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

/// FastCDC 2020 cut points for one parameter set and gear seed: the search
/// of `fastcdc::v2020::cut_gear` (a test holds them to the same cuts), with
/// two shortcuts that the crate's function has no way to take.
///
/// - A search can resume past bytes a shorter look found no cut in (the
///   chunker looks at 4 MiB first and at 8 MiB only when that found none):
///   the hash at any point depends only on the 64 bytes before it, so it is
///   rebuilt from those instead of from the chunk's start.
/// - Runs of zeros are skipped once the hash has settled on them: 32 pairs
///   of zeros leave it at a fixed value (`zero_hash`) that stays there, so
///   the rest of the run either cuts at once or not at all.
#[derive(Clone)]
struct Cutter {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    /// The hash after 32 pairs of zero bytes, and after any more.
    zero_hash: u64,
    /// Whether a run of zeros cuts once the hash has settled on it, before
    /// `avg` and after it.
    zeros_cut_short: bool,
    zeros_cut_long: bool,
}

impl Cutter {
    fn new(params: ChunkerParams, seed: u64) -> Cutter {
        let bits = logarithm2(params.avg_bytes);
        let normalization = Normalization::Level1.bits();
        let (gear, gear_ls) = get_gear_with_seed(seed);
        let mask_s = MASKS[(bits + normalization) as usize];
        let mask_l = MASKS[(bits - normalization) as usize];
        let zero_pair = gear_ls[0].wrapping_add(gear[0]);
        let zero_hash = (0..32).fold(0u64, |hash, _| (hash << 2).wrapping_add(zero_pair));
        let half_zero_hash = (zero_hash << 2).wrapping_add(gear_ls[0]);
        let zeros_cut = |mask: u64| half_zero_hash & (mask << 1) == 0 || zero_hash & mask == 0;
        Cutter {
            min: params.min_bytes as usize,
            avg: params.avg_bytes as usize,
            max: params.max_bytes as usize,
            mask_s,
            mask_l,
            gear,
            gear_ls,
            zero_hash,
            zeros_cut_short: zeros_cut(mask_s),
            zeros_cut_long: zeros_cut(mask_l),
        }
    }

    /// Length of the first chunk of `data` (the stream chunker always
    /// says what it knows, through `cut_after`).
    #[cfg(test)]
    fn cut(&self, data: &[u8]) -> usize {
        self.cut_after(data, 0)
    }

    /// Length of the first chunk of `data`, given that none ends before
    /// `clear`: a length that a look at fewer of the same bytes returned
    /// for finding no cut.
    fn cut_after(&self, data: &[u8], clear: usize) -> usize {
        let mut remaining = data.len();
        if remaining <= self.min {
            return remaining;
        }
        let mut center = self.avg;
        if remaining > self.max {
            remaining = self.max;
        } else if remaining < center {
            center = remaining;
        }
        // Positions go by pairs of bytes, from half the shortest chunk.
        let (first, center, end) = (self.min / 2, center / 2, remaining / 2);
        let resume = (clear / 2).clamp(first, end);
        let mut hash = 0u64;
        for index in resume.saturating_sub(32).max(first)..resume {
            hash = (hash << 2)
                .wrapping_add(self.gear_ls[data[2 * index] as usize])
                .wrapping_add(self.gear[data[2 * index + 1] as usize]);
        }
        let short = (self.mask_s, self.zeros_cut_short);
        let long = (self.mask_l, self.zeros_cut_long);
        self.search(data, resume..center, &mut hash, short)
            .or_else(|| self.search(data, resume.max(center)..end, &mut hash, long))
            .unwrap_or(remaining)
    }

    /// The first cut among the pairs `indices`, checked with `mask` (and
    /// the same shifted for a pair's first byte), from `hash`. Runs of
    /// zeros are looked for between blocks of 64 pairs, which keeps the
    /// loop over each block as tight as the crate's.
    fn search(
        &self,
        data: &[u8],
        indices: std::ops::Range<usize>,
        hash: &mut u64,
        (mask, zeros_cut): (u64, bool),
    ) -> Option<usize> {
        let (mut index, end) = (indices.start, indices.end);
        let mask_ls = mask << 1;
        while index < end {
            if *hash == self.zero_hash && !zeros_cut && data[2 * index] == 0 {
                // Settled on zeros, which cannot cut here: skip them, but
                // for the pair that ends them.
                let zeros = zeros_at_start(&data[2 * index..2 * end]);
                if zeros >= 2 {
                    index += zeros / 2;
                    continue;
                }
            }
            let block_end = (index + 64).min(end);
            let block = &data[2 * index..2 * block_end];
            for (pair, bytes) in block.chunks_exact(2).enumerate() {
                *hash = (*hash << 2).wrapping_add(self.gear_ls[bytes[0] as usize]);
                if *hash & mask_ls == 0 {
                    return Some(2 * (index + pair));
                }
                *hash = hash.wrapping_add(self.gear[bytes[1] as usize]);
                if *hash & mask == 0 {
                    return Some(2 * (index + pair) + 1);
                }
            }
            index = block_end;
        }
        None
    }
}

/// How many bytes at the start of `bytes` are zero.
fn zeros_at_start(bytes: &[u8]) -> usize {
    let zero_blocks = bytes
        .chunks_exact(256)
        .take_while(|block| is_all_zero(block))
        .count();
    let rest = &bytes[zero_blocks * 256..];
    zero_blocks * 256 + rest.iter().position(|&b| b != 0).unwrap_or(rest.len())
}

/// Splits streams into chunks, one stream after another, reusing its window.
pub struct StreamChunker {
    cutter: Cutter,
    window: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Stream offset of `window[start]`: where the next chunk begins.
    offset: u64,
}

impl StreamChunker {
    /// `params` must have passed `validate`.
    pub fn new(params: ChunkerParams, seed: u64) -> StreamChunker {
        StreamChunker::with_cutter(Cutter::new(params, seed))
    }

    /// A chunker that cuts exactly like this one, with a window of its own
    /// (for another thread).
    pub fn sibling(&self) -> StreamChunker {
        StreamChunker::with_cutter(self.cutter.clone())
    }

    fn with_cutter(cutter: Cutter) -> StreamChunker {
        StreamChunker {
            cutter,
            window: Vec::new(),
            start: 0,
            end: 0,
            eof: true,
            offset: 0,
        }
    }

    /// The longest chunk this chunker cuts.
    pub fn max_chunk_bytes(&self) -> usize {
        self.cutter.max
    }

    /// Bytes looked at before trying a cut. A cut found strictly inside
    /// them is the cut the whole stream would give (FastCDC only looks
    /// ahead up to its cut, once at least `avg` bytes are there); a chunk
    /// longer than this needs a second look with `max` bytes (which goes
    /// on from where the first one ended).
    fn first_look(&self) -> usize {
        self.cutter.max.min(4 * self.cutter.avg)
    }

    /// Starts a new stream, dropping what is left of the last one.
    pub fn reset(&mut self) {
        if self.window.is_empty() {
            // Allocated on first use: callers that only chunk tiny inputs
            // never pay for it.
            self.window = vec![0; self.cutter.max + self.first_look()];
        }
        self.start = 0;
        self.end = 0;
        self.eof = false;
        self.offset = 0;
    }

    /// The next chunk of `reader`'s stream (after `reset`), or `None` at
    /// its end. The slice is valid until the next call.
    pub fn next_chunk(&mut self, reader: &mut impl Read) -> std::io::Result<Option<&[u8]>> {
        self.next_chunk_known(reader, |_| None)
    }

    /// Like `next_chunk`, but takes the length of the chunk starting at a
    /// stream offset from `known` when it has it, instead of cutting: for
    /// lengths another chunker worked out on the same bytes (scouting a
    /// file's later part on another thread). Should the stream turn out
    /// shorter than a known length (the file shrank), it cuts after all.
    pub fn next_chunk_known(
        &mut self,
        reader: &mut impl Read,
        mut known: impl FnMut(u64) -> Option<u32>,
    ) -> std::io::Result<Option<&[u8]>> {
        if let Some(len) = known(self.offset).map(|len| len as usize) {
            if len > 0 && len <= self.cutter.max {
                self.fill(reader, len)?;
                if self.end - self.start >= len {
                    return Ok(Some(self.take(len)));
                }
            }
        }
        let mut want = self.first_look();
        // Bytes a first look found no cut in.
        let mut clear = 0;
        loop {
            self.fill(reader, want)?;
            let available = &self.window[self.start..self.end];
            if available.is_empty() {
                return Ok(None);
            }
            let len = self.cutter.cut_after(available, clear);
            let certain = self.eof || available.len() >= self.cutter.max || len < available.len();
            if certain {
                return Ok(Some(self.take(len)));
            }
            clear = len;
            want = self.cutter.max;
        }
    }

    /// Takes the next `len` bytes as a chunk if `confirm` accepts them, and
    /// nothing otherwise (nor if the stream ends first): for a chunk
    /// expected from elsewhere, such as the parent snapshot's copy of the
    /// file, whose bytes must be checked before they are trusted. A
    /// content-defined cut depends only on the bytes since the previous
    /// cut, so bytes that were a whole chunk (not one ended by the end of
    /// its stream) are cut at the same place wherever a chunk starts with
    /// them.
    pub fn next_chunk_if(
        &mut self,
        reader: &mut impl Read,
        len: usize,
        confirm: impl FnOnce(&[u8]) -> bool,
    ) -> std::io::Result<Option<&[u8]>> {
        if len == 0 || len > self.cutter.max {
            return Ok(None);
        }
        self.fill(reader, len)?;
        let enough = self.end - self.start >= len;
        if enough && confirm(&self.window[self.start..self.start + len]) {
            return Ok(Some(self.take(len)));
        }
        Ok(None)
    }

    /// Hands out the next `len` bytes of the window as a chunk.
    fn take(&mut self, len: usize) -> &[u8] {
        let chunk = self.start..self.start + len;
        self.start += len;
        self.offset += len as u64;
        &self.window[chunk]
    }

    /// The lengths of the chunks that start before stream offset `stop`
    /// (after `reset`), without handing out their bytes. `reader` need not
    /// go further than `stop` plus the longest chunk: every length is
    /// then exactly what `next_chunk` would give on the whole stream.
    pub fn chunk_lengths_until(
        &mut self,
        reader: &mut impl Read,
        stop: u64,
        cancelled: impl Fn() -> bool,
    ) -> std::io::Result<Vec<u32>> {
        let mut lengths = Vec::new();
        while self.offset < stop && !cancelled() {
            match self.next_chunk(reader)? {
                Some(chunk) => lengths.push(chunk.len() as u32),
                None => break,
            }
        }
        Ok(lengths)
    }

    /// Reads until `want` bytes are available or the stream ends, moving
    /// the unread rest to the front only when the window's end is reached.
    fn fill(&mut self, reader: &mut impl Read, want: usize) -> std::io::Result<()> {
        while !self.eof && self.end - self.start < want {
            if self.end == self.window.len() {
                self.window.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match reader.read(&mut self.window[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Whether `bytes` are all zero: a check per block of 256 bytes, which the
/// compiler vectorizes (`iter().all` stops at every byte and stays scalar).
pub fn is_all_zero(bytes: &[u8]) -> bool {
    let blocks = bytes.chunks_exact(256);
    let tail = blocks.remainder();
    blocks
        .into_iter()
        .all(|block| block.iter().fold(0, |acc, &byte| acc | byte) == 0)
        && tail.iter().all(|&byte| byte == 0)
}

/// Splits a reader into owned chunks (for tests and tools; the archiver
/// borrows chunks from a `StreamChunker` instead).
pub struct Chunker<R: Read> {
    inner: StreamChunker,
    reader: R,
}

impl<R: Read> Chunker<R> {
    /// `params` must have passed `validate`.
    pub fn new(reader: R, params: ChunkerParams, seed: u64) -> Self {
        let mut inner = StreamChunker::new(params, seed);
        inner.reset();
        Chunker { inner, reader }
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .next_chunk(&mut self.reader)
            .map(|chunk| chunk.map(<[u8]>::to_vec))
            .transpose()
    }
}

/// Small chunks and deterministic bytes, for the tests of every module
/// that cuts.
#[cfg(test)]
pub(crate) mod testing {
    use super::ChunkerParams;

    /// Chunks of 2–64 KiB, 8 KiB on average.
    pub(crate) fn small_params() -> ChunkerParams {
        ChunkerParams {
            min_bytes: 2048,
            avg_bytes: 8192,
            max_bytes: 65536,
        }
    }

    pub(crate) fn pseudo_random(len: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{pseudo_random, small_params as small};
    use super::*;

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

    /// Our window and FastCDC's own stream chunker cut at the same places
    /// (chunk boundaries are part of the format: dedup across versions),
    /// also when the reader returns short reads.
    #[test]
    fn same_cuts_as_fastcdc_stream_chunker() {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = (self.1 * 7 + 3) % 5000 + 1;
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        // Zero runs (which the search skips once settled): at the start,
        // longer than the longest chunk, exactly as long, shorter, and at
        // the end.
        let mut data = pseudo_random(3 << 20, 4);
        for (at, len) in [
            (0, 5000),
            (1 << 20, 300_000),
            (2 << 20, 65536),
            (2_500_000, 1000),
        ] {
            data[at..at + len].fill(0);
        }
        data.extend_from_slice(&[0; 70_000]);
        let small_zero_cut = |seed| Cutter::new(small(), seed).cut(&[0; 65536]);
        // A seed whose cut in zeros falls short of the longest chunk, and
        // one whose does not, so that runs of zeros both cut and are
        // skipped.
        let seeds = [
            (0..).find(|&seed| small_zero_cut(seed) < 65536).unwrap(),
            (0..).find(|&seed| small_zero_cut(seed) == 65536).unwrap(),
        ];
        for (params, seed) in [(small(), seeds[0]), (small(), seeds[1]), (tiny(), 99)] {
            let theirs: Vec<Vec<u8>> = fastcdc::v2020::StreamCDC::with_level_and_seed(
                &data[..],
                params.min_bytes,
                params.avg_bytes,
                params.max_bytes,
                Normalization::Level1,
                seed,
            )
            .map(|c| c.unwrap().data)
            .collect();
            let ours: Vec<Vec<u8>> = Chunker::new(Trickle(&data, 0), params, seed)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(ours.len(), theirs.len(), "seed {seed}");
            assert!(ours == theirs, "seed {seed}");
        }
    }

    fn tiny() -> ChunkerParams {
        ChunkerParams {
            min_bytes: 64,
            avg_bytes: 256,
            max_bytes: 1024,
        }
    }

    fn fastcdc_cut(cutter: &Cutter, data: &[u8]) -> usize {
        fastcdc::v2020::cut_gear(
            data,
            cutter.min,
            cutter.avg,
            cutter.max,
            cutter.mask_s,
            cutter.mask_l,
            cutter.mask_s << 1,
            cutter.mask_l << 1,
            &cutter.gear,
            &cutter.gear_ls,
        )
        .1
    }

    /// Random bytes with runs of zeros: short and long ones, before and
    /// after `avg`, reaching the end or not.
    fn with_zero_runs(round: u32) -> Vec<u8> {
        let mut data = pseudo_random(1500, (round % 251) as u8);
        let word = |k: u32| {
            u32::from_le_bytes(
                *blake3::hash(&[k.to_le_bytes(), round.to_le_bytes()].concat())
                    .as_bytes()
                    .first_chunk()
                    .unwrap(),
            )
        };
        for run in 0..word(0) % 4 {
            let at = (word(2 * run + 1) % 1500) as usize;
            let len = (word(2 * run + 2) % 700) as usize;
            data[at..(at + len).min(1500)].fill(0);
        }
        data
    }

    /// Our search and the crate's cut at the same places, also in runs of
    /// zeros, with seeds whose settled zeros cut before `avg`, after it,
    /// and never.
    #[test]
    fn cuts_are_fastcdcs_also_in_runs_of_zeros() {
        let cutters: Vec<Cutter> = (0..2000u64)
            .map(|k| Cutter::new(tiny(), k.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let pick = |f: &dyn Fn(&Cutter) -> bool| cutters.iter().find(|c| f(c)).unwrap();
        let chosen = [
            pick(&|c| c.zeros_cut_short),
            pick(&|c| c.zeros_cut_long && !c.zeros_cut_short),
            pick(&|c| !c.zeros_cut_long && !c.zeros_cut_short),
        ];
        let mut skipped = 0;
        for cutter in chosen {
            for round in 0..3000 {
                let data = with_zero_runs(round);
                for start in [0, 7, 300] {
                    let data = &data[start..];
                    assert_eq!(cutter.cut(data), fastcdc_cut(cutter, data), "round {round}");
                }
                // Shorter than the shortest chunk, than `avg`, than `max`.
                let len = (round as usize * 13) % data.len();
                let prefix = &data[..len];
                assert_eq!(
                    cutter.cut(prefix),
                    fastcdc_cut(cutter, prefix),
                    "{len} bytes"
                );
                skipped += usize::from(zeros_at_start(&data[600..]) > 200);
            }
        }
        assert!(skipped > 100, "too few long zero runs: {skipped}");
    }

    /// A search resumed where a shorter look found no cut finds the cut
    /// the whole search finds.
    #[test]
    fn a_resumed_search_cuts_where_a_whole_one_does() {
        let mut resumed = 0;
        for seed in 0..20 {
            let cutter = Cutter::new(tiny(), seed);
            for round in 0..300 {
                let data = with_zero_runs(round * 7 + 1);
                let whole = cutter.cut(&data);
                for clear in (65..data.len()).step_by(37) {
                    if cutter.cut(&data[..clear]) == clear {
                        assert_eq!(
                            cutter.cut_after(&data, clear),
                            whole,
                            "seed {seed} round {round}"
                        );
                        resumed += 1;
                    }
                }
            }
        }
        assert!(resumed > 1000, "{resumed}");
    }

    #[test]
    fn zeros_at_the_start_are_counted() {
        for len in [0, 1, 255, 256, 257, 1000] {
            let mut bytes = vec![0; len];
            assert_eq!(zeros_at_start(&bytes), len);
            bytes.extend_from_slice(&[0, 3, 0]);
            assert_eq!(zeros_at_start(&bytes), len + 1);
        }
    }

    #[test]
    fn zero_bytes_are_told_apart() {
        for len in [0, 1, 255, 256, 257, 4096, 70_001] {
            assert!(is_all_zero(&vec![0; len]));
            for at in [0, len / 2, len.saturating_sub(1)]
                .into_iter()
                .filter(|&at| at < len)
            {
                let mut bytes = vec![0; len];
                bytes[at] = 1;
                assert!(!is_all_zero(&bytes), "{len} bytes, 1 at {at}");
            }
        }
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
