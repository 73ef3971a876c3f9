//! OAUTH.RATELIMITALL (every limit or none), and a long random mix of every
//! limiter call after which no key lacks a TTL.

mod common;
use common::*;

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
