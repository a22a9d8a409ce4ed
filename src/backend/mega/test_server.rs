//! An in-process server that speaks the Mega protocol, for tests.
//!
//! `MegaTestServer::start()` binds 127.0.0.1 on a free port and serves, from
//! its own thread and runtime, the command endpoint (`/cs`), the upload
//! endpoint (`/ul/<id>/<offset>`) and the download endpoint
//! (`/dl/<id>/<a>-<b>`). It keeps accounts (v1 or v2, optional 2FA, RSA or
//! `tsid` sessions), sessions, nodes and the stored ciphertext, and checks
//! what a client sends with the real algorithms: login hashes (AES rounds,
//! PBKDF2), the RSA-encrypted session id, upload chunk boundaries, and —
//! because it knows the test account's master key, which a real server
//! never does — the node keys, attributes and meta-MAC of every upload.
//! Anything wrong lands in `violations()`. Retried requests (same session,
//! id and body) get the stored reply instead of being applied again.
//! Faults are injected with `inject(Fault::…)`.
//!
//! Compiled into the library (hidden from docs) so unit tests, integration
//! tests and CLI tests can all start one. Test code: it favours clarity over
//! speed and panics only on programming errors in the tests themselves.

use crate::backend::mega::crypto::{self, FileKey, Key, RsaPrivateKey};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use num_bigint::BigUint;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Which login scheme an account uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountVersion {
    V1,
    V2,
}

/// An account to create on the server.
#[derive(Debug, Clone)]
pub struct TestAccount {
    pub email: String,
    pub password: String,
    pub version: AccountVersion,
    /// The 2FA code the account requires, if any.
    pub mfa_code: Option<String>,
    /// Accounts without an RSA key pair log in with a `tsid`.
    pub rsa: bool,
}

impl TestAccount {
    pub fn v1(email: &str, password: &str) -> Self {
        TestAccount {
            email: email.into(),
            password: password.into(),
            version: AccountVersion::V1,
            mfa_code: None,
            rsa: true,
        }
    }

    pub fn v2(email: &str, password: &str) -> Self {
        TestAccount {
            version: AccountVersion::V2,
            ..TestAccount::v1(email, password)
        }
    }
}

/// A fault to inject. Faults with `times` fire that many times, then stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Command `cmd` (e.g. "u", "p", "f") answers `code` instead of running.
    Command { cmd: String, code: i64, times: u32 },
    /// Whole command requests answer the bare `code` (-3, -4, …).
    Request { code: i64, times: u32 },
    /// Command requests answer HTTP `status` (500, 503, 429) unprocessed.
    Http { status: u16, times: u32 },
    /// Command requests are applied, then answered with HTTP 500: the reply
    /// is lost and the client must not apply the batch twice.
    LoseReply { times: u32 },
    /// Command requests without a valid `X-Hashcash` solution get HTTP 402.
    Hashcash { easiness: u8, times: u32 },
    /// Upload requests get this body (e.g. "-3") and are not stored.
    UploadBody { body: String, times: u32 },
    /// Upload requests get HTTP `status` and are not stored.
    UploadHttp { status: u16, times: u32 },
    /// Download requests get HTTP `status`; a 509 carries `X-MEGA-Time-Left`.
    DownloadHttp {
        status: u16,
        times: u32,
        time_left: Option<u64>,
    },
    /// `g` answers `{"e": -17, "tl": seconds}`: transfer quota used up.
    TransferQuotaOnGet { seconds: u64, times: u32 },
    /// Downloads return bytes with one bit flipped.
    DownloadCorrupt { times: u32 },
    /// Any request (command, upload or download) waits this long before it is
    /// handled: a hung connection. The client gives up and retries; the
    /// stalled request is still applied afterwards.
    Stall { millis: u64, times: u32 },
    /// Every current session becomes invalid (-15) at once.
    ExpireSessions,
    /// Each account may store at most this many bytes (`u` answers -17).
    StorageQuota { bytes: u64 },
}

/// What the server has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests to the command endpoint, including rejected ones.
    pub requests: u64,
    /// Commands run, by name (replays not counted).
    pub commands: BTreeMap<String, u64>,
    pub logins: u64,
    pub upload_requests: u64,
    pub download_requests: u64,
    /// Retried requests answered from the reply store.
    pub replays: u64,
    pub hashcash_challenges: u64,
}

