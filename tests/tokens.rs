//! Access tokens: OAUTH.SAVETOKEN, OAUTH.INTROSPECT (RFC 7662) in RESP2 and
//! RESP3, OAUTH.REVOKE (RFC 7009), and binary field values.

mod common;
use common::*;

const NOT_A_TOKEN: &str =
    "WRONGTYPE key does not hold a token record; it holds another kind of record or a plain hash";

fn created_of(c: &mut Connection, key: &str) -> i64 {
    hgetall(c, key)
        .into_iter()
        .find(|(f, _)| f == "_created")
        .expect("_created")
        .1
        .parse()
        .expect("_created is an integer")
}

/// The only inactive answer: `active` false and nothing else.
fn assert_inactive(s: &Server, key: &str) {
    let v = run(&mut s.conn(), &["OAUTH.INTROSPECT", key]).expect("introspect");
    assert_eq!(
        v,
        Value::Array(vec![Value::BulkString(b"active".to_vec()), Value::Int(0)]),
        "RESP2 introspection of {key}"
    );
    let v = run(&mut s.conn3(), &["OAUTH.INTROSPECT", key]).expect("introspect resp3");
    assert_eq!(
        v,
        Value::Map(vec![(
            Value::BulkString(b"active".to_vec()),
            Value::Boolean(false)
        )]),
        "RESP3 introspection of {key}"
    );
}

#[test]
fn savetoken_stores_a_token_record_with_its_expiry() {
    let s = Server::start();
    let mut c = s.conn();
    let t0 = server_ms(&mut c);
    save_token(&mut c, "tok:1", "3600");
    let t1 = server_ms(&mut c);
    let created = created_of(&mut c, "tok:1");
    assert!((t0..=t1).contains(&created));
    let mut expected = owned(&[
        ("_kind", "token"),
        ("sub", "u42"),
        ("client_id", "app1"),
        ("scope", "mcp:read"),
    ]);
    expected.push(("_created".into(), created.to_string()));
    expected.sort();
    assert_eq!(hgetall(&mut c, "tok:1"), expected);
    let exp = pexpiretime(&mut c, "tok:1");
    assert!((t0 + 3_600_000..=t1 + 3_600_000).contains(&exp));
    // An empty field list is a valid token; the largest ttl is token-max-ttl.
    ok(
        &mut c,
        &["OAUTH.SAVETOKEN", "tok:2", "2592000", "FIELDS", "0"],
    );
    assert_eq!(
        hgetall(&mut c, "tok:2")
            .into_iter()
            .map(|(f, _)| f)
            .collect::<Vec<_>>(),
        vec!["_created", "_kind"]
    );
    assert!(pexpiretime(&mut c, "tok:2") > t1 + 2_591_000_000);
    assert_eq!(info_counter(&mut c, "tokens_saved"), 2);
}

#[test]
fn savetoken_errors_change_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    save_token(&mut c, "tok:1", "60");
    ok(&mut c, &["SET", "str", "v"]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["OAUTH.SAVETOKEN", "t", "0", "FIELDS", "0"],
            "INVALID_REQUEST ttl must be an integer from 1 to 2592000",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "-5", "FIELDS", "0"],
            "INVALID_REQUEST ttl must be an integer from 1 to 2592000",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "2592001", "FIELDS", "0"],
            "INVALID_REQUEST ttl must be an integer from 1 to 2592000",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "1h", "FIELDS", "0"],
            "INVALID_REQUEST ttl is not an integer",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "2", "a", "b"],
            "INVALID_REQUEST numfields is 2 but 1 pair follows; FIELDS must be last and hold exactly numfields field value pairs",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "0", "a", "b"],
            "INVALID_REQUEST numfields is 0 but 1 pair follows; FIELDS must be last and hold exactly numfields field value pairs",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "1", "_kind", "state"],
            RESERVED,
        ),
        (vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "1", "exp", "1"], RESERVED),
        (vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "1", "iat", "1"], RESERVED),
        (
            vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "1", "active", "true"],
            RESERVED,
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "2", "a", "1", "a", "1"],
            "INVALID_REQUEST a field name is given twice",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t", "60", "NOFIELDS", "0"],
            "INVALID_REQUEST unknown option; expected GRANT or FIELDS",
        ),
        (vec!["OAUTH.SAVETOKEN", "tok:1", "60", "FIELDS", "0"], EXISTS),
        (vec!["OAUTH.SAVETOKEN", "str", "60", "FIELDS", "0"], EXISTS),
        (
            vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS"],
            "ERR wrong number of arguments for 'oauth.savetoken' command",
        ),
        (
            vec!["OAUTH.SAVETOKEN", "t"],
            "ERR wrong number of arguments for 'oauth.savetoken' command",
        ),
    ];
    for (args, expected) in &cases {
        refused_unchanged(&mut c, args, expected);
    }
}

