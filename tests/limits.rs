//! OAUTH.THROTTLE (GCRA), OAUTH.RATELIMIT ... SLIDING and OAUTH.RATELIMITALL
//! against a real server: reply shapes, what is (not) written, expiries,
//! parameter validation, and a random sequence after which every key has a TTL.

mod common;
use common::*;

#[test]
fn throttle_matches_cl_throttle_shape() {
    let s = Server::start();
    let mut c = s.conn();
    // burst 15, 30 per 60 s: limit 16, one request every 2 s.
    assert_eq!(
        ints(&mut c, &["OAUTH.THROTTLE", "th", "15", "30", "60"]),
        vec![0, 16, 15, -1, 2]
    );
    for _ in 0..15 {
        assert_eq!(
            ints(&mut c, &["OAUTH.THROTTLE", "th", "15", "30", "60"])[0],
            0
        );
    }
    let r = ints(&mut c, &["OAUTH.THROTTLE", "th", "15", "30", "60"]);
    assert_eq!(r[..3], [1, 16, 0]);
    assert!(
        r[3] == 1 || r[3] == 2,
        "retry_after rounds up to whole seconds: {r:?}"
    );
    assert!(r[4] >= 31 && r[4] <= 32, "{r:?}");
    // The state is a plain integer (TAT in ns) with an expiry at the TAT.
    let tat: i64 = redis::cmd("GET").arg("th").query(&mut c).unwrap();
    let exp: i64 = redis::cmd("PEXPIRETIME").arg("th").query(&mut c).unwrap();
    assert_eq!(exp, (tat + 999_999) / 1_000_000);
}

#[test]
fn throttle_writes_only_allowed_requests_and_peeks() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(
        ints(
            &mut c,
            &["OAUTH.THROTTLE", "p", "2", "1", "60", "COST", "0"]
        ),
        vec![0, 3, 3, -1, 0]
    );
    assert!(!exists(&mut c, "p"), "a peek writes nothing");
    assert_eq!(
        ints(
            &mut c,
            &["OAUTH.THROTTLE", "p", "2", "1", "60", "COST", "3"]
        )[..3],
        [0, 3, 0]
    );
    let before: String = redis::cmd("GET").arg("p").query(&mut c).unwrap();
    assert_eq!(ints(&mut c, &["OAUTH.THROTTLE", "p", "2", "1", "60"])[0], 1);
    let after: String = redis::cmd("GET").arg("p").query(&mut c).unwrap();
    assert_eq!(before, after, "a refused request does not write");
    // A cost above the burst can never pass: retry_after -1.
    assert_eq!(
        ints(
            &mut c,
            &["OAUTH.THROTTLE", "q", "2", "1", "60", "COST", "4"]
        ),
        vec![1, 3, 3, -1, 0]
    );
    assert!(!exists(&mut c, "q"));
}

#[test]
fn throttle_rejects_bad_parameters() {
    let s = Server::start();
    let mut c = s.conn();
    for (args, want) in [
        (
            vec!["OAUTH.THROTTLE", "k", "-1", "1", "1"],
            "INVALID_REQUEST max_burst must be an integer from 0 to 4611686018427387903",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "1", "0", "1"],
            "INVALID_REQUEST count must be an integer from 1 to 4611686018427387904",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "1", "1", "0"],
            "INVALID_REQUEST period must be an integer number of seconds from 1 to 31622400",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "1", "1", "31622401"],
            "INVALID_REQUEST period must be an integer number of seconds from 1 to 31622400",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "1", "1", "1", "COST", "-1"],
            "INVALID_REQUEST COST must be an integer from 0 to 4611686018427387904",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "x", "1", "1"],
            "INVALID_REQUEST max_burst is not an integer",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "1", "1", "1", "COST"],
            "INVALID_REQUEST unknown option; expected COST n",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "1", "1", "1", "BURST", "2"],
            "INVALID_REQUEST unknown option; expected COST n",
        ),
        (
            vec!["OAUTH.THROTTLE", "k", "1", "99999999999999999999", "1"],
            "INVALID_REQUEST count is not an integer",
        ),
    ] {
        assert_eq!(err(&mut c, &args), want, "{args:?}");
    }
    assert!(err(&mut c, &["OAUTH.THROTTLE", "k", "1", "1"])
        .starts_with("ERR wrong number of arguments"));
    run(&mut c, &["HSET", "h", "a", "1"]).unwrap();
    assert!(err(&mut c, &["OAUTH.THROTTLE", "h", "1", "1", "1"]).starts_with("WRONGTYPE"));
    run(&mut c, &["SET", "s", "abc"]).unwrap();
    assert_eq!(
        err(&mut c, &["OAUTH.THROTTLE", "s", "1", "1", "1"]),
        "WRONGTYPE key holds a string that is not a throttle state"
    );
    // Largest parameters work.
    let r = ints(
        &mut c,
        &[
            "OAUTH.THROTTLE",
            "big",
            "4611686018427387903",
            "4611686018427387904",
            "31622400",
            "COST",
            "4611686018427387904",
        ],
    );
    assert_eq!(r[0], 0);
    assert!(pttl(&mut c, "big") > 0);
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

