//! The operators' commands against a real server: OAUTH.SCAN (listing by
//! class with filters), OAUTH.PURGECLIENT (a client's cascade, replicated and
//! reloaded), their ACL checks, and the census in INFO oauth_census (counts
//! by class, after restart, AOF reload, resync and promotion).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use redis::{Connection, Value};

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        other => panic!("not an array: {other:?}"),
    }
}

/// A map reply (RESP2 flat array or RESP3 map) as (name, value) pairs.
fn entries(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(a) => a.chunks(2).map(|c| (text(&c[0]), &c[1])).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (text(k), v)).collect(),
        other => panic!("not a map: {other:?}"),
    }
}

/// One listed record: key, kind, expires_at_ms, created_ms, fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    key: String,
    kind: String,
    expires_at_ms: i64,
    created_ms: i64,
    fields: Vec<(String, String)>,
}

fn listed(v: &Value) -> Listed {
    let e = entries(v);
    let get = |n: &str| {
        e.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {n} in {v:?}"))
    };
    let int = |n: &str| match get(n) {
        Value::Int(i) => *i,
        other => panic!("{n} is not an integer: {other:?}"),
    };
    let mut fields: Vec<(String, String)> = entries(get("fields"))
        .into_iter()
        .map(|(k, v)| (k, text(v)))
        .collect();
    fields.sort();
    assert_eq!(
        e.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["key", "kind", "expires_at_ms", "created_ms", "fields"]
    );
    Listed {
        key: text(get("key")),
        kind: text(get("kind")),
        expires_at_ms: int("expires_at_ms"),
        created_ms: int("created_ms"),
        fields,
    }
}

/// Every record OAUTH.SCAN lists with `filters`, walking the cursor to 0 in
/// steps of `count`.
fn scan_all(c: &mut Connection, count: usize, filters: &[&str]) -> Vec<Listed> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    let mut calls = 0;
    loop {
        let count_s = count.to_string();
        let mut args = vec!["OAUTH.SCAN", cursor.as_str(), "COUNT", count_s.as_str()];
        args.extend_from_slice(filters);
        let r = run(c, &args).unwrap_or_else(|e| panic!("{args:?}: {}", error_text(&e)));
        let parts = items(&r);
        assert_eq!(parts.len(), 2, "{r:?}");
        out.extend(items(&parts[1]).iter().map(listed));
        cursor = text(&parts[0]);
        calls += 1;
        assert!(calls < 10_000, "the cursor never came back to 0");
        if cursor == "0" {
            break;
        }
    }
    out.sort();
    out
}

fn kinds(list: &[Listed]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|l| (l.key.clone(), l.kind.clone()))
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs PURGECLIENT to cursor 0 in steps of `count`; the summed counts.
fn purge_all(c: &mut Connection, client: &str, count: usize) -> BTreeMap<String, i64> {
    let mut cursor = "0".to_string();
    let mut total = BTreeMap::new();
    loop {
        let count_s = count.to_string();
        let args = [
            "OAUTH.PURGECLIENT",
            client,
            cursor.as_str(),
            "COUNT",
            count_s.as_str(),
        ];
        let r = run(c, &args).unwrap_or_else(|e| panic!("{args:?}: {}", error_text(&e)));
        let parts = items(&r);
        for (k, v) in entries(&parts[1]) {
            let n = match v {
                Value::Int(i) => *i,
                other => panic!("count {k} is {other:?}"),
            };
            *total.entry(k).or_insert(0) += n;
        }
        cursor = text(&parts[0]);
        if cursor == "0" {
            break;
        }
    }
    total
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    let mut m: BTreeMap<String, i64> = [
        "code",
        "redeemed_code",
        "token",
        "refresh",
        "rotated_refresh",
        "client",
        "state",
        "grant",
    ]
    .iter()
    .map(|k| (k.to_string(), 0))
    .collect();
    for (k, v) in pairs {
        m.insert(k.to_string(), *v);
    }
    m
}

fn code(c: &mut Connection, key: &str, client: &str, sub: &str) {
    ok(
        c,
        &[
            "OAUTH.SAVECODE",
            key,
            "600",
            "FIELDS",
            "5",
            "client_id",
            client,
            "redirect_uri",
            "https://app/cb",
            "code_challenge",
            CHALLENGE,
            "code_challenge_method",
            "S256",
            "sub",
            sub,
        ],
    );
}

