//! The repository's config object and its key files. Encoding only; no I/O.
//!
//! `config` is sealed with the repository key (associated data
//! `cairn config`). A key file is CBOR in the clear: its Argon2id
//! parameters and salt must be readable before the password can be tried;
//! the master key inside is sealed under the password-derived key
//! (associated data `cairn key`).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::chunker::ChunkerParams;
use crate::crypto::{self, CryptoError, KdfParams, MasterKey};

pub const FORMAT_VERSION: u32 = 1;
const CONFIG_AAD: &[u8] = b"cairn config";
const KEY_AAD: &[u8] = b"cairn key";
/// Default pack size target: large enough to keep object counts low on
/// remote stores, small enough to hold one pack per uploader in memory.
pub const DEFAULT_PACK_BYTES: u32 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// 32 random bytes in hex; names the local cache folder.
    pub id: String,
    pub chunker: ChunkerParams,
    pub pack_target_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("authentication failed (wrong key or damaged config)")]
    Auth,
    #[error("does not decode: {0}")]
    Decode(String),
    #[error("unsupported format version {0} (this cairn reads version {FORMAT_VERSION})")]
    Version(u32),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn new(chunker: ChunkerParams) -> Config {
        Config {
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 32]>()),
            chunker,
            pack_target_bytes: DEFAULT_PACK_BYTES,
        }
    }

    pub fn seal(&self, key: &MasterKey) -> Vec<u8> {
        let mut plain = Vec::new();
        if ciborium::into_writer(self, &mut plain).is_err() {
            unreachable!("CBOR encoding into a Vec cannot fail");
        }
        key.seal(&plain, CONFIG_AAD)
    }

    pub fn open(key: &MasterKey, bytes: &[u8]) -> Result<Config, ConfigError> {
        let plain = key.open(bytes, CONFIG_AAD).map_err(|_| ConfigError::Auth)?;
        Self::decode_plain(&plain)
    }

    /// Decodes and validates the config's plaintext.
    pub fn decode_plain(plain: &[u8]) -> Result<Config, ConfigError> {
        let config: Config =
            ciborium::from_reader(plain).map_err(|e| ConfigError::Decode(e.to_string()))?;
        if config.version != FORMAT_VERSION {
            return Err(ConfigError::Version(config.version));
        }
        config.chunker.validate().map_err(ConfigError::Invalid)?;
        let id_ok = config.id.len() == 64 && config.id.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_ok {
            return Err(ConfigError::Invalid(format!(
                "bad repository id {:?}",
                config.id
            )));
        }
        if !(64 * 1024..=1024 * 1024 * 1024).contains(&config.pack_target_bytes) {
            return Err(ConfigError::Invalid(format!(
                "pack target {} bytes out of range",
                config.pack_target_bytes
            )));
        }
        Ok(config)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub kdf: String,
    pub params: KdfParams,
    pub salt: ByteBuf,
    pub created: String,
    pub hostname: String,
    pub username: String,
    pub wrapped: ByteBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("does not decode: {0}")]
    Decode(String),
    #[error("unsupported key derivation {0:?}")]
    Kdf(String),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("password does not open this key")]
    WrongPassword,
}

impl KeyFile {
    /// Wraps `master` under `password`.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        hostname: &str,
        username: &str,
    ) -> Result<KeyFile, KeyFileError> {
        let salt: [u8; 16] = rand::random();
        let kek = crypto::password_key(password, &salt, params)?;
        let wrapped = crypto::seal_with(&kek, master.master_bytes(), KEY_AAD);
        Ok(KeyFile {
            version: FORMAT_VERSION,
            kdf: "argon2id".to_string(),
            params,
            salt: ByteBuf::from(salt.to_vec()),
            created: chrono::Local::now().to_rfc3339(),
            hostname: hostname.to_string(),
            username: username.to_string(),
            wrapped: ByteBuf::from(wrapped),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if ciborium::into_writer(self, &mut out).is_err() {
            unreachable!("CBOR encoding into a Vec cannot fail");
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
        let file: KeyFile =
            ciborium::from_reader(bytes).map_err(|e| KeyFileError::Decode(e.to_string()))?;
        if file.kdf != "argon2id" {
            return Err(KeyFileError::Kdf(file.kdf));
        }
        file.params.validate()?;
        Ok(file)
    }

    pub fn unlock(&self, password: &[u8]) -> Result<MasterKey, KeyFileError> {
        let kek = crypto::password_key(password, &self.salt, self.params)?;
        let plain = crypto::open_with(&kek, &self.wrapped, KEY_AAD)
            .map_err(|_| KeyFileError::WrongPassword)?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KeyFileError::Decode(format!("master key is {} bytes", plain.len())))?;
        Ok(MasterKey::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_unlocks_only_with_its_password() {
        let master = MasterKey::from_bytes([8; 32]);
        let file = KeyFile::create(&master, b"right", KdfParams::cheapest(), "h", "u").unwrap();
        let back = KeyFile::decode(&file.encode()).unwrap();
        assert_eq!(back.unlock(b"right").unwrap().master_bytes(), &[8; 32]);
        assert_eq!(
            back.unlock(b"wrong").err(),
            Some(KeyFileError::WrongPassword)
        );
    }

    #[test]
    fn config_roundtrip_and_validation() {
        let key = MasterKey::from_bytes([8; 32]);
        let config = Config::new(ChunkerParams::default());
        assert_eq!(Config::open(&key, &config.seal(&key)).unwrap(), config);
        let mut bad = config.clone();
        bad.chunker.min_bytes = 1;
        assert!(matches!(
            Config::open(&key, &bad.seal(&key)),
            Err(ConfigError::Invalid(_))
        ));
        let mut future = config;
        future.version = 99;
        assert_eq!(
            Config::open(&key, &future.seal(&key)),
            Err(ConfigError::Version(99))
        );
    }
}
