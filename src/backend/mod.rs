//! Storage backends: places that hold a repository's objects.
//!
//! A backend stores opaque, named, immutable objects ("config", "keys/ab12…",
//! "data/3f/3f2a…", ...). It never sees keys, blobs or packs: everything above
//! this module hands it finished bytes. The contract every backend keeps (and
//! that `conformance` checks):
//!
//! - `write` is atomic: after it returns the object is durable and complete;
//!   after a crash it is either wholly there or absent. Writing a name that
//!   exists replaces it (callers only do this for content-addressed names, where
//!   the bytes are the same).
//! - `read_range` returns exactly the bytes asked for; a short object is an
//!   error, never a short buffer.
//! - `list` returns every object under a prefix exactly once, with its size.
//! - `delete` of a missing object is `NotFound`.
//! - Errors say which object they concern and whether a retry may help.

#[cfg(test)]
pub mod conformance;
#[doc(hidden)]
pub mod faulty;
pub mod local;
pub mod mega;
pub mod retry;

use std::fmt;

/// What went wrong, as far as a caller must tell cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object (or the repository location) does not exist.
    NotFound,
    /// The object already exists and the operation does not replace it.
    AlreadyExists,
    /// The storage refused access.
    PermissionDenied,
    /// The storage is full or over its quota.
    QuotaExceeded,
    /// A temporary failure: a retry may succeed.
    Transient,
    /// Credentials were refused or are missing.
    Auth,
    /// The stored bytes are not what they should be (short read, bad MAC).
    Corrupt,
    /// Anything else.
    Other,
}

/// A backend failure, naming the object it concerns.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    /// The object name (or location) the failure concerns; may be empty.
    pub object: String,
    pub message: String,
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, object: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            kind,
            object: object.into(),
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Maps an I/O error on `object` to a backend error of the matching kind.
    pub fn from_io(object: impl Into<String>, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ErrorKind::QuotaExceeded
            }
            std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::WouldBlock => ErrorKind::Transient,
            std::io::ErrorKind::UnexpectedEof => ErrorKind::Corrupt,
            _ => ErrorKind::Other,
        };
        let message = err.to_string();
        Error::new(kind, object, message).with_source(err)
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.object, self.message)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One object found by `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full object name, e.g. `data/3f/3f2a…`.
    pub name: String,
    pub size_bytes: u64,
}

/// A place that stores named objects. Blocking: implementations that talk to
/// the network run their own async runtime inside. Must be shareable across
/// threads, because packs are uploaded while chunking goes on.
pub trait Backend: Send + Sync {
    /// A human-readable location, for messages ("local:/srv/backup").
    fn location(&self) -> String;

    /// Creates whatever the location needs before the first object is written
    /// (a directory, a bucket prefix, a folder). Idempotent.
    fn create(&self) -> Result<()>;

    /// Every object whose name starts with `prefix` (e.g. "snapshots/").
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// The whole object.
    fn read(&self, name: &str) -> Result<Vec<u8>>;

    /// `length` bytes starting at `offset`. Asking beyond the end is an error.
    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>>;

    /// Stores `bytes` under `name`, atomically and durably.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()>;

    /// A local directory where whole objects can be staged before
    /// `store_file`, chosen so that storing them is cheap (the local
    /// backend: inside the repository, so storing is a rename). `None`:
    /// stage them anywhere on local disk.
    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Stores the contents of the local file `path` as object `name`, as
    /// atomically as `write`. On success the file is gone (moved into place
    /// or deleted); on failure it is left to the caller.
    fn store_file(&self, name: &str, path: &std::path::Path) -> Result<()> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::from_io(path.display().to_string(), e))?;
        self.write(name, &bytes)?;
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    /// Removes what writes killed more than `age` ago left behind, and
    /// returns how many objects went. Backends whose writes leave nothing
    /// behind have nothing to do.
    fn remove_stale_temporaries(&self, _age: std::time::Duration) -> Result<usize> {
        Ok(0)
    }

    /// Removes the object.
    fn delete(&self, name: &str) -> Result<()>;

    /// The object's size; `NotFound` if it does not exist.
    fn stat(&self, name: &str) -> Result<u64>;
}
