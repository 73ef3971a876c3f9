//! OAUTH.RATELIMIT, both windows. The fixed window's counter is a plain
//! integer string with its expiry set in the same step; `SLIDING` keeps a hash
//! of the current and previous windows. Reply:
//! `[limited, limit, remaining, retry_after (-1 when allowed), reset_after]`.

mod common;
use common::*;

const NOT_A_COUNTER: &str = "WRONGTYPE key holds a string that is not a rate-limit counter";

fn rl(c: &mut Connection, args: &[&str]) -> [i64; 5] {
    let mut full = vec!["OAUTH.RATELIMIT"];
    full.extend_from_slice(args);
    let v: Vec<i64> = redis::FromRedisValue::from_redis_value(
        &run(c, &full).unwrap_or_else(|e| panic!("{full:?}: {e}")),
    )
    .expect("five integers");
    v.try_into().expect("exactly five integers")
}

fn get(c: &mut Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(c).expect("GET")
}

/// Runs a command that must fail with an error starting with `prefix` and change nothing.
fn refused_prefix_unchanged(c: &mut Connection, args: &[&str], prefix: &str) -> String {
    let before = snapshot(c);
    let e = err(c, args);
    assert!(e.starts_with(prefix), "{args:?}: {e}");
    assert_eq!(snapshot(c), before, "{args:?} changed the data");
    e
}

#[test]
fn fixed_window_counts_then_denies_without_counting() {
    let s = Server::start();
    let mut c = s.conn();
    let t0 = server_ms(&mut c);
    assert_eq!(rl(&mut c, &["rl:a", "3", "60"]), [0, 3, 2, -1, 60]);
    let t1 = server_ms(&mut c);
    // The first write sets the expiry, one window ahead.
    let exp = pexpiretime(&mut c, "rl:a");
    assert!((t0 + 60_000..=t1 + 60_000).contains(&exp), "{exp}");
    assert_eq!(get(&mut c, "rl:a").as_deref(), Some("1"));

    let r = rl(&mut c, &["rl:a", "3", "60"]);
    assert_eq!(r[..4], [0, 3, 1, -1]);
    assert!((59..=60).contains(&r[4]), "{r:?}");
    let r = rl(&mut c, &["rl:a", "3", "60"]);
    assert_eq!(r[..4], [0, 3, 0, -1]);
    assert_eq!(get(&mut c, "rl:a").as_deref(), Some("3"));
    // Later writes keep the window's expiry (fixed window).
    assert_eq!(pexpiretime(&mut c, "rl:a"), exp);

    for _ in 0..3 {
        let r = rl(&mut c, &["rl:a", "3", "60"]);
        assert_eq!(r[..3], [1, 3, 0], "{r:?}");
        assert!((59..=60).contains(&r[3]), "retry_after {r:?}");
        assert_eq!(r[3], r[4], "retry and reset agree when limited: {r:?}");
        // Denied requests are not counted and do not move the window.
        assert_eq!(get(&mut c, "rl:a").as_deref(), Some("3"));
        assert_eq!(pexpiretime(&mut c, "rl:a"), exp);
    }
    assert_eq!(info_counter(&mut c, "ratelimit_allowed"), 3);
    assert_eq!(info_counter(&mut c, "ratelimit_limited"), 3);
    // Another key has its own counter.
    assert_eq!(rl(&mut c, &["rl:b", "3", "60"]), [0, 3, 2, -1, 60]);
}

#[test]
fn a_new_window_starts_after_expiry() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(rl(&mut c, &["rl:w", "1", "1"]), [0, 1, 0, -1, 1]);
    assert_eq!(rl(&mut c, &["rl:w", "1", "1"]), [1, 1, 0, 1, 1]);
    let deadline = pexpiretime(&mut c, "rl:w");
    while server_ms(&mut c) <= deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(rl(&mut c, &["rl:w", "1", "1"]), [0, 1, 0, -1, 1]);
    assert_eq!(get(&mut c, "rl:w").as_deref(), Some("1"));
}

