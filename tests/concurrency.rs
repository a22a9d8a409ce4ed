//! Concurrent writers: snapshots from several processes into one repository
//! at once all succeed, and the repository verifies with all data read.

mod common;

use common::*;

#[test]
fn two_snapshots_at_once_both_succeed() {
    let env = TestEnv::new();
    env.init();
    let a = env.path("a");
    let b = env.path("b");
    for i in 0..30u64 {
        write(&a.join(format!("f{i}")), &random_bytes(100_000, i));
        // Half the data is shared, so both writers race to store it.
        write(
            &b.join(format!("f{i}")),
            &random_bytes(100_000, if i % 2 == 0 { i } else { 500 + i }),
        );
    }
    let spawn = |p: &std::path::Path| {
        env.cmd()
            .args(["snapshot", "--json", p.to_str().unwrap()])
            .output()
    };
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| spawn(&a).unwrap());
        let hb = s.spawn(|| spawn(&b).unwrap());
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert_success(&ra, &["snapshot a"]);
    assert_success(&rb, &["snapshot b"]);
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    env.assert_verifies("after both snapshots");
    for snap in list.as_array().unwrap() {
        let path = snap["paths"][0].as_str().unwrap();
        let target = env.path(&format!("restored-{}", &snap["id"].as_str().unwrap()[..8]));
        let spec = format!("{}:{path}", &snap["id"].as_str().unwrap()[..8]);
        env.restore(&spec, &target);
        assert_same_tree(std::path::Path::new(path), &target);
    }
}