/// Two clients' worth of records and some keys that are not records:
/// - app1 (sub u1): grant g1 = a redeemed code, an access token, a rotated
///   refresh token, its successor and a second access token; a live code
///   (g3); a registration; a state.
/// - app2 (sub u2): a live code (g2); a registration; a token saved with
///   SAVETOKEN (sub u9).
/// - not records: a string, a rate-limit counter, a plain hash, a plain set,
///   a set that names a token but is not its grant.
fn populate(c: &mut Connection) {
    code(c, "oauth:{g1}:code", "app1", "u1");
    run(
        c,
        &[
            "OAUTH.EXCHANGE",
            "oauth:{g1}:code",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "oauth:{g1}:at",
            "600",
            "REFRESH",
            "oauth:{g1}:rt",
            "3600",
            "GRANT",
            "oauth:{g1}:grant",
        ],
    )
    .expect("exchange");
    run(
        c,
        &[
            "OAUTH.ROTATE",
            "oauth:{g1}:rt",
            "oauth:{g1}:rt2",
            "3600",
            "ISSUE",
            "oauth:{g1}:at2",
            "600",
        ],
    )
    .expect("rotate");
    code(c, "oauth:{g3}:code", "app1", "u1");
    code(c, "oauth:{g2}:code", "app2", "u2");
    for (key, client) in [("oauth:client:app1", "app1"), ("oauth:client:app2", "app2")] {
        run(
            c,
            &[
                "OAUTH.SAVECLIENT",
                key,
                "FIELDS",
                "3",
                "client_id",
                client,
                "client_name",
                "An app",
                "client_secret",
                "a-long-enough-client-secret-value",
            ],
        )
        .expect("saveclient");
    }
    ok(
        c,
        &[
            "OAUTH.SAVESTATE",
            "oauth:state:s1",
            "300",
            "FIELDS",
            "1",
            "client_id",
            "app1",
        ],
    );
    ok(
        c,
        &[
            "OAUTH.SAVETOKEN",
            "oauth:tok:jti9",
            "600",
            "FIELDS",
            "3",
            "client_id",
            "app2",
            "sub",
            "u9",
            "scope",
            "read",
        ],
    );
    ok(c, &["SET", "plain", "1"]);
    run(c, &["OAUTH.RATELIMIT", "rl:{ip}:token", "10", "60"]).expect("ratelimit");
    run(c, &["HSET", "plainhash", "client_id", "app1"]).expect("hset");
    run(c, &["SADD", "plainset", "a", "b"]).expect("sadd");
    run(c, &["SADD", "fakegrant", "oauth:{g1}:at"]).expect("sadd");
}

fn all_records() -> BTreeSet<(String, String)> {
    set(&[
        ("oauth:{g1}:code", "redeemed_code"),
        ("oauth:{g1}:at", "token"),
        ("oauth:{g1}:rt", "rotated_refresh"),
        ("oauth:{g1}:rt2", "refresh"),
        ("oauth:{g1}:at2", "token"),
        ("oauth:{g1}:grant", "grant"),
        ("oauth:{g3}:code", "code"),
        ("oauth:{g2}:code", "code"),
        ("oauth:client:app1", "client"),
        ("oauth:client:app2", "client"),
        ("oauth:state:s1", "state"),
        ("oauth:tok:jti9", "token"),
    ])
}

#[test]
fn scan_lists_every_record_by_class_and_nothing_else() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    for count in [1, 3, 100] {
        assert_eq!(
            kinds(&scan_all(&mut c, count, &[])),
            all_records(),
            "COUNT {count}"
        );
    }
    // The same over RESP3 (maps instead of flat arrays).
    let mut c3 = s.conn3();
    assert_eq!(kinds(&scan_all(&mut c3, 5, &[])), all_records());
}

