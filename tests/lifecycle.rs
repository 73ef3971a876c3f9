//! Issue 3: grants, refresh-token rotation with reuse detection and grace,
//! revoke-before cutoffs, client registrations, and Cluster slot rules.

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

#[test]
fn client_secrets_are_never_stored_in_clear() {
    let s = Server::start();
    let mut c = s.conn();
    let secret = "Zm9vYmFyLXN1cGVyLXNlY3JldC12YWx1ZS0xMjM0NTY3ODk";
    let v = run(
        &mut c,
        &[
            "OAUTH.SAVECLIENT",
            "client:app1",
            "FIELDS",
            "3",
            "client_id",
            "app1",
            "client_secret",
            secret,
            "redirect_uris",
            CB,
        ],
    )
    .unwrap();
    let exp: i64 = field(&v, "client_secret_expires_at")
        .unwrap()
        .parse()
        .unwrap();
    assert!(exp > 0);
    let v2 = run(
        &mut c,
        &[
            "OAUTH.SAVECLIENT",
            "client:app2",
            "TTL",
            "3600",
            "FIELDS",
            "2",
            "client_id",
            "app2",
            "client_secret",
            "other-secret-value-0123456789abcdef",
        ],
    )
    .unwrap();
    let exp2: i64 = field(&v2, "client_secret_expires_at")
        .unwrap()
        .parse()
        .unwrap();
    assert!(exp2 < exp);
    assert_eq!(
        redis::cmd("OAUTH.VERIFYCLIENT")
            .arg("client:app1")
            .arg(secret)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("OAUTH.VERIFYCLIENT")
            .arg("client:app1")
            .arg("wrong")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("OAUTH.VERIFYCLIENT")
            .arg("client:none")
            .arg(secret)
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    let g = run(&mut c, &["OAUTH.GETCLIENT", "client:app1"]).unwrap();
    assert_eq!(field(&g, "client_id").as_deref(), Some("app1"));
    assert!(pairs(&g)
        .iter()
        .all(|(k, _)| !k.contains("secret") || k == "client_secret_expires_at"));
    // No key's dump or fields hold the secret.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    for k in &keys {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(k).query(&mut c).unwrap();
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{k} dump holds the secret"
        );
        let h: Vec<(String, String)> = redis::cmd("HGETALL").arg(k).query(&mut c).unwrap();
        assert!(h.iter().all(|(f, v)| f != "client_secret" && v != secret));
    }
    // Replace, delete, kinds.
    run(
        &mut c,
        &[
            "OAUTH.SAVECLIENT",
            "client:app1",
            "FIELDS",
            "1",
            "client_id",
            "app1",
        ],
    )
    .unwrap();
    assert_eq!(
        redis::cmd("OAUTH.VERIFYCLIENT")
            .arg("client:app1")
            .arg(secret)
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("OAUTH.DELETECLIENT")
            .arg("client:app1")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("OAUTH.DELETECLIENT")
            .arg("client:app1")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    assert_eq!(
        run(&mut c, &["OAUTH.GETCLIENT", "client:app1"]).unwrap(),
        Value::Nil
    );
    run(&mut c, &["OAUTH.SAVETOKEN", "tok", "60", "FIELDS", "0"]).unwrap();
    assert!(err(&mut c, &["OAUTH.SAVECLIENT", "tok", "FIELDS", "0"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["OAUTH.DELETECLIENT", "tok"]).starts_with("WRONGTYPE"));
    assert!(err(
        &mut c,
        &["OAUTH.SAVECLIENT", "x", "TTL", "0", "FIELDS", "0"]
    )
    .starts_with("INVALID_REQUEST"));
    // Secrets stay out of MONITOR and SLOWLOG.
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("oauth.verifyclient")
        .query(&mut c)
        .unwrap();
    assert!(
        format!("{info:?}").contains("skip_monitor")
            && (format!("{info:?}").contains("skip_slowlog")
                // Valkey 8+ renamed the slow log to the command log.
                || format!("{info:?}").contains("skip_commandlog")),
        "{info:?}"
    );
}

#[test]
fn cluster_refuses_cross_slot_and_accepts_hash_tags() {
    let s = Server::start_with(Opts {
        server_args: vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-config-file".into(),
            "nodes.conf".into(),
            // With --port 0 the bus would bind the fixed port 10000 and
            // collide with any other cluster test; take a free one.
            "--cluster-port".into(),
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port for the cluster bus")
                .port()
                .to_string(),
        ],
        ..Opts::default()
    });
    let mut c = s.conn();
    run(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(
        &redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<Vec<u8>>(&mut c)
            .unwrap(),
    )
    .contains("cluster_state:ok")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "cluster never became ok"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    save_code(&mut c, "code:{x}");
    for args in [
        vec![
            "OAUTH.EXCHANGE",
            "code:{x}",
            "app1",
            CB,
            VERIFIER,
            "ISSUE",
            "tok:{y}",
            "60",
        ],
        vec![
            "OAUTH.EXCHANGE",
            "code:{x}",
            "app1",
            CB,
            VERIFIER,
            "REFRESH",
            "rt:{x}",
            "60",
            "GRANT",
            "g:{y}",
        ],
        vec![
            "OAUTH.RATELIMITALL",
            "2",
            "rl:{a}",
            "rl:{b}",
            "1",
            "1",
            "1",
            "1",
        ],
        vec!["OAUTH.REVOKE", "t:{a}", "t:{b}"],
        vec!["OAUTH.INTROSPECT", "t:{a}", "CUTOFF", "1", "cut:{b}"],
        vec!["OAUTH.ROTATE", "rt:{a}", "rt:{b}", "60"],
        vec![
            "OAUTH.SAVETOKEN",
            "t:{a}",
            "60",
            "GRANT",
            "g:{b}",
            "FIELDS",
            "0",
        ],
    ] {
        let e = err(&mut c, &args);
        assert!(e.starts_with("CROSSSLOT"), "{args:?}: {e}");
    }
    let v = run(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:{x}",
            "app1",
            CB,
            VERIFIER,
            "ISSUE",
            "tok:{x}",
            "60",
            "REFRESH",
            "rt:{x}",
            "60",
            "GRANT",
            "g:{x}",
        ],
    )
    .unwrap();
    assert_eq!(field(&v, "client_id").as_deref(), Some("app1"));
    run(
        &mut c,
        &[
            "OAUTH.RATELIMITALL",
            "2",
            "rl:{u}:ip",
            "rl:{u}:user",
            "5",
            "60",
            "5",
            "60",
        ],
    )
    .unwrap();
}

#[test]
fn client_fields_the_module_owns_and_weak_secrets_are_refused() {
    let s = Server::start();
    let mut c = s.conn();
    for (fields, msg) in [
        (
            vec!["client_secret_expires_at", "0"],
            "INVALID_REQUEST client_secret_expires_at is set by the module from the registration's expiry",
        ),
        (
            vec!["client_secret", ""],
            "INVALID_REQUEST client_secret must be at least 16 bytes of a high-entropy secret",
        ),
        (
            vec!["client_secret", "short-secret"],
            "INVALID_REQUEST client_secret must be at least 16 bytes of a high-entropy secret",
        ),
    ] {
        let n = (fields.len() / 2).to_string();
        let mut args = vec!["OAUTH.SAVECLIENT", "client:x", "FIELDS", &n];
        args.extend(fields.iter().copied());
        assert_eq!(err(&mut c, &args), msg);
        assert!(!exists(&mut c, "client:x"));
    }
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
