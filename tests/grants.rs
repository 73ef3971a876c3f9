//! Grants: the index an exchange with `GRANT` registers (its members and
//! expiry, revoked whole on code reuse), how `OAUTH.REVOKE` and
//! `OAUTH.REVOKEGRANT` shrink and remove it, and grant indexes or `_grant`
//! fields written by hand that must not lead the module to other keys.

mod common;
use common::*;
use std::collections::HashSet;

#[test]
fn exchange_registers_the_grant() {
    let s = Server::start();
    let mut c = s.conn();
    let (at, rt, g) = authorize(&mut c, "a");
    assert_eq!(
        members(&mut c, &g),
        HashSet::from([at.clone(), rt.clone(), "c:{a}".to_string()])
    );
    let rt_exp: i64 = redis::cmd("PEXPIRETIME").arg(&rt).query(&mut c).unwrap();
    let g_exp: i64 = redis::cmd("PEXPIRETIME").arg(&g).query(&mut c).unwrap();
    assert_eq!(
        g_exp, rt_exp,
        "the index expires with its longest-lived member"
    );
    let h: Vec<(String, String)> = redis::cmd("HGETALL").arg(&rt).query(&mut c).unwrap();
    assert!(h.contains(&("_kind".into(), "refresh".into())));
    assert!(h.contains(&("sub".into(), "u1".into())));
    assert!(h.contains(&("_grant".into(), g.clone())));
    // Code reuse revokes the whole grant.
    let e = err(&mut c, &["OAUTH.EXCHANGE", "c:{a}", "app1", CB, VERIFIER]);
    assert_eq!(e, "INVALID_GRANT authorization code already used");
    for k in [&at, &rt, &g] {
        assert!(!exists(&mut c, k), "{k} survived code reuse");
    }
    // REFRESH needs GRANT; keys must differ.
    save_code(&mut c, "c2");
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.EXCHANGE",
                "c2",
                "app1",
                CB,
                VERIFIER,
                "REFRESH",
                "r",
                "60"
            ]
        ),
        "INVALID_REQUEST REFRESH needs GRANT: reuse detection revokes the refresh token's grant"
    );
    assert!(err(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "c2",
            "app1",
            CB,
            VERIFIER,
            "ISSUE",
            "x",
            "60",
            "REFRESH",
            "x",
            "60",
            "GRANT",
            "g"
        ]
    )
    .starts_with("INVALID_REQUEST"));
    run(&mut c, &["SET", "notaset", "1"]).unwrap();
    assert!(err(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "c2",
            "app1",
            CB,
            VERIFIER,
            "GRANT",
            "notaset"
        ]
    )
    .starts_with("WRONGTYPE"));
    assert!(exists(&mut c, "c2"));
}

