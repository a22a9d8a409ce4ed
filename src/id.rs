//! Identifier newtypes: a bare `[u8; 32]` never crosses a module boundary.
//!
//! `BlobId` is the keyed BLAKE3 hash of a blob's plaintext; `PackId`,
//! `IndexId`, `SnapshotId` and `KeyId` are the unkeyed BLAKE3 hash of the
//! object's stored bytes, which is also its object name (in lowercase hex).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a 64-digit hexadecimal id")]
pub struct ParseIdError {
    pub input: String,
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Parses exactly 32 bytes; `None` for any other length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(bytes).ok().map($name)
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, for tables and messages.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                let err = || ParseIdError { input: s.to_string() };
                let bytes = hex::decode(s).map_err(|_| err())?;
                Self::from_slice(&bytes).ok_or_else(err)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes = serde_bytes::ByteBuf::deserialize(d)?;
                Self::from_slice(&bytes).ok_or_else(|| {
                    serde::de::Error::invalid_length(bytes.len(), &"32 bytes")
                })
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a blob's plaintext.
    BlobId
);
id_type!(
    /// BLAKE3 of a pack file's bytes; the pack's object name.
    PackId
);
id_type!(
    /// BLAKE3 of an index file's bytes; its object name.
    IndexId
);
id_type!(
    /// BLAKE3 of a snapshot file's bytes; its object name.
    SnapshotId
);
id_type!(
    /// BLAKE3 of a key file's bytes; its object name.
    KeyId
);

/// Unkeyed BLAKE3 of stored bytes: how every object but a blob is named.
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// `content_hash` of bytes that arrive in pieces: feed them with `update`,
/// in order, and `finalize`.
pub fn content_hasher() -> blake3::Hasher {
    blake3::Hasher::new()
}

impl PackId {
    /// `data/<first two hex digits>/<hex>`.
    pub fn object_name(&self) -> String {
        let hex = self.to_hex();
        format!("data/{}/{}", &hex[..2], hex)
    }
}

impl IndexId {
    pub fn object_name(&self) -> String {
        format!("index/{}", self.to_hex())
    }
}

impl SnapshotId {
    pub fn object_name(&self) -> String {
        format!("snapshots/{}", self.to_hex())
    }
}

impl KeyId {
    pub fn object_name(&self) -> String {
        format!("keys/{}", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_and_errors() {
        let id = BlobId([0xab; 32]);
        assert_eq!(id.to_hex().parse::<BlobId>().unwrap(), id);
        assert_eq!(id.short(), "abababab");
        assert!("abc".parse::<BlobId>().is_err());
        assert!("zz".repeat(32).parse::<BlobId>().is_err());
    }

    #[test]
    fn pack_object_name_is_sharded() {
        let id = PackId([0x3f; 32]);
        assert!(id.object_name().starts_with("data/3f/3f3f"));
    }
}
