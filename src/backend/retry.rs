//! Retries transient backend failures with exponential backoff and jitter.
//! Permanent errors (not found, permission, quota, corruption) pass through
//! at once. Objects are immutable and writes atomic, so repeating any call
//! is safe.

use std::time::Duration;

use crate::backend::{Backend, ObjectInfo, Result};

pub struct RetryBackend<B: Backend + ?Sized> {
    attempts: u32,
    base_delay: Duration,
    inner: Box<B>,
}

impl<B: Backend + ?Sized> RetryBackend<B> {
    /// `attempts` calls at most; delays of `base_delay` × 4ⁿ with ±50% jitter.
    pub fn new(inner: Box<B>, attempts: u32, base_delay: Duration) -> Self {
        RetryBackend {
            attempts: attempts.max(1),
            base_delay,
            inner,
        }
    }

    fn retry<T>(&self, mut call: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 1;
        loop {
            match call() {
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    let factor = 4u32.saturating_pow(attempt - 1);
                    let jitter = 0.5 + rand::random::<f64>();
                    std::thread::sleep(self.base_delay.saturating_mul(factor).mul_f64(jitter));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

impl<B: Backend + ?Sized> Backend for RetryBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.retry(|| self.inner.create())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.retry(|| self.inner.list(prefix))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.retry(|| self.inner.read(name))
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.retry(|| self.inner.read_range(name, offset, length))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.retry(|| self.inner.write(name, bytes))
    }

    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.staging_dir()
    }

    fn remove_stale_temporaries(&self, age: std::time::Duration) -> Result<usize> {
        self.inner.remove_stale_temporaries(age)
    }

    fn store_file(&self, name: &str, path: &std::path::Path) -> Result<()> {
        self.retry(|| self.inner.store_file(name, path))
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.retry(|| self.inner.delete(name))
    }

    fn stat(&self, name: &str) -> Result<u64> {
        self.retry(|| self.inner.stat(name))
    }
}