#[test]
fn scan_answers_fields_and_times_but_no_bookkeeping_or_secret() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    let list = scan_all(&mut c, 100, &[]);
    let by_key = |k: &str| list.iter().find(|l| l.key == k).expect("listed").clone();
    for l in &list {
        assert_eq!(l.expires_at_ms, pexpiretime(&mut c, &l.key), "{}", l.key);
        assert!(
            l.fields.iter().all(|(f, _)| !f.starts_with('_')),
            "no bookkeeping field: {l:?}"
        );
    }
    let client = by_key("oauth:client:app1");
    assert_eq!(
        client.fields,
        owned(&[("client_id", "app1"), ("client_name", "An app")]),
        "no client_secret, no _secret_sha256"
    );
    assert!(client.created_ms > 0);
    let at = by_key("oauth:{g1}:at");
    assert_eq!(field_of(&at, "client_id"), "app1");
    assert_eq!(field_of(&at, "sub"), "u1");
    let created: i64 = hget(&mut c, "oauth:{g1}:at", "_created")
        .parse()
        .expect("ms");
    assert_eq!(at.created_ms, created);
    let code = by_key("oauth:{g2}:code");
    assert_eq!(code.created_ms, -1, "codes do not keep _created");
    assert_eq!(field_of(&code, "code_challenge"), CHALLENGE);
    let grant = by_key("oauth:{g1}:grant");
    let members: i64 = redis::cmd("SCARD")
        .arg("oauth:{g1}:grant")
        .query(&mut c)
        .expect("SCARD");
    assert_eq!(field_of(&grant, "members"), members.to_string());
    assert_eq!(field_of(&grant, "client_id"), "app1");
    assert_eq!(field_of(&grant, "sub"), "u1");
}

fn field_of(l: &Listed, name: &str) -> String {
    l.fields
        .iter()
        .find(|(f, _)| f == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} in {l:?}"))
}

fn hget(c: &mut Connection, key: &str, field: &str) -> String {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query(c)
        .expect("HGET")
}

#[test]
fn scan_filters_by_kind_client_subject_and_pattern() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            &["KIND", "token"],
            &[
                ("oauth:{g1}:at", "token"),
                ("oauth:{g1}:at2", "token"),
                ("oauth:tok:jti9", "token"),
            ],
        ),
        (&["kind", "REFRESH"], &[("oauth:{g1}:rt2", "refresh")]),
        (
            &["KIND", "rotated_refresh"],
            &[("oauth:{g1}:rt", "rotated_refresh")],
        ),
        (
            &["KIND", "redeemed_code"],
            &[("oauth:{g1}:code", "redeemed_code")],
        ),
        (
            &["KIND", "code"],
            &[("oauth:{g3}:code", "code"), ("oauth:{g2}:code", "code")],
        ),
        (&["KIND", "grant"], &[("oauth:{g1}:grant", "grant")]),
        (&["KIND", "state"], &[("oauth:state:s1", "state")]),
        (
            &["CLIENT", "app2"],
            &[
                ("oauth:{g2}:code", "code"),
                ("oauth:client:app2", "client"),
                ("oauth:tok:jti9", "token"),
            ],
        ),
        (
            &["SUBJECT", "u1", "KIND", "token"],
            &[("oauth:{g1}:at", "token"), ("oauth:{g1}:at2", "token")],
        ),
        (&["CLIENT", "app1", "SUBJECT", "u9"], &[]),
        (
            &["MATCH", "oauth:{g1}:*", "KIND", "token"],
            &[("oauth:{g1}:at", "token"), ("oauth:{g1}:at2", "token")],
        ),
        (&["CLIENT", "app"], &[]),
    ];
    for (filters, want) in cases {
        assert_eq!(
            kinds(&scan_all(&mut c, 4, filters)),
            set(want),
            "{filters:?}"
        );
    }
}

#[test]
fn scan_and_purge_refuse_bad_input_and_change_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    let cases: &[(&[&str], &str)] = &[
        (&["OAUTH.SCAN"], "ERR wrong number of arguments for 'oauth.scan' command"),
        (
            &["OAUTH.SCAN", "-1"],
            "INVALID_REQUEST cursor must be 0 or a cursor returned by the previous call",
        ),
        (
            &["OAUTH.SCAN", "abc"],
            "INVALID_REQUEST cursor must be 0 or a cursor returned by the previous call",
        ),
        (
            &["OAUTH.SCAN", "0", "COUNT"],
            "INVALID_REQUEST an option is missing its value",
        ),
        (
            &["OAUTH.SCAN", "0", "COUNT", "0"],
            "INVALID_REQUEST COUNT must be an integer from 1 to 10000",
        ),
        (
            &["OAUTH.SCAN", "0", "COUNT", "99999"],
            "INVALID_REQUEST COUNT must be an integer from 1 to 10000",
        ),
        (
            &["OAUTH.SCAN", "0", "KIND", "tokens"],
            "INVALID_REQUEST KIND must be one of code, redeemed_code, token, refresh, rotated_refresh, client, state, grant",
        ),
        (
            &["OAUTH.SCAN", "0", "TYPE", "hash"],
            "INVALID_REQUEST unknown option; expected MATCH, COUNT, KIND, CLIENT or SUBJECT",
        ),
        (
            &["OAUTH.SCAN", "0", "CLIENT", "a", "CLIENT", "b"],
            "INVALID_REQUEST CLIENT is given more than once",
        ),
        (
            &["OAUTH.PURGECLIENT", "app1"],
            "ERR wrong number of arguments for 'oauth.purgeclient' command",
        ),
        (
            &["OAUTH.PURGECLIENT", "", "0"],
            "INVALID_REQUEST client_id must not be empty",
        ),
        (
            &["OAUTH.PURGECLIENT", "app1", "x"],
            "INVALID_REQUEST cursor must be 0 or a cursor returned by the previous call",
        ),
        (
            &["OAUTH.PURGECLIENT", "app1", "0", "KIND", "token"],
            "INVALID_REQUEST unknown option; expected MATCH or COUNT",
        ),
        (
            &["OAUTH.PURGECLIENT", "app1", "0", "COUNT", "-5"],
            "INVALID_REQUEST COUNT must be an integer from 1 to 10000",
        ),
    ];
    for (args, want) in cases {
        refused_unchanged(&mut c, args, want);
    }
}

