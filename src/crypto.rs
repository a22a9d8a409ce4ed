//! Keys and authenticated encryption. No I/O.
//!
//! A repository has one random 32-byte master key. Everything else is
//! derived from it with BLAKE3's `derive_key` under fixed context strings
//! (see `format-spec/keys.md`): the AEAD key, the keyed-hash key for blob ids,
//! and the chunker's gear seed. The master key is stored only wrapped: a key
//! file holds it sealed under a key derived from a password with Argon2id.
//!
//! Sealed bytes are `nonce (12) ‖ AES-256-GCM-SIV ciphertext ‖ tag (16)`,
//! with a random nonce: GCM-SIV stays safe if two hosts ever pick the same
//! nonce, so no coordination is needed. Every seal binds associated data
//! that says what the object is, so bytes cannot be moved between roles.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::id::BlobId;

pub const NONCE_BYTES: usize = 12;
pub const TAG_BYTES: usize = 16;
/// Bytes a seal adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_BYTES + TAG_BYTES;

const CONTEXT_AEAD: &str = "cairn 2026-11 repository aead key";
const CONTEXT_BLOB_ID: &str = "cairn 2026-11 blob id key";
const CONTEXT_CHUNKER: &str = "cairn 2026-11 chunker gear seed";

/// Authentication failed: wrong key, or the bytes were changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed object is too short ({0} bytes)")]
    TooShort(usize),
    #[error("authentication failed (wrong key or damaged bytes)")]
    AuthenticationFailed,
    #[error("password hashing failed: {0}")]
    Kdf(String),
}

/// The repository's secret, and the keys derived from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    master: [u8; 32],
    aead: [u8; 32],
    blob_id: [u8; 32],
    chunker_seed: u64,
}

impl MasterKey {
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    pub fn from_bytes(master: [u8; 32]) -> Self {
        let aead = blake3::derive_key(CONTEXT_AEAD, &master);
        let blob_id = blake3::derive_key(CONTEXT_BLOB_ID, &master);
        let seed_bytes = blake3::derive_key(CONTEXT_CHUNKER, &master);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&seed_bytes[..8]);
        MasterKey {
            master,
            aead,
            blob_id,
            chunker_seed: u64::from_le_bytes(seed),
        }
    }

    pub fn master_bytes(&self) -> &[u8; 32] {
        &self.master
    }

    /// The id of a blob: keyed, so ids reveal nothing about contents to
    /// anyone without the key.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.blob_id, plaintext).as_bytes())
    }

    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal_with(&self.aead, plaintext, aad)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.aead, sealed, aad)
    }

    /// Like `open`, decrypting in place: returns the plaintext, which lies
    /// within `sealed`. On failure `sealed` holds garbage.
    pub fn open_in_place<'a>(
        &self,
        sealed: &'a mut [u8],
        aad: &[u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_BYTES);
        open_parts(&self.aead, nonce, rest, aad)
    }

    /// Seals in place: `buffer` holds `NONCE_BYTES` bytes of room, then
    /// the plaintext. The nonce goes into the room, the plaintext is
    /// encrypted where it is and the tag appended: the same bytes as
    /// `seal(&buffer[NONCE_BYTES..], aad)`, with no copy (a blob is
    /// compressed straight into its place in the buffer).
    pub fn seal_in_place(&self, buffer: &mut Vec<u8>, aad: &[u8]) {
        seal_in_place_with(&self.aead, buffer, aad);
    }
}

/// Seals under an arbitrary 32-byte key (the password-derived one for key files).
pub fn seal_with(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.resize(NONCE_BYTES, 0);
    out.extend_from_slice(plaintext);
    seal_in_place_with(key, &mut out, aad);
    out
}

/// The AEAD under `key`. AWS-LC's AES-GCM-SIV (BoringSSL's AES-NI and
/// carry-less-multiply assembly) opened and sealed blobs 2.2–2.4 times as
/// fast as RustCrypto's `aes-gcm-siv` on the benchmark VM, with the same
/// bytes; a test keeps the two in agreement.
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    match UnboundKey::new(&AES_256_GCM_SIV, key) {
        Ok(key) => LessSafeKey::new(key),
        // The only failure is a key of the wrong length, and 32 bytes is
        // AES-256's length.
        Err(_) => unreachable!("AES-256-GCM-SIV takes a 32-byte key"),
    }
}

/// The one sealing routine: `buffer` is `NONCE_BYTES` of room and the
/// plaintext; it becomes `nonce ‖ ciphertext ‖ tag`.
fn seal_in_place_with(key: &[u8; 32], buffer: &mut Vec<u8>, aad: &[u8]) {
    let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
    if buffer.len() < NONCE_BYTES {
        // Callers always leave the room; should one not, an empty plaintext
        // is what it meant.
        buffer.resize(NONCE_BYTES, 0);
    }
    buffer[..NONCE_BYTES].copy_from_slice(&nonce_bytes);
    let tag = cipher(key).seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::from(aad),
        &mut buffer[NONCE_BYTES..],
    );
    // Encryption of an in-memory buffer with a valid key fails only for
    // inputs beyond GCM-SIV's 2^36-byte limit, far above any blob or pack.
    match tag {
        Ok(tag) => buffer.extend_from_slice(tag.as_ref()),
        Err(_) => unreachable!("AES-GCM-SIV encryption of a buffer cannot fail"),
    }
}