#[test]
fn cost_counts_n_and_a_denied_cost_is_not_counted() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(
        rl(&mut c, &["k", "5", "60", "COST", "2"]),
        [0, 5, 3, -1, 60]
    );
    assert_eq!(get(&mut c, "k").as_deref(), Some("2"));
    let r = rl(&mut c, &["k", "5", "60", "cost", "3"]);
    assert_eq!(r[..4], [0, 5, 0, -1]);
    assert_eq!(get(&mut c, "k").as_deref(), Some("5"));
    let r = rl(&mut c, &["k", "5", "60", "COST", "1"]);
    assert_eq!(r[..3], [1, 5, 0]);
    assert_eq!(get(&mut c, "k").as_deref(), Some("5"));

    // A cost larger than what remains is denied and leaves the count alone.
    assert_eq!(rl(&mut c, &["j", "5", "60", "COST", "3"])[..3], [0, 5, 2]);
    let exp = pexpiretime(&mut c, "j");
    let r = rl(&mut c, &["j", "5", "60", "COST", "3"]);
    assert_eq!(r[..3], [1, 5, 2], "{r:?}");
    assert!(r[3] >= 1 && r[3] == r[4], "{r:?}");
    assert_eq!(get(&mut c, "j").as_deref(), Some("3"));
    assert_eq!(pexpiretime(&mut c, "j"), exp);
    // A cost equal to the limit is allowed on a fresh key.
    assert_eq!(
        rl(&mut c, &["i", "4", "60", "COST", "4"]),
        [0, 4, 0, -1, 60]
    );
}

#[test]
fn cost_zero_is_a_peek_that_counts_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(rl(&mut c, &["p", "3", "60", "COST", "0"]), [0, 3, 3, -1, 0]);
    assert!(!exists(&mut c, "p"), "a peek must not create the key");
    assert_eq!(rl(&mut c, &["p", "3", "60"])[..4], [0, 3, 2, -1]);
    let before = snapshot(&mut c);
    let r = rl(&mut c, &["p", "3", "60", "COST", "0"]);
    assert_eq!(r[..4], [0, 3, 2, -1]);
    assert!((59..=60).contains(&r[4]), "{r:?}");
    assert_eq!(snapshot(&mut c), before, "a peek must not write");
    // A peek at a counter without expiry counts nothing but gives it one:
    // an immortal counter would block its client forever.
    ok(&mut c, &["SET", "q", "1"]);
    let r = rl(&mut c, &["q", "3", "60", "COST", "0"]);
    assert_eq!(r[..4], [0, 3, 2, -1]);
    assert!(pexpiretime(&mut c, "q") > 0);
    assert_eq!(get(&mut c, "q").as_deref(), Some("1"));
}

#[test]
fn invalid_arguments_are_invalid_request_and_write_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    let limit = "INVALID_REQUEST limit must be an integer from 1 to 4611686018427387904";
    let window = "INVALID_REQUEST window must be an integer number of seconds from 1 to 31622400";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["k", "3", "60", "COST", "-1"],
            "INVALID_REQUEST COST must be a non-negative integer",
        ),
        (
            vec!["k", "3", "60", "COST", "x"],
            "INVALID_REQUEST COST is not an integer",
        ),
        (vec!["k", "0", "60"], limit),
        (vec!["k", "-1", "60"], limit),
        (vec!["k", "4611686018427387905", "60"], limit),
        (vec!["k", "3", "0"], window),
        (vec!["k", "3", "-60"], window),
        (vec!["k", "3", "31622401"], window),
        (
            vec!["k", "ten", "60"],
            "INVALID_REQUEST limit is not an integer",
        ),
        (
            vec!["k", "3.5", "60"],
            "INVALID_REQUEST limit is not an integer",
        ),
        (
            vec!["k", "", "60"],
            "INVALID_REQUEST limit is not an integer",
        ),
        (
            vec!["k", "3", "1m"],
            "INVALID_REQUEST window is not an integer",
        ),
        (
            vec!["k", "3", "60.0"],
            "INVALID_REQUEST window is not an integer",
        ),
    ];
    for (args, expected) in &cases {
        let mut full = vec!["OAUTH.RATELIMIT"];
        full.extend_from_slice(args);
        refused_unchanged(&mut c, &full, expected);
    }
    // Option errors: the sentence names the options the command knows (which
    // grow with new modes), so only the code word is fixed here.
    for args in [
        &["k", "3", "60", "COST"][..],
        &["k", "3", "60", "COST", "1", "COST", "1"],
        &["k", "3", "60", "BURST", "1"],
        &["k", "3", "60", "1"],
    ] {
        let mut full = vec!["OAUTH.RATELIMIT"];
        full.extend_from_slice(args);
        refused_prefix_unchanged(&mut c, &full, "INVALID_REQUEST ");
    }
    refused_unchanged(
        &mut c,
        &["OAUTH.RATELIMIT", "k", "3"],
        "ERR wrong number of arguments for 'oauth.ratelimit' command",
    );
    assert!(snapshot(&mut c).is_empty());
    assert_eq!(info_counter(&mut c, "ratelimit_allowed"), 0);
    // The largest window is accepted.
    assert_eq!(
        rl(&mut c, &["k", "3", "31622400"]),
        [0, 3, 2, -1, 31_622_400]
    );
}