#[test]
fn purgeclient_deletes_one_clients_records_counts_them_and_replicates() {
    let (master, replica) = master_and_replica(Opts {
        server_args: vec!["--appendonly".into(), "yes".into()],
        ..Opts::default()
    });
    let mut c = master.conn();
    populate(&mut c);
    let before = snapshot(&mut c);
    let got = purge_all(&mut c, "app1", 2);
    assert_eq!(
        got,
        counts(&[
            ("code", 1),
            ("redeemed_code", 1),
            ("token", 2),
            ("refresh", 1),
            ("rotated_refresh", 1),
            ("client", 1),
            ("state", 1),
            ("grant", 1),
        ])
    );
    assert_eq!(info_counter(&mut c, "records_purged"), 9);
    let after = snapshot(&mut c);
    let gone: BTreeSet<String> = before
        .iter()
        .filter(|k| !after.contains(k))
        .map(|k| k.0.clone())
        .collect();
    let expected_gone: BTreeSet<String> = all_records()
        .into_iter()
        .filter(|(k, _)| {
            !["oauth:{g2}:code", "oauth:client:app2", "oauth:tok:jti9"].contains(&k.as_str())
        })
        .map(|(k, _)| k)
        .collect();
    assert_eq!(gone, expected_gone, "only app1's records went");
    assert!(
        after.iter().all(|k| before.contains(k)),
        "nothing else changed"
    );
    // The plain hash naming app1 is not a record: kept.
    assert!(exists(&mut c, "plainhash"));
    // A second purge finds nothing.
    assert_eq!(purge_all(&mut c, "app1", 100), counts(&[]));
    // The replica and an AOF reload reach the same state.
    master.wait_replica(&replica);
    assert_eq!(snapshot(&mut replica.conn()), after);
    let master = master.restart();
    assert_eq!(snapshot(&mut master.conn()), after);
}

#[test]
fn purgeclient_raises_del_events_like_del() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    ok(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let mut sub = s.conn();
    let mut ps = sub.as_pubsub();
    ps.psubscribe("__keyevent@0__:*").expect("psubscribe");
    purge_all(&mut c, "app2", 100);
    ok(&mut c, &["SET", "marker", "1"]);
    let events: BTreeSet<(String, String)> =
        keyevents_until(&mut ps, "marker").into_iter().collect();
    assert_eq!(
        events,
        set(&[
            ("del", "oauth:{g2}:code"),
            ("del", "oauth:client:app2"),
            ("del", "oauth:tok:jti9"),
        ])
    );
}

