//! What clients and the server see of the commands: RESP2 and RESP3 reply
//! shapes, COMMAND INFO / COMMAND GETKEYS, OAUTH.HELP, INFO counters and
//! keyspace notifications.

mod common;
use common::*;

use std::time::Duration;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn save_state(c: &mut Connection, key: &str) {
    ok(
        c,
        &[
            "OAUTH.SAVESTATE",
            key,
            "60",
            "FIELDS",
            "2",
            "nonce",
            "n1",
            "redirect_uri",
            "https://app/cb",
        ],
    );
}

fn save_token(c: &mut Connection, key: &str) {
    ok(
        c,
        &[
            "OAUTH.SAVETOKEN",
            key,
            "60",
            "FIELDS",
            "2",
            "sub",
            "u42",
            "scope",
            "read",
        ],
    );
}

fn good_exchange(key: &str) -> Vec<&str> {
    vec!["OAUTH.EXCHANGE", key, "app1", "https://app/cb", VERIFIER]
}

#[test]
fn exchange_reply_is_a_flat_array_in_resp2_and_a_map_in_resp3() {
    let s = Server::start();
    let mut c2 = s.conn();
    let mut c3 = s.conn3();
    save_code(&mut c2, "code:2");
    save_code(&mut c2, "code:3");
    let expected = owned(&[
        ("client_id", "app1"),
        ("redirect_uri", "https://app/cb"),
        ("user_id", "u42"),
    ]);

    let v2 = run(&mut c2, &good_exchange("code:2")).unwrap();
    match &v2 {
        Value::Array(items) => {
            assert_eq!(items.len(), 6, "{items:?}");
            assert!(items.iter().all(|i| matches!(i, Value::BulkString(_))));
        }
        other => panic!("RESP2 exchange must be a flat array: {other:?}"),
    }
    assert_eq!(sorted_pairs(&v2), expected);

    let v3 = run(&mut c3, &good_exchange("code:3")).unwrap();
    match &v3 {
        Value::Map(m) => {
            assert_eq!(m.len(), 3, "{m:?}");
            assert!(m.iter().all(
                |(k, v)| matches!(k, Value::BulkString(_)) && matches!(v, Value::BulkString(_))
            ));
        }
        other => panic!("RESP3 exchange must be a map: {other:?}"),
    }
    assert_eq!(sorted_pairs(&v3), expected);
    // Errors are the same text in both protocols.
    assert_eq!(
        err(&mut c3, &good_exchange("code:2")),
        "INVALID_GRANT authorization code already used"
    );
    assert_eq!(
        err(&mut c2, &good_exchange("code:3")),
        "INVALID_GRANT authorization code already used"
    );
}

#[test]
fn introspect_shapes() {
    let s = Server::start();
    let mut c2 = s.conn();
    let mut c3 = s.conn3();
    save_token(&mut c2, "tok");
    let exp = pexpiretime(&mut c2, "tok") / 1000;

    let v2 = run(&mut c2, &["OAUTH.INTROSPECT", "tok"]).unwrap();
    let items = match v2 {
        Value::Array(items) => items,
        other => panic!("RESP2 introspection must be a flat array: {other:?}"),
    };
    assert_eq!(items.len(), 10, "{items:?}");
    assert_eq!(items[..2], [bulk("active"), Value::Int(1)]);
    let exp_pos = items.iter().position(|v| *v == bulk("exp")).expect("exp");
    assert_eq!(items[exp_pos + 1], Value::Int(exp));
    let iat_pos = items.iter().position(|v| *v == bulk("iat")).expect("iat");
    assert!(matches!(items[iat_pos + 1], Value::Int(_)));

    let v3 = run(&mut c3, &["OAUTH.INTROSPECT", "tok"]).unwrap();
    let map = match v3 {
        Value::Map(m) => m,
        other => panic!("RESP3 introspection must be a map: {other:?}"),
    };
    assert_eq!(map.len(), 5, "{map:?}");
    assert_eq!(map[0], (bulk("active"), Value::Boolean(true)));
    assert!(map.contains(&(bulk("exp"), Value::Int(exp))));
    assert!(map.contains(&(bulk("sub"), bulk("u42"))));

    assert_eq!(
        run(&mut c2, &["OAUTH.INTROSPECT", "nope"]).unwrap(),
        Value::Array(vec![bulk("active"), Value::Int(0)])
    );
    assert_eq!(
        run(&mut c3, &["OAUTH.INTROSPECT", "nope"]).unwrap(),
        Value::Map(vec![(bulk("active"), Value::Boolean(false))])
    );
}