#[test]
fn all_or_nothing_multi_limit() {
    let s = Server::start();
    let mut c = s.conn();
    let all = [
        "OAUTH.RATELIMITALL",
        "2",
        "rl:{u}:ip",
        "rl:{u}:user",
        "5",
        "60",
        "2",
        "60",
    ];
    assert_eq!(ints(&mut c, &all), vec![0, 2, 1, -1, 60, 2]);
    assert_eq!(ints(&mut c, &all), vec![0, 2, 0, -1, 60, 2]);
    let r = ints(&mut c, &all);
    assert_eq!(r[..3], [1, 2, 0]);
    assert_eq!(r[5], 2, "the user limit refused");
    let counts: Vec<i64> = redis::cmd("MGET")
        .arg("rl:{u}:ip")
        .arg("rl:{u}:user")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        counts,
        vec![2, 2],
        "a refused request is counted against none of the limits"
    );
    // COST and SLIDING apply to every limit.
    let r = ints(
        &mut c,
        &[
            "OAUTH.RATELIMITALL",
            "2",
            "a",
            "b",
            "10",
            "60",
            "10",
            "60",
            "COST",
            "4",
            "SLIDING",
        ],
    );
    assert_eq!(r[..3], [0, 10, 6]);
    assert_eq!(
        redis::cmd("TYPE").arg("a").query::<String>(&mut c).unwrap(),
        "hash"
    );
    for (args, want) in [
        (vec!["OAUTH.RATELIMITALL", "0", "a", "1", "1"], "INVALID_REQUEST numkeys must be at least 1, followed by that many keys and as many limit window pairs"),
        (vec!["OAUTH.RATELIMITALL", "2", "a", "b", "1", "1"], "INVALID_REQUEST numkeys must be at least 1, followed by that many keys and as many limit window pairs"),
        (vec!["OAUTH.RATELIMITALL", "2", "a", "a", "1", "1", "1", "1"], "INVALID_REQUEST a key appears twice; each limit needs its own key"),
        (vec!["OAUTH.RATELIMITALL", "1", "z", "0", "1"], "INVALID_REQUEST limit must be an integer from 1 to 4611686018427387904"),
        (vec!["OAUTH.RATELIMITALL", "1", "z", "1", "1", "FOO"], "INVALID_REQUEST unknown or repeated option; expected COST n or SLIDING"),
    ] {
        assert_eq!(err(&mut c, &args), want, "{args:?}");
    }
    // A wrong type anywhere fails the whole call and writes nothing.
    run(&mut c, &["LPUSH", "l", "x"]).unwrap();
    assert!(err(
        &mut c,
        &[
            "OAUTH.RATELIMITALL",
            "2",
            "fresh",
            "l",
            "5",
            "60",
            "5",
            "60"
        ]
    )
    .starts_with("WRONGTYPE"));
    assert!(!exists(&mut c, "fresh"));
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg(&[
            "OAUTH.RATELIMITALL",
            "3",
            "k1",
            "k2",
            "k3",
            "1",
            "1",
            "1",
            "1",
            "1",
            "1",
            "COST",
            "2",
        ])
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["k1", "k2", "k3"]);
}

/// A long random mix of every limiter call: afterwards no key lacks a TTL.
#[test]
fn no_counter_is_left_without_expiry() {
    let s = Server::start();
    let mut c = s.conn();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..3000 {
        let k = format!("k{}", next(8));
        let limit = (1 + next(5)).to_string();
        let win = (1 + next(3)).to_string();
        let cost = next(4).to_string();
        let args: Vec<String> = match next(4) {
            0 => vec![
                "OAUTH.RATELIMIT".into(),
                format!("f{k}"),
                limit,
                win,
                "COST".into(),
                cost,
            ],
            1 => vec![
                "OAUTH.RATELIMIT".into(),
                format!("s{k}"),
                limit,
                win,
                "COST".into(),
                cost,
                "SLIDING".into(),
            ],
            2 => vec![
                "OAUTH.THROTTLE".into(),
                format!("t{k}"),
                limit,
                "2".into(),
                win,
                "COST".into(),
                cost,
            ],
            _ => vec![
                "OAUTH.RATELIMITALL".into(),
                "2".into(),
                format!("a{k}"),
                format!("b{k}"),
                limit.clone(),
                win.clone(),
                limit,
                win,
                "COST".into(),
                cost,
            ],
        };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&mut c, &refs).unwrap_or_else(|e| panic!("{refs:?}: {e}"));
    }
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        assert!(pttl(&mut c, &k) > 0, "{k} has no expiry");
    }
}

#[test]
fn throttle_refuses_a_state_that_is_not_a_tat() {
    let s = Server::start();
    let mut c = s.conn();
    for v in ["-5", "abc", "1.5", ""] {
        run(&mut c, &["SET", "th", v, "EX", "60"]).unwrap();
        let e = err(&mut c, &["OAUTH.THROTTLE", "th", "1", "5", "60"]);
        assert_eq!(
            e, "WRONGTYPE key holds a string that is not a throttle state",
            "{v:?}"
        );
        let got: Vec<u8> = redis::cmd("GET").arg("th").query(&mut c).unwrap();
        assert_eq!(got, v.as_bytes(), "the state was changed");
    }
}
