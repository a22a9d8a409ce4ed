//! Loads the parent snapshot's directory trees ahead of the archiver, on a
//! thread of its own. In a snapshot where little changed, loading them (a
//! cache read, decryption, decompression, decoding) was over a third of the
//! walking thread's time, and that thread is the critical path.
//!
//! The loaders go through the parent's trees depth first, subdirectories
//! in name order: the order in which the archiver enters the directories
//! that are still there. They stay at most `TREES_AHEAD` trees ahead. Two
//! of them: one alone, waiting on the cache's reads, fell behind the
//! archiver once the archiver no longer loaded trees itself. The
//! archiver takes each tree as it enters the directory; trees it passes
//! without taking (directories since deleted or excluded) are dropped.
//! Everything here is a hint: a tree the loader does not have ready (or
//! could not load) the archiver loads itself. (So does it, for the rest of
//! the walk, should more than `TREES_AHEAD` directories in a row be gone:
//! the loader then waits for room that never comes.)

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Scope;

use crate::id::BlobId;
use crate::repository::Repository;
use crate::tree::{NodeKind, Tree};

/// Trees loaded and not yet passed: plenty to keep ahead of the archiver
/// across a directory's subdirectories, and little memory (a tree of a
/// hundred entries decodes to some tens of KiB).
const TREES_AHEAD: usize = 64;

const LOADERS: usize = 2;

pub(super) struct TreePrefetch {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// Where a tree is in the parent snapshot: the index of each subdirectory
/// on the way from the root. These compare in the order the archiver
/// enters directories (depth first), however the loaders get ahead.
type Place = Vec<u32>;

#[derive(Default)]
struct State {
    /// Trees to load, the next one last.
    to_load: Vec<(BlobId, Place)>,
    /// Loaded trees and their places.
    ready: HashMap<BlobId, (Place, Tree)>,
    /// The trees being loaded now.
    loading: Vec<BlobId>,
    /// The place of the last tree the archiver took: anything before it
    /// was passed.
    passed: Place,
    stopped: bool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The subdirectories' trees of `tree` at `place`, the first one last (to
/// be taken first): the archiver enters them in name order, the order of
/// tree nodes.
fn subtrees(tree: &Tree, place: &[u32]) -> Vec<(BlobId, Place)> {
    let mut found: Vec<(BlobId, Place)> = tree
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .filter_map(|n| n.subtree)
        .zip(0..)
        .map(|(id, index)| {
            let mut at = place.to_vec();
            at.push(index);
            (id, at)
        })
        .collect();
    found.reverse();
    found
}

impl TreePrefetch {
    /// Starts loading the trees below `root` (the parent snapshot's root
    /// tree, which the archiver has) in `scope`.
    pub(super) fn spawn<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        repo: &'env Repository,
        root: &Tree,
    ) -> TreePrefetch {
        let shared = Arc::new(Shared::default());
        lock(&shared).to_load = subtrees(root, &[]);
        for _ in 0..LOADERS {
            let loader = Arc::clone(&shared);
            let _ = std::thread::Builder::new()
                .name("cairn-trees".into())
                .spawn_scoped(scope, move || {
                    while let Some((id, place)) = loader.next() {
                        let tree = repo.load_tree(&id).ok();
                        loader.loaded(id, place, tree);
                    }
                });
        }
        TreePrefetch { shared }
    }

    /// The tree `id` if the loader has it (waiting if it is loading it
    /// now); `None`: load it yourself.
    pub(super) fn take(&self, id: &BlobId) -> Option<Tree> {
        let mut state = lock(&self.shared);
        while state.loading.contains(id) {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        let (place, tree) = state.ready.remove(id)?;
        if place > state.passed {
            state.ready.retain(|_, (p, _)| *p > place);
            state.passed = place;
        }
        drop(state);
        self.shared.changed.notify_all();
        Some(tree)
    }
}

/// Whether the archiver went past `place` without entering it: it took a
/// later tree, and not one below `place`.
fn is_passed(place: &[u32], passed: &[u32]) -> bool {
    place < passed && !passed.starts_with(place)
}

impl Shared {
    /// The next tree to load and its place, once fewer than `TREES_AHEAD`
    /// trees wait for the archiver; `None` when all are loaded (or the
    /// archiver is done).
    fn next(&self) -> Option<(BlobId, Place)> {
        let mut state = lock(self);
        loop {
            if state.stopped {
                return None;
            }
            let room = state.ready.len() + state.loading.len() < TREES_AHEAD;
            match state.to_load.pop() {
                // Below a directory the archiver went past: gone since.
                Some((_, place)) if is_passed(&place, &state.passed) => continue,
                Some((id, place)) if room => {
                    state.loading.push(id);
                    return Some((id, place));
                }
                Some(next) => state.to_load.push(next),
                // The other loader may find more below the tree it loads.
                None if state.loading.is_empty() => return None,
                None => {}
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn loaded(&self, id: BlobId, place: Place, tree: Option<Tree>) {
        let mut state = lock(self);
        if let Some(i) = state.loading.iter().position(|l| *l == id) {
            state.loading.swap_remove(i);
        }
        if let Some(tree) = &tree {
            let below = subtrees(tree, &place);
            state.to_load.extend(below);
        }
        // A tree met again (directories with the same contents, such as
        // empty ones, share it) keeps its first place: the archiver takes
        // it there, and loads the later copies itself.
        if let Some(tree) = tree.filter(|_| !is_passed(&place, &state.passed)) {
            state.ready.entry(id).or_insert((place, tree));
        }
        drop(state);
        self.changed.notify_all();
    }
}

impl Drop for TreePrefetch {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.stopped = true;
        state.ready.clear();
        drop(state);
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Node;

    #[test]
    fn places_compare_in_the_order_directories_are_entered() {
        let dir = |name: &str, byte: u8| {
            let mut node = Node::new(name.as_bytes(), NodeKind::Dir);
            node.subtree = Some(BlobId([byte; 32]));
            node
        };
        let tree = Tree {
            nodes: vec![dir("a", 1), Node::new(b"f", NodeKind::File), dir("z", 2)],
        };
        let mut below = subtrees(&tree, &[4]);
        assert_eq!(below.pop(), Some((BlobId([1; 32]), vec![4, 0])));
        assert_eq!(below.pop(), Some((BlobId([2; 32]), vec![4, 1])));
        assert!(below.is_empty());
        // Depth first: all of a's subtree comes before its next sibling.
        assert!(vec![4, 0, 7, 7] < vec![4, 1]);
        assert!(is_passed(&[4, 0, 7], &[4, 1]), "a sibling's subtree");
        assert!(!is_passed(&[4], &[4, 1]), "an ancestor");
        assert!(!is_passed(&[4, 1, 0], &[4, 1]), "a subdirectory");
        assert!(!is_passed(&[5], &[4, 1]), "what comes next");
    }
}