#[test]
fn consumestate_shapes_and_nil() {
    let s = Server::start();
    let mut c2 = s.conn();
    let mut c3 = s.conn3();
    save_state(&mut c2, "st:2");
    save_state(&mut c2, "st:3");
    let expected = owned(&[("nonce", "n1"), ("redirect_uri", "https://app/cb")]);
    let v2 = run(&mut c2, &["OAUTH.CONSUMESTATE", "st:2"]).unwrap();
    assert!(matches!(&v2, Value::Array(a) if a.len() == 4), "{v2:?}");
    assert_eq!(sorted_pairs(&v2), expected);
    let v3 = run(&mut c3, &["OAUTH.CONSUMESTATE", "st:3"]).unwrap();
    assert!(matches!(&v3, Value::Map(m) if m.len() == 2), "{v3:?}");
    assert_eq!(sorted_pairs(&v3), expected);
    assert_eq!(
        run(&mut c2, &["OAUTH.CONSUMESTATE", "st:2"]).unwrap(),
        Value::Nil
    );
    assert_eq!(
        run(&mut c3, &["OAUTH.CONSUMESTATE", "st:3"]).unwrap(),
        Value::Nil
    );
}

#[test]
fn scalar_replies_are_the_same_in_both_protocols() {
    let s = Server::start();
    for (i, mut c) in [s.conn(), s.conn3()].into_iter().enumerate() {
        let code = format!("code:{i}");
        let tok = format!("tok:{i}");
        let rl = format!("rl:{i}");
        assert_eq!(
            run(
                &mut c,
                &[
                    "OAUTH.SAVECODE",
                    &code,
                    "60",
                    "FIELDS",
                    "3",
                    "client_id",
                    "a",
                    "code_challenge",
                    CHALLENGE,
                    "code_challenge_method",
                    "S256"
                ]
            )
            .unwrap(),
            Value::Okay
        );
        assert_eq!(
            run(&mut c, &["OAUTH.SAVETOKEN", &tok, "60", "FIELDS", "0"]).unwrap(),
            Value::Okay
        );
        assert_eq!(
            run(&mut c, &["OAUTH.REVOKE", &tok, "x"]).unwrap(),
            Value::Int(1)
        );
        assert_eq!(
            run(&mut c, &["OAUTH.RATELIMIT", &rl, "2", "60"]).unwrap(),
            Value::Array([0, 2, 1, -1, 60].into_iter().map(Value::Int).collect())
        );
    }
}

