//! Snapshot and restore throughput on a `mega:` repository (against the
//! in-process Mega protocol server) next to the local backend, on the same
//! data in the same run, and the number of API requests a snapshot of
//! 10,000 files makes. `cargo bench --bench mega`; figures are printed,
//! never asserted.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cairn::archiver::{self, SnapshotOptions};
use cairn::backend::local::LocalBackend;
use cairn::backend::mega::test_server::{MegaTestServer, TestAccount};
use cairn::backend::mega::{MegaBackend, MegaConfig};
use cairn::backend::Backend;
use cairn::crypto::KdfParams;
use cairn::progress::NoProgress;
use cairn::repository::{CacheOptions, InitOptions, Repository};
use cairn::restorer::{self, RestoreOptions};

fn corpus(root: &Path, small_files: u32, big_bytes: usize) -> u64 {
    let mut total = 0u64;
    for i in 0..small_files {
        let dir = root.join(format!("d{}", i % 100));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut data = vec![0u8; 1000 + (i as usize % 3000)];
        blake3::Hasher::new()
            .update(&i.to_le_bytes())
            .finalize_xof()
            .fill(&mut data);
        total += data.len() as u64;
        std::fs::write(dir.join(format!("f{i}")), data).expect("write");
    }
    let mut big = vec![0u8; big_bytes];
    blake3::Hasher::new()
        .update(b"big")
        .finalize_xof()
        .fill(&mut big);
    total += big.len() as u64;
    std::fs::write(root.join("big.bin"), big).expect("write");
    total
}

fn options(src: &Path) -> SnapshotOptions {
    SnapshotOptions {
        paths: vec![src.to_path_buf()],
        selection: Default::default(),
        excludes: vec![],
        hostname: "bench".into(),
        username: "bench".into(),
        tags: vec![],
        time: None,
        parent: None,
        ..Default::default()
    }
}

/// Returns (snapshot seconds, restore seconds).
fn run(
    name: &str,
    backend: Arc<dyn Backend>,
    src: &Path,
    target: &Path,
    bytes: u64,
    hooks: (&dyn Fn(), &dyn Fn()),
) -> (f64, f64) {
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, b"pw", &init, &CacheOptions::default()).expect("init");
    (hooks.0)();
    let t = Instant::now();
    let outcome = archiver::snapshot(&repo, &options(src), &NoProgress).expect("snapshot");
    let snap_secs = t.elapsed().as_secs_f64();
    (hooks.1)();
    let t = Instant::now();
    let stats = restorer::restore(
        &repo,
        &outcome.snapshot,
        &RestoreOptions {
            target: target.to_path_buf(),
            subpath: None,
            filter: None,
            overwrite: false,
        },
        &NoProgress,
    )
    .expect("restore");
    let restore_secs = t.elapsed().as_secs_f64();
    assert!(stats.errors.is_empty());
    let mib = bytes as f64 / 1048576.0;
    println!(
        "{name:<6} snapshot {snap_secs:6.2}s ({:6.1} MiB/s)   restore {restore_secs:6.2}s ({:6.1} MiB/s)",
        mib / snap_secs,
        mib / restore_secs
    );
    (snap_secs, restore_secs)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let bytes = corpus(&src, 10_000, 96 << 20);
    println!(
        "corpus: 10,000 small files + one 96 MiB file, {:.1} MiB",
        bytes as f64 / 1048576.0
    );

    let local = Arc::new(LocalBackend::new(dir.path().join("local-repo")));
    let (ls, lr) = run(
        "local",
        local,
        &src,
        &dir.path().join("restore-local"),
        bytes,
        (&|| {}, &|| {}),
    );

    let server =
        MegaTestServer::start_with(TestAccount::v2("bench@example.com", "pw")).expect("server");
    let mut config = MegaConfig::new("bench@example.com", "pw", "/Backups/bench");
    config.api_url = server.api_url();
    let mega = Arc::new(MegaBackend::open(config).expect("mega"));
    let report = || {
        let stats = server.stats();
        println!(
            "mega snapshot of 10,000 files: {} API requests ({:?}), {} upload requests",
            stats.requests, stats.commands, stats.upload_requests
        );
        server.reset_stats();
    };
    let (ms, mr) = run(
        "mega",
        mega,
        &src,
        &dir.path().join("restore-mega"),
        bytes,
        (&|| server.reset_stats(), &report),
    );
    let stats = server.stats();
    println!(
        "mega/local time ratio: snapshot {:.2}x, restore {:.2}x",
        ms / ls,
        mr / lr
    );
    println!(
        "mega restore: {} API requests, {} download requests",
        stats.requests, stats.download_requests
    );
}
