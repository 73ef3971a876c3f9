//! Single-use CSRF state: OAUTH.SAVESTATE and OAUTH.CONSUMESTATE.

mod common;
use common::*;

const NOT_A_STATE: &str =
    "WRONGTYPE key does not hold a state record; it holds another kind of record or a plain hash";

#[test]
fn state_is_returned_once_then_nil() {
    let s = Server::start();
    let mut c = s.conn();
    let t0 = server_ms(&mut c);
    ok(
        &mut c,
        &[
            "OAUTH.SAVESTATE",
            "st:1",
            "300",
            "FIELDS",
            "2",
            "nonce",
            "n-1",
            "redirect_uri",
            "https://app/cb",
        ],
    );
    let t1 = server_ms(&mut c);
    let stored = hgetall(&mut c, "st:1");
    assert_eq!(
        stored.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        vec!["_kind", "nonce", "redirect_uri"],
        "a state record carries `_kind` but no `_created`"
    );
    assert_eq!(stored[0].1, "state");
    let exp = pexpiretime(&mut c, "st:1");
    assert!((t0 + 300_000..=t1 + 300_000).contains(&exp));
    let v = run(&mut c, &["OAUTH.CONSUMESTATE", "st:1"]).expect("consume");
    assert_eq!(
        sorted_pairs(&v),
        owned(&[("nonce", "n-1"), ("redirect_uri", "https://app/cb")])
    );
    assert!(!exists(&mut c, "st:1"));
    assert_eq!(
        run(&mut c, &["OAUTH.CONSUMESTATE", "st:1"]).unwrap(),
        Value::Nil
    );
    assert_eq!(
        run(&mut c, &["OAUTH.CONSUMESTATE", "never"]).unwrap(),
        Value::Nil
    );
    // An empty state answers an empty map.
    ok(&mut c, &["OAUTH.SAVESTATE", "st:2", "1", "FIELDS", "0"]);
    assert_eq!(
        run(&mut c, &["OAUTH.CONSUMESTATE", "st:2"]).unwrap(),
        Value::Array(vec![])
    );
    assert_eq!(info_counter(&mut c, "states_saved"), 2);
    assert_eq!(info_counter(&mut c, "states_consumed"), 2);
    assert!(snapshot(&mut c).is_empty());
}

#[test]
fn consumestate_on_another_kind_is_wrongtype() {
    let s = Server::start();
    let mut c = s.conn();
    save_token(&mut c, "tok", "60");
    save_code(&mut c, "code");
    ok(&mut c, &["SET", "string", "v"]);
    run(&mut c, &["HSET", "hash", "nonce", "n"]).unwrap();
    run(&mut c, &["SADD", "set", "a"]).unwrap();
    for key in ["tok", "code", "hash"] {
        refused_unchanged(&mut c, &["OAUTH.CONSUMESTATE", key], NOT_A_STATE);
    }
    for key in ["string", "set"] {
        refused_unchanged(&mut c, &["OAUTH.CONSUMESTATE", key], WRONG_REDIS_TYPE);
    }
    assert_eq!(
        err(&mut c, &["OAUTH.CONSUMESTATE"]),
        "ERR wrong number of arguments for 'oauth.consumestate' command"
    );
    assert_eq!(
        err(&mut c, &["OAUTH.CONSUMESTATE", "a", "b"]),
        "ERR wrong number of arguments for 'oauth.consumestate' command"
    );
}

#[test]
fn savestate_errors_change_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    ok(&mut c, &["OAUTH.SAVESTATE", "st", "60", "FIELDS", "0"]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["OAUTH.SAVESTATE", "s", "601", "FIELDS", "0"],
            "INVALID_REQUEST ttl must be an integer from 1 to 600",
        ),
        (
            vec!["OAUTH.SAVESTATE", "s", "0", "FIELDS", "0"],
            "INVALID_REQUEST ttl must be an integer from 1 to 600",
        ),
        (
            vec!["OAUTH.SAVESTATE", "s", "x", "FIELDS", "0"],
            "INVALID_REQUEST ttl is not an integer",
        ),
        (
            vec!["OAUTH.SAVESTATE", "s", "60", "FIELDS", "1", "_nonce", "n"],
            RESERVED,
        ),
        (
            vec!["OAUTH.SAVESTATE", "s", "60", "FIELDS", "3", "a", "1"],
            "INVALID_REQUEST numfields is 3 but 1 pair follows; FIELDS must be last and hold exactly numfields field value pairs",
        ),
        (vec!["OAUTH.SAVESTATE", "st", "60", "FIELDS", "0"], EXISTS),
        (
            vec!["OAUTH.SAVESTATE", "s", "60", "FIELDS"],
            "ERR wrong number of arguments for 'oauth.savestate' command",
        ),
    ];
    for (args, expected) in &cases {
        refused_unchanged(&mut c, args, expected);
    }
    ok(&mut c, &["OAUTH.SAVESTATE", "s600", "600", "FIELDS", "0"]);
}