/// (name, arity, first key, last key, step, flag that must be present)
const COMMANDS: &[(&str, i64, i64, i64, i64, &str)] = &[
    ("oauth.savecode", -5, 1, 1, 1, "write"),
    ("oauth.exchange", -5, 1, 1, 1, "write"),
    ("oauth.savetoken", -5, 1, 1, 1, "write"),
    ("oauth.introspect", 2, 1, 1, 1, "readonly"),
    ("oauth.revoke", -2, 1, -1, 1, "write"),
    ("oauth.savestate", -5, 1, 1, 1, "write"),
    ("oauth.consumestate", 2, 1, 1, 1, "write"),
    ("oauth.ratelimit", -4, 1, 1, 1, "write"),
    ("oauth.help", 1, 0, 0, 0, "readonly"),
];

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) | Value::Set(items) => items
            .iter()
            .map(|i| match i {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// Whether a nested reply contains the bulk or simple string `s` anywhere.
fn contains_str(v: &Value, s: &str) -> bool {
    match v {
        Value::BulkString(b) => b == s.as_bytes(),
        Value::SimpleString(x) => x == s,
        Value::Array(items) | Value::Set(items) => items.iter().any(|i| contains_str(i, s)),
        Value::Map(m) => m
            .iter()
            .any(|(k, v)| contains_str(k, s) || contains_str(v, s)),
        _ => false,
    }
}

fn command_info(c: &mut Connection, name: &str) -> Vec<Value> {
    match run(c, &["COMMAND", "INFO", name]).unwrap() {
        Value::Array(mut outer) => match outer.pop() {
            Some(Value::Array(info)) => info,
            other => panic!("COMMAND INFO {name}: {other:?}"),
        },
        other => panic!("COMMAND INFO {name}: {other:?}"),
    }
}

#[test]
fn command_info_declares_arity_keys_and_flags() {
    let s = Server::start();
    let mut c = s.conn();
    for &(name, arity, first, last, step, flag) in COMMANDS {
        let info = command_info(&mut c, name);
        assert_eq!(info[0], bulk(name));
        if name == "oauth.introspect" {
            // `key`, later with optional trailing options (variadic -2).
            assert!(
                info[1] == Value::Int(2) || info[1] == Value::Int(-2),
                "{name} arity {:?}",
                info[1]
            );
        } else {
            assert_eq!(info[1], Value::Int(arity), "{name} arity");
        }
        let flags = strings(&info[2]);
        assert!(flags.iter().any(|f| f == flag), "{name} flags {flags:?}");
        assert_eq!(
            info[3..6],
            [Value::Int(first), Value::Int(last), Value::Int(step)],
            "{name} legacy key range"
        );
        // Key specs (index 8): read-only commands declare read-only keys.
        let specs = &info[8];
        match name {
            "oauth.help" => assert_eq!(specs, &Value::Array(vec![]), "{name}"),
            "oauth.introspect" => {
                assert!(contains_str(specs, "RO"), "{name}: {specs:?}");
                assert!(!contains_str(specs, "RW"), "{name}: {specs:?}");
            }
            _ => assert!(!contains_str(specs, "RO"), "{name}: {specs:?}"),
        }
    }
    // The ISSUE token key is found by keyword, so clients must ask for the keys.
    let exchange = command_info(&mut c, "oauth.exchange");
    assert!(strings(&exchange[2]).iter().any(|f| f == "movablekeys"));
    assert!(contains_str(&exchange[8], "ISSUE"));
    // Redis enforces the arity itself.
    assert_eq!(
        err(&mut c, &["OAUTH.HELP", "x"]),
        "ERR wrong number of arguments for 'oauth.help' command"
    );
    // Every command the module registers has command info.
    let listed =
        strings(&run(&mut c, &["COMMAND", "LIST", "FILTERBY", "MODULE", "oauth"]).unwrap());
    for &(name, ..) in COMMANDS {
        assert!(listed.iter().any(|l| l == name), "{name} not in {listed:?}");
    }
    for name in &listed {
        let info = command_info(&mut c, name);
        assert!(
            matches!(info[1], Value::Int(a) if a != 0),
            "{name}: {info:?}"
        );
    }
}

fn getkeys(c: &mut Connection, args: &[&str]) -> Vec<String> {
    let mut full = vec!["COMMAND", "GETKEYS"];
    full.extend_from_slice(args);
    strings(&run(c, &full).unwrap_or_else(|e| panic!("{full:?}: {e}")))
}

#[test]
fn command_getkeys_finds_every_key_of_every_form() {
    let s = Server::start();
    let mut c = s.conn();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["OAUTH.SAVECODE", "c", "60", "FIELDS", "1", "client_id", "a"],
            vec!["c"],
        ),
        // A keyword spelled in FIELDS is refused by the command (see
        // tests/acl.rs); Redis's search, and so the report, takes the
        // argument after it for a key, which keeps an ACL check on it.
        (
            vec![
                "OAUTH.SAVETOKEN",
                "t",
                "60",
                "FIELDS",
                "2",
                "source",
                "GRANT",
                "sub",
                "u42",
            ],
            vec!["t", "sub"],
        ),
        (
            vec![
                "OAUTH.EXCHANGE",
                "c",
                "app",
                "https://x",
                "v",
                "ISSUE",
                "t",
                "60",
                "FIELDS",
                "2",
                "note",
                "GRANT",
                "REFRESH",
                "y",
            ],
            vec!["c", "t", "y", "REFRESH"],
        ),
        (vec!["OAUTH.SAVECODE", "c", "60", "FIELDS", "0"], vec!["c"]),
        (
            vec!["OAUTH.EXCHANGE", "c", "app", "https://x", "v"],
            vec!["c"],
        ),
        (
            vec![
                "OAUTH.EXCHANGE",
                "c",
                "app",
                "https://x",
                "v",
                "ISSUE",
                "t",
                "60",
            ],
            vec!["c", "t"],
        ),
        (
            vec![
                "OAUTH.EXCHANGE",
                "c",
                "app",
                "https://x",
                "v",
                "issue",
                "t",
                "60",
            ],
            vec!["c", "t"],
        ),
        (
            vec![
                "OAUTH.EXCHANGE",
                "c",
                "app",
                "https://x",
                "v",
                "ISSUE",
                "t",
                "60",
                "FIELDS",
                "1",
                "a",
                "b",
            ],
            vec!["c", "t"],
        ),
        // ISSUE in a fixed argument position is data, not the keyword.
        (
            vec!["OAUTH.EXCHANGE", "c", "ISSUE", "ISSUE", "ISSUE"],
            vec!["c"],
        ),
        (
            vec![
                "OAUTH.EXCHANGE",
                "c",
                "ISSUE",
                "ISSUE",
                "ISSUE",
                "ISSUE",
                "t",
                "60",
            ],
            vec!["c", "t"],
        ),
        (vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "0"], vec!["t"]),
        (vec!["OAUTH.INTROSPECT", "t"], vec!["t"]),
        (vec!["OAUTH.REVOKE", "t"], vec!["t"]),
        (
            vec!["OAUTH.REVOKE", "t1", "t2", "t3"],
            vec!["t1", "t2", "t3"],
        ),
        (
            vec!["OAUTH.SAVESTATE", "s", "60", "FIELDS", "1", "n", "v"],
            vec!["s"],
        ),
        (vec!["OAUTH.CONSUMESTATE", "s"], vec!["s"]),
        (vec!["OAUTH.RATELIMIT", "r", "10", "60"], vec!["r"]),
        (
            vec!["OAUTH.RATELIMIT", "r", "10", "60", "COST", "2"],
            vec!["r"],
        ),
    ];
    for (args, keys) in &cases {
        assert_eq!(&getkeys(&mut c, args), keys, "{args:?}");
    }
}

