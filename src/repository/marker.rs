//! The two small objects behind lock-free prune (format-spec section 10):
//!
//! - `obsolete/<hex>`: packs a prune took out of the index, with their
//!   entries, and when. Readers still find blobs there; writers never dedup
//!   against them. A later prune deletes them once the grace period is over
//!   and no run that started before the marking is still going.
//! - `runs/<hex>`: a snapshot or restore in progress (host, pid, start,
//!   heartbeat), removed when the run ends. Prune waits for runs that started before a
//!   marker; a run whose heartbeat is older than `STALE_RUN` is dead.
//!
//! Encoding only; no I/O.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::index::IndexedPack;

const OBSOLETE_AAD: &[u8] = b"cairn obsolete";
const RUN_AAD: &[u8] = b"cairn run";

/// A run marker whose heartbeat is older than this belongs to a dead process.
pub const STALE_RUN_HOURS: i64 = 6;
/// How often a live run refreshes its marker.
pub const HEARTBEAT_SECS: u64 = 15 * 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObsoleteMarker {
    pub marked: DateTime<FixedOffset>,
    pub packs: Vec<IndexedPack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMarker {
    pub hostname: String,
    pub pid: u32,
    pub started: DateTime<FixedOffset>,
    pub heartbeat: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    #[error("authentication failed")]
    Auth,
    #[error("does not decode: {0}")]
    Decode(String),
}

fn seal<T: Serialize>(key: &MasterKey, value: &T, aad: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    if ciborium::into_writer(value, &mut plain).is_err() {
        unreachable!("CBOR encoding into a Vec cannot fail");
    }
    key.seal(&plain, aad)
}

fn open<T: for<'de> Deserialize<'de>>(
    key: &MasterKey,
    bytes: &[u8],
    aad: &[u8],
) -> Result<T, MarkerError> {
    let plain = key.open(bytes, aad).map_err(|_| MarkerError::Auth)?;
    decode(&plain)
}

fn decode<T: for<'de> Deserialize<'de>>(plain: &[u8]) -> Result<T, MarkerError> {
    ciborium::from_reader(plain).map_err(|e| MarkerError::Decode(e.to_string()))
}

impl ObsoleteMarker {
    pub fn seal(&self, key: &MasterKey) -> Vec<u8> {
        seal(key, self, OBSOLETE_AAD)
    }

    pub fn open(key: &MasterKey, bytes: &[u8]) -> Result<Self, MarkerError> {
        open(key, bytes, OBSOLETE_AAD)
    }

    /// Decodes the marker's plaintext.
    pub fn decode_plain(plain: &[u8]) -> Result<Self, MarkerError> {
        decode(plain)
    }
}

impl RunMarker {
    pub fn seal(&self, key: &MasterKey) -> Vec<u8> {
        seal(key, self, RUN_AAD)
    }

    pub fn open(key: &MasterKey, bytes: &[u8]) -> Result<Self, MarkerError> {
        open(key, bytes, RUN_AAD)
    }

    /// Decodes the marker's plaintext.
    pub fn decode_plain(plain: &[u8]) -> Result<Self, MarkerError> {
        decode(plain)
    }

    pub fn is_stale(&self, now: DateTime<FixedOffset>) -> bool {
        now - self.heartbeat > chrono::Duration::hours(STALE_RUN_HOURS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_roundtrip() {
        let key = MasterKey::from_bytes([1; 32]);
        let now = chrono::Local::now().fixed_offset();
        let run = RunMarker {
            hostname: "h".into(),
            pid: 7,
            started: now,
            heartbeat: now,
        };
        assert_eq!(RunMarker::open(&key, &run.seal(&key)).unwrap(), run);
        assert!(!run.is_stale(now));
        assert!(run.is_stale(now + chrono::Duration::hours(7)));
        let obs = ObsoleteMarker {
            marked: now,
            packs: vec![],
        };
        assert_eq!(ObsoleteMarker::open(&key, &obs.seal(&key)).unwrap(), obs);
        assert!(
            ObsoleteMarker::open(&key, &run.seal(&key)).is_err(),
            "roles are bound"
        );
    }
}
