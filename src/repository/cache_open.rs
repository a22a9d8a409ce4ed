//! Opening the local cache. Its folder is named after the repository's id,
//! which is in the encrypted config, so it is known only once the key is
//! derived (Argon2id: about 150 ms, on purpose). Opening the cache is a
//! RocksDB open with a replay of the last run's log: tens of milliseconds,
//! mostly waiting on the disk when it is cold. So the cache remembers the
//! id each repository location had last time, and a command opens that
//! cache while the key is being derived. Should the guess be wrong (the
//! location holds another repository now), it is closed again and the
//! right one opened, as without a guess.

use std::path::{Path, PathBuf};

use super::CacheOptions;
use crate::error::{Error, Result};
use crate::index::cache::IndexCache;

/// The cache of the repository with id `id`.
pub(super) fn open(options: &CacheOptions, id: &str) -> Result<IndexCache> {
    let result = match &options.root {
        Some(root) => IndexCache::open(&root.join(id).join("index")),
        None => IndexCache::open_private(),
    };
    result.map_err(|e| Error::Cache {
        path: options.root.clone().unwrap_or_default(),
        message: e.message,
    })
}

/// The id the repository at `location` had last time, if its cache is
/// still there (a guess never creates a cache).
pub(super) fn guess_id(options: &CacheOptions, location: &str) -> Option<String> {
    let root = options.root.as_ref()?;
    let id = std::fs::read_to_string(hint_path(root, location)).ok()?;
    let plausible = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (plausible && root.join(&id).join("index").is_dir()).then_some(id)
}

/// Records `id` as the id of the repository at `location`. A failure only
/// costs the next command its head start.
pub(super) fn remember_id(options: &CacheOptions, location: &str, id: &str) {
    let Some(root) = &options.root else {
        return;
    };
    let path = hint_path(root, location);
    let Some(folder) = path.parent() else {
        return;
    };
    let temporary = folder.join(format!(".tmp-{}", std::process::id()));
    let written = std::fs::create_dir_all(folder)
        .and_then(|()| std::fs::write(&temporary, id))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// Locations are hashed into file names: they may hold any character.
fn hint_path(root: &Path, location: &str) -> PathBuf {
    root.join("locations")
        .join(blake3::hash(location.as_bytes()).to_hex().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_id_is_guessed_only_while_its_cache_exists() {
        let dir = tempfile::tempdir().unwrap();
        let options = CacheOptions {
            root: Some(dir.path().to_path_buf()),
        };
        assert_eq!(guess_id(&options, "/srv/repo"), None);
        remember_id(&options, "/srv/repo", "ab12");
        assert_eq!(guess_id(&options, "/srv/repo"), None, "no cache yet");
        std::fs::create_dir_all(dir.path().join("ab12/index")).unwrap();
        assert_eq!(guess_id(&options, "/srv/repo").as_deref(), Some("ab12"));
        assert_eq!(guess_id(&options, "/srv/other"), None);
        remember_id(&options, "/srv/repo", "../../etc");
        assert_eq!(guess_id(&options, "/srv/repo"), None, "not an id");
    }
}