impl ServerStats {
    pub fn command(&self, name: &str) -> u64 {
        self.commands.get(name).copied().unwrap_or(0)
    }
}

struct Account {
    email: String,
    handle: String,
    version: AccountVersion,
    salt: Vec<u8>,
    uh: String,
    password_key: Key,
    master: Key,
    mfa: Option<String>,
    rsa: bool,
    root: String,
}

#[derive(Clone)]
struct SNode {
    h: String,
    p: String,
    t: i64,
    a: String,
    k: String,
    owner: String,
    s: u64,
    ts: i64,
    data: Option<Arc<Vec<u8>>>,
}

impl SNode {
    fn to_json(&self) -> Value {
        let mut v = json!({"h": self.h, "p": self.p, "u": self.owner, "t": self.t, "ts": self.ts});
        if !self.k.is_empty() {
            v["a"] = json!(self.a);
            v["k"] = json!(format!("{}:{}", self.owner, self.k));
        }
        if self.t == 0 {
            v["s"] = json!(self.s);
        }
        v
    }
}

struct Upload {
    owner: String,
    size: u64,
    parts: BTreeMap<u64, Vec<u8>>,
    token: Option<Vec<u8>>,
}

struct State {
    base_url: String,
    rsa: RsaPrivateKey,
    accounts: HashMap<String, Account>,
    sessions: HashMap<String, String>,
    nodes: HashMap<String, SNode>,
    uploads: HashMap<String, Upload>,
    tokens: HashMap<Vec<u8>, (String, Arc<Vec<u8>>)>,
    downloads: HashMap<String, Arc<Vec<u8>>>,
    replies: HashMap<(String, String, Vec<u8>), Vec<u8>>,
    faults: Vec<Fault>,
    challenges: HashMap<String, u8>,
    quota: Option<u64>,
    stats: ServerStats,
    violations: Vec<String>,
    clock: i64,
}

/// A running test server; stops when dropped.
pub struct MegaTestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_handle(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    crypto::b64_encode(&v)
}

impl MegaTestServer {
    /// Starts a server on 127.0.0.1 with a free port.
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            base_url: format!("http://{addr}/"),
            rsa: test_rsa_key(),
            accounts: HashMap::new(),
            sessions: HashMap::new(),
            nodes: HashMap::new(),
            uploads: HashMap::new(),
            tokens: HashMap::new(),
            downloads: HashMap::new(),
            replies: HashMap::new(),
            faults: Vec::new(),
            challenges: HashMap::new(),
            quota: None,
            stats: ServerStats::default(),
            violations: Vec::new(),
            clock: 1_700_000_000,
        }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("mega-test-server".into())
            .spawn(move || rt.block_on(serve(listener, shared, rx)))?;
        Ok(MegaTestServer {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Starts a server holding one account.
    pub fn start_with(account: TestAccount) -> std::io::Result<Self> {
        let server = MegaTestServer::start()?;
        server.add_account(account);
        Ok(server)
    }

    /// The API origin to give the client (`http://127.0.0.1:port/`).
    pub fn api_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Creates an account (with its root, inbox and rubbish folders).
    pub fn add_account(&self, a: TestAccount) {
        let (password_key, uh, salt) = match a.version {
            AccountVersion::V1 => {
                let k = crypto::password_key_v1(&a.password);
                (k, crypto::user_hash_v1(&a.email, &k), Vec::new())
            }
            AccountVersion::V2 => {
                let salt: [u8; 32] = rand::random();
                let (k, uh) = crypto::derive_v2(&a.password, &salt);
                (k, uh, salt.to_vec())
            }
        };
        let handle = random_handle(8);
        let mut st = lock(&self.state);
        let mut root = String::new();
        for t in [2, 3, 4] {
            let h = random_handle(6);
            if t == 2 {
                root = h.clone();
            }
            st.nodes.insert(
                h.clone(),
                SNode {
                    h,
                    p: String::new(),
                    t,
                    a: String::new(),
                    k: String::new(),
                    owner: handle.clone(),
                    s: 0,
                    ts: 0,
                    data: None,
                },
            );
        }
        let email = a.email.to_lowercase();
        st.accounts.insert(
            email.clone(),
            Account {
                email,
                handle,
                version: a.version,
                salt,
                uh,
                password_key,
                master: rand::random(),
                mfa: a.mfa_code,
                rsa: a.rsa,
                root,
            },
        );
    }

    /// Adds a fault (see `Fault`). `ExpireSessions` acts at once.
    pub fn inject(&self, f: Fault) {
        let mut st = lock(&self.state);
        match f {
            Fault::ExpireSessions => st.sessions.clear(),
            Fault::StorageQuota { bytes } => st.quota = Some(bytes),
            f => st.faults.push(f),
        }
    }

    /// Removes every pending fault and the quota.
    pub fn clear_faults(&self) {
        let mut st = lock(&self.state);
        st.faults.clear();
        st.quota = None;
    }

    /// Faults that have not fired their full count yet.
    pub fn pending_faults(&self) -> Vec<Fault> {
        lock(&self.state).faults.clone()
    }

    pub fn stats(&self) -> ServerStats {
        lock(&self.state).stats.clone()
    }

    pub fn reset_stats(&self) {
        lock(&self.state).stats = ServerStats::default();
    }

    /// Protocol violations seen in what clients sent (should stay empty).
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state).violations.clone()
    }

    /// The files of an account as (path from the root, size), sorted; same
    /// names appear as often as there are nodes.
    pub fn files(&self, email: &str) -> Vec<(String, u64)> {
        let st = lock(&self.state);
        let Some(acc) = st.accounts.get(&email.to_lowercase()) else {
            return Vec::new();
        };
        let mut out: Vec<(String, u64)> = st
            .nodes
            .values()
            .filter(|n| n.owner == acc.handle && n.t == 0)
            .filter_map(|n| Some((st.path_of(n, acc)?, n.s)))
            .collect();
        out.sort();
        out
    }
}