/// A cost above the limit can never be allowed. It is refused without being
/// counted: either as INVALID_REQUEST, or (CL.THROTTLE style) as a limited
/// reply whose retry_after is -1 ("never").
#[test]
fn a_cost_above_the_limit_is_never_allowed_and_writes_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    let check = |c: &mut Connection, key: &str, remaining: i64| {
        let before = snapshot(c);
        match run(c, &["OAUTH.RATELIMIT", key, "3", "60", "COST", "4"]) {
            Err(e) => assert_eq!(
                error_text(&e),
                "INVALID_REQUEST COST is larger than the limit: such a request could never be allowed"
            ),
            Ok(v) => {
                let r: Vec<i64> = redis::FromRedisValue::from_redis_value(&v).unwrap();
                assert_eq!(r[..4], [1, 3, remaining, -1], "{r:?}");
            }
        }
        assert_eq!(snapshot(c), before, "a cost above the limit must not write");
    };
    check(&mut c, "fresh", 3);
    assert!(!exists(&mut c, "fresh"));
    rl(&mut c, &["used", "3", "60"]);
    check(&mut c, "used", 2);
    assert_eq!(get(&mut c, "used").as_deref(), Some("1"));
}

#[test]
fn a_counter_without_expiry_gets_one() {
    let s = Server::start();
    let mut c = s.conn();
    // Left by a plain INCR, below the limit: counted and given the window.
    run(&mut c, &["INCR", "rl:incr"]).unwrap();
    assert_eq!(pexpiretime(&mut c, "rl:incr"), -1);
    let t0 = server_ms(&mut c);
    assert_eq!(rl(&mut c, &["rl:incr", "3", "60"]), [0, 3, 1, -1, 60]);
    let t1 = server_ms(&mut c);
    assert_eq!(get(&mut c, "rl:incr").as_deref(), Some("2"));
    let exp = pexpiretime(&mut c, "rl:incr");
    assert!((t0 + 60_000..=t1 + 60_000).contains(&exp), "{exp}");

    // At or over the limit: denied, not counted, but given an expiry so it cannot stick.
    ok(&mut c, &["SET", "rl:stuck", "7"]);
    let t0 = server_ms(&mut c);
    assert_eq!(rl(&mut c, &["rl:stuck", "3", "60"]), [1, 3, 0, 60, 60]);
    let t1 = server_ms(&mut c);
    assert_eq!(get(&mut c, "rl:stuck").as_deref(), Some("7"));
    let exp = pexpiretime(&mut c, "rl:stuck");
    assert!((t0 + 60_000..=t1 + 60_000).contains(&exp), "{exp}");
    // The expiry is not pushed back by later denials.
    rl(&mut c, &["rl:stuck", "3", "60"]);
    assert_eq!(pexpiretime(&mut c, "rl:stuck"), exp);
}

