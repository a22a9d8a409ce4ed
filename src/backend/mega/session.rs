//! Logging in to Mega and keeping the session between runs.
//!
//! Owns the login exchange (`us0` for the account version and salt, then
//! `us` with the user hash and an optional 2FA code; v1 and v2 accounts; RSA
//! `csid` or symmetric `tsid` session ids) and the session cache: one file per
//! account and API origin in a directory the caller chooses, mode 0600,
//! encrypted and authenticated with a key derived from the password, so a
//! cron run resumes the session instead of logging in again.

use crate::backend::mega::api::ApiClient;
use crate::backend::mega::crypto::{self, Key, RsaPrivateKey, SID_LEN};
use crate::backend::mega::error::{code, MegaError, MegaResult};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a login needs.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub mfa_code: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"…")
            .finish()
    }
}

/// A logged-in session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id as sent in `&sid=` (base64).
    pub sid: String,
    /// The account's master key.
    pub master_key: Key,
    /// The account's user handle (11 base64 characters).
    pub user_handle: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_handle", &self.user_handle)
            .finish()
    }
}

fn field<'a>(v: &'a Value, name: &str) -> MegaResult<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| MegaError::Protocol(format!("login reply lacks {name:?}")))
}

fn login_error(e: MegaError) -> MegaError {
    match e {
        MegaError::Api {
            code: code::ENOENT, ..
        } => MegaError::WrongCredentials,
        MegaError::Api {
            code: code::EMFAREQUIRED,
            ..
        } => MegaError::MfaRequired,
        other => other,
    }
}

/// Logs in with e-mail and password (and 2FA code, if given). On success the
/// client's session id is set.
pub async fn login(api: &ApiClient, creds: &Credentials) -> MegaResult<Session> {
    api.set_sid(None);
    let user = creds.user.trim().to_string();
    if user.is_empty() {
        return Err(MegaError::Config("no Mega user (e-mail) given".into()));
    }
    let pre = api
        .call(json!({"a": "us0", "user": user}))
        .await
        .map_err(login_error)?;
    let version = pre.get("v").and_then(Value::as_i64).unwrap_or(0);
    let password = creds.password.clone();
    let (password_key, uh) = match version {
        1 => {
            let email = user.clone();
            blocking(move || {
                let k = crypto::password_key_v1(&password);
                let uh = crypto::user_hash_v1(&email, &k);
                (k, uh)
            })
            .await?
        }
        2 => {
            let salt = crypto::b64_decode(field(&pre, "s")?)?;
            if salt.is_empty() {
                return Err(MegaError::Protocol("v2 account without a salt".into()));
            }
            blocking(move || crypto::derive_v2(&password, &salt)).await?
        }
        v => {
            return Err(MegaError::Protocol(format!(
                "unsupported account version {v}"
            )))
        }
    };
    let mut cmd = json!({"a": "us", "user": user, "uh": uh});
    if let Some(pin) = creds
        .mfa_code
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        cmd["mfa"] = json!(pin);
    }
    let reply = api.call(cmd).await.map_err(login_error)?;
    let session = open_login_reply(&reply, &password_key)?;
    api.set_sid(Some(session.sid.clone()));
    Ok(session)
}

