//! A repository on Mega, end to end: the real binary against the Mega
//! protocol server started in-process on 127.0.0.1.

mod common;

use cairn::backend::mega::test_server::{Fault, MegaTestServer, TestAccount};
use common::*;

const USER: &str = "backup@example.com";
const MEGA_PASSWORD: &str = "mega account password";

fn mega_env(server: &MegaTestServer) -> TestEnv {
    let _ = server;
    TestEnv::new()
}

fn cmd(env: &TestEnv, server: &MegaTestServer, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env("CAIRN_REPOSITORY", "mega:/Backups/myhost")
        .env("CAIRN_MEGA_API_URL", server.api_url())
        .env("CAIRN_MEGA_USER", USER)
        .env("CAIRN_MEGA_PASSWORD", MEGA_PASSWORD)
        .args(args)
        .output()
        .unwrap()
}

fn ok(env: &TestEnv, server: &MegaTestServer, args: &[&str]) -> String {
    let out = cmd(env, server, args);
    assert_success(&out, args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn init(env: &TestEnv, server: &MegaTestServer) {
    let mut args = vec!["init"];
    args.extend_from_slice(&CHEAP_KDF);
    ok(env, server, &args);
}

#[test]
fn snapshot_restore_verify_forget_prune_on_mega() {
    let server = MegaTestServer::start_with(TestAccount::v2(USER, MEGA_PASSWORD)).unwrap();
    let env = mega_env(&server);
    init(&env, &server);
    let src = env.path("src");
    write(&src.join("small"), b"tiny");
    write(&src.join("empty"), b"");
    write(&src.join("dir/big.bin"), &random_bytes(3 << 20, 1));
    let s = src.to_str().unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&ok(&env, &server, &["snapshot", "--json", s])).unwrap();
    assert!(first["summary"]["uploaded_bytes"].as_u64().unwrap() > 3 << 20);
    write(&src.join("small"), b"changed");
    ok(&env, &server, &["snapshot", s]);

    let target = env.path("restored");
    ok(
        &env,
        &server,
        &[
            "restore",
            &format!("latest:{s}"),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(&src, &target);
    let verify = cmd(&env, &server, &["verify", "--read-data"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    ok(
        &env,
        &server,
        &[
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--instant",
            "--max-unused",
            "0",
        ],
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(&env, &server, &["snapshots", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let verify = cmd(&env, &server, &["verify", "--read-data"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(
        server.violations().is_empty(),
        "protocol violations: {:?}",
        server.violations()
    );
}

#[test]
fn transient_faults_are_retried_and_quota_is_a_clear_error() {
    let server = MegaTestServer::start_with(TestAccount::v1(USER, MEGA_PASSWORD)).unwrap();
    let env = mega_env(&server);
    init(&env, &server);
    let src = env.path("src");
    write(&src.join("f"), &random_bytes(500_000, 2));
    let s = src.to_str().unwrap();
    server.inject(Fault::Request { code: -3, times: 2 });
    server.inject(Fault::Http {
        status: 500,
        times: 1,
    });
    server.inject(Fault::UploadBody {
        body: "-3".into(),
        times: 1,
    });
    server.inject(Fault::ExpireSessions);
    ok(&env, &server, &["snapshot", s]);
    let verify = cmd(&env, &server, &["verify", "--read-data"]);
    assert_eq!(verify.status.code(), Some(0));

    server.inject(Fault::StorageQuota { bytes: 1 });
    write(&src.join("g"), &random_bytes(500_000, 3));
    let out = cmd(&env, &server, &["snapshot", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).to_lowercase().contains("quota"),
        "{}",
        stderr(&out)
    );
    // The failed run left the repository as it was.
    server.clear_faults();
    let verify = cmd(&env, &server, &["verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn sync_local_repository_to_mega_and_back() {
    let server = MegaTestServer::start_with(TestAccount::v2(USER, MEGA_PASSWORD)).unwrap();
    let env = mega_env(&server);
    env.init();
    let src = env.path("src");
    write(&src.join("a"), &random_bytes(200_000, 4));
    let s = src.to_str().unwrap();
    env.snapshot(&[s]);
    let mega_cmd = |args: &[&str]| {
        env.cmd()
            .env("CAIRN_MEGA_API_URL", server.api_url())
            .env("CAIRN_MEGA_USER", USER)
            .env("CAIRN_MEGA_PASSWORD", MEGA_PASSWORD)
            .args(args)
            .output()
            .unwrap()
    };
    let out = mega_cmd(&["sync", "--to", "mega:/Backups/mirror", "--json"]);
    assert_success(&out, &["sync --to"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(stats["objects_copied"].as_u64().unwrap() >= 5);
    // A second sync copies nothing.
    let out = mega_cmd(&["sync", "--to", "mega:/Backups/mirror", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["objects_copied"], 0);
    // The mirror is a working repository, and pulls back into a new one.
    let out = mega_cmd(&["-r", "mega:/Backups/mirror", "verify", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let copy = env.path("copy");
    let out = mega_cmd(&[
        "-r",
        copy.to_str().unwrap(),
        "sync",
        "--from",
        "mega:/Backups/mirror",
    ]);
    assert_success(&out, &["sync --from"]);
    let target = env.path("t");
    let out = mega_cmd(&[
        "-r",
        copy.to_str().unwrap(),
        "restore",
        &format!("latest:{s}"),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_success(&out, &["restore from copy"]);
    assert_same_tree(&src, &target);
}

#[test]
fn megafuse_config_file_is_accepted() {
    let server = MegaTestServer::start_with(TestAccount::v1(USER, MEGA_PASSWORD)).unwrap();
    let env = TestEnv::new();
    let config = env.path("megafuse.conf");
    std::fs::write(
        &config,
        format!("USERNAME = {USER}\nPASSWORD = {MEGA_PASSWORD}\nMOUNTPOINT = /mega\n"),
    )
    .unwrap();
    let out = env
        .cmd()
        .env("CAIRN_REPOSITORY", "mega:/Backups/h")
        .env("CAIRN_MEGA_API_URL", server.api_url())
        .args(["--mega-config", config.to_str().unwrap(), "init"])
        .args(CHEAP_KDF)
        .output()
        .unwrap();
    assert_success(&out, &["init with --mega-config"]);
    let wrong = env
        .cmd()
        .env("CAIRN_REPOSITORY", "mega:/Backups/h")
        .env("CAIRN_MEGA_API_URL", server.api_url())
        .env("CAIRN_MEGA_USER", USER)
        .env("CAIRN_MEGA_PASSWORD", "wrong")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).to_lowercase().contains("mega"),
        "{}",
        stderr(&wrong)
    );
}
