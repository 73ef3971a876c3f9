//! Where the module and the server come from, for the tests (through
//! tests/common/mod.rs) and the benchmark (benches/throughput/main.rs includes
//! this file).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Path of the module `.so`, built once per test binary in release mode.
/// `REDIS_OAUTH_MODULE` overrides it (scripts/test.sh builds first).
pub fn module_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("REDIS_OAUTH_MODULE") {
            let p = PathBuf::from(p);
            assert!(
                p.exists(),
                "REDIS_OAUTH_MODULE={} does not exist",
                p.display()
            );
            return p;
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--lib", "--quiet"])
            .current_dir(&root)
            .status()
            .expect("could not run cargo to build the module");
        assert!(status.success(), "building the module failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let so = target.join("release/libredis_oauth.so");
        assert!(so.exists(), "module not found at {}", so.display());
        so
    })
    .clone()
}

/// The redis-server binary: `REDIS_SERVER` or `redis-server` on PATH.
pub fn server_binary() -> String {
    binary(
        "REDIS_SERVER",
        "redis-server",
        "Install it (scripts/test.sh does: apt-get install -y redis-server) or set REDIS_SERVER.",
    )
}

/// A program that must run with `--version`: the path in `env`, else `name`
/// on PATH. Fails loudly with `install` when it is missing: tests never skip.
pub fn binary(env: &str, name: &str, install: &str) -> String {
    let bin = std::env::var(env).unwrap_or_else(|_| name.to_string());
    let ok = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{name} not found (tried '{bin}'). {install} Tests never skip."
    );
    bin
}
