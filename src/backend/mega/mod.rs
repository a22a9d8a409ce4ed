//! `mega:` — a repository kept in a Mega cloud drive, spoken to natively.
//!
//! `MegaBackend` implements the blocking `Backend` trait on top of our own
//! Mega client (a tokio runtime runs inside it). Repository object names map
//! onto folders below a base path: `data/3f/3f2a…` under `/Backups/myhost`
//! is the file `3f2a…` in the folder `/Backups/myhost/data/3f`; missing
//! folders are created on demand. Writing an existing name uploads a new
//! node first and deletes the old one after, so a reader always finds a
//! complete object.
//!
//! Module map: `crypto` (pure Mega cryptography), `error` (error type and
//! wording), `api` (command channel, retries, hashcash), `session` (login
//! and the session cache), `nodes` (the node tree), `transfer` (upload and
//! download of contents), `test_server` (an in-process Mega-protocol server
//! for tests). This file owns the object-name mapping, the session
//! lifecycle (resume from the cache, log in again once on -15) and the
//! order of operations; the wire details live in the modules above.
//!
//! The node tree is fetched once per backend and then kept up to date with
//! our own changes. Changes other clients make meanwhile are seen after
//! `refresh()`, or when a lookup misses in a tree older than 30 seconds.

pub mod api;
pub mod crypto;
pub mod error;
pub mod nodes;
pub mod session;
#[doc(hidden)]
pub mod test_server;
pub mod transfer;

use crate::backend::{Backend, Error, ErrorKind, ObjectInfo, Result};
use api::{ApiClient, RetryPolicy};
use error::{code, MegaError, MegaResult};
use nodes::{Node, NodeTree};
use serde_json::{json, Value};
use session::{Credentials, Session, SessionCache};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use transfer::{TransferStats, Transfers, UploadSource};

/// A lookup that misses in a tree older than this fetches the tree again.
const TREE_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Where and as whom to connect.
#[derive(Clone)]
pub struct MegaConfig {
    /// The API origin; the client appends `cs?id=…`. The CLI overrides the
    /// default from `CAIRN_MEGA_API_URL`.
    pub api_url: String,
    pub user: String,
    pub password: String,
    pub mfa_code: Option<String>,
    /// Where to keep the encrypted session between runs; `None` logs in every time.
    pub session_cache_dir: Option<PathBuf>,
    /// The repository's folder, e.g. `/Backups/myhost`.
    pub base_path: String,
    pub retry: RetryPolicy,
    /// Upload/download requests in flight per object.
    pub transfers_in_flight: usize,
}

impl MegaConfig {
    pub const DEFAULT_API_URL: &'static str = "https://g.api.mega.co.nz/";

    pub fn new(user: &str, password: &str, base_path: &str) -> Self {
        MegaConfig {
            api_url: Self::DEFAULT_API_URL.to_string(),
            user: user.to_string(),
            password: password.to_string(),
            mfa_code: None,
            session_cache_dir: None,
            base_path: base_path.to_string(),
            retry: RetryPolicy::default(),
            transfers_in_flight: 4,
        }
    }
}

impl std::fmt::Debug for MegaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegaConfig")
            .field("api_url", &self.api_url)
            .field("user", &self.user)
            .field("password", &"…")
            .field("session_cache_dir", &self.session_cache_dir)
            .field("base_path", &self.base_path)
            .finish()
    }
}

/// Credentials read from a MegaFuse-style configuration file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MegaFuseConfig {
    pub username: Option<String>,
    pub password: Option<String>,
    pub cache_path: Option<String>,
}

impl std::fmt::Debug for MegaFuseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegaFuseConfig")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("cache_path", &self.cache_path)
            .finish()
    }
}

