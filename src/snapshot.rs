//! Snapshot manifests: what was backed up, when, from where, and how it went.
//! Value type and CBOR encoding only; no I/O.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::id::BlobId;

/// Counters of one snapshot run, as printed in the statistics block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub files_deleted: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unchanged: u64,
    pub dirs_deleted: u64,
    /// Entries of every kind in the snapshot.
    pub source_entries: u64,
    /// Bytes of all regular files in the snapshot.
    pub source_bytes: u64,
    /// Bytes of files that were new or changed.
    pub new_bytes: u64,
    pub changed_bytes: u64,
    pub deleted_bytes: u64,
    /// Bytes of files read (new and changed files, and files without parent).
    pub read_bytes: u64,
    /// Blobs stored in this run, and their bytes before and after compression
    /// and encryption.
    pub blobs_added: u64,
    pub added_plain_bytes: u64,
    pub added_stored_bytes: u64,
    /// Bytes written to the repository: packs, index files and the snapshot.
    pub uploaded_bytes: u64,
    pub errors: u64,
    pub start_time: String,
    pub end_time: String,
    pub duration_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: DateTime<FixedOffset>,
    pub tree: BlobId,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    pub program_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot does not decode: {0}")]
pub struct SnapshotDecodeError(pub String);

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if ciborium::into_writer(self, &mut out).is_err() {
            unreachable!("CBOR encoding into a Vec cannot fail");
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotDecodeError> {
        ciborium::from_reader(bytes).map_err(|e| SnapshotDecodeError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let snap = Snapshot {
            time: DateTime::parse_from_rfc3339("2026-11-26T06:00:00.123456789+01:00").unwrap(),
            tree: BlobId([4; 32]),
            paths: vec!["/etc".into()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 1,
            gid: 2,
            tags: vec!["daily".into()],
            parent: None,
            excludes: vec![],
            program_version: "cairn 0.1.0".into(),
            summary: Some(Summary::default()),
        };
        assert_eq!(Snapshot::decode(&snap.encode()).unwrap(), snap);
        assert!(Snapshot::decode(b"").is_err());
    }
}
