//! Module settings: `loadmodule` arguments, their validation at start, and
//! `CONFIG SET/GET oauth.<name>` changing behaviour at run time.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config_get(c: &mut Connection, name: &str) -> String {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(c)
        .expect("CONFIG GET");
    assert_eq!(v.len(), 2, "CONFIG GET {name}: {v:?}");
    assert_eq!(v[0], name);
    v[1].clone()
}

fn config_set(c: &mut Connection, name: &str, value: &str) {
    ok(c, &["CONFIG", "SET", name, value]);
}

fn savecode<'a>(key: &'a str, ttl: &'a str) -> Vec<&'a str> {
    vec![
        "OAUTH.SAVECODE",
        key,
        ttl,
        "FIELDS",
        "3",
        "client_id",
        "app1",
        "code_challenge",
        CHALLENGE,
        "code_challenge_method",
        "S256",
    ]
}

const DEFAULTS: &[(&str, &str)] = &[
    ("oauth.code-max-ttl", "600"),
    ("oauth.token-max-ttl", "2592000"),
    ("oauth.state-max-ttl", "600"),
    ("oauth.code-max-attempts", "3"),
    ("oauth.record-max-fields", "64"),
    ("oauth.record-max-bytes", "16384"),
    ("oauth.require-pkce", "yes"),
    ("oauth.allow-plain-pkce", "no"),
];

#[test]
fn every_setting_is_visible_with_its_default() {
    let s = Server::start();
    let mut c = s.conn();
    for (name, value) in DEFAULTS {
        assert_eq!(config_get(&mut c, name), *value, "{name}");
    }
}

#[test]
fn loadmodule_arguments_take_effect() {
    let s = Server::with_module_args(&[
        "code-max-ttl",
        "60",
        "require-pkce",
        "no",
        "code-max-attempts",
        "2",
        "token-max-ttl",
        "120",
        "state-max-ttl",
        "30",
        "record-max-fields",
        "5",
        "record-max-bytes",
        "1000",
        "allow-plain-pkce",
        "yes",
    ]);
    let mut c = s.conn();
    for (name, value) in [
        ("oauth.code-max-ttl", "60"),
        ("oauth.require-pkce", "no"),
        ("oauth.code-max-attempts", "2"),
        ("oauth.token-max-ttl", "120"),
        ("oauth.state-max-ttl", "30"),
        ("oauth.record-max-fields", "5"),
        ("oauth.record-max-bytes", "1000"),
        ("oauth.allow-plain-pkce", "yes"),
    ] {
        assert_eq!(config_get(&mut c, name), value, "{name}");
    }
    assert_eq!(
        err(&mut c, &savecode("k", "61")),
        "INVALID_REQUEST ttl must be an integer from 1 to 60"
    );
    ok(&mut c, &savecode("k", "60"));
    // require-pkce no: a code without a challenge.
    ok(
        &mut c,
        &[
            "OAUTH.SAVECODE",
            "nopkce",
            "60",
            "FIELDS",
            "1",
            "client_id",
            "app1",
        ],
    );
    // code-max-attempts 2: the second failure burns.
    assert_eq!(
        err(&mut c, &["OAUTH.EXCHANGE", "k", "x", "", VERIFIER]),
        "INVALID_GRANT client_id does not match the authorization code"
    );
    assert_eq!(
        err(&mut c, &["OAUTH.EXCHANGE", "k", "x", "", VERIFIER]),
        "INVALID_GRANT client_id does not match the authorization code; the authorization code is revoked after too many failed attempts"
    );
    assert!(!exists(&mut c, "k"));
    assert_eq!(
        err(&mut c, &["OAUTH.SAVETOKEN", "t", "121", "FIELDS", "0"]),
        "INVALID_REQUEST ttl must be an integer from 1 to 120"
    );
    assert_eq!(
        err(&mut c, &["OAUTH.SAVESTATE", "s", "31", "FIELDS", "0"]),
        "INVALID_REQUEST ttl must be an integer from 1 to 30"
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.SAVETOKEN",
                "t",
                "60",
                "FIELDS",
                "6",
                "a",
                "1",
                "b",
                "1",
                "c",
                "1",
                "d",
                "1",
                "e",
                "1",
                "f",
                "1"
            ]
        ),
        "INVALID_REQUEST too many fields: at most 5 per record (record-max-fields)"
    );
    ok(
        &mut c,
        &[
            "OAUTH.SAVECODE",
            "plain",
            "60",
            "FIELDS",
            "2",
            "client_id",
            "app1",
            "code_challenge",
            VERIFIER,
        ],
    );
}