#[test]
fn grant_index_shrinks_on_revoke_and_expires_with_its_last_member() {
    let s = Server::start();
    let mut c = s.conn();
    let (at, rt, g) = authorize(&mut c, "h");
    run(
        &mut c,
        &[
            "OAUTH.SAVETOKEN",
            "at:{h}:2",
            "600",
            "GRANT",
            &g,
            "FIELDS",
            "0",
        ],
    )
    .unwrap();
    assert!(members(&mut c, &g).contains("at:{h}:2"));
    assert_eq!(
        redis::cmd("OAUTH.REVOKE")
            .arg("at:{h}:2")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert!(!members(&mut c, &g).contains("at:{h}:2"));
    // Revoking the refresh token takes the grant's access tokens along (RFC 7009 §2.1).
    assert_eq!(
        redis::cmd("OAUTH.REVOKE")
            .arg(&rt)
            .query::<i64>(&mut c)
            .unwrap(),
        2
    );
    assert!(!exists(&mut c, &at));
    assert_eq!(members(&mut c, &g), HashSet::from(["c:{h}".to_string()]));
    assert_eq!(
        redis::cmd("OAUTH.REVOKEGRANT")
            .arg(&g)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert!(!exists(&mut c, &g));
    assert_eq!(
        redis::cmd("OAUTH.REVOKEGRANT")
            .arg(&g)
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    // Short-lived members: the index goes when they do.
    run(
        &mut c,
        &[
            "OAUTH.SAVETOKEN",
            "at:{i}:1",
            "1",
            "GRANT",
            "g:{i}",
            "FIELDS",
            "0",
        ],
    )
    .unwrap();
    let t: i64 = redis::cmd("PTTL").arg("g:{i}").query(&mut c).unwrap();
    assert!(t > 0 && t <= 1000);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(!exists(&mut c, "g:{i}"));
    run(&mut c, &["SET", "str", "x"]).unwrap();
    assert!(err(&mut c, &["OAUTH.REVOKEGRANT", "str"]).starts_with("WRONGTYPE"));
    assert!(err(
        &mut c,
        &["OAUTH.SAVETOKEN", "t", "60", "GRANT", "str", "FIELDS", "0"]
    )
    .starts_with("WRONGTYPE"));
    assert!(!exists(&mut c, "t"));
}

/// A grant index or a `_grant` field written by hand (plain SADD/HSET) must
/// not lead the module to keys its caller never named.
#[test]
fn hand_made_grants_never_reach_other_keys() {
    let s = Server::start();
    let mut c = s.conn();
    ok(&mut c, &["SET", "victim:plain", "x"]);
    run(&mut c, &["SADD", "g:forged", "victim:plain"]).unwrap();
    // A real token of another grant, listed in the forged index too.
    let (at, _rt, grant) = authorize(&mut c, "v");
    run(&mut c, &["SADD", "g:forged", &at]).unwrap();
    let n: i64 = redis::cmd("OAUTH.REVOKEGRANT")
        .arg("g:forged")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 0);
    assert!(exists(&mut c, "victim:plain"));
    assert!(exists(&mut c, &at));
    assert!(!exists(&mut c, "g:forged"));

    // A refresh record naming someone else's grant: revoking it leaves that
    // grant and its access token alone.
    run(
        &mut c,
        &[
            "HSET",
            "rt:forged",
            "_kind",
            "refresh",
            "_grant",
            &grant,
            "_created",
            "1",
        ],
    )
    .unwrap();
    run(&mut c, &["PEXPIRE", "rt:forged", "60000"]).unwrap();
    let n: i64 = redis::cmd("OAUTH.REVOKE")
        .arg("rt:forged")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    assert!(active(&mut c, &at));
    assert_eq!(members(&mut c, &grant).len(), 3);

    // A consumed code naming that grant: its reuse does not revoke it.
    run(
        &mut c,
        &[
            "HSET",
            "code:forged",
            "_kind",
            "code",
            "_consumed",
            "1",
            "_grant",
            &grant,
            "_created",
            "1",
        ],
    )
    .unwrap();
    run(&mut c, &["PEXPIRE", "code:forged", "60000"]).unwrap();
    let e = err(
        &mut c,
        &["OAUTH.EXCHANGE", "code:forged", "app1", CB, VERIFIER],
    );
    assert!(e.starts_with("INVALID_GRANT"), "{e}");
    assert!(active(&mut c, &at));

    // A consumed code without grant naming someone else's access token.
    run(
        &mut c,
        &[
            "HSET",
            "code:forged2",
            "_kind",
            "code",
            "_consumed",
            "1",
            "_token",
            &at,
            "_created",
            "1",
        ],
    )
    .unwrap();
    run(&mut c, &["PEXPIRE", "code:forged2", "60000"]).unwrap();
    let e = err(
        &mut c,
        &["OAUTH.EXCHANGE", "code:forged2", "app1", CB, VERIFIER],
    );
    assert_eq!(e, "INVALID_GRANT authorization code already used");
    assert!(active(&mut c, &at));

    // A rotated refresh token inside its grace window naming someone else's
    // refresh token as its successor: the successor is not handed out.
    let (_, rt, _) = authorize(&mut c, "w");
    let now = server_ms(&mut c).to_string();
    let until = (server_ms(&mut c) + 600_000).to_string();
    run(
        &mut c,
        &[
            "HSET",
            "rt:forged2",
            "_kind",
            "refresh",
            "_created",
            "1",
            "_rotated",
            &now,
            "_successor",
            &rt,
            "_grace_until",
            &until,
            "_grace_left",
            "3",
        ],
    )
    .unwrap();
    run(&mut c, &["PEXPIRE", "rt:forged2", "60000"]).unwrap();
    let e = rotate(&mut c, "rt:forged2", "rt:forged3", &[]).unwrap_err();
    assert_eq!(
        error_text(&e),
        "INVALID_GRANT refresh token reused; its grant is revoked"
    );
    assert!(exists(&mut c, &rt));
}
