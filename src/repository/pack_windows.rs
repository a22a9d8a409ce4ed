//! Reading a pack's blobs a window at a time (`pack::read_windows`): what
//! restore, verify and prune's repacking share, so that what each reader
//! holds is one window, however large the repository's packs were made.

use crate::backend;
use crate::blob;
use crate::id::PackId;
use crate::pack;

use super::Repository;

/// The bytes one read brought of a pack: a window's items lie in them.
pub struct PackWindow {
    start: u64,
    bytes: Vec<u8>,
    /// Whether two of the window's items share bytes (only a damaged index
    /// says so): then opening one in place would garble the other.
    pub overlapping: bool,
}

impl PackWindow {
    /// The stored bytes of the item at `span` (pack offset and length);
    /// `None` if the read did not bring them.
    pub fn stored(&mut self, (offset, length): (u64, u32)) -> Option<&mut [u8]> {
        let from = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        self.bytes.get_mut(from..from.checked_add(length as usize)?)
    }
}

impl Repository {
    /// Reads the `items` of pack `pack` (sorted by offset; `span` gives an
    /// item's offset and stored length) a window at a time, as the caller
    /// iterates: each window's items, with the bytes they lie in or the
    /// error reading them.
    pub fn read_pack_windows<'a, T, S>(
        &'a self,
        pack: &PackId,
        items: &'a [T],
        span: S,
    ) -> impl Iterator<Item = (&'a [T], backend::Result<PackWindow>)> + 'a
    where
        S: Fn(&T) -> (u64, u32) + Copy + 'a,
    {
        let name = pack.object_name();
        pack::read_windows(items, span)
            .into_iter()
            .filter_map(move |window| {
                let (start, len) = pack::window_range(window, span)?;
                let read = self.backend.read_range(&name, start, len);
                let read = read.map(|bytes| PackWindow {
                    start,
                    bytes,
                    overlapping: overlapping(window, span),
                });
                Some((window, read))
            })
    }
}

fn overlapping<T>(window: &[T], span: impl Fn(&T) -> (u64, u32)) -> bool {
    blob::spans_overlap(window.iter().map(|item| {
        let (offset, length) = span(item);
        (offset, offset.saturating_add(u64::from(length)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs_overlap(spans: &[(u64, u32)]) -> bool {
        let mut sorted = spans.to_vec();
        sorted.sort();
        overlapping(&sorted, |&span| span)
    }

    /// Blobs are decrypted in place only where none garbles another.
    #[test]
    fn overlapping_blobs_are_told_from_adjacent_ones() {
        assert!(!blobs_overlap(&[(100, 50), (0, 100), (150, 10)]));
        assert!(!blobs_overlap(&[(0, 10), (20, 10)]));
        assert!(blobs_overlap(&[(0, 100), (99, 10)]));
        assert!(blobs_overlap(&[(50, 10), (0, 100)]));
        assert!(blobs_overlap(&[(0, 10), (0, 10)]));
    }

    #[test]
    fn a_window_gives_each_item_its_bytes() {
        let mut window = PackWindow {
            start: 100,
            bytes: (0..50).collect(),
            overlapping: false,
        };
        assert_eq!(
            window.stored((110, 5)).map(|b| b.to_vec()),
            Some(vec![10, 11, 12, 13, 14])
        );
        assert!(window.stored((140, 11)).is_none(), "beyond what was read");
        assert!(window.stored((90, 5)).is_none(), "before the window");
    }
}