#[test]
fn help_lists_every_command() {
    let s = Server::start();
    let mut c = s.conn();
    let v = run(&mut c, &["OAUTH.HELP"]).unwrap();
    assert!(
        matches!(&v, Value::Array(a) if a.iter().all(|l| matches!(l, Value::SimpleString(_)))),
        "HELP answers status lines like Redis's own HELP: {v:?}"
    );
    let lines = strings(&v);
    let mut names: Vec<String> = COMMANDS.iter().map(|c| c.0.to_string()).collect();
    names.extend(strings(
        &run(&mut c, &["COMMAND", "LIST", "FILTERBY", "MODULE", "oauth"]).unwrap(),
    ));
    for name in names {
        let upper = name.to_ascii_uppercase();
        assert!(
            lines
                .iter()
                .any(|l| l == &upper || l.starts_with(&format!("{upper} "))),
            "HELP does not list {upper}:\n{}",
            lines.join("\n")
        );
    }
    let v3 = run(&mut s.conn3(), &["OAUTH.HELP"]).unwrap();
    assert_eq!(strings(&v3), lines);
}

#[test]
fn info_counters_move() {
    let s = Server::start();
    let mut c = s.conn();
    let names = [
        "codes_saved",
        "codes_exchanged",
        "exchange_fail_not_found",
        "exchange_fail_reused",
        "exchange_fail_client",
        "exchange_fail_redirect",
        "exchange_fail_pkce",
        "codes_burned",
        "tokens_saved",
        "tokens_introspected",
        "tokens_revoked",
        "states_saved",
        "states_consumed",
        "ratelimit_allowed",
        "ratelimit_limited",
    ];
    for n in names {
        assert_eq!(info_counter(&mut c, n), 0, "{n} at start");
    }
    let info: String = redis::cmd("INFO").arg("oauth").query(&mut c).unwrap();
    assert!(info.contains("# oauth_"), "{info}");

    for i in 0..3 {
        save_code(&mut c, &format!("code:{i}"));
    }
    assert_eq!(info_counter(&mut c, "codes_saved"), 3);
    run(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:0",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "tok:0",
            "60",
        ],
    )
    .unwrap();
    assert_eq!(info_counter(&mut c, "codes_exchanged"), 1);
    assert_eq!(info_counter(&mut c, "tokens_saved"), 1);
    let _ = run(&mut c, &good_exchange("code:0"));
    assert_eq!(info_counter(&mut c, "exchange_fail_reused"), 1);
    assert_eq!(
        info_counter(&mut c, "tokens_revoked"),
        1,
        "reuse revoked the token"
    );
    let _ = run(&mut c, &good_exchange("missing"));
    assert_eq!(info_counter(&mut c, "exchange_fail_not_found"), 1);
    let _ = run(
        &mut c,
        &["OAUTH.EXCHANGE", "code:1", "x", "https://app/cb", VERIFIER],
    );
    assert_eq!(info_counter(&mut c, "exchange_fail_client"), 1);
    let _ = run(
        &mut c,
        &["OAUTH.EXCHANGE", "code:1", "app1", "https://x", VERIFIER],
    );
    assert_eq!(info_counter(&mut c, "exchange_fail_redirect"), 1);
    let _ = run(
        &mut c,
        &["OAUTH.EXCHANGE", "code:1", "app1", "https://app/cb", ""],
    );
    assert_eq!(info_counter(&mut c, "exchange_fail_pkce"), 1);
    assert_eq!(info_counter(&mut c, "codes_burned"), 1);

    save_token(&mut c, "tok:1");
    assert_eq!(info_counter(&mut c, "tokens_saved"), 2);
    run(&mut c, &["OAUTH.INTROSPECT", "tok:1"]).unwrap();
    run(&mut c, &["OAUTH.INTROSPECT", "nope"]).unwrap();
    assert_eq!(info_counter(&mut c, "tokens_introspected"), 2);
    run(&mut c, &["OAUTH.REVOKE", "tok:1", "nope"]).unwrap();
    assert_eq!(info_counter(&mut c, "tokens_revoked"), 2);

    save_state(&mut c, "st");
    assert_eq!(info_counter(&mut c, "states_saved"), 1);
    run(&mut c, &["OAUTH.CONSUMESTATE", "st"]).unwrap();
    run(&mut c, &["OAUTH.CONSUMESTATE", "st"]).unwrap();
    assert_eq!(info_counter(&mut c, "states_consumed"), 1);

    for _ in 0..3 {
        run(&mut c, &["OAUTH.RATELIMIT", "rl", "2", "60"]).unwrap();
    }
    assert_eq!(info_counter(&mut c, "ratelimit_allowed"), 2);
    assert_eq!(info_counter(&mut c, "ratelimit_limited"), 1);
    // Refused commands that never reached a decision count nothing.
    let _ = run(&mut c, &["OAUTH.SAVECODE", "code:0", "60", "FIELDS", "0"]);
    assert_eq!(info_counter(&mut c, "codes_saved"), 3);
    let _ = run(&mut c, &["OAUTH.RATELIMIT", "rl", "0", "60"]);
    assert_eq!(info_counter(&mut c, "ratelimit_allowed"), 2);
    assert_eq!(info_counter(&mut c, "ratelimit_limited"), 1);
    assert_eq!(info_counter(&mut c, "panics"), 0);
}