/// Decrypts the `us` reply: master key, then the session id.
pub fn open_login_reply(reply: &Value, password_key: &Key) -> MegaResult<Session> {
    let user_handle = field(reply, "u")?.to_string();
    let mut master: Key = crypto::b64_decode_array(field(reply, "k")?)?;
    crypto::ecb_decrypt(password_key, &mut master)?;
    let sid = if let Some(csid) = reply.get("csid").and_then(Value::as_str) {
        let mut privk = crypto::b64_decode(field(reply, "privk")?)?;
        crypto::ecb_decrypt(&master, &mut privk)
            .map_err(|_| MegaError::Protocol("private key is not whole blocks".into()))?;
        // A wrong password key would have been refused by the server; a key
        // that does not parse here means the reply is damaged.
        let rsa = RsaPrivateKey::parse(&privk).map_err(|e| {
            MegaError::Protocol(format!("cannot read the account's private key: {e}"))
        })?;
        let sid = rsa.decrypt_prefix(&crypto::b64_decode(csid)?, SID_LEN)?;
        // Bytes 16..27 of the session id carry our user handle.
        let handle_part = std::str::from_utf8(&sid[16..27]).unwrap_or("");
        let expect = crypto::b64_decode(&user_handle)?;
        if crypto::b64_decode(handle_part).ok().as_deref() != Some(&expect[..]) {
            return Err(MegaError::Protocol(
                "session id does not belong to this user (wrong password?)".into(),
            ));
        }
        crypto::b64_encode(&sid)
    } else if let Some(tsid) = reply.get("tsid").and_then(Value::as_str) {
        let tsid = crypto::b64_decode(tsid)?;
        if !crypto::check_tsid(&tsid, &master) {
            return Err(MegaError::WrongCredentials);
        }
        crypto::b64_encode(&tsid)
    } else {
        return Err(MegaError::Protocol(
            "login reply has neither csid nor tsid".into(),
        ));
    };
    Ok(Session {
        sid,
        master_key: master,
        user_handle,
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> MegaResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MegaError::Protocol(format!("key derivation worker failed: {e}")))
}

// ---------------------------------------------------------------- cache

const MAGIC: &[u8; 4] = b"CMS1";
const CACHE_ROUNDS: u32 = 20_000;

/// The encrypted session file of one account at one API origin.
pub struct SessionCache {
    path: PathBuf,
    enc_key: Key,
    mac_key: [u8; 64],
}

impl SessionCache {
    /// `dir` is created (mode 0700) on first store. The file key comes from
    /// the password, so the file alone does not open the account.
    pub fn new(dir: &Path, api_url: &str, creds: &Credentials) -> Self {
        let user = creds.user.trim().to_lowercase();
        let id = Sha256::digest(format!("{api_url}\n{user}").as_bytes());
        let name: String = id[..8].iter().map(|b| format!("{b:02x}")).collect();
        let salt = format!("cairn mega session cache\0{api_url}\0{user}");
        let mut dk = [0u8; 80];
        pbkdf2::pbkdf2_hmac::<Sha512>(
            creds.password.as_bytes(),
            salt.as_bytes(),
            CACHE_ROUNDS,
            &mut dk,
        );
        let mut enc_key = [0u8; 16];
        enc_key.copy_from_slice(&dk[..16]);
        let mut mac_key = [0u8; 64];
        mac_key.copy_from_slice(&dk[16..]);
        SessionCache {
            path: dir.join(format!("mega-session-{name}")),
            enc_key,
            mac_key,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as KeyInit>::new((&self.mac_key).into());
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The stored session, if there is one that decrypts and authenticates.
    pub fn load(&self) -> Option<Session> {
        let data = std::fs::read(&self.path).ok()?;
        if data.len() < 4 + 8 + 32 || &data[..4] != MAGIC {
            return None;
        }
        let (body, tag) = data.split_at(data.len() - 32);
        if self.mac(body)[..] != tag[..] {
            return None;
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&body[4..12]);
        let mut plain = body[12..].to_vec();
        crypto::ctr_apply(&self.enc_key, &nonce, 0, &mut plain);
        let v: Value = serde_json::from_slice(&plain).ok()?;
        Some(Session {
            sid: v.get("sid")?.as_str()?.to_string(),
            master_key: crypto::b64_decode_array(v.get("k")?.as_str()?).ok()?,
            user_handle: v.get("u")?.as_str()?.to_string(),
        })
    }

    /// Writes the session atomically, readable only by the owner.
    pub fn store(&self, s: &Session) -> MegaResult<()> {
        let plain = json!({
            "sid": s.sid,
            "k": crypto::b64_encode(&s.master_key),
            "u": s.user_handle,
        })
        .to_string();
        let nonce: [u8; 8] = rand::random();
        let mut ct = plain.into_bytes();
        crypto::ctr_apply(&self.enc_key, &nonce, 0, &mut ct);
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ct);
        let tag = self.mac(&data);
        data.extend_from_slice(&tag);
        let io = |e: std::io::Error| {
            MegaError::Io(format!("session cache {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir).map_err(io)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let mut f = private_file(&tmp).map_err(io)?;
        f.write_all(&data).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    /// Forgets the stored session (after the server refused it).
    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(pw: &str) -> Credentials {
        Credentials {
            user: "Ann@Example.com".into(),
            password: pw.into(),
            mfa_code: None,
        }
    }

    #[test]
    fn cache_roundtrip_mode_and_wrong_password() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("cache");
        let c = SessionCache::new(&sub, "http://x/", &creds("pw"));
        assert!(c.load().is_none());
        let s = Session {
            sid: "abc".into(),
            master_key: [3; 16],
            user_handle: "AAAAAAAAAAA".into(),
        };
        c.store(&s).unwrap();
        assert_eq!(c.load(), Some(s.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(c.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let raw = std::fs::read(c.path()).unwrap();
        assert!(
            !raw.windows(3).any(|w| w == b"abc"),
            "session id stored in clear"
        );
        // another password cannot open it
        let other = SessionCache::new(&sub, "http://x/", &creds("other"));
        assert_eq!(other.path(), c.path());
        assert!(other.load().is_none());
        // a damaged file is ignored
        let mut bad = raw.clone();
        let n = bad.len();
        bad[n / 2] ^= 1;
        std::fs::write(c.path(), bad).unwrap();
        assert!(c.load().is_none());
        c.clear();
        assert!(!c.path().exists());
    }

    #[test]
    fn malformed_login_replies_are_errors() {
        let k = [0u8; 16];
        for reply in [
            json!({}),
            json!({"u": "x"}),
            json!({"u": "AAAAAAAAAAA", "k": "AAAA"}),
            json!({"u": "AAAAAAAAAAA", "k": crypto::b64_encode(&[0; 16])}),
            json!({"u": "AAAAAAAAAAA", "k": crypto::b64_encode(&[0; 16]), "csid": "AAAA", "privk": "AAAA"}),
            json!({"u": "AAAAAAAAAAA", "k": crypto::b64_encode(&[0; 16]), "tsid": "AAAA"}),
        ] {
            assert!(open_login_reply(&reply, &k).is_err(), "{reply}");
        }
    }
}