/// Reads `USERNAME = …` / `PASSWORD = …` lines (MegaFuse's format; keys are
/// case-insensitive, `#` starts a comment line, other keys are ignored).
/// The value is everything after the first `=`, trimmed.
pub fn parse_megafuse_config(text: &str) -> std::result::Result<MegaFuseConfig, MegaError> {
    let mut cfg = MegaFuseConfig::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_string();
        match key.trim().to_ascii_uppercase().as_str() {
            "USERNAME" => cfg.username = Some(value),
            "PASSWORD" => cfg.password = Some(value),
            "CACHEPATH" => cfg.cache_path = Some(value),
            _ => {}
        }
    }
    if cfg.username.as_deref().unwrap_or("").is_empty() {
        return Err(MegaError::Config(
            "configuration file has no USERNAME line".into(),
        ));
    }
    if cfg.password.is_none() {
        return Err(MegaError::Config(
            "configuration file has no PASSWORD line".into(),
        ));
    }
    Ok(cfg)
}

/// Counters for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MegaStats {
    pub api_requests: u64,
    pub api_retries: u64,
    pub upload_requests: u64,
    pub download_requests: u64,
    pub transfer_retries: u64,
    /// Encrypted bytes stored (what the account's quota is charged).
    pub uploaded_bytes: u64,
    pub downloaded_bytes: u64,
    pub logins: u64,
    pub hashcash_solved: u64,
}

/// A repository location on Mega.
pub struct MegaBackend {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    inner: Inner,
}

/// Download URLs remembered at most (a few per reader thread would do).
const MAX_DOWNLOAD_URLS: usize = 256;

struct Inner {
    creds: Credentials,
    base: Vec<String>,
    base_path: String,
    api: ApiClient,
    cache: Option<SessionCache>,
    session: RwLock<Option<Session>>,
    login_lock: tokio::sync::Mutex<()>,
    mkdir_lock: tokio::sync::Mutex<()>,
    fetch_lock: tokio::sync::Mutex<()>,
    tree: Mutex<Option<NodeTree>>,
    tree_loaded: Mutex<Option<std::time::Instant>>,
    /// Download URLs by node handle: readers take a pack a window at a
    /// time, and one `g` command serves them all. A URL that no longer
    /// works answers 403 or 404, and a new one is asked for.
    download_urls: Mutex<HashMap<String, String>>,
    in_flight: usize,
    tstats: TransferStats,
    logins: AtomicU64,
}

fn path_components(path: &str) -> MegaResult<Vec<String>> {
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(MegaError::Config(format!("path {path:?} contains {c:?}")));
        }
        out.push(c.to_string());
    }
    Ok(out)
}

/// Splits an object name into folder components and the file name.
fn split_name(name: &str) -> Result<(Vec<&str>, &str)> {
    let parts: Vec<&str> = name.split('/').collect();
    let bad = name.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..");
    match parts.split_last() {
        Some((file, dirs)) if !bad => Ok((dirs.to_vec(), file)),
        _ => Err(Error::new(
            ErrorKind::Other,
            name,
            "mega: not a valid object name",
        )),
    }
}

impl MegaBackend {
    /// Prepares a backend; nothing is sent until the first operation.
    pub fn open(config: MegaConfig) -> Result<Self> {
        let location = format!("mega:{}", config.base_path);
        let fail = |e: MegaError| e.into_backend(location.clone());
        let base = path_components(&config.base_path).map_err(fail)?;
        let api = ApiClient::new(&config.api_url, config.retry.clone()).map_err(fail)?;
        let creds = Credentials {
            user: config.user.clone(),
            password: config.password.clone(),
            mfa_code: config.mfa_code.clone(),
        };
        if creds.user.trim().is_empty() {
            return Err(fail(MegaError::Config(
                "no Mega user (e-mail) given".into(),
            )));
        }
        let cache = config
            .session_cache_dir
            .as_ref()
            .map(|dir| SessionCache::new(dir, api.api_url(), &creds));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-mega")
            .enable_all()
            .build()
            .map_err(|e| Error::from_io(location.clone(), e))?;
        Ok(MegaBackend {
            rt: Some(rt),
            inner: Inner {
                creds,
                base_path: format!("/{}", base.join("/")),
                base,
                api,
                cache,
                session: RwLock::new(None),
                login_lock: tokio::sync::Mutex::new(()),
                mkdir_lock: tokio::sync::Mutex::new(()),
                fetch_lock: tokio::sync::Mutex::new(()),
                tree: Mutex::new(None),
                tree_loaded: Mutex::new(None),
                download_urls: Mutex::new(HashMap::new()),
                in_flight: config.transfers_in_flight.max(1),
                tstats: TransferStats::default(),
                logins: AtomicU64::new(0),
            },
        })
    }