#[test]
fn admin_commands_check_each_key_against_the_callers_acl() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    // Reads only the {g1} grant's keys; may delete nothing.
    ok(
        &mut c,
        &[
            "ACL",
            "SETUSER",
            "support",
            "on",
            "nopass",
            "%R~oauth:{g1}:*",
            "+oauth.scan",
            "+oauth.purgeclient",
        ],
    );
    // Reads and deletes the {g2} keys and app2's registration only.
    ok(
        &mut c,
        &[
            "ACL",
            "SETUSER",
            "ops2",
            "on",
            "nopass",
            "~oauth:{g2}:*",
            "~oauth:client:app2",
            "+oauth.scan",
            "+oauth.purgeclient",
        ],
    );
    let mut support = s.conn();
    run(&mut support, &["AUTH", "support", "x"]).expect("auth");
    let seen = kinds(&scan_all(&mut support, 3, &[]));
    let g1: BTreeSet<(String, String)> = all_records()
        .into_iter()
        .filter(|(k, _)| k.starts_with("oauth:{g1}:"))
        .collect();
    assert_eq!(seen, g1, "only keys the user may read are listed");
    // It can read app1's grant but not delete it: refused, nothing deleted.
    let before = snapshot(&mut c);
    let e = err(
        &mut support,
        &["OAUTH.PURGECLIENT", "app1", "0", "COUNT", "1000"],
    );
    assert!(e.starts_with("NOPERM "), "{e}");
    assert!(e.contains("nothing was deleted"), "{e}");
    assert_eq!(snapshot(&mut c), before);

    // ops2 purges app2 in its keys; the token of app2 outside them stays.
    let mut ops2 = s.conn();
    run(&mut ops2, &["AUTH", "ops2", "x"]).expect("auth");
    assert_eq!(
        purge_all(&mut ops2, "app2", 3),
        counts(&[("code", 1), ("client", 1)])
    );
    assert!(exists(&mut c, "oauth:tok:jti9"));
    assert!(!exists(&mut c, "oauth:{g2}:code"));
}

// ---------------------------------------------------------------------------
// The census (INFO oauth_census)
// ---------------------------------------------------------------------------