#[test]
fn keys_of_another_type_are_wrongtype() {
    let s = Server::start();
    let mut c = s.conn();
    run(&mut c, &["HSET", "hash", "a", "1"]).unwrap();
    run(&mut c, &["RPUSH", "list", "1"]).unwrap();
    save_code(&mut c, "code");
    ok(&mut c, &["SET", "text", "abc"]);
    ok(&mut c, &["SET", "negative", "-3"]);
    ok(&mut c, &["SET", "float", "1.5"]);
    ok(&mut c, &["SET", "empty", ""]);
    refused_unchanged(
        &mut c,
        &["OAUTH.RATELIMIT", "list", "3", "60"],
        WRONG_REDIS_TYPE,
    );
    // A hash is not a fixed-window counter (the sentence may point at another mode).
    for key in ["hash", "code"] {
        refused_prefix_unchanged(&mut c, &["OAUTH.RATELIMIT", key, "3", "60"], "WRONGTYPE ");
    }
    for key in ["text", "negative", "float", "empty"] {
        refused_unchanged(&mut c, &["OAUTH.RATELIMIT", key, "3", "60"], NOT_A_COUNTER);
        refused_unchanged(
            &mut c,
            &["OAUTH.RATELIMIT", key, "3", "60", "COST", "0"],
            NOT_A_COUNTER,
        );
    }
}

#[test]
fn every_key_written_has_a_ttl() {
    let s = Server::start();
    let mut c = s.conn();
    for i in 0..20 {
        let key = format!("rl:{i}");
        let limit = (i % 4 + 1).to_string();
        for _ in 0..(i % 6) {
            rl(&mut c, &[&key, &limit, "30"]);
        }
        rl(&mut c, &[&key, &limit, "30", "COST", "1"]);
    }
    ok(&mut c, &["SET", "rl:plain", "100"]);
    rl(&mut c, &["rl:plain", "5", "30"]);
    let snap = snapshot(&mut c);
    assert_eq!(snap.len(), 21);
    for (k, t, content, exp) in &snap {
        assert_eq!(t, "string", "{k}");
        assert!(*exp > 0, "{k} has no expiry");
        let n: i64 = content[0].1.parse().expect("an integer counter");
        assert!(n >= 1, "{k} = {n}");
    }
}

#[test]
fn sliding_window_counts_and_expires() {
    let s = Server::start();
    let mut c = s.conn();
    let r = ints(&mut c, &["OAUTH.RATELIMIT", "sl", "2", "10", "SLIDING"]);
    assert_eq!(r[..4], [0, 2, 1, -1]);
    assert_eq!(
        ints(&mut c, &["OAUTH.RATELIMIT", "sl", "2", "10", "SLIDING"])[..3],
        [0, 2, 0]
    );
    let r = ints(&mut c, &["OAUTH.RATELIMIT", "sl", "2", "10", "SLIDING"]);
    assert_eq!(r[..3], [1, 2, 0]);
    assert!(r[3] >= 1);
    let h: Vec<(String, String)> = redis::cmd("HGETALL").arg("sl").query(&mut c).unwrap();
    let names: Vec<&str> = h.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["window_start", "current", "previous"]);
    assert_eq!(h[1].1, "2", "the refused request was not counted");
    let t = pttl(&mut c, "sl");
    assert!(
        t > 10_000 && t <= 20_000,
        "expires two windows after its start: {t}"
    );
    // Peek and option order.
    assert_eq!(
        ints(
            &mut c,
            &["OAUTH.RATELIMIT", "sl2", "2", "10", "COST", "0", "SLIDING"]
        ),
        vec![0, 2, 2, -1, 0]
    );
    assert!(!exists(&mut c, "sl2"));
    // Modes do not mix on one key.
    assert!(err(&mut c, &["OAUTH.RATELIMIT", "sl", "2", "10"]).starts_with("WRONGTYPE"));
    run(&mut c, &["OAUTH.RATELIMIT", "fx", "2", "10"]).unwrap();
    assert!(err(&mut c, &["OAUTH.RATELIMIT", "fx", "2", "10", "SLIDING"]).starts_with("WRONGTYPE"));
    run(&mut c, &["HSET", "other", "a", "1"]).unwrap();
    assert_eq!(
        err(&mut c, &["OAUTH.RATELIMIT", "other", "2", "10", "SLIDING"]),
        "WRONGTYPE key holds a hash that is not a sliding-window counter"
    );
    assert!(err(
        &mut c,
        &["OAUTH.RATELIMIT", "x", "2", "10", "SLIDING", "SLIDING"]
    )
    .starts_with("INVALID_REQUEST"));
}