impl Drop for MegaTestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        }
    }
}

/// A reply before it becomes an HTTP response.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let hashcash = req
        .headers()
        .get("X-Hashcash")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let stall = lock(&state).take_fault(|f| match f {
        Fault::Stall { millis, .. } => Some(*millis),
        _ => None,
    });
    if let Some(ms) = stall {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let reply = {
        let mut st = lock(&state);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("POST", ["cs"]) => st.command_request(&query, hashcash.as_deref(), &body),
            ("POST", ["ul", id, offset]) => st.upload(id, offset, query_param(&query, "d"), body),
            ("GET", ["dl", id]) => st.download(id, None),
            ("GET", ["dl", id, range]) => st.download(id, Some(range)),
            _ => Reply::status(404),
        }
    };
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in reply.headers {
        resp = resp.header(k, v);
    }
    Ok(resp
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl State {
    /// Takes one firing of the first fault `pick` accepts.
    fn take_fault<T>(&mut self, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
        let i = self.faults.iter().position(|f| pick(f).is_some())?;
        let out = pick(&self.faults[i]);
        let left = match &mut self.faults[i] {
            Fault::Command { times, .. }
            | Fault::Request { times, .. }
            | Fault::Http { times, .. }
            | Fault::LoseReply { times }
            | Fault::Hashcash { times, .. }
            | Fault::UploadBody { times, .. }
            | Fault::UploadHttp { times, .. }
            | Fault::DownloadHttp { times, .. }
            | Fault::DownloadCorrupt { times }
            | Fault::TransferQuotaOnGet { times, .. }
            | Fault::Stall { times, .. } => {
                *times = times.saturating_sub(1);
                *times
            }
            Fault::ExpireSessions | Fault::StorageQuota { .. } => 0,
        };
        if left == 0 {
            self.faults.remove(i);
        }
        out
    }

    fn path_of(&self, n: &SNode, acc: &Account) -> Option<String> {
        let mut parts = Vec::new();
        let mut cur = n;
        for _ in 0..1000 {
            if cur.h == acc.root {
                parts.reverse();
                return Some(parts.join("/"));
            }
            parts.push(self.node_name(cur, acc)?);
            cur = self.nodes.get(&cur.p)?;
        }
        None
    }

    fn node_key(&self, n: &SNode, acc: &Account) -> Option<Vec<u8>> {
        let mut k = crypto::b64_decode(&n.k).ok()?;
        crypto::ecb_decrypt(&acc.master, &mut k).ok()?;
        Some(k)
    }

    fn node_name(&self, n: &SNode, acc: &Account) -> Option<String> {
        let k = self.node_key(n, acc)?;
        let v = crypto::decrypt_attr(&crypto::attr_key(&k).ok()?, &n.a).ok()?;
        v.get("n")?.as_str().map(str::to_string)
    }

    fn command_request(&mut self, query: &str, hashcash: Option<&str>, body: &[u8]) -> Reply {
        self.stats.requests += 1;
        let id = query_param(query, "id").unwrap_or("").to_string();
        let sid = query_param(query, "sid").unwrap_or("").to_string();

        if let Some(easiness) = self.take_hashcash_fault_peek() {
            let solved = hashcash
                .and_then(|h| {
                    let mut it = h.splitn(3, ':');
                    match (it.next(), it.next(), it.next()) {
                        (Some("1"), Some(t), Some(p)) => Some((t.to_string(), p.to_string())),
                        _ => None,
                    }
                })
                .filter(|(t, p)| {
                    self.challenges
                        .get(t)
                        .is_some_and(|&e| crypto::verify_hashcash(t, e, p))
                });
            match solved {
                Some((t, _)) => {
                    self.challenges.remove(&t);
                    self.take_fault(|f| matches!(f, Fault::Hashcash { .. }).then_some(()));
                }
                None => {
                    self.stats.hashcash_challenges += 1;
                    let raw: Vec<u8> = (0..48).map(|_| rand::random::<u8>()).collect();
                    let token = crypto::b64_encode(&raw);
                    self.challenges.insert(token.clone(), easiness);
                    let mut r = Reply::status(402);
                    r.headers
                        .push(("X-Hashcash", format!("1:{easiness}:{}:{token}", self.clock)));
                    return r;
                }
            }
        }
        if let Some(status) = self.take_fault(|f| match f {
            Fault::Http { status, .. } => Some(*status),
            _ => None,
        }) {
            return Reply::status(status);
        }
        if let Some(code) = self.take_fault(|f| match f {
            Fault::Request { code, .. } => Some(*code),
            _ => None,
        }) {
            return Reply::ok(code.to_string());
        }
        let key = (sid.clone(), id, body.to_vec());
        if let Some(stored) = self.replies.get(&key) {
            self.stats.replays += 1;
            return Reply::ok(stored.clone());
        }
        let account = if sid.is_empty() {
            None
        } else {
            match self.sessions.get(&sid) {
                Some(email) => Some(email.clone()),
                None => return Reply::ok("-15"),
            }
        };
        let Ok(Value::Array(cmds)) = serde_json::from_slice::<Value>(body) else {
            return Reply::ok("-2");
        };
        let mut results = Vec::with_capacity(cmds.len());
        for cmd in &cmds {
            let name = cmd
                .get("a")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(code) = self.take_fault(|f| match f {
                Fault::Command { cmd, code, .. } if *cmd == name => Some(*code),
                _ => None,
            }) {
                results.push(json!(code));
                continue;
            }
            *self.stats.commands.entry(name.clone()).or_default() += 1;
            self.clock += 1;
            results.push(self.run(&name, cmd, account.as_deref()));
        }
        let out = Value::Array(results).to_string().into_bytes();
        if self.replies.len() > 100_000 {
            self.replies.clear();
        }
        self.replies.insert(key, out.clone());
        if self
            .take_fault(|f| matches!(f, Fault::LoseReply { .. }).then_some(()))
            .is_some()
        {
            return Reply::status(500);
        }
        Reply::ok(out)
    }

    fn take_hashcash_fault_peek(&self) -> Option<u8> {
        self.faults.iter().find_map(|f| match f {
            Fault::Hashcash { easiness, .. } => Some(*easiness),
            _ => None,
        })
    }

    fn run(&mut self, name: &str, cmd: &Value, account: Option<&str>) -> Value {
        match (name, account) {
            ("us0", _) => self.prelogin(cmd),
            ("us", _) => self.login(cmd),
            (_, None) => json!(-15),
            (_, Some(email)) => {
                let email = email.to_string();
                match name {
                    "ug" => self.with_account(
                        &email,
                        |_, a| json!({"u": a.handle, "email": a.email, "since": 0, "s": 0}),
                    ),
                    "uq" => {
                        let used = self.used_bytes(&email);
                        let total = self.quota.unwrap_or(20 << 30);
                        json!({"cstrg": used, "mstrg": total})
                    }
                    "f" => self.fetch_nodes(&email),
                    "u" => self.upload_url(&email, cmd),
                    "p" => self.put_nodes(&email, cmd),
                    "g" => self.download_url(&email, cmd),
                    "d" => self.delete(&email, cmd),
                    "m" => self.move_node(&email, cmd),
                    "a" => self.set_attr(&email, cmd),
                    _ => json!(-2),
                }
            }
        }
    }

    fn with_account(&self, email: &str, f: impl FnOnce(&Self, &Account) -> Value) -> Value {
        match self.accounts.get(email) {
            Some(a) => f(self, a),
            None => json!(-9),
        }
    }

    fn prelogin(&mut self, cmd: &Value) -> Value {
        let user = cmd
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase();
        match self.accounts.get(&user) {
            Some(a) if a.version == AccountVersion::V2 => {
                json!({"v": 2, "s": crypto::b64_encode(&a.salt)})
            }
            _ => json!({"v": 1}),
        }
    }

    fn login(&mut self, cmd: &Value) -> Value {
        let user = cmd
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase();
        let uh = cmd.get("uh").and_then(Value::as_str).unwrap_or("");
        let mfa = cmd.get("mfa").and_then(Value::as_str);
        let Some(acc) = self.accounts.get(&user) else {
            return json!(-9);
        };
        if acc.uh != uh {
            return json!(-9);
        }
        if let Some(code) = &acc.mfa {
            if mfa != Some(code.as_str()) {
                return json!(-26);
            }
        }
        // sid = 16 random bytes ‖ base64(user handle) ‖ 16 random bytes
        let mut sid: Vec<u8> = rand::random::<[u8; 16]>().to_vec();
        sid.extend_from_slice(acc.handle.as_bytes());
        sid.extend_from_slice(&rand::random::<[u8; 16]>());
        let mut k = acc.master.to_vec();
        if crypto::ecb_encrypt(&acc.password_key, &mut k).is_err() {
            return json!(-1);
        }
        let mut reply = json!({"u": acc.handle, "k": crypto::b64_encode(&k), "ach": 1});
        if acc.rsa {
            let n = self.rsa.modulus();
            let width =
                (self.rsa.p.bits().div_ceil(8) + self.rsa.q.bits().div_ceil(8)) as usize - 2;
            let mut m = sid.clone();
            while m.len() < width {
                m.push(rand::random());
            }
            let c = crypto::rsa_encrypt(&BigUint::from_bytes_be(&m), &n, &BigUint::from(65537u32));
            let mut privk = self.rsa.serialize();
            privk.resize(privk.len().div_ceil(16) * 16, 0);
            if crypto::ecb_encrypt(&acc.master, &mut privk).is_err() {
                return json!(-1);
            }
            reply["csid"] = json!(crypto::b64_encode(&crypto::encode_mpi(&c)));
            reply["privk"] = json!(crypto::b64_encode(&privk));
        } else {
            let mut first = [0u8; 16];
            first.copy_from_slice(&sid[..16]);
            if crypto::ecb_encrypt(&acc.master, &mut first).is_err() {
                return json!(-1);
            }
            sid[27..].copy_from_slice(&first);
            reply["tsid"] = json!(crypto::b64_encode(&sid));
        }
        let email = acc.email.clone();
        self.sessions.insert(crypto::b64_encode(&sid), email);
        self.stats.logins += 1;
        reply
    }

    fn owned(&self, email: &str, handle: &str) -> Option<&SNode> {
        let acc = self.accounts.get(email)?;
        self.nodes.get(handle).filter(|n| n.owner == acc.handle)
    }

    fn used_bytes(&self, email: &str) -> u64 {
        let Some(acc) = self.accounts.get(email) else {
            return 0;
        };
        self.nodes
            .values()
            .filter(|n| n.owner == acc.handle)
            .map(|n| n.s)
            .sum()
    }

    fn fetch_nodes(&self, email: &str) -> Value {
        self.with_account(email, |st, a| {
            let mut list: Vec<&SNode> = st.nodes.values().filter(|n| n.owner == a.handle).collect();
            // parents before children, like the real server
            list.sort_by_key(|n| (n.ts, n.h.clone()));
            let f: Vec<Value> = list.iter().map(|n| n.to_json()).collect();
            json!({"f": f, "ok": [], "s": [], "u": [{"u": a.handle, "c": 2, "m": a.email}], "sn": "AAAAAAAAAAA"})
        })
    }

    fn upload_url(&mut self, email: &str, cmd: &Value) -> Value {
        let Some(size) = cmd.get("s").and_then(Value::as_u64) else {
            return json!(-2);
        };
        if let Some(q) = self.quota {
            if self.used_bytes(email) + size > q {
                return json!(-17);
            }
        }
        let id = random_handle(12);
        self.uploads.insert(
            id.clone(),
            Upload {
                owner: email.to_string(),
                size,
                parts: BTreeMap::new(),
                token: None,
            },
        );
        json!({"p": format!("{}ul/{id}", self.base_url)})
    }

    fn violation(&mut self, what: String) -> Value {
        self.violations.push(what);
        json!(-14)
    }

    fn put_nodes(&mut self, email: &str, cmd: &Value) -> Value {
        let Some(acc) = self.accounts.get(email) else {
            return json!(-9);
        };
        let (owner, master) = (acc.handle.clone(), acc.master);
        let Some(target) = cmd.get("t").and_then(Value::as_str).map(str::to_string) else {
            return json!(-2);
        };
        match self.owned(email, &target) {
            Some(n) if n.t != 0 => {}
            _ => return json!(-9),
        }
        let Some(list) = cmd.get("n").and_then(Value::as_array) else {
            return json!(-2);
        };
        let mut created = Vec::new();
        for n in list {
            let (Some(h), Some(t), Some(a), Some(k)) = (
                n.get("h").and_then(Value::as_str),
                n.get("t").and_then(Value::as_i64),
                n.get("a").and_then(Value::as_str),
                n.get("k").and_then(Value::as_str),
            ) else {
                return json!(-2);
            };
            // Check the key and attributes with the master key we know.
            let mut key = match crypto::b64_decode(k) {
                Ok(key) if key.len() == if t == 0 { 32 } else { 16 } => key,
                _ => return self.violation(format!("p: node key of wrong length ({k})")),
            };
            if crypto::ecb_decrypt(&master, &mut key).is_err() {
                return self.violation("p: node key is not whole blocks".into());
            }
            let name = crypto::attr_key(&key)
                .ok()
                .and_then(|ak| crypto::decrypt_attr(&ak, a).ok())
                .and_then(|v| v.get("n").and_then(Value::as_str).map(str::to_string));
            if name.is_none() {
                return self.violation("p: attributes do not decrypt to MEGA{\"n\":…}".into());
            }
            let (size, data) = match t {
                1 => (0, None),
                0 => {
                    let token = crypto::b64_decode(h).unwrap_or_default();
                    let Some((tok_owner, data)) = self.tokens.get(&token).cloned() else {
                        return json!(-9);
                    };
                    if tok_owner != email {
                        return json!(-11);
                    }
                    let Ok(fk) = FileKey::from_node_key(&key) else {
                        return self.violation("p: bad file key".into());
                    };
                    let mut plain = data.as_ref().clone();
                    crypto::ctr_apply(&fk.aes, &fk.nonce, 0, &mut plain);
                    if crypto::file_mac(&fk.aes, &fk.nonce, &plain) != fk.meta_mac {
                        return self.violation(format!(
                            "p: meta-MAC of {:?} does not match the uploaded contents",
                            name
                        ));
                    }
                    (data.len() as u64, Some(data))
                }
                _ => return json!(-2),
            };
            self.clock += 1;
            let node = SNode {
                h: random_handle(6),
                p: target.clone(),
                t,
                a: a.to_string(),
                k: k.to_string(),
                owner: owner.clone(),
                s: size,
                ts: self.clock,
                data,
            };
            created.push(node.to_json());
            self.nodes.insert(node.h.clone(), node);
        }
        json!({ "f": created })
    }

    fn download_url(&mut self, email: &str, cmd: &Value) -> Value {
        let h = cmd.get("n").and_then(Value::as_str).unwrap_or("");
        let Some(n) = self.owned(email, h) else {
            return json!(-9);
        };
        let (Some(data), a, s) = (n.data.clone(), n.a.clone(), n.s) else {
            return json!(-9);
        };
        if let Some(tl) = self.take_fault(|f| match f {
            Fault::TransferQuotaOnGet { seconds, .. } => Some(*seconds),
            _ => None,
        }) {
            return json!({"s": s, "at": a, "e": -17, "tl": tl});
        }
        if cmd.get("g").and_then(Value::as_i64) != Some(1) {
            return json!({"s": s, "at": a});
        }
        let id = random_handle(12);
        self.downloads.insert(id.clone(), data);
        json!({"s": s, "at": a, "g": format!("{}dl/{id}", self.base_url), "pfa": 0})
    }

    fn delete(&mut self, email: &str, cmd: &Value) -> Value {
        let h = cmd
            .get("n")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match self.owned(email, &h) {
            Some(n) if n.t <= 1 => {}
            _ => return json!(-9),
        }
        let mut stack = vec![h];
        while let Some(h) = stack.pop() {
            self.nodes.remove(&h);
            stack.extend(
                self.nodes
                    .values()
                    .filter(|n| n.p == h)
                    .map(|n| n.h.clone()),
            );
        }
        json!(0)
    }

    fn move_node(&mut self, email: &str, cmd: &Value) -> Value {
        let h = cmd
            .get("n")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let t = cmd
            .get("t")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match (self.owned(email, &h), self.owned(email, &t)) {
            (Some(n), Some(p)) if n.t <= 1 && p.t != 0 => {}
            _ => return json!(-9),
        }
        if let Some(n) = self.nodes.get_mut(&h) {
            n.p = t;
        }
        json!(0)
    }

    fn set_attr(&mut self, email: &str, cmd: &Value) -> Value {
        let h = cmd
            .get("n")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(at) = cmd.get("at").and_then(Value::as_str) else {
            return json!(-2);
        };
        let Some(acc) = self.accounts.get(email) else {
            return json!(-9);
        };
        let Some(node) = self.owned(email, &h) else {
            return json!(-9);
        };
        let readable = self
            .node_key(node, acc)
            .and_then(|k| crypto::attr_key(&k).ok())
            .and_then(|k| crypto::decrypt_attr(&k, at).ok())
            .is_some_and(|v| v.get("n").and_then(Value::as_str).is_some());
        if !readable {
            return self.violation("a: attributes do not decrypt to MEGA{\"n\":…}".into());
        }
        if let Some(n) = self.nodes.get_mut(&h) {
            n.a = at.to_string();
        }
        json!(0)
    }

    fn upload(&mut self, id: &str, offset: &str, checksum: Option<&str>, body: Vec<u8>) -> Reply {
        self.stats.upload_requests += 1;
        if let Some(status) = self.take_fault(|f| match f {
            Fault::UploadHttp { status, .. } => Some(*status),
            _ => None,
        }) {
            return Reply::status(status);
        }
        if let Some(b) = self.take_fault(|f| match f {
            Fault::UploadBody { body, .. } => Some(body.clone()),
            _ => None,
        }) {
            return Reply::ok(b);
        }
        let Ok(offset) = offset.parse::<u64>() else {
            return Reply::ok("-2");
        };
        let expected = crypto::b64_encode(&crypto::upload_checksum(&body));
        if checksum != Some(expected.as_str()) {
            self.violations.push(format!(
                "upload: checksum ?d={checksum:?} does not match the body ({expected})"
            ));
            return Reply::ok("-7");
        }
        let Some(up) = self.uploads.get_mut(id) else {
            return Reply::status(403);
        };
        let end = offset + body.len() as u64;
        let ok_start = crypto::is_chunk_boundary(offset);
        let ok_end = end == up.size || crypto::is_chunk_boundary(end);
        let nonempty = !body.is_empty() || up.size == 0;
        if !(ok_start && ok_end && nonempty && end <= up.size) {
            let msg = format!(
                "upload: {} bytes at {offset} of {} break Mega's chunk boundaries",
                body.len(),
                up.size
            );
            self.violations.push(msg);
            return Reply::ok("-7");
        }
        up.parts.insert(offset, body);
        if let Some(t) = &up.token {
            return Reply::ok(t.clone());
        }
        let mut pos = 0u64;
        for (&o, p) in &up.parts {
            if o > pos {
                break;
            }
            pos = pos.max(o + p.len() as u64);
        }
        if pos < up.size || (up.size == 0 && up.parts.is_empty()) {
            return Reply::ok(Vec::new());
        }
        let mut data = vec![0u8; up.size as usize];
        for (&o, p) in &up.parts {
            data[o as usize..o as usize + p.len()].copy_from_slice(p);
        }
        let token: Vec<u8> = (0..36).map(|_| rand::random::<u8>()).collect();
        up.token = Some(token.clone());
        let owner = up.owner.clone();
        self.tokens.insert(token.clone(), (owner, Arc::new(data)));
        Reply::ok(token)
    }

    fn download(&mut self, id: &str, range: Option<&str>) -> Reply {
        self.stats.download_requests += 1;
        if let Some((status, left)) = self.take_fault(|f| match f {
            Fault::DownloadHttp {
                status, time_left, ..
            } => Some((*status, *time_left)),
            _ => None,
        }) {
            let mut r = Reply::status(status);
            if let Some(s) = left {
                r.headers.push(("X-MEGA-Time-Left", s.to_string()));
            }
            return r;
        }
        let Some(data) = self.downloads.get(id).cloned() else {
            return Reply::status(404);
        };
        let (a, b) = match range.and_then(|r| r.split_once('-')) {
            Some((a, b)) => match (a.parse::<u64>(), b.parse::<u64>()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return Reply::status(416),
            },
            None if data.is_empty() => return Reply::ok(Vec::new()),
            None => (0, data.len() as u64 - 1),
        };
        if a > b || b >= data.len() as u64 {
            return Reply::status(416);
        }
        let mut out = data[a as usize..=b as usize].to_vec();
        if self
            .take_fault(|f| matches!(f, Fault::DownloadCorrupt { .. }).then_some(()))
            .is_some()
        {
            out[0] ^= 1;
        }
        Reply::ok(out)
    }
}

const RSA_P: &str = concat!(
    "d0a6430ad15c1dab70ea67a16359b2b62e3d7f35795dbad77c282cbfef7c3dde",
    "761264ef8c1f81b5f3c9004e121e77be03920ff90ae75bf8c06a1c9e6a183263",
    "44ecc6499b75173138138bde68d3e20953c7cff398e67b86165e43d94aa471fc",
    "018eb53ec68b2d0eedbb7e08e5cb12047ccf597909874a9884a6aedf61ae8d6d",
);
const RSA_Q: &str = concat!(
    "cb6411aac51b3e5644472bb944448d07978783046fe1e940602ba2568baf84b7",
    "b27023109bef2345178702377f0c9bc58dc64f568712d1f35fcc0704049f902f",
    "9eebbc8fa177f0b115ebb9300948d82e6f6aeb0ec30adbd89ff651f8fbe39e8e",
    "e46d5221c69fef6494c54b4e09ffa5954af89468e74ae5af690a99151c3fdf55",
);
const RSA_D: &str = concat!(
    "116b087c282afa8fd4417e1374503df21f13a293cae4647abd67a80c8e9ff7bf",
    "2921353d0671c59b8963937931731dbaab18646faeda4011c4040df448d2f2ad",
    "ba3b8701c5799432373eb5e31eb64fbf98a9cec2014bcf0ab045e4c57a75fb54",
    "fb113fec108e0f86868d992ba0e09d84b0d6941c91d8960707ae60bfdd4a1670",
    "dc74310e7a737078d69de7981dad750ba2d95c3deed4fc4fef509baa3f483fdd",
    "dcb3b40cf4276a723c2374014681b75a930a2fd07611a79c62ecc172500ca715",
    "0af406d4e98a6c3f77fae6f08f749ec86312e695f1a7c13ec95af1f0967213a9",
    "0a3626a9edbb248b3faa65de7e166bd57ad77de43bceb18cf5b4f58b6075175",
);
const RSA_U: &str = concat!(
    "9dfd7a9f7ccab1ddb16760b5f6474bd2b8d26e93a025ee72bc91cbf0c5940e93",
    "f20f95d2c10eb0f6fcada40df2ba006894ec64f8889c20a59a80f7005521d7b6",
    "dece0a93ce2f6c77ee4c82677e0e994514d8f72a0b1fc70e4d2b68ebeb4148e4",
    "0066b7e43a3cfcaa79078ef551a0d47bc8cf887a23c534458b8a2df818268738",
);

/// The fixed 2048-bit RSA key every test account uses (generated once with
/// OpenSSL for these tests; it protects nothing).
pub fn test_rsa_key() -> RsaPrivateKey {
    let parse = |h: &str| BigUint::parse_bytes(h.as_bytes(), 16).unwrap_or_default();
    RsaPrivateKey {
        p: parse(RSA_P),
        q: parse(RSA_Q),
        d: parse(RSA_D),
        u: parse(RSA_U),
    }
}
