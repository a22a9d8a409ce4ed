//! What the file chunker expects of a file that changed since the parent
//! snapshot: mostly the same chunks, in the same order. Where it finds
//! them, it hashes the next expected chunk's length of bytes instead of
//! cutting them (hashing is twice as fast as cutting), and takes them as
//! that chunk if the ids agree.
//!
//! The chunks stay exactly those of a cut from the file's start: a
//! content-defined cut depends only on the bytes since the previous cut,
//! so bytes that were a whole chunk before are one again wherever a chunk
//! starts with them. The file's last chunk is never expected, since the
//! end of the file may have cut it rather than its content.
//!
//! After an expected chunk is not found (an edit), the chunker cuts; a cut
//! chunk as long as one of the parent's is hashed and compared, and where
//! it is that chunk, expecting resumes after it. So edits, insertions and
//! deletions anywhere cost only the chunks around them.

use std::collections::HashMap;

use crate::id::BlobId;
use crate::tree::ContentRef;

pub(super) struct ParentChunks {
    chunks: Vec<ContentRef>,
    /// The indexes in `chunks` of each length, all but the last chunk.
    by_length: HashMap<u32, Vec<usize>>,
    /// The chunk expected next, while the file follows the parent's.
    next: Option<usize>,
}

impl ParentChunks {
    /// `None` when there is nothing to expect: one chunk, or none.
    pub(super) fn new(chunks: Vec<ContentRef>) -> Option<ParentChunks> {
        if chunks.len() < 2 {
            return None;
        }
        let mut by_length: HashMap<u32, Vec<usize>> = HashMap::new();
        for (index, chunk) in chunks[..chunks.len() - 1].iter().enumerate() {
            by_length.entry(chunk.1).or_default().push(index);
        }
        Some(ParentChunks {
            chunks,
            by_length,
            next: Some(0),
        })
    }

    /// The chunk the file is expected to go on with.
    pub(super) fn expected(&self) -> Option<&ContentRef> {
        let next = self.next?;
        (next + 1 < self.chunks.len()).then(|| &self.chunks[next])
    }

    /// The expected chunk was found.
    pub(super) fn found(&mut self) {
        self.next = self.next.map(|next| next + 1);
    }

    /// The expected chunk was not found: nothing is expected until a cut
    /// chunk turns out to be one of the parent's.
    pub(super) fn missed(&mut self) {
        self.next = None;
    }

    /// Whether a chunk of `len` bytes that was cut could be one of the
    /// parent's, and so is worth hashing at once.
    pub(super) fn could_be(&self, len: usize) -> bool {
        u32::try_from(len).is_ok_and(|len| self.by_length.contains_key(&len))
    }

    /// A chunk was cut with id `id`: if it is one of the parent's (the
    /// answer), the file is expected to go on as the parent's did after it.
    /// Of several equal chunks (runs of zeros) it takes the first after the
    /// last one found.
    pub(super) fn cut(&mut self, id: &BlobId, len: usize) -> bool {
        let Some(indexes) = u32::try_from(len)
            .ok()
            .and_then(|len| self.by_length.get(&len))
        else {
            return false;
        };
        let after = self.next.unwrap_or(0);
        let mut same = indexes.iter().filter(|&&i| self.chunks[i].0 == *id);
        let first = same.clone().next();
        match same.find(|&&i| i >= after).or(first) {
            Some(&index) => {
                self.next = Some(index + 1);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::testing::{pseudo_random, small_params as params};
    use crate::chunker::StreamChunker;
    use crate::crypto::MasterKey;

    /// Cuts `data` as the file chunker does, expecting `parent`'s chunks
    /// where it can; returns the chunks and how many were found by
    /// expecting them rather than cut.
    fn cut_expecting(
        key: &MasterKey,
        data: &[u8],
        parent: Option<Vec<ContentRef>>,
    ) -> (Vec<ContentRef>, usize) {
        let mut chunker = StreamChunker::new(params(), key.chunker_seed());
        chunker.reset();
        let mut reader = data;
        let mut parent = parent.and_then(ParentChunks::new);
        let (mut chunks, mut found) = (Vec::new(), 0);
        loop {
            if let Some(&ContentRef(id, len)) = parent.as_ref().and_then(|p| p.expected()) {
                let taken = chunker
                    .next_chunk_if(&mut reader, len as usize, |bytes| key.blob_id(bytes) == id)
                    .unwrap();
                if let Some(bytes) = taken {
                    chunks.push(ContentRef(id, bytes.len() as u32));
                    found += 1;
                    parent.as_mut().map(ParentChunks::found);
                    continue;
                }
                parent.as_mut().map(ParentChunks::missed);
            }
            let Some(bytes) = chunker.next_chunk(&mut reader).unwrap() else {
                break;
            };
            let id = key.blob_id(bytes);
            let len = bytes.len();
            if let Some(p) = parent.as_mut().filter(|p| p.could_be(len)) {
                p.cut(&id, len);
            }
            chunks.push(ContentRef(id, len as u32));
        }
        (chunks, found)
    }

    /// Whatever the edit, expecting the parent's chunks changes no chunk:
    /// the result is what cutting the whole file gives.
    #[test]
    fn expected_chunks_are_the_chunks_a_full_cut_gives() {
        let key = MasterKey::from_bytes([3; 32]);
        let base = {
            let mut data = pseudo_random(3 << 20, 1);
            // A run of zeros long enough for several equal max-size chunks.
            data[1 << 20..(1 << 20) + 400_000].fill(0);
            data
        };
        let (parent, _) = cut_expecting(&key, &base, None);
        assert!(parent.len() > 100);
        let mut edits: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut v = base.clone();
        v.splice(500_000..500_000, pseudo_random(777, 2));
        edits.push(("insertion", v));
        let mut v = base.clone();
        v.drain(2_000_000..2_003_000);
        edits.push(("deletion", v));
        let mut v = base.clone();
        v[100_000..100_100].fill(0xee);
        v[2_500_000..2_500_010].fill(0x11);
        edits.push(("two in-place edits", v));
        let mut v = base.clone();
        v.extend(pseudo_random(300_000, 3));
        edits.push(("append", v));
        let mut v = base.clone();
        v.truncate(2_222_222);
        edits.push(("truncation", v));
        let mut v = base.clone();
        v.splice(0..0, pseudo_random(5, 4));
        edits.push(("prefix", v));
        edits.push(("unchanged", base.clone()));
        edits.push(("unrelated", pseudo_random(1 << 20, 9)));
        for (what, data) in edits {
            let (full, _) = cut_expecting(&key, &data, None);
            let (expecting, found) = cut_expecting(&key, &data, Some(parent.clone()));
            assert!(expecting == full, "{what}: the chunks differ");
            if what != "unrelated" {
                assert!(
                    found * 10 > full.len() * 8,
                    "{what}: {found} of {} expected",
                    full.len()
                );
            }
        }
    }
}