/// Keyspace events seen by a subscriber of `__keyevent@0__:*`.
struct Events<'a> {
    ps: redis::PubSub<'a>,
    markers: u32,
}

impl Events<'_> {
    /// Runs a command, then a marker SET, and returns the command's result and
    /// every (event, key) raised before the marker's.
    fn of(
        &mut self,
        c: &mut Connection,
        args: &[&str],
    ) -> (redis::RedisResult<Value>, Vec<(String, String)>) {
        let result = run(c, args);
        self.markers += 1;
        let marker = format!("marker:{}", self.markers);
        ok(c, &["SET", &marker, "1"]);
        let seen = keyevents_until(&mut self.ps, &marker);
        (result, seen)
    }
}

fn ev(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(e, k)| (e.to_string(), k.to_string()))
        .collect()
}

#[test]
fn writes_raise_the_native_keyspace_events_and_failures_raise_none() {
    let s = Server::start();
    let mut c = s.conn();
    ok(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let mut sub = s.conn();
    let mut ps = sub.as_pubsub();
    ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ps.psubscribe("__keyevent@0__:*").unwrap();
    let mut e = Events { ps, markers: 0 };

    let savecode = [
        "OAUTH.SAVECODE",
        "code",
        "600",
        "FIELDS",
        "3",
        "client_id",
        "app1",
        "code_challenge",
        CHALLENGE,
        "code_challenge_method",
        "S256",
    ];
    let (r, got) = e.of(&mut c, &savecode);
    r.unwrap();
    // SAVECODE writes the record in one RESTORE, which raises `restore`
    // (on a replica too: it replays the same RESTORE).
    assert_eq!(got, ev(&[("restore", "code")]));

    // Failures that write nothing raise nothing.
    let failures: Vec<Vec<&str>> = vec![
        savecode.to_vec(),
        vec![
            "OAUTH.SAVECODE",
            "other",
            "0",
            "FIELDS",
            "1",
            "client_id",
            "a",
        ],
        vec![
            "OAUTH.SAVECODE",
            "other",
            "60",
            "FIELDS",
            "1",
            "client_id",
            "a",
        ],
        vec!["OAUTH.EXCHANGE", "missing", "app1", "", VERIFIER],
        vec!["OAUTH.EXCHANGE", "code", "app1", "", VERIFIER, "FOO"],
        // A valid grant whose ISSUE target exists: refused before any write.
        vec![
            "OAUTH.EXCHANGE",
            "code",
            "app1",
            "",
            VERIFIER,
            "ISSUE",
            "marker:1",
            "60",
        ],
        vec!["OAUTH.SAVETOKEN", "tok", "0", "FIELDS", "0"],
        vec!["OAUTH.SAVESTATE", "st", "60", "FIELDS", "1", "_x", "1"],
        vec!["OAUTH.RATELIMIT", "rl", "0", "60"],
        vec!["OAUTH.RATELIMIT", "code", "5", "60"],
        vec!["OAUTH.REVOKE", "code"],
        vec!["OAUTH.CONSUMESTATE", "code"],
    ];
    for args in &failures {
        let (r, got) = e.of(&mut c, args);
        assert!(r.is_err(), "{args:?} should fail");
        assert_eq!(got, vec![], "{args:?} raised events");
    }
    // Reads raise nothing.
    let (_, got) = e.of(&mut c, &["OAUTH.INTROSPECT", "code"]);
    assert_eq!(got, vec![]);
    let (_, got) = e.of(&mut c, &["OAUTH.CONSUMESTATE", "missing"]);
    assert_eq!(got, vec![]);

    // A failed check writes only the attempt counter: one hset.
    let (r, got) = e.of(&mut c, &["OAUTH.EXCHANGE", "code", "app2", "", VERIFIER]);
    assert!(r.is_err());
    assert_eq!(got, ev(&[("hset", "code")]));

    // The exchange: the code is replaced by its tombstone, with its expiry, in
    // one RESTORE ... REPLACE, which raises `restore` (on a replica too).
    let (r, got) = e.of(&mut c, &["OAUTH.EXCHANGE", "code", "app1", "", VERIFIER]);
    r.unwrap();
    assert_eq!(got, ev(&[("restore", "code")]));
    // Reuse without an issued token: nothing to revoke, nothing raised.
    let (r, got) = e.of(&mut c, &["OAUTH.EXCHANGE", "code", "app1", "", VERIFIER]);
    assert!(r.is_err());
    assert_eq!(got, vec![]);

    // With ISSUE, the token is created too; its reuse deletes it.
    save_code(&mut c, "code2");
    let (_, got) = e.of(&mut c, &["PING"]);
    assert_eq!(got, ev(&[("restore", "code2")]));
    let (r, got) = e.of(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code2",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "tok2",
            "60",
        ],
    );
    r.unwrap();
    assert_eq!(
        got,
        ev(&[("restore", "code2"), ("hset", "tok2"), ("expire", "tok2"),])
    );
    let (r, got) = e.of(&mut c, &good_exchange("code2"));
    assert!(r.is_err());
    assert_eq!(got, ev(&[("del", "tok2")]));

    // Burning a code deletes it.
    save_code(&mut c, "code3");
    let (_, got) = e.of(&mut c, &["PING"]);
    assert_eq!(got, ev(&[("restore", "code3")]));
    for _ in 0..2 {
        let (r, got) = e.of(&mut c, &["OAUTH.EXCHANGE", "code3", "x", "", ""]);
        assert!(r.is_err());
        assert_eq!(got, ev(&[("hset", "code3")]));
    }
    let (r, got) = e.of(&mut c, &["OAUTH.EXCHANGE", "code3", "x", "", ""]);
    assert!(r.is_err());
    assert_eq!(got, ev(&[("del", "code3")]));

    // Tokens and state.
    let (_, got) = e.of(
        &mut c,
        &["OAUTH.SAVETOKEN", "tok", "60", "FIELDS", "1", "sub", "u"],
    );
    assert_eq!(got, ev(&[("hset", "tok"), ("expire", "tok")]));
    let (_, got) = e.of(&mut c, &["OAUTH.REVOKE", "tok", "nope"]);
    assert_eq!(got, ev(&[("del", "tok")]));
    let (_, got) = e.of(&mut c, &["OAUTH.SAVESTATE", "st", "60", "FIELDS", "0"]);
    assert_eq!(got, ev(&[("restore", "st")]));
    let (_, got) = e.of(&mut c, &["OAUTH.CONSUMESTATE", "st"]);
    assert_eq!(got, ev(&[("del", "st")]));

    // Rate limits: SET ... PXAT raises set and expire; a denial with a TTL raises nothing.
    let (_, got) = e.of(&mut c, &["OAUTH.RATELIMIT", "rl", "1", "60"]);
    assert_eq!(got, ev(&[("set", "rl"), ("expire", "rl")]));
    let (r, got) = e.of(&mut c, &["OAUTH.RATELIMIT", "rl", "1", "60"]);
    assert_eq!(ints(&r.unwrap())[0], 1);
    assert_eq!(got, vec![]);
    let (_, got) = e.of(&mut c, &["OAUTH.RATELIMIT", "peek", "1", "60", "COST", "0"]);
    assert_eq!(got, vec![]);
    // A denied counter without expiry only gets its expiry.
    let (_, got) = e.of(&mut c, &["SET", "immortal", "9"]);
    assert_eq!(got, ev(&[("set", "immortal")]));
    let (_, got) = e.of(&mut c, &["OAUTH.RATELIMIT", "immortal", "1", "60"]);
    assert_eq!(got, ev(&[("expire", "immortal")]));
}

fn ints(v: &Value) -> Vec<i64> {
    redis::FromRedisValue::from_redis_value(v).expect("integers")
}