#[test]
fn settings_in_the_config_file_syntax_also_work() {
    let s = Server::start_with(Opts {
        server_args: vec!["--oauth.code-max-ttl".into(), "100".into()],
        ..Opts::default()
    });
    let mut c = s.conn();
    assert_eq!(config_get(&mut c, "oauth.code-max-ttl"), "100");
    assert_eq!(
        err(&mut c, &savecode("k", "101")),
        "INVALID_REQUEST ttl must be an integer from 1 to 100"
    );
}

/// Starts redis-server with the module and `args`; returns its exit status and
/// output if it exits within the deadline, or None if it keeps running.
fn start_raw(args: &[&str]) -> Option<(std::process::ExitStatus, String)> {
    let dir = tempfile::Builder::new()
        .prefix("redis-oauth-config")
        .tempdir()
        .expect("tempdir");
    let socket = dir.path().join("redis.sock");
    let module = module_path();
    let mut child = Command::new(server_binary())
        .arg("--port")
        .arg("0")
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(dir.path())
        .arg("--save")
        .arg("")
        .arg("--daemonize")
        .arg("no")
        .arg("--loadmodule")
        .arg(&module)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return Some((status, text));
        }
        if Instant::now() > deadline || answers_ping(&socket) {
            // It started: a valid configuration, or one the module failed to refuse.
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The event loop runs (so every module is loaded) once PING is answered.
fn answers_ping(socket: &std::path::Path) -> bool {
    if !socket.exists() {
        return false;
    }
    redis::Client::open(format!("redis+unix://{}", socket.display()))
        .and_then(|client| client.get_connection())
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

#[test]
fn invalid_loadmodule_arguments_stop_the_server() {
    let cases: &[(&[&str], &str)] = &[
        (&["bogus", "1"], "unknown module argument 'bogus'"),
        (
            &["code-max-ttl", "60", "codemaxttl", "60"],
            "unknown module argument 'codemaxttl'",
        ),
        (
            &["code-max-ttl", "0"],
            "module argument 'code-max-ttl' must be an integer from 1 to 86400",
        ),
        (
            &["code-max-ttl", "86401"],
            "module argument 'code-max-ttl' must be an integer from 1 to 86400",
        ),
        (
            &["code-max-ttl", "ten"],
            "module argument 'code-max-ttl' must be an integer from 1 to 86400",
        ),
        (
            &["code-max-attempts", "0"],
            "module argument 'code-max-attempts' must be an integer from 1 to 1000",
        ),
        (
            &["code-max-attempts", "1001"],
            "module argument 'code-max-attempts' must be an integer from 1 to 1000",
        ),
        (
            &["token-max-ttl", "-1"],
            "module argument 'token-max-ttl' must be an integer from 1 to",
        ),
        (
            &["state-max-ttl", "86401"],
            "module argument 'state-max-ttl' must be an integer from 1 to 86400",
        ),
        (
            &["record-max-fields", "0"],
            "module argument 'record-max-fields' must be an integer from 1 to 4096",
        ),
        (
            &["record-max-bytes", "63"],
            "module argument 'record-max-bytes' must be an integer from 64 to",
        ),
        (
            &["require-pkce", "maybe"],
            "module argument 'require-pkce' must be yes or no",
        ),
        (
            &["allow-plain-pkce", "1"],
            "module argument 'allow-plain-pkce' must be yes or no",
        ),
        (
            &["code-max-ttl"],
            "module argument 'code-max-ttl' has no value",
        ),
    ];
    for (args, message) in cases {
        let (status, out) = start_raw(args)
            .unwrap_or_else(|| panic!("redis-server started with module arguments {args:?}"));
        assert!(!status.success(), "{args:?}: exit status {status}");
        assert!(
            out.contains(message),
            "{args:?}: log lacks {message:?}:\n{out}"
        );
    }
    // The control: valid arguments start (and the harness would fail otherwise).
    assert!(start_raw(&["code-max-ttl", "60", "require-pkce", "no"]).is_none());
}

#[test]
fn config_set_changes_behaviour_at_run_time() {
    let s = Server::start();
    let mut c = s.conn();

    // code-max-ttl
    config_set(&mut c, "oauth.code-max-ttl", "30");
    assert_eq!(config_get(&mut c, "oauth.code-max-ttl"), "30");
    assert_eq!(
        err(&mut c, &savecode("a", "31")),
        "INVALID_REQUEST ttl must be an integer from 1 to 30"
    );
    ok(&mut c, &savecode("a", "30"));
    config_set(&mut c, "oauth.code-max-ttl", "900");
    ok(&mut c, &savecode("b", "900"));

    // require-pkce
    let no_pkce = [
        "OAUTH.SAVECODE",
        "np",
        "60",
        "FIELDS",
        "1",
        "client_id",
        "app1",
    ];
    assert_eq!(
        err(&mut c, &no_pkce),
        "INVALID_REQUEST code_challenge is required (require-pkce is on)"
    );
    config_set(&mut c, "oauth.require-pkce", "no");
    assert_eq!(config_get(&mut c, "oauth.require-pkce"), "no");
    ok(&mut c, &no_pkce);
    let reply = run(&mut c, &["OAUTH.EXCHANGE", "np", "app1", "", ""]).expect("no-PKCE exchange");
    assert_eq!(field(&reply, "client_id").as_deref(), Some("app1"));
    config_set(&mut c, "oauth.require-pkce", "yes");
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.SAVECODE",
                "np2",
                "60",
                "FIELDS",
                "1",
                "client_id",
                "app1"
            ]
        ),
        "INVALID_REQUEST code_challenge is required (require-pkce is on)"
    );

    // allow-plain-pkce
    let plain = [
        "OAUTH.SAVECODE",
        "pl",
        "60",
        "FIELDS",
        "3",
        "client_id",
        "app1",
        "code_challenge",
        VERIFIER,
        "code_challenge_method",
        "plain",
    ];
    assert_eq!(
        err(&mut c, &plain),
        "INVALID_REQUEST code_challenge_method plain is not allowed (allow-plain-pkce is off); use S256"
    );
    config_set(&mut c, "oauth.allow-plain-pkce", "yes");
    assert_eq!(config_get(&mut c, "oauth.allow-plain-pkce"), "yes");
    ok(&mut c, &plain);
    run(&mut c, &["OAUTH.EXCHANGE", "pl", "app1", "", VERIFIER]).expect("plain exchange");
    config_set(&mut c, "oauth.allow-plain-pkce", "no");
    let mut plain2 = plain;
    plain2[1] = "pl2";
    assert_eq!(
        err(&mut c, &plain2),
        "INVALID_REQUEST code_challenge_method plain is not allowed (allow-plain-pkce is off); use S256"
    );

    // code-max-attempts
    config_set(&mut c, "oauth.code-max-attempts", "1");
    save_code(&mut c, "one");
    assert_eq!(
        err(&mut c, &["OAUTH.EXCHANGE", "one", "app1", "https://app/cb", ""]),
        "INVALID_GRANT code_verifier is required for this authorization code; the authorization code is revoked after too many failed attempts"
    );
    assert!(!exists(&mut c, "one"));
    config_set(&mut c, "oauth.code-max-attempts", "5");
    save_code(&mut c, "five");
    for n in 1..=4 {
        assert_eq!(
            err(
                &mut c,
                &["OAUTH.EXCHANGE", "five", "app1", "https://app/cb", ""]
            ),
            "INVALID_GRANT code_verifier is required for this authorization code"
        );
        let attempts = hgetall(&mut c, "five")
            .into_iter()
            .find(|(f, _)| f == "_attempts")
            .map(|(_, v)| v);
        assert_eq!(attempts, Some(n.to_string()));
    }
    assert!(err(
        &mut c,
        &["OAUTH.EXCHANGE", "five", "app1", "https://app/cb", ""]
    )
    .ends_with("; the authorization code is revoked after too many failed attempts"));
    assert!(!exists(&mut c, "five"));

    // token-max-ttl, state-max-ttl and the record caps.
    config_set(&mut c, "oauth.token-max-ttl", "50");
    assert_eq!(
        err(&mut c, &["OAUTH.SAVETOKEN", "t", "51", "FIELDS", "0"]),
        "INVALID_REQUEST ttl must be an integer from 1 to 50"
    );
    config_set(&mut c, "oauth.state-max-ttl", "5");
    assert_eq!(
        err(&mut c, &["OAUTH.SAVESTATE", "s", "6", "FIELDS", "0"]),
        "INVALID_REQUEST ttl must be an integer from 1 to 5"
    );
    config_set(&mut c, "oauth.record-max-fields", "1");
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.SAVETOKEN",
                "t",
                "10",
                "FIELDS",
                "2",
                "a",
                "1",
                "b",
                "2"
            ]
        ),
        "INVALID_REQUEST too many fields: at most 1 per record (record-max-fields)"
    );
    config_set(&mut c, "oauth.record-max-bytes", "64");
    let big = "x".repeat(64);
    assert_eq!(
        err(&mut c, &["OAUTH.SAVETOKEN", "t", "10", "FIELDS", "1", "a", &big]),
        "INVALID_REQUEST record too large: at most 64 bytes of field names and values (record-max-bytes)"
    );
}

