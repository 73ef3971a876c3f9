//! Refresh tokens: `OAUTH.ROTATE` chains with reuse detection that revokes the
//! grant, its rules and errors, the grace window, concurrent rotations, and
//! `OAUTH.REVOKEBEFORE` cutoffs checked by `CUTOFF`.

mod common;
use common::*;
use std::collections::HashSet;

#[test]
fn rotation_chain_and_reuse_revokes_the_grant() {
    let s = Server::start();
    let mut c = s.conn();
    let (_, mut rt, g) = authorize(&mut c, "b");
    let mut all = vec![rt.clone()];
    for i in 1..=50 {
        let next = format!("rt:{{b}}:{i}");
        let at = format!("at:{{b}}:{i}");
        let v = rotate(&mut c, &rt, &next, &["ISSUE", &at, "600"]).unwrap();
        assert_eq!(field(&v, "_refresh_key").as_deref(), Some(next.as_str()));
        assert_eq!(field(&v, "_access_key").as_deref(), Some(at.as_str()));
        assert_eq!(field(&v, "_replayed").as_deref(), Some("0"));
        assert_eq!(field(&v, "scope").as_deref(), Some("read write"));
        assert_eq!(field(&v, "sub").as_deref(), Some("u1"));
        assert!(active(&mut c, &at));
        rt = next;
        all.push(rt.clone());
    }
    assert!(members(&mut c, &g).contains(&rt));
    // Presenting an old token again: reuse, the whole grant goes.
    let e = err(&mut c, &["OAUTH.ROTATE", &all[10], "rt:{b}:x", "3600"]);
    assert_eq!(
        e,
        "INVALID_GRANT refresh token reused; its grant is revoked"
    );
    assert!(!exists(&mut c, &g));
    assert!(!exists(&mut c, &rt), "the live refresh token is revoked");
    assert!(!active(&mut c, "at:{b}:50"), "access tokens are revoked");
    assert!(!exists(&mut c, "rt:{b}:x"), "no successor was created");
    let e = err(&mut c, &["OAUTH.ROTATE", &rt, "rt:{b}:y", "3600"]);
    assert_eq!(e, "INVALID_GRANT refresh token not found or expired");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*{b}*").query(&mut c).unwrap();
    assert!(keys.is_empty(), "left behind: {keys:?}");
}

#[test]
fn rotation_rules_and_errors() {
    let s = Server::start();
    let mut c = s.conn();
    let (at, rt, _) = authorize(&mut c, "c");
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.ROTATE",
                &rt,
                "rt:{c}:1",
                "3600",
                "FIELDS",
                "1",
                "scope",
                "read admin"
            ]
        ),
        "INVALID_SCOPE scope cannot widen on refresh"
    );
    assert!(err(&mut c, &["OAUTH.ROTATE", &rt, "rt:{c}:1", "0"]).starts_with("INVALID_REQUEST"));
    assert!(
        err(&mut c, &["OAUTH.ROTATE", &rt, "rt:{c}:1", "31536001"]).starts_with("INVALID_REQUEST")
    );
    assert!(err(
        &mut c,
        &["OAUTH.ROTATE", &rt, "rt:{c}:1", "60", "GRACE", "301"]
    )
    .starts_with("INVALID_REQUEST"));
    assert!(
        err(&mut c, &["OAUTH.ROTATE", &rt, "rt:{c}:1", "60", "BOGUS"])
            .starts_with("INVALID_REQUEST")
    );
    assert!(err(&mut c, &["OAUTH.ROTATE", &rt, &rt, "60"]).starts_with("INVALID_REQUEST"));
    assert_eq!(
        err(&mut c, &["OAUTH.ROTATE", &rt, &at, "60"]),
        "EXISTS key already exists"
    );
    assert!(err(&mut c, &["OAUTH.ROTATE", &at, "rt:{c}:1", "60"]).starts_with("WRONGTYPE"));
    // Nothing above changed the token: it still rotates, narrowing scope.
    let v = rotate(&mut c, &rt, "rt:{c}:1", &["FIELDS", "1", "scope", "read"]).unwrap();
    assert_eq!(field(&v, "scope").as_deref(), Some("read"));
    assert!(err(
        &mut c,
        &[
            "OAUTH.ROTATE",
            "rt:{c}:1",
            "rt:{c}:2",
            "60",
            "FIELDS",
            "1",
            "scope",
            "write"
        ]
    )
    .starts_with("INVALID_SCOPE"));
}

