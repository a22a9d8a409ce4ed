//! Helpers for tests that drive the real `cairn` binary on real files.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASSWORD: &str = "correct horse battery staple";

/// Argon2 parameters that make tests fast; never for real repositories.
pub const CHEAP_KDF: [&str; 6] = [
    "--kdf-memory-kib",
    "64",
    "--kdf-iterations",
    "1",
    "--kdf-parallelism",
    "1",
];

/// A scratch world: a repository path, a cache, a home directory.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub cache: PathBuf,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("cairn-test-")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("repo");
        let cache = dir.path().join("cache");
        TestEnv { dir, repo, cache }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `cairn` command with this environment's repository and password.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CAIRN_REPOSITORY", &self.repo)
            .env("CAIRN_PASSWORD", PASSWORD)
            .env("CAIRN_CACHE_DIR", &self.cache)
            .env("TZ", "UTC")
            // Prune and repair write many small index files, so tests
            // cover the multi-file switch-over.
            .env("CAIRN_INDEX_FILE_BLOBS", "64");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run cairn")
    }

    /// Runs and requires exit code 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&out, args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cairn restore SPEC --target TARGET`, required to succeed.
    pub fn restore(&self, spec: &str, target: &Path) {
        self.ok(&[
            "restore",
            spec,
            "--target",
            target.to_str().expect("UTF-8 target"),
        ]);
    }

    /// `cairn verify --read-data` must exit 0; `context` says when.
    pub fn assert_verifies(&self, context: &str) {
        let out = self.run(&["verify", "--read-data"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{context}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// `cairn init` with cheap Argon2 parameters.
    pub fn init(&self) {
        self.init_with(&[]);
    }

    /// `cairn init` with cheap Argon2 parameters and more options.
    pub fn init_with(&self, extra: &[&str]) {
        let mut args = vec!["init"];
        args.extend_from_slice(&CHEAP_KDF);
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// `cairn init` with small chunks, so small test files give many chunks.
    pub fn init_small_chunks(&self) {
        self.init_with(&[
            "--chunk-min",
            "4096",
            "--chunk-avg",
            "16384",
            "--chunk-max",
            "65536",
        ]);
    }

    /// Takes a snapshot and returns its full id.
    pub fn snapshot(&self, args: &[&str]) -> String {
        let mut all = vec!["snapshot", "--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        let v: serde_json::Value = serde_json::from_str(&out).expect("snapshot --json output");
        v["snapshot_id"].as_str().expect("snapshot_id").to_string()
    }

    pub fn snapshot_summary(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["snapshot", "--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).expect("snapshot --json output")
    }
}

/// Every file below `dir`, sorted (empty if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Total bytes of the files below `p` (0 if it does not exist).
pub fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    dir_bytes(&e.path())
                } else {
                    m.len()
                }
            })
            .sum()
        })
        .unwrap_or(0)
}

impl TestEnv {
    /// A `cairn` command on another repository and cache than the default
    /// ones.
    pub fn cmd_in(&self, repo: &Path, cache: &Path) -> Command {
        let mut cmd = self.cmd();
        cmd.env("CAIRN_REPOSITORY", repo)
            .env("CAIRN_CACHE_DIR", cache);
        cmd
    }

    /// Runs cairn on another repository and cache than the default ones.
    pub fn run_in(&self, repo: &Path, cache: &Path, args: &[&str]) -> Output {
        self.cmd_in(repo, cache)
            .args(args)
            .output()
            .expect("run cairn")
    }
}

pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "cairn {:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        args,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// Everything about one entry that a restore must reproduce.
#[derive(Debug, PartialEq, Eq)]
pub struct EntryFacts {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content_hash: Option<String>,
    pub link_target: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Index of the first entry sharing this inode (hard links).
    pub link_group: Option<String>,
}

fn kind_name(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else {
        "file"
    }
}

