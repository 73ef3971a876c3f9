//! Server versions. The supported servers (Debian's Redis 7.0, Valkey 9.1,
//! Redis 7.4) run the whole suite through REDIS_SERVER (scripts/test.sh);
//! this file proves that a server too old for the module refuses it at load
//! time with a clear log line instead of crashing.
//!
//! Needs the old server fetched by scripts/servers.sh (REDIS_OLD), so it is
//! ignored by a plain `cargo test` and run by scripts/test.sh with --ignored.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs REDIS_OLD from scripts/servers.sh; scripts/test.sh runs it"]
fn an_old_server_refuses_the_module_clearly() {
    let old = std::env::var("REDIS_OLD")
        .expect("REDIS_OLD must point at a Redis 6.x server (source scripts/servers.sh)");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("redis.log");
    let mut child = Command::new(&old)
        .args(["--port", "0", "--save", "", "--daemonize", "no"])
        .arg("--unixsocket")
        .arg(dir.path().join("s.sock"))
        .arg("--logfile")
        .arg(&log)
        .arg("--loadmodule")
        .arg(common::module_path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the old server");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the old server kept running with the module loaded");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !status.success(),
        "the old server should abort on a module that refuses to load"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("redis-oauth requires Redis 7.0 or newer"),
        "no clear refusal in the log:\n{text}"
    );
}