fn records_only(m: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    m.iter()
        .filter(|(k, _)| k.starts_with("records_") || *k == "subjects")
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn expected_census() -> BTreeMap<String, i64> {
    let m: BTreeMap<String, i64> = [
        ("records_code", 2),
        ("records_redeemed_code", 1),
        ("records_token", 3),
        ("records_refresh", 1),
        ("records_rotated_refresh", 1),
        ("records_client", 2),
        ("records_state", 1),
        ("records_grant", 1),
        // u1 (two access tokens and a live refresh token) and u9.
        ("subjects", 2),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    m
}

#[test]
fn census_counts_records_by_class() {
    let s = Server::start();
    let mut c = s.conn();
    let empty = fresh_census(&mut c);
    assert!(records_only(&empty).values().all(|v| *v == 0), "{empty:?}");
    populate(&mut c);
    let got = fresh_census(&mut c);
    assert_eq!(records_only(&got), expected_census());
    assert_eq!(got["census_batch"], 1000);
    assert!(got["census_age_ms"] >= 0);
    assert_eq!(
        got["census_keys"], 17,
        "every key is looked at once per pass"
    );

    // A small batch takes several ticks per pass and counts the same.
    ok(&mut c, &["CONFIG", "SET", "oauth.census-batch", "2"]);
    assert_eq!(records_only(&fresh_census(&mut c)), expected_census());

    // Changes show in the next pass: a purge, a flush.
    ok(&mut c, &["CONFIG", "SET", "oauth.census-batch", "1000"]);
    purge_all(&mut c, "app2", 100);
    let after = fresh_census(&mut c);
    assert_eq!(after["records_code"], 1);
    assert_eq!(after["records_client"], 1);
    assert_eq!(after["records_token"], 2);
    assert_eq!(after["subjects"], 1);
    ok(&mut c, &["FLUSHALL"]);
    assert!(records_only(&fresh_census(&mut c))
        .values()
        .all(|v| *v == 0));

    // Batch 0 stops the census; the last pass stays published.
    ok(&mut c, &["CONFIG", "SET", "oauth.census-batch", "0"]);
    std::thread::sleep(Duration::from_millis(300));
    let stopped = census(&mut c)["census_passes"];
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(census(&mut c)["census_passes"], stopped);
}

/// A server that expires keys only when they are looked up.
fn without_active_expiry() -> Server {
    let s = Server::start_with(Opts {
        server_args: vec!["--enable-debug-command".into(), "yes".into()],
        ..Opts::default()
    });
    ok(&mut s.conn(), &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    s
}

fn token(c: &mut Connection, key: &str, ttl: &str, sub: &str) {
    ok(c, &["OAUTH.SAVETOKEN", key, ttl, "FIELDS", "1", "sub", sub]);
}

#[test]
fn census_skips_expired_keys_and_counts_every_database() {
    let s = without_active_expiry();
    let mut c = s.conn();
    token(&mut c, "t:short", "1", "u1");
    ok(&mut c, &["SELECT", "3"]);
    token(&mut c, "t:db3", "600", "u3");
    let got = fresh_census(&mut c);
    assert_eq!(got["records_token"], 2);
    std::thread::sleep(Duration::from_millis(1100));
    let got = fresh_census(&mut c);
    assert_eq!(got["records_token"], 1, "the expired token is not live");
    assert_eq!(got["subjects"], 1);
}

#[test]
fn census_is_rebuilt_after_restart_reload_resync_and_promotion() {
    let (master, replica) = master_and_replica(Opts {
        server_args: vec![
            "--appendonly".into(),
            "yes".into(),
            "--enable-debug-command".into(),
            "yes".into(),
        ],
        ..Opts::default()
    });
    let mut m = master.conn();
    populate(&mut m);
    master.wait_replica(&replica);
    let want = expected_census();
    assert_eq!(records_only(&fresh_census(&mut m)), want, "master");
    let mut r = replica.conn();
    assert_eq!(records_only(&fresh_census(&mut r)), want, "replica");

    // AOF reload in place.
    run(&mut m, &["DEBUG", "LOADAOF"]).expect("DEBUG LOADAOF");
    assert_eq!(
        records_only(&fresh_census(&mut m)),
        want,
        "after DEBUG LOADAOF"
    );

    // The replica promoted: the same data, the same counts.
    ok(&mut r, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(
        records_only(&fresh_census(&mut r)),
        want,
        "promoted replica"
    );
    drop(r);
    drop(replica);

    // A restart from the AOF.
    let master = master.restart();
    let mut m = master.conn();
    assert_eq!(records_only(&fresh_census(&mut m)), want, "after restart");

    // A new replica's full resync.
    let replica = replica_of(&master);
    master.wait_replica(&replica);
    assert_eq!(
        records_only(&fresh_census(&mut replica.conn())),
        want,
        "after a full resync"
    );
}

#[test]
fn census_and_admin_reads_stay_out_of_monitor_and_command_stats() {
    let s = Server::start();
    let mut c = s.conn();
    populate(&mut c);
    ok(&mut c, &["CONFIG", "RESETSTAT"]);
    let mut mon = s.conn();
    run(&mut mon, &["MONITOR"]).expect("monitor");
    fresh_census(&mut c);
    ok(&mut c, &["SET", "marker", "1"]);
    // The first line MONITOR shows after our INFO polling is the marker.
    let mut seen = Vec::new();
    loop {
        let v: Value = mon.recv_response().expect("monitor line");
        let line = text(&v);
        if line.contains("\"marker\"") {
            break;
        }
        seen.push(line);
    }
    assert!(
        seen.iter().all(|l| l.contains("\"INFO\"")),
        "the census sent no command: {seen:?}"
    );
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .expect("INFO commandstats");
    for cmd in [
        "cmdstat_scan",
        "cmdstat_smembers",
        "cmdstat_srandmember",
        "cmdstat_hgetall",
    ] {
        assert!(!stats.contains(cmd), "{cmd} in {stats}");
    }
}

#[test]
fn census_reads_without_side_effects() {
    let s = without_active_expiry();
    let mut c = s.conn();
    token(&mut c, "t:short", "1", "u1");
    token(&mut c, "t:long", "600", "u2");
    let stat = |c: &mut Connection, name: &str| -> i64 {
        let info: String = redis::cmd("INFO").arg("stats").query(c).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .expect("stat")
            .trim()
            .parse()
            .expect("int")
    };
    std::thread::sleep(Duration::from_millis(1100));
    let hits = stat(&mut c, "keyspace_hits");
    let misses = stat(&mut c, "keyspace_misses");
    let got = fresh_census(&mut c);
    fresh_census(&mut c);
    assert_eq!(got["records_token"], 1, "the expired token is not counted");
    assert_eq!(
        stat(&mut c, "keyspace_hits"),
        hits,
        "no keyspace hit counted"
    );
    assert_eq!(stat(&mut c, "keyspace_misses"), misses);
    assert_eq!(
        stat(&mut c, "expired_keys"),
        0,
        "the census expires nothing"
    );
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
    assert_eq!(
        dbsize, 2,
        "the expired key is still there (active expiry is off)"
    );
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("t:long")
        .query(&mut c)
        .expect("IDLETIME");
    assert!(
        idle >= 1,
        "the census did not touch the key's LRU: idle {idle}"
    );
}