/// Facts of every entry below `root`, keyed by relative path bytes.
/// `with_dir_mtime`: directory mtimes are compared too.
pub fn tree_facts(root: &Path) -> BTreeMap<Vec<u8>, EntryFacts> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    collect(root, root, &mut out, &mut inodes);
    out
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, EntryFacts>,
    inodes: &mut BTreeMap<(u64, u64), String>,
) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let meta = path.symlink_metadata().unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let kind = kind_name(meta.file_type());
        let content_hash = (kind == "file").then(|| {
            blake3::hash(&std::fs::read(&path).unwrap())
                .to_hex()
                .to_string()
        });
        let link_target = (kind == "symlink").then(|| {
            std::fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = xattr::list(&path)
            .map(|names| {
                names
                    .filter_map(|n| {
                        let v = xattr::get(&path, &n).ok().flatten()?;
                        Some((n.as_bytes().to_vec(), v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        let link_group = if kind != "dir" && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            Some(
                inodes
                    .entry(key)
                    .or_insert_with(|| String::from_utf8_lossy(&rel).into_owned())
                    .clone(),
            )
        } else {
            None
        };
        out.insert(
            rel,
            EntryFacts {
                kind: kind.to_string(),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: if kind == "symlink" || kind == "dir" || kind == "file" || kind == "fifo" {
                    (meta.mtime(), meta.mtime_nsec())
                } else {
                    (0, 0)
                },
                size: if kind == "file" { meta.len() } else { 0 },
                content_hash,
                link_target,
                rdev: meta.rdev(),
                xattrs,
                link_group,
            },
        );
        if meta.is_dir() {
            collect(root, &path, out, inodes);
        }
    }
}

/// Asserts two trees are identical in contents and metadata, listing every
/// difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = tree_facts(expected);
    let b = tree_facts(actual);
    let mut problems = Vec::new();
    for (path, fa) in &a {
        match b.get(path) {
            None => problems.push(format!("missing {:?}", OsStr::from_bytes(path))),
            Some(fb) if fa != fb => problems.push(format!(
                "differs {:?}:\n  expected {fa:?}\n  actual   {fb:?}",
                OsStr::from_bytes(path)
            )),
            _ => {}
        }
    }
    for path in b.keys() {
        if !a.contains_key(path) {
            problems.push(format!("unexpected {:?}", OsStr::from_bytes(path)));
        }
    }
    assert!(
        problems.is_empty(),
        "trees differ:\n{}",
        problems.join("\n")
    );
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Options for a repository made through the library, with a key
/// derivation cheap enough for tests (what `CHEAP_KDF` is to the binary).
pub fn cheap_init_options() -> cairn::repository::InitOptions {
    cairn::repository::InitOptions {
        kdf: cairn::crypto::KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    }
}

/// Which call a `HookedBackend` is about to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    List,
    Read,
    Write,
    Delete,
    Stat,
}

/// A backend that forwards every call to `inner`, first calling `hook`
/// with the call and its object name (or listed prefix): for tests that
/// must act at an exact point of a command's I/O while the real backend
/// does the work.
pub struct HookedBackend<H> {
    pub inner: std::sync::Arc<dyn cairn::backend::Backend>,
    pub hook: H,
}

impl<H: Fn(Call, &str) + Send + Sync> cairn::backend::Backend for HookedBackend<H> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> cairn::backend::Result<()> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> cairn::backend::Result<Vec<cairn::backend::ObjectInfo>> {
        (self.hook)(Call::List, prefix);
        self.inner.list(prefix)
    }
    fn read(&self, name: &str) -> cairn::backend::Result<Vec<u8>> {
        (self.hook)(Call::Read, name);
        self.inner.read(name)
    }
    fn read_range(&self, name: &str, offset: u64, length: u64) -> cairn::backend::Result<Vec<u8>> {
        (self.hook)(Call::Read, name);
        self.inner.read_range(name, offset, length)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> cairn::backend::Result<()> {
        (self.hook)(Call::Write, name);
        self.inner.write(name, bytes)
    }
    fn delete(&self, name: &str) -> cairn::backend::Result<()> {
        (self.hook)(Call::Delete, name);
        self.inner.delete(name)
    }
    fn stat(&self, name: &str) -> cairn::backend::Result<u64> {
        (self.hook)(Call::Stat, name);
        self.inner.stat(name)
    }
}
