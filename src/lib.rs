//! cairn: content-addressed, deduplicating, encrypted backups.
//!
//! Data flows one way: `walker` → `archiver` → `repository` (blobs through
//! `blob`, `pack`, `index`) → `backend`. `restorer` reads back through
//! `repository`. Leaves (`id`, `crypto`, `compress`, `chunker`, `blob`,
//! `pack`, `tree`, `snapshot`, `index` file format) do no I/O, so every
//! decoder of repository bytes can be fuzzed.
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

pub mod archiver;
pub mod backend;
pub mod blob;
pub mod checker;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod diff;
pub mod error;
pub mod forget;
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod index;
pub mod location;
pub mod pack;
pub mod progress;
pub mod prune;
pub mod repository;
pub mod restorer;
pub mod retention;
pub mod snapshot;
pub mod sync;
pub mod tree;
pub mod walker;

pub use error::{Error, Result};
