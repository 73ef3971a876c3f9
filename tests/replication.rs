//! A replica and an AOF reload reach exactly the master's state: same keys,
//! fields and absolute expiry times (PEXPIRETIME), for every write command,
//! including failed exchanges that only bump an attempt counter.

mod common;
use common::*;

/// One of every write, successes and failures.
fn workload(c: &mut Connection) {
    for i in 0..20 {
        save_code(c, &format!("code:{i}"));
    }
    for i in 0..10 {
        let k = format!("code:{i}");
        let t = format!("tok:{i}");
        run(
            c,
            &[
                "OAUTH.EXCHANGE",
                &k,
                "app1",
                "https://app/cb",
                VERIFIER,
                "ISSUE",
                &t,
                "3600",
                "FIELDS",
                "1",
                "jti",
                &t,
            ],
        )
        .expect("exchange");
    }
    // Reuse revokes the issued token.
    let _ = run(
        c,
        &[
            "OAUTH.EXCHANGE",
            "code:0",
            "app1",
            "https://app/cb",
            VERIFIER,
        ],
    );
    // Failed attempts: counted, then burned.
    for _ in 0..2 {
        let _ = run(
            c,
            &[
                "OAUTH.EXCHANGE",
                "code:15",
                "app2",
                "https://app/cb",
                VERIFIER,
            ],
        );
    }
    for _ in 0..3 {
        let _ = run(
            c,
            &["OAUTH.EXCHANGE", "code:16", "app1", "https://app/cb", "x"],
        );
    }
    run(
        c,
        &[
            "OAUTH.SAVETOKEN",
            "tok:s",
            "100",
            "FIELDS",
            "1",
            "sub",
            "u1",
        ],
    )
    .expect("savetoken");
    run(c, &["OAUTH.REVOKE", "tok:1", "tok:2", "nope"]).expect("revoke");
    run(
        c,
        &["OAUTH.SAVESTATE", "st:1", "60", "FIELDS", "1", "nonce", "n"],
    )
    .expect("savestate");
    run(c, &["OAUTH.SAVESTATE", "st:2", "60", "FIELDS", "0"]).expect("savestate");
    run(c, &["OAUTH.CONSUMESTATE", "st:2"]).expect("consumestate");
    for _ in 0..4 {
        run(c, &["OAUTH.RATELIMIT", "rl:a", "3", "60"]).expect("ratelimit");
    }
    for _ in 0..4 {
        run(c, &["OAUTH.THROTTLE", "th:a", "1", "10", "60"]).expect("throttle");
        run(c, &["OAUTH.RATELIMIT", "sl:a", "3", "60", "SLIDING"]).expect("sliding");
        run(
            c,
            &[
                "OAUTH.RATELIMIT.ALL",
                "2",
                "rl:{u}:ip",
                "rl:{u}:user",
                "5",
                "60",
                "3",
                "60",
            ],
        )
        .expect("all");
    }
    run(c, &["SET", "rl:immortal", "7"]).expect("set");
    run(c, &["OAUTH.RATELIMIT", "rl:immortal", "3", "60"]).expect("ratelimit repair");
}

#[test]
fn replica_holds_the_masters_state() {
    let master = Server::start_with(Opts {
        tcp: true,
        ..Opts::default()
    });
    let replica = Server::start_with(Opts {
        replica_of: Some(master.port),
        ..Opts::default()
    });
    // Wait for the initial sync.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.conn())
            .unwrap();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica never synced");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut m = master.conn();
    workload(&mut m);
    master.wait_replicas(1);
    let ms = snapshot(&mut m);
    let rs = snapshot(&mut replica.conn());
    assert!(!ms.is_empty());
    assert_eq!(ms, rs, "replica differs from master");
    for (k, _, _, exp) in &ms {
        assert!(*exp > 0, "key {k} has no expiry");
    }
    // The consumed code is a tombstone on the replica too, and reads work there.
    let mut r = replica.conn();
    let v = run(&mut r, &["OAUTH.INTROSPECT", "tok:3"]).unwrap();
    assert_eq!(field(&v, "active").as_deref(), Some("1"));
    let e = err(&mut r, &["OAUTH.SAVETOKEN", "x", "10", "FIELDS", "0"]);
    assert!(e.starts_with("READONLY"), "{e}");
}

#[test]
fn aof_reload_reaches_the_same_state() {
    let server = Server::start_with(Opts {
        server_args: vec![
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
        ],
        ..Opts::default()
    });
    let mut c = server.conn();
    workload(&mut c);
    let before = snapshot(&mut c);
    drop(c);
    let server = server.restart();
    let after = snapshot(&mut server.conn());
    assert_eq!(before, after, "AOF reload differs");
    // The consumed code stays consumed after reload.
    let e = err(
        &mut server.conn(),
        &[
            "OAUTH.EXCHANGE",
            "code:5",
            "app1",
            "https://app/cb",
            VERIFIER,
        ],
    );
    assert_eq!(e, "INVALID_GRANT authorization code already used");
}
