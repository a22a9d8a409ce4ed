//! Loads the parent snapshot's directory trees ahead of the archiver, on
//! threads of their own. In a snapshot where little changed, loading them (a
//! cache read, decryption, decompression, decoding) was over a third of the
//! walking thread's time, and that thread is the critical path.
//!
//! The loaders go through the parent's trees depth first, subdirectories
//! in name order: the order in which the archiver enters the directories
//! that are still there. They stay at most `TREES_AHEAD` trees ahead. Two
//! of them: one alone, waiting on the cache's reads, fell behind the
//! archiver once the archiver no longer loaded trees itself. The
//! archiver takes each tree as it enters the directory; trees it passes
//! without taking (directories since deleted or excluded) are dropped,
//! and so are those below them. Everything here is a hint: a tree the
//! loaders do not have ready (or could not load) the archiver loads
//! itself. When it does because they are still below a directory since
//! deleted, that tells them where it is: they skip ahead.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Scope;

use super::parent_check::ParentCheck;
use crate::id::BlobId;
use crate::repository::Repository;
use crate::tree::{NodeKind, Tree};

/// Trees loaded and not yet passed: plenty to keep ahead of the archiver
/// across a directory's subdirectories, and little memory (a tree of a
/// hundred entries decodes to some tens of KiB).
const TREES_AHEAD: usize = 64;

/// Loader threads.
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
    /// tree, which the archiver has) in `scope`, each checked by `check`
    /// if given (a tree that fails its check is left to the archiver).
    pub(super) fn spawn<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        repo: &'env Repository,
        root: &Tree,
        check: Option<Arc<ParentCheck>>,
    ) -> TreePrefetch {
        let shared = Arc::new(Shared::default());
        lock(&shared).to_load = subtrees(root, &[]);
        for _ in 0..LOADERS {
            let loader = Arc::clone(&shared);
            let check = check.clone();
            let load = move |id: &BlobId| {
                let tree = repo.load_tree(id).ok()?;
                if let Some(check) = &check {
                    check.check_loaded(repo, id, &tree).ok()?;
                }
                Some(tree)
            };
            let _ = std::thread::Builder::new()
                .name("cairn-trees".into())
                .spawn_scoped(scope, move || loader.load_all(load));
        }
        TreePrefetch { shared }
    }

    /// The tree `id` if the loaders have it (waiting if one is loading it
    /// now); `None`: load it yourself.
    pub(super) fn take(&self, id: &BlobId) -> Option<Tree> {
        self.shared.take(id)
    }
}

/// Whether the archiver went past `place` without entering it: it took a
/// later tree, and not one below `place`.
fn is_passed(place: &[u32], passed: &[u32]) -> bool {
    place < passed && !passed.starts_with(place)
}

impl Shared {
    /// A loader's work: loads trees with `load` until there are none left
    /// or the archiver is done.
    fn load_all(&self, load: impl Fn(&BlobId) -> Option<Tree>) {
        while let Some((id, place)) = self.next() {
            let tree = load(&id);
            self.loaded(id, place, tree);
        }
    }

    fn take(&self, id: &BlobId) -> Option<Tree> {
        let mut state = lock(self);
        while state.loading.contains(id) {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let taken = state.ready.remove(id);
        // Not loaded yet: the loaders may be busy below a directory since
        // deleted, with no room left for what comes after it. Where the
        // archiver is tells them to skip the rest of it.
        let place = match &taken {
            Some((place, _)) => Some(place.clone()),
            None => state
                .to_load
                .iter()
                .rev()
                .find(|(waiting, _)| waiting == id)
                .map(|(_, place)| place.clone()),
        };
        if let Some(place) = place.filter(|place| *place > state.passed) {
            state.ready.retain(|_, (p, _)| *p > place);
            state.passed = place;
        }
        drop(state);
        self.changed.notify_all();
        taken.map(|(_, tree)| tree)
    }

    /// Ends the loaders' work: the archiver is done.
    fn stop(&self) {
        let mut state = lock(self);
        state.stopped = true;
        state.ready.clear();
        drop(state);
        self.changed.notify_all();
    }

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
        self.shared.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Node;

    fn tree_of_dirs(ids: impl IntoIterator<Item = u8>) -> Tree {
        let nodes = ids
            .into_iter()
            .map(|byte| {
                let mut node = Node::new(&[b'd', byte], NodeKind::Dir);
                node.subtree = Some(BlobId([byte; 32]));
                node
            })
            .collect();
        Tree { nodes }
    }

    /// A directory deleted since the parent snapshot, with more
    /// subdirectories than the loaders keep ready, must not hold them up
    /// for the rest of the walk: the archiver's miss on the next directory
    /// moves them past it.
    #[test]
    fn a_deleted_directory_with_many_subdirectories_does_not_stall_the_loaders() {
        let (deleted, next, below_next) = (BlobId([1; 32]), BlobId([2; 32]), BlobId([3; 32]));
        let mut trees: HashMap<BlobId, Tree> = HashMap::new();
        trees.insert(deleted, tree_of_dirs(100..200));
        trees.insert(next, tree_of_dirs([3]));
        for byte in (3..4).chain(100..200) {
            trees.insert(BlobId([byte; 32]), Tree::default());
        }
        let prefetch = TreePrefetch {
            shared: Arc::new(Shared::default()),
        };
        lock(&prefetch.shared).to_load = vec![(next, vec![1]), (deleted, vec![0])];
        let wait_until = |ready: &dyn Fn(&State) -> bool| {
            for _ in 0..3_000 {
                if ready(&lock(&prefetch.shared)) {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            false
        };
        /// Stops the loader also when an assertion fails, so the test
        /// fails instead of waiting for it forever.
        struct StopOnDrop<'a>(&'a Shared);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        std::thread::scope(|scope| {
            let shared = Arc::clone(&prefetch.shared);
            scope.spawn(move || shared.load_all(|id| trees.get(id).cloned()));
            let _stop = StopOnDrop(&prefetch.shared);
            assert!(
                wait_until(&|s| s.ready.len() >= TREES_AHEAD),
                "loaders ahead"
            );
            assert!(
                prefetch.take(&next).is_none(),
                "not loaded: load it yourself"
            );
            assert!(
                wait_until(&|s| s.ready.contains_key(&below_next)),
                "the loaders stayed below the deleted directory"
            );
            assert_eq!(prefetch.take(&below_next), Some(Tree::default()));
        });
    }

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