    /// Logs in (or resumes the cached session) and loads the node tree now,
    /// so that credential problems surface before any work starts.
    pub fn connect(&self) -> Result<()> {
        let loc = self.location();
        self.run(self.inner.tree_ready())
            .map_err(|e| e.into_backend(loc))
    }

    /// Storage used and available, in bytes.
    pub fn quota(&self) -> Result<(u64, u64)> {
        let loc = self.location();
        self.run(self.inner.quota())
            .map_err(|e| e.into_backend(loc))
    }

    /// Moves/renames an object inside the repository.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.run(self.inner.rename(from, to))
            .map_err(|e| e.into_backend(from))
    }

    /// Forgets the node tree, so the next operation fetches it again and
    /// sees what other clients changed meanwhile.
    pub fn refresh(&self) {
        self.inner.drop_tree();
    }

    pub fn stats(&self) -> MegaStats {
        let a = &self.inner.api.stats;
        let t = &self.inner.tstats;
        MegaStats {
            api_requests: a.requests.load(Ordering::Relaxed),
            api_retries: a.retries.load(Ordering::Relaxed),
            upload_requests: t.upload_requests.load(Ordering::Relaxed),
            download_requests: t.download_requests.load(Ordering::Relaxed),
            transfer_retries: t.retries.load(Ordering::Relaxed),
            uploaded_bytes: t.uploaded_bytes.load(Ordering::Relaxed),
            downloaded_bytes: t.downloaded_bytes.load(Ordering::Relaxed),
            logins: self.inner.logins.load(Ordering::Relaxed),
            hashcash_solved: a.hashcash_solved.load(Ordering::Relaxed),
        }
    }
}