#[test]
fn grace_window_replays_the_same_successor_a_bounded_number_of_times() {
    let s = Server::start();
    let mut c = s.conn();
    let (_, rt, g) = authorize(&mut c, "d");
    let v = rotate(
        &mut c,
        &rt,
        "rt:{d}:1",
        &["ISSUE", "at:{d}:1", "600", "GRACE", "60"],
    )
    .unwrap();
    assert_eq!(field(&v, "_replayed").as_deref(), Some("0"));
    // refresh-grace-uses is 2 by default: two retries get the same successor.
    for _ in 0..2 {
        let v = rotate(
            &mut c,
            &rt,
            "rt:{d}:retry",
            &["ISSUE", "at:{d}:retry", "600", "GRACE", "60"],
        )
        .unwrap();
        assert_eq!(field(&v, "_refresh_key").as_deref(), Some("rt:{d}:1"));
        assert_eq!(field(&v, "_access_key").as_deref(), Some("at:{d}:1"));
        assert_eq!(field(&v, "_replayed").as_deref(), Some("1"));
        assert!(!exists(&mut c, "rt:{d}:retry"));
    }
    // The third is reuse.
    assert!(err(&mut c, &["OAUTH.ROTATE", &rt, "rt:{d}:retry", "3600"])
        .starts_with("INVALID_GRANT refresh token reused"));
    assert!(!exists(&mut c, &g));
    assert!(!exists(&mut c, "rt:{d}:1"));

    // Once the successor itself was used, a replay of the old token is reuse.
    let (_, rt, g) = authorize(&mut c, "e");
    rotate(&mut c, &rt, "rt:{e}:1", &["GRACE", "60"]).unwrap();
    rotate(&mut c, "rt:{e}:1", "rt:{e}:2", &[]).unwrap();
    assert!(err(&mut c, &["OAUTH.ROTATE", &rt, "rt:{e}:x", "3600"])
        .starts_with("INVALID_GRANT refresh token reused"));
    assert!(!exists(&mut c, &g));

    // The window closes.
    let (_, rt, _) = authorize(&mut c, "f");
    rotate(&mut c, &rt, "rt:{f}:1", &["GRACE", "1"]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(err(&mut c, &["OAUTH.ROTATE", &rt, "rt:{f}:x", "3600"])
        .starts_with("INVALID_GRANT refresh token reused"));
}

#[test]
fn concurrent_rotations_yield_exactly_one_successor() {
    let s = Server::start();
    let mut c = s.conn();
    for (tag, grace) in [("p", false), ("q", true)] {
        let (_, rt, _) = authorize(&mut c, tag);
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let mut conn = s.conn();
                let (rt, tag) = (rt.clone(), tag.to_string());
                std::thread::spawn(move || {
                    let new = format!("rt:{{{tag}}}:t{i}");
                    let mut args = vec!["OAUTH.ROTATE", &rt, &new, "3600"];
                    if grace {
                        args.extend_from_slice(&["GRACE", "60"]);
                    }
                    run(&mut conn, &args).map(|v| field(&v, "_refresh_key").unwrap_or_default())
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let ok: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let successors: HashSet<&String> = ok.iter().copied().collect();
        if grace {
            // First rotation + 2 grace replays succeed, all naming the same successor.
            assert_eq!(ok.len(), 3, "{results:?}");
            assert_eq!(successors.len(), 1);
        } else {
            assert_eq!(ok.len(), 1, "{results:?}");
        }
        let created: Vec<String> = redis::cmd("KEYS")
            .arg(format!("rt:{{{tag}}}:t*"))
            .query(&mut c)
            .unwrap();
        assert!(
            created.len() <= 1,
            "more than one successor stored: {created:?}"
        );
    }
}

#[test]
fn revoke_before_cutoff_deactivates_older_tokens() {
    let s = Server::start();
    let mut c = s.conn();
    let (at, rt, _) = authorize(&mut c, "u42");
    run(
        &mut c,
        &[
            "OAUTH.SAVETOKEN",
            "at:{u42}:x",
            "600",
            "FIELDS",
            "1",
            "sub",
            "u42",
        ],
    )
    .unwrap();
    let cut = "cut:{u42}";
    assert!(active(&mut c, &at));
    std::thread::sleep(std::time::Duration::from_millis(5));
    let v: i64 = redis::cmd("OAUTH.REVOKEBEFORE")
        .arg(cut)
        .query(&mut c)
        .unwrap();
    assert!(v > 0);
    for k in [&at, "at:{u42}:x"] {
        let r = run(&mut c, &["OAUTH.INTROSPECT", k, "CUTOFF", "1", cut]).unwrap();
        assert_eq!(pairs(&r), vec![("active".to_string(), "0".to_string())]);
        assert!(
            active(&mut c, k),
            "without CUTOFF the record itself is untouched"
        );
    }
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.ROTATE",
                &rt,
                "rt:{u42}:1",
                "3600",
                "CUTOFF",
                "1",
                cut
            ]
        ),
        "INVALID_GRANT refresh token revoked"
    );
    // Newer tokens are active; the cutoff key expires with the longest token lifetime.
    std::thread::sleep(std::time::Duration::from_millis(5));
    run(
        &mut c,
        &["OAUTH.SAVETOKEN", "at:{u42}:new", "600", "FIELDS", "0"],
    )
    .unwrap();
    let r = run(
        &mut c,
        &[
            "OAUTH.INTROSPECT",
            "at:{u42}:new",
            "CUTOFF",
            "2",
            cut,
            "cut:{u42}:client",
        ],
    )
    .unwrap();
    assert_eq!(field(&r, "active").as_deref(), Some("1"));
    let ttl: i64 = redis::cmd("TTL").arg(cut).query(&mut c).unwrap();
    assert!(ttl > 31_000_000, "{ttl}");
    assert!(
        err(&mut c, &["OAUTH.INTROSPECT", &at, "CUTOFF", "2", cut]).starts_with("INVALID_REQUEST")
    );
    assert!(err(&mut c, &["OAUTH.INTROSPECT", &at, "CUTOFF", "0"]).starts_with("INVALID_REQUEST"));
    run(&mut c, &["HSET", "h", "a", "1"]).unwrap();
    assert!(err(&mut c, &["OAUTH.INTROSPECT", &at, "CUTOFF", "1", "h"]).starts_with("WRONGTYPE"));
}
