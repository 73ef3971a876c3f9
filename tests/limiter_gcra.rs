//! OAUTH.THROTTLE (GCRA, CL.THROTTLE's reply): reply shape, only allowed
//! requests written, peeks, parameter validation, and states that are not a TAT.

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
