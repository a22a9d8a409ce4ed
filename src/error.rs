//! The library's error type: one variant per condition a caller (or the
//! exit-code table in `main.rs`) must tell apart. Messages are lowercase and
//! name the object at fault.

use std::path::PathBuf;

use crate::backend;
use crate::blob::BlobKind;
use crate::id::BlobId;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no repository at {location} (run `cairn init` to create one)")]
    RepositoryNotFound { location: String },
    #[error("a repository already exists at {location}")]
    RepositoryExists { location: String },
    #[error("wrong password: no key in the repository opens with it")]
    WrongPassword,
    #[error("{object}: {reason}")]
    Corrupt { object: String, reason: String },
    #[error("{kind} blob {id} is not in any pack of the index")]
    MissingBlob { kind: BlobKind, id: BlobId },
    #[error("{0}")]
    Backend(#[from] backend::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("{0:?} matches more than one snapshot; give more digits")]
    AmbiguousSnapshot(String),
    #[error("{0:?} is not in the snapshot")]
    PathNotFound(String),
    #[error("restore target {} is not empty (use --overwrite to restore into it)", .0.display())]
    TargetNotEmpty(PathBuf),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("local cache {}: {message}", path.display())]
    Cache { path: PathBuf, message: String },
}

impl Error {
    pub fn corrupt(object: impl Into<String>, reason: impl ToString) -> Self {
        Error::Corrupt {
            object: object.into(),
            reason: reason.to_string(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