#[test]
fn out_of_range_config_set_is_refused_and_keeps_the_value() {
    let s = Server::start();
    let mut c = s.conn();
    let cases = [
        ("oauth.code-max-ttl", "0"),
        ("oauth.code-max-ttl", "86401"),
        ("oauth.code-max-ttl", "-5"),
        ("oauth.code-max-ttl", "abc"),
        ("oauth.token-max-ttl", "0"),
        ("oauth.state-max-ttl", "86401"),
        ("oauth.code-max-attempts", "0"),
        ("oauth.code-max-attempts", "1001"),
        ("oauth.record-max-fields", "0"),
        ("oauth.record-max-fields", "4097"),
        ("oauth.record-max-bytes", "63"),
        ("oauth.record-max-bytes", "16777217"),
        ("oauth.require-pkce", "maybe"),
        ("oauth.allow-plain-pkce", "2"),
        ("oauth.no-such-setting", "1"),
    ];
    for (name, value) in cases {
        let e = err(&mut c, &["CONFIG", "SET", name, value]);
        assert!(e.starts_with("ERR"), "CONFIG SET {name} {value}: {e}");
        assert!(e.contains(name), "CONFIG SET {name} {value}: {e}");
    }
    for (name, value) in DEFAULTS {
        assert_eq!(config_get(&mut c, name), *value, "{name} changed");
    }
    // The defaults still apply.
    assert_eq!(
        err(&mut c, &savecode("k", "601")),
        "INVALID_REQUEST ttl must be an integer from 1 to 600"
    );
    // The extremes of each range are accepted.
    config_set(&mut c, "oauth.code-max-ttl", "86400");
    config_set(&mut c, "oauth.code-max-ttl", "1");
    config_set(&mut c, "oauth.code-max-attempts", "1000");
    config_set(&mut c, "oauth.record-max-bytes", "64");
    assert_eq!(
        err(&mut c, &savecode("k", "2")),
        "INVALID_REQUEST ttl must be an integer from 1 to 1"
    );
}

#[test]
fn ttl_caps_follow_the_settings() {
    let s = Server::with_module_args(&["state-max-ttl", "30", "token-max-ttl", "100"]);
    let mut c = s.conn();
    refused_unchanged(
        &mut c,
        &["OAUTH.SAVESTATE", "s", "31", "FIELDS", "0"],
        "INVALID_REQUEST ttl must be an integer from 1 to 30",
    );
    ok(&mut c, &["OAUTH.SAVESTATE", "s", "30", "FIELDS", "0"]);
    refused_unchanged(
        &mut c,
        &["OAUTH.SAVETOKEN", "t", "101", "FIELDS", "0"],
        "INVALID_REQUEST ttl must be an integer from 1 to 100",
    );
    ok(&mut c, &["OAUTH.SAVETOKEN", "t", "100", "FIELDS", "0"]);
    // ISSUE obeys token-max-ttl too.
    save_code(&mut c, "code");
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "t2",
            "101",
        ],
        "INVALID_REQUEST ttl must be an integer from 1 to 100",
    );
}