pub fn open_with(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::TooShort(sealed.len()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let mut plain = ciphertext.to_vec();
    let opened = open_parts(key, nonce, &mut plain, aad)?.len();
    plain.truncate(opened);
    Ok(plain)
}

/// Opens `ciphertext ‖ tag` in place under `nonce` (12 bytes) and returns
/// the plaintext part.
fn open_parts<'a>(
    key: &[u8; 32],
    nonce: &[u8],
    ciphertext_and_tag: &'a mut [u8],
    aad: &[u8],
) -> Result<&'a mut [u8], CryptoError> {
    let nonce =
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::AuthenticationFailed)?;
    cipher(key)
        .open_in_place(nonce, Aad::from(aad), ciphertext_and_tag)
        .map_err(|_| CryptoError::AuthenticationFailed)
}

/// Argon2id cost parameters, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 32 MiB, t=6, p=4: the same memory-time product as RFC 9106's second
    /// recommended setting (64 MiB, t=3), so a guess costs an attacker as
    /// much memory-time and a user as long, with half the peak memory. That
    /// peak is most of what every command holds; 32 MiB is what restic's
    /// scrypt (N=2^15, r=8) takes too.
    fn default() -> Self {
        KdfParams {
            memory_kib: 32 * 1024,
            iterations: 6,
            parallelism: 4,
        }
    }
}

#[cfg(test)]
impl KdfParams {
    /// The cheapest parameters Argon2 takes, for unit tests that make keys.
    pub(crate) fn cheapest() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Rejects parameters a hostile key file could use to exhaust memory or
    /// time before the password is even checked.
    pub fn validate(&self) -> Result<(), CryptoError> {
        let ok = (8..=4 * 1024 * 1024).contains(&self.memory_kib)
            && (1..=64).contains(&self.iterations)
            && (1..=64).contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism;
        if ok {
            Ok(())
        } else {
            Err(CryptoError::Kdf(format!(
                "unacceptable parameters {self:?}"
            )))
        }
    }
}

/// Derives the key-wrapping key from a password.
pub fn password_key(
    password: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<[u8; 32], CryptoError> {
    params.validate()?;
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut out = [0u8; 32];
    argon
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let key = MasterKey::from_bytes([1; 32]);
        let sealed = key.seal(b"secret", b"role");
        assert_eq!(sealed.len(), 6 + SEAL_OVERHEAD);
        assert_eq!(key.open(&sealed, b"role").unwrap(), b"secret");
        assert_eq!(
            key.open(&sealed, b"other role"),
            Err(CryptoError::AuthenticationFailed)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(key.open(&bad, b"role").is_err(), "bit flip at {i}");
        }
        assert_eq!(
            key.open(&sealed[..10], b"role"),
            Err(CryptoError::TooShort(10))
        );
        let other = MasterKey::from_bytes([2; 32]);
        assert!(other.open(&sealed, b"role").is_err());
    }

    /// Every seal must stay readable by any correct AES-256-GCM-SIV, and
    /// the other way round: checked against RustCrypto's implementation
    /// across the lengths where block handling changes.
    #[test]
    fn seals_agree_with_an_independent_implementation() {
        use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
        let key = [0x5a; 32];
        let other = aes_gcm_siv::Aes256GcmSiv::new(&key.into());
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 127, 128, 129, 4096, 65_539] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let aad = format!("role {len}");
            let ours = seal_with(&key, &plain, aad.as_bytes());
            let (nonce, body) = ours.split_at(NONCE_BYTES);
            let payload = Payload {
                msg: body,
                aad: aad.as_bytes(),
            };
            let theirs_open = other.decrypt(nonce.into(), payload).unwrap();
            assert_eq!(theirs_open, plain, "length {len}");
            let payload = Payload {
                msg: &plain,
                aad: aad.as_bytes(),
            };
            let mut theirs = nonce.to_vec();
            theirs.extend(other.encrypt(nonce.into(), payload).unwrap());
            assert_eq!(theirs, ours, "length {len}");
            assert_eq!(open_with(&key, &theirs, aad.as_bytes()).unwrap(), plain);
        }
    }

    #[test]
    fn derived_keys_differ_and_are_stable() {
        let key = MasterKey::from_bytes([7; 32]);
        assert_ne!(key.aead, key.blob_id);
        assert_eq!(
            key.blob_id(b"x"),
            MasterKey::from_bytes([7; 32]).blob_id(b"x")
        );
    }

    #[test]
    fn hostile_kdf_params_are_refused() {
        let huge = KdfParams {
            memory_kib: u32::MAX,
            iterations: 1,
            parallelism: 1,
        };
        assert!(password_key(b"pw", b"saltsaltsalt", huge).is_err());
        let cheap = KdfParams::cheapest();
        let a = password_key(b"pw", b"saltsaltsaltsalt", cheap).unwrap();
        let b = password_key(b"pw2", b"saltsaltsaltsalt", cheap).unwrap();
        assert_ne!(a, b);
    }
}