#[test]
fn introspect_resp2_is_a_flat_array_with_active_1() {
    let s = Server::start();
    let mut c = s.conn();
    save_token(&mut c, "tok:1", "3600");
    let v = run(&mut c, &["OAUTH.INTROSPECT", "tok:1"]).expect("introspect");
    let items = match &v {
        Value::Array(items) => items.clone(),
        other => panic!("RESP2 introspection must be a flat array: {other:?}"),
    };
    assert_eq!(items.len() % 2, 0);
    assert_eq!(items[0], Value::BulkString(b"active".to_vec()));
    assert_eq!(items[1], Value::Int(1));
    let exp_ms = pexpiretime(&mut c, "tok:1");
    let created = created_of(&mut c, "tok:1");
    // exp and iat are integers; the rest are the stored fields, no bookkeeping.
    let find = |name: &str| {
        items
            .chunks(2)
            .find(|p| p[0] == Value::BulkString(name.as_bytes().to_vec()))
            .map(|p| p[1].clone())
    };
    assert_eq!(find("exp"), Some(Value::Int(exp_ms / 1000)));
    assert_eq!(find("iat"), Some(Value::Int(created / 1000)));
    assert_eq!(
        sorted_pairs(&v),
        owned(&[
            ("active", "1"),
            ("sub", "u42"),
            ("client_id", "app1"),
            ("scope", "mcp:read"),
            ("exp", &(exp_ms / 1000).to_string()),
            ("iat", &(created / 1000).to_string()),
        ])
    );
    // Introspection is read-only.
    let before = snapshot(&mut c);
    run(&mut c, &["OAUTH.INTROSPECT", "tok:1"]).unwrap();
    assert_eq!(snapshot(&mut c), before);
}

#[test]
fn introspect_resp3_is_a_map_with_boolean_true() {
    let s = Server::start();
    let mut c = s.conn();
    save_token(&mut c, "tok:1", "120");
    let exp_ms = pexpiretime(&mut c, "tok:1");
    let created = created_of(&mut c, "tok:1");
    let v = run(&mut s.conn3(), &["OAUTH.INTROSPECT", "tok:1"]).expect("introspect");
    let map = match &v {
        Value::Map(m) => m.clone(),
        other => panic!("RESP3 introspection must be a map: {other:?}"),
    };
    assert_eq!(
        map[0],
        (Value::BulkString(b"active".to_vec()), Value::Boolean(true))
    );
    let get = |name: &str| {
        map.iter()
            .find(|(k, _)| *k == Value::BulkString(name.as_bytes().to_vec()))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("exp"), Some(Value::Int(exp_ms / 1000)));
    assert_eq!(get("iat"), Some(Value::Int(created / 1000)));
    assert_eq!(get("sub"), Some(Value::BulkString(b"u42".to_vec())));
    assert_eq!(map.len(), 6, "{map:?}");
    assert!(map.iter().all(|(k, _)| match k {
        Value::BulkString(b) => !b.starts_with(b"_"),
        _ => false,
    }));
}

#[test]
fn introspect_inactive_answers_only_active_false() {
    let s = Server::start();
    let mut c = s.conn();
    save_token(&mut c, "revoked", "60");
    assert_eq!(
        run(&mut c, &["OAUTH.REVOKE", "revoked"]).unwrap(),
        Value::Int(1)
    );
    save_code(&mut c, "code");
    save_code(&mut c, "tomb");
    run(
        &mut c,
        &["OAUTH.EXCHANGE", "tomb", "app1", "https://app/cb", VERIFIER],
    )
    .unwrap();
    ok(
        &mut c,
        &["OAUTH.SAVESTATE", "state", "60", "FIELDS", "1", "sub", "u"],
    );
    ok(&mut c, &["SET", "string", "v"]);
    run(&mut c, &["HSET", "hash", "sub", "u42", "_kind", "tokenx"]).unwrap();
    run(&mut c, &["RPUSH", "list", "a"]).unwrap();
    for key in [
        "missing", "revoked", "code", "tomb", "state", "string", "hash", "list",
    ] {
        assert_inactive(&s, key);
    }
    assert_eq!(
        err(&mut c, &["OAUTH.INTROSPECT"]),
        "ERR wrong number of arguments for 'oauth.introspect' command"
    );
    // A second argument is not a key: refused either by arity or as an unknown option.
    let e = err(&mut c, &["OAUTH.INTROSPECT", "a", "b"]);
    assert!(
        e == "ERR wrong number of arguments for 'oauth.introspect' command"
            || e.starts_with("INVALID_REQUEST "),
        "{e}"
    );
}

