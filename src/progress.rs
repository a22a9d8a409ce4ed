//! How long-running operations report what they do. The library never
//! prints: the CLI implements `Progress` with a progress bar on a terminal,
//! or with silence.

use std::path::Path;

pub trait Progress: Sync {
    /// A file was stored (`read` = its contents were read, not reused).
    fn file_done(&self, _path: &Path, _size_bytes: u64, _read: bool) {}
    /// Bytes of file contents read or written.
    fn bytes_read(&self, _bytes: u64) {}
    /// An entry could not be processed; the operation goes on.
    fn error(&self, _path: &Path, _message: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