impl MegaBackend {
    /// Runs `f` on our runtime. Safe from any thread, even one inside
    /// another tokio runtime (then a scoped helper thread does the waiting).
    fn run<T: Send>(
        &self,
        f: impl std::future::Future<Output = MegaResult<T>> + Send,
    ) -> MegaResult<T> {
        let Some(rt) = self.rt.as_ref() else {
            return Err(MegaError::Config("backend is shutting down".into()));
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return rt.block_on(f);
        }
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for MegaBackend {
    fn drop(&mut self) {
        // Never blocks, so dropping inside an async context is fine too.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Backend for MegaBackend {
    fn location(&self) -> String {
        format!("mega:{}", self.inner.base_path)
    }

    fn create(&self) -> Result<()> {
        let loc = self.location();
        self.run(async {
            let base: Vec<&str> = self.inner.base.iter().map(String::as_str).collect();
            self.inner.ensure_folders(&base).await.map(drop)
        })
        .map_err(|e| e.into_backend(loc))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.run(self.inner.list(prefix))
            .map_err(|e| e.into_backend(prefix))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.run(self.inner.read(name, None))
            .map_err(|e| e.into_backend(name))
    }

    fn store_file(&self, name: &str, path: &std::path::Path) -> Result<()> {
        split_name(name)?;
        self.run(self.inner.store_file(name, path))
            .map_err(|e| e.into_backend(name))
    }

    fn read_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.run(self.inner.read(name, Some((offset, length))))
            .map_err(|e| e.into_backend(name))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        split_name(name)?;
        self.run(self.inner.write(name, bytes))
            .map_err(|e| e.into_backend(name))
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.run(self.inner.delete(name))
            .map_err(|e| e.into_backend(name))
    }

    fn stat(&self, name: &str) -> Result<u64> {
        self.run(self.inner.find(name))
            .map(|n| n.size_bytes)
            .map_err(|e| e.into_backend(name))
    }
}

impl Inner {
    fn current_session(&self) -> Option<Session> {
        self.session.read().ok().and_then(|g| g.clone())
    }

    fn set_session(&self, s: Option<Session>) {
        self.api.set_sid(s.as_ref().map(|s| s.sid.clone()));
        if let Ok(mut g) = self.session.write() {
            *g = s;
        }
    }

    /// The session, resumed from the cache or made by logging in.
    async fn session(&self) -> MegaResult<Session> {
        if let Some(s) = self.current_session() {
            return Ok(s);
        }
        let _guard = self.login_lock.lock().await;
        if let Some(s) = self.current_session() {
            return Ok(s);
        }
        if let Some(s) = self.cache.as_ref().and_then(SessionCache::load) {
            self.set_session(Some(s.clone()));
            return Ok(s);
        }
        self.login().await
    }

    async fn login(&self) -> MegaResult<Session> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let s = session::login(&self.api, &self.creds).await?;
        self.set_session(Some(s.clone()));
        if let Some(c) = &self.cache {
            // A cache we cannot write costs a login next time, nothing more.
            let _ = c.store(&s);
        }
        Ok(s)
    }

    /// Logs in again after the server refused `stale` (-15).
    async fn relogin(&self, stale: &Session) -> MegaResult<Session> {
        let _guard = self.login_lock.lock().await;
        if let Some(s) = self.current_session() {
            if s.sid != stale.sid {
                return Ok(s);
            }
        }
        if let Some(c) = &self.cache {
            c.clear();
        }
        self.set_session(None);
        self.login().await
    }

    /// One command with a valid session; logs in again once on -15.
    async fn call(&self, cmd: Value) -> MegaResult<Value> {
        let s = self.session().await?;
        match self.api.call(cmd.clone()).await {
            Err(MegaError::Api {
                code: code::ESID, ..
            }) => {
                self.relogin(&s).await?;
                self.api.call(cmd).await
            }
            r => r,
        }
    }

    fn tree_loaded(&self) -> bool {
        self.tree.lock().map(|t| t.is_some()).unwrap_or(false)
    }

    async fn tree_ready(&self) -> MegaResult<()> {
        if self.tree_loaded() {
            return Ok(());
        }
        // One fetch at a time: threads arriving meanwhile use its result.
        let _guard = self.fetch_lock.lock().await;
        if self.tree_loaded() {
            return Ok(());
        }
        let reply = self.call(json!({"a": "f", "c": 1, "r": 1})).await?;
        let s = self.session().await?;
        let tree = NodeTree::from_fetch(&reply, &s.master_key, &s.user_handle)?;
        if let Ok(mut g) = self.tree.lock() {
            if g.is_none() {
                *g = Some(tree);
                if let Ok(mut at) = self.tree_loaded.lock() {
                    *at = Some(std::time::Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on the loaded tree.
    async fn with_tree<T>(&self, f: impl FnOnce(&mut NodeTree) -> T) -> MegaResult<T> {
        // Another thread may drop a stale tree between loading and locking.
        for _ in 0..3 {
            self.tree_ready().await?;
            let mut g = self
                .tree
                .lock()
                .map_err(|_| MegaError::Protocol("node tree lock poisoned".into()))?;
            if let Some(tree) = g.as_mut() {
                return Ok(f(tree));
            }
        }
        Err(MegaError::Protocol("node tree keeps being reloaded".into()))
    }

    fn full_path<'a>(&'a self, dirs: &[&'a str]) -> Vec<&'a str> {
        self.base
            .iter()
            .map(String::as_str)
            .chain(dirs.iter().copied())
            .collect()
    }

    /// `mkdir -p` from the root; returns the handle of the last folder.
    async fn ensure_folders(&self, path: &[&str]) -> MegaResult<String> {
        let found = self
            .with_tree(|t| {
                let mut cur = t.root()?.to_string();
                for c in path {
                    cur = t.child(&cur, c, true)?.handle.clone();
                }
                Some(cur)
            })
            .await?;
        if let Some(h) = found {
            return Ok(h);
        }
        let _guard = self.mkdir_lock.lock().await;
        let s = self.session().await?;
        let mut cur = self
            .with_tree(|t| t.root().map(str::to_string))
            .await?
            .ok_or_else(|| MegaError::Protocol("account has no root folder".into()))?;
        for c in path {
            let existing = self
                .with_tree(|t| t.child(&cur, c, true).map(|n| n.handle.clone()))
                .await?;
            cur = match existing {
                Some(h) => h,
                None => {
                    let (cmd, _) = nodes::mkdir_command(&cur, c, &s.master_key)?;
                    let reply = self.call(cmd).await?;
                    let created = nodes::parse_put_reply(&reply, &s.master_key, &s.user_handle)?;
                    let h = created[0].handle.clone();
                    self.with_tree(|t| created.into_iter().for_each(|n| t.insert(n)))
                        .await?;
                    h
                }
            };
        }
        Ok(cur)
    }

    /// The chosen file node for an object name.
    async fn find(&self, name: &str) -> MegaResult<Node> {
        let (dirs, file) = split_name(name).map_err(|_| MegaError::NotFound(name.into()))?;
        let path = self.full_path(&dirs);
        let lookup = |t: &mut NodeTree| {
            let root = t.root()?.to_string();
            let folders = t.folders_at(&root, path.iter().copied());
            t.file_in(&folders, file).cloned()
        };
        if let Some(n) = self.with_tree(lookup).await? {
            return Ok(n);
        }
        // Another client may have added it since we loaded the tree.
        if self.tree_age().is_some_and(|age| age > TREE_STALE_AFTER) {
            self.drop_tree();
            if let Some(n) = self.with_tree(lookup).await? {
                return Ok(n);
            }
        }
        Err(MegaError::NotFound(name.into()))
    }

    fn tree_age(&self) -> Option<std::time::Duration> {
        self.tree_loaded.lock().ok()?.map(|t| t.elapsed())
    }

    fn drop_tree(&self) {
        if let Ok(mut g) = self.tree.lock() {
            *g = None;
        }
    }

    async fn list(&self, prefix: &str) -> MegaResult<Vec<ObjectInfo>> {
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let dirs: Vec<&str> = dir_part.split('/').filter(|c| !c.is_empty()).collect();
        let path = self.full_path(&dirs);
        let rel = if dirs.is_empty() {
            String::new()
        } else {
            format!("{}/", dirs.join("/"))
        };
        self.with_tree(|t| {
            let Some(root) = t.root().map(str::to_string) else {
                return Vec::new();
            };
            let folders = t.folders_at(&root, path.iter().copied());
            t.files_below(&folders)
                .into_iter()
                .map(|(p, n)| ObjectInfo {
                    name: format!("{rel}{p}"),
                    size_bytes: n.size_bytes,
                })
                .filter(|o| o.name.starts_with(prefix))
                .collect()
        })
        .await
    }

    fn transfers(&self) -> Transfers<'_> {
        Transfers {
            http: self.api.http(),
            retry: &self.api.retry,
            in_flight: self.in_flight,
            stats: &self.tstats,
        }
    }

    /// A download URL for a file node.
    async fn download_url(&self, node: &Node) -> MegaResult<String> {
        let reply = self
            .call(json!({"a": "g", "g": 1, "n": node.handle, "ssl": 2}))
            .await
            .map_err(|e| match e {
                MegaError::Api {
                    code: code::ENOENT, ..
                } => MegaError::NotFound(node.name.clone()),
                e => e,
            })?;
        if let Some(c) = reply.get("e").and_then(Value::as_i64).filter(|&c| c < 0) {
            // On `g`, -17 with "tl" is the transfer quota (SDK CommandGetFile).
            if c == code::EOVERQUOTA {
                return Err(MegaError::TransferQuota {
                    seconds_left: reply.get("tl").and_then(Value::as_u64),
                });
            }
            return Err(MegaError::api(c, "download"));
        }
        if let Some(s) = reply.get("s").and_then(Value::as_u64) {
            if s != node.size_bytes {
                return Err(MegaError::Protocol(format!(
                    "server says {s} bytes, node says {}",
                    node.size_bytes
                )));
            }
        }
        reply
            .get("g")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MegaError::Protocol("download reply lacks a URL".into()))
    }

    async fn read(&self, name: &str, range: Option<(u64, u64)>) -> MegaResult<Vec<u8>> {
        let node = self.find(name).await?;
        let key = crypto::FileKey::from_node_key(&node.key)?;
        if let Some((offset, length)) = range {
            if offset
                .checked_add(length)
                .is_none_or(|end| end > node.size_bytes)
            {
                return Err(MegaError::Corrupt(format!(
                    "range {offset}+{length} is beyond the object's {} bytes",
                    node.size_bytes
                )));
            }
            if length == 0 {
                return Ok(Vec::new());
            }
        }
        if node.size_bytes == 0 {
            return self.transfers().download("", 0, &key).await;
        }
        let mut fresh_url = false;
        loop {
            let url = match self.known_download_url(&node).filter(|_| !fresh_url) {
                Some(url) => url,
                None => {
                    let url = self.download_url(&node).await?;
                    self.remember_download_url(&node, &url);
                    url
                }
            };
            let r = match range {
                Some((o, l)) => self.transfers().download_range(&url, &key, o, l).await,
                None => self.transfers().download(&url, node.size_bytes, &key).await,
            };
            match r {
                Err(e) if transfer::needs_new_url(&e) && !fresh_url => fresh_url = true,
                r => return r,
            }
        }
    }

    fn known_download_url(&self, node: &Node) -> Option<String> {
        let urls = self.download_urls.lock().ok()?;
        urls.get(&node.handle).cloned()
    }

    fn remember_download_url(&self, node: &Node, url: &str) {
        if let Ok(mut urls) = self.download_urls.lock() {
            // A reader moves from pack to pack: the URLs of packs it left
            // are dropped wholesale now and then rather than tracked.
            if urls.len() >= MAX_DOWNLOAD_URLS {
                urls.clear();
            }
            urls.insert(node.handle.clone(), url.to_string());
        }
    }

    async fn write(&self, name: &str, bytes: &[u8]) -> MegaResult<()> {
        self.upload(name, &UploadSource::Bytes(bytes)).await
    }

    /// Stores the local file `path` as `name`, reading it a request's worth
    /// at a time, and removes the file once the object is in place.
    async fn store_file(&self, name: &str, path: &std::path::Path) -> MegaResult<()> {
        let io = |e: std::io::Error| MegaError::Io(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let source = UploadSource::File {
            file: std::sync::Arc::new(file),
            len,
        };
        self.upload(name, &source).await?;
        std::fs::remove_file(path).map_err(io)
    }

    async fn upload(&self, name: &str, source: &UploadSource<'_>) -> MegaResult<()> {
        let (dirs, file) = split_name(name).map_err(|e| MegaError::Config(e.message))?;
        let path = self.full_path(&dirs);
        let parent = self.ensure_folders(&path).await?;
        let old: Vec<String> = self
            .with_tree(|t| {
                let root = t.root().unwrap_or_default().to_string();
                let folders = t.folders_at(&root, path.iter().copied());
                folders
                    .iter()
                    .flat_map(|f| t.named(f, file, false))
                    .map(|n| n.handle.clone())
                    .collect()
            })
            .await?;
        let s = self.session().await?;
        let mut attempts = 0;
        let uploaded = loop {
            let reply = self
                .call(json!({"a": "u", "s": source.size_bytes(), "ssl": 2}))
                .await?;
            let url = reply
                .get("p")
                .and_then(Value::as_str)
                .ok_or_else(|| MegaError::Protocol("upload reply lacks a URL".into()))?
                .to_string();
            match self.transfers().upload(&url, source).await {
                Err(e) if transfer::needs_new_url(&e) && attempts == 0 => {
                    attempts += 1;
                    tokio::time::sleep(transfer::restart_pause()).await;
                }
                r => break r?,
            }
        };
        let cmd = transfer::put_file_command(&parent, file, &uploaded, &s.master_key)?;
        let reply = self.call(cmd).await?;
        let created = nodes::parse_put_reply(&reply, &s.master_key, &s.user_handle)?;
        self.with_tree(|t| created.into_iter().for_each(|n| t.insert(n)))
            .await?;
        // The new node is in place; now the replaced ones can go.
        for h in old {
            self.delete_handle(&h).await?;
        }
        Ok(())
    }

    async fn delete_handle(&self, handle: &str) -> MegaResult<()> {
        match self.call(json!({"a": "d", "n": handle})).await {
            Ok(_)
            | Err(MegaError::Api {
                code: code::ENOENT, ..
            }) => {}
            Err(e) => return Err(e),
        }
        self.with_tree(|t| t.remove(handle)).await
    }

    async fn delete(&self, name: &str) -> MegaResult<()> {
        let (dirs, file) = split_name(name).map_err(|_| MegaError::NotFound(name.into()))?;
        let path = self.full_path(&dirs);
        let handles: Vec<String> = self
            .with_tree(|t| {
                let root = t.root().unwrap_or_default().to_string();
                let folders = t.folders_at(&root, path.iter().copied());
                folders
                    .iter()
                    .flat_map(|f| t.named(f, file, false))
                    .map(|n| n.handle.clone())
                    .collect()
            })
            .await?;
        if handles.is_empty() {
            return Err(MegaError::NotFound(name.into()));
        }
        for h in handles {
            self.delete_handle(&h).await?;
        }
        Ok(())
    }

    async fn quota(&self) -> MegaResult<(u64, u64)> {
        let reply = self.call(json!({"a": "uq", "strg": 1})).await?;
        let used = reply.get("cstrg").and_then(Value::as_u64).unwrap_or(0);
        let total = reply.get("mstrg").and_then(Value::as_u64).unwrap_or(0);
        Ok((used, total))
    }

    async fn rename(&self, from: &str, to: &str) -> MegaResult<()> {
        let node = self.find(from).await?;
        let (dirs, file) = split_name(to).map_err(|e| MegaError::Config(e.message))?;
        let path = self.full_path(&dirs);
        let parent = self.ensure_folders(&path).await?;
        if node.parent.as_deref() != Some(parent.as_str()) {
            self.call(json!({"a": "m", "n": node.handle, "t": parent}))
                .await?;
        }
        if node.name != file {
            // Keep the node's other attributes (another client's fingerprint,
            // say): read them with `g`, change only the name.
            let key = crypto::attr_key(&node.key)?;
            let current = self
                .call(json!({"a": "g", "n": node.handle}))
                .await?
                .get("at")
                .and_then(Value::as_str)
                .and_then(|at| crypto::decrypt_attr(&key, at).ok());
            let mut attrs = match current {
                Some(Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            attrs.insert("n".into(), json!(file));
            let attr = crypto::encrypt_attr(&key, &Value::Object(attrs).to_string());
            self.call(json!({"a": "a", "n": node.handle, "at": attr}))
                .await?;
        }
        let mut moved = node;
        moved.parent = Some(parent);
        moved.name = file.to_string();
        self.with_tree(|t| t.insert(moved)).await
    }
}

#[cfg(test)]
mod tests;