#[test]
fn introspect_after_expiry_is_inactive() {
    let s = Server::start();
    let mut c = s.conn();
    save_token(&mut c, "short", "1");
    let v = run(&mut c, &["OAUTH.INTROSPECT", "short"]).unwrap();
    assert_eq!(field(&v, "active").as_deref(), Some("1"));
    let deadline = pexpiretime(&mut c, "short");
    while server_ms(&mut c) <= deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_inactive(&s, "short");
}

#[test]
fn revoke_counts_removed_tokens() {
    let s = Server::start();
    let mut c = s.conn();
    for k in ["t1", "t2", "t3", "t4"] {
        save_token(&mut c, k, "60");
    }
    assert_eq!(
        run(&mut c, &["OAUTH.REVOKE", "t1", "t2", "unknown"]).unwrap(),
        Value::Int(2)
    );
    assert!(!exists(&mut c, "t1") && !exists(&mut c, "t2"));
    assert!(exists(&mut c, "t3"));
    // Unknown keys are not an error (RFC 7009 §2.2).
    assert_eq!(
        run(&mut c, &["OAUTH.REVOKE", "unknown"]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(run(&mut c, &["OAUTH.REVOKE", "t1"]).unwrap(), Value::Int(0));
    // A key listed twice counts once.
    assert_eq!(
        run(&mut c, &["OAUTH.REVOKE", "t3", "t3", "t3"]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(info_counter(&mut c, "tokens_revoked"), 3);
    assert!(exists(&mut c, "t4"));
    assert_eq!(
        err(&mut c, &["OAUTH.REVOKE"]),
        "ERR wrong number of arguments for 'oauth.revoke' command"
    );
}

#[test]
fn revoke_of_another_kind_is_wrongtype_and_removes_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    save_token(&mut c, "t1", "60");
    save_token(&mut c, "t2", "60");
    save_code(&mut c, "code");
    ok(&mut c, &["OAUTH.SAVESTATE", "state", "60", "FIELDS", "0"]);
    ok(&mut c, &["SET", "string", "v"]);
    run(&mut c, &["HSET", "hash", "a", "b"]).unwrap();
    for (bad, expected) in [
        ("code", NOT_A_TOKEN),
        ("state", NOT_A_TOKEN),
        ("hash", NOT_A_TOKEN),
        ("string", WRONG_REDIS_TYPE),
    ] {
        // Before, between and after real tokens: nothing is removed.
        refused_unchanged(&mut c, &["OAUTH.REVOKE", "t1", bad, "t2"], expected);
        refused_unchanged(&mut c, &["OAUTH.REVOKE", bad], expected);
        refused_unchanged(&mut c, &["OAUTH.REVOKE", "t1", "t2", bad], expected);
    }
    assert_eq!(info_counter(&mut c, "tokens_revoked"), 0);
}

#[test]
fn binary_field_values_round_trip() {
    let s = Server::start();
    let mut c = s.conn();
    let value: &[u8] = b"a\0b\xff\r\nc";
    let name: &[u8] = b"bin\xfe";
    for (cmd, key) in [("OAUTH.SAVETOKEN", "tok"), ("OAUTH.SAVESTATE", "st")] {
        let r: redis::RedisResult<Value> = redis::cmd(cmd)
            .arg(key)
            .arg(60)
            .arg("FIELDS")
            .arg(1)
            .arg(name)
            .arg(value)
            .query(&mut c);
        // Whatever the answer, nothing may be left without its expiry.
        for (k, _, _, exp) in snapshot(&mut c) {
            assert!(
                exp > 0,
                "{cmd} answered {r:?} and left {k:?} without expiry"
            );
        }
        assert_eq!(r.expect(cmd), Value::Okay);
    }
    let intro = run(&mut c, &["OAUTH.INTROSPECT", "tok"]).unwrap();
    let Value::Array(items) = intro else {
        panic!("{intro:?}")
    };
    assert!(items
        .chunks(2)
        .any(|p| p[0] == Value::BulkString(name.to_vec())
            && p[1] == Value::BulkString(value.to_vec())));
    let st = run(&mut c, &["OAUTH.CONSUMESTATE", "st"]).unwrap();
    assert_eq!(
        st,
        Value::Array(vec![
            Value::BulkString(name.to_vec()),
            Value::BulkString(value.to_vec())
        ])
    );
}
