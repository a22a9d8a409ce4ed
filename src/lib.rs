//! cairn: content-addressed, deduplicating, encrypted backups.
//!
//! Data flows one way: `walker` → `archiver` → `repository` (blobs through
//! `blob`, `pack`, `index`) → `backend`. `restorer` reads back through
//! `repository`. Leaves (`id`, `crypto`, `compress`, `chunker`, `blob`,
//! `pack`, `tree`, `snapshot`, `index` file format) do no I/O, so every
//! decoder of repository bytes can be fuzzed.
//!
//! The `engine` feature (on by default) is everything that does I/O:
//! repository, index cache (RocksDB), backends (local, Mega), walker,
//! archiver, restorer, checker, prune, sync. Without it only the leaves,
//! the object decoders and `fuzzing` remain, which is what `fuzz/` builds.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cairn::backend::local::LocalBackend;
//! use cairn::repository::{CacheOptions, InitOptions, Repository};
//!
//! let backend = Arc::new(LocalBackend::new("/srv/backup"));
//! let repo = Repository::init(backend, b"password", &InitOptions::default(), &CacheOptions::default())?;
//! # Ok::<(), cairn::Error>(())
//! ```

#[cfg(feature = "engine")]
pub mod archiver;
#[cfg(feature = "engine")]
pub mod backend;
pub mod blob;
#[cfg(feature = "engine")]
pub mod checker;
pub mod chunker;
pub mod compress;
pub mod crypto;
#[cfg(feature = "engine")]
pub mod diff;
#[cfg(feature = "engine")]
pub mod error;
pub mod forget;
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod index;
#[cfg(feature = "engine")]
pub mod location;
pub mod pack;
pub mod progress;
#[cfg(feature = "engine")]
pub mod prune;
#[cfg(feature = "engine")]
pub mod repository;
/// Without the `engine` feature, only the repository's object encodings
/// (config, key files, prune markers), so that they can be fuzzed.
#[cfg(not(feature = "engine"))]
pub mod repository {
    pub mod config;
    pub mod marker;
}
#[cfg(feature = "engine")]
pub mod restorer;
pub mod retention;
pub mod snapshot;
#[cfg(feature = "engine")]
pub mod sync;
pub mod tree;
#[cfg(feature = "engine")]
pub mod walker;

#[cfg(feature = "engine")]
pub use error::{Error, Result};
