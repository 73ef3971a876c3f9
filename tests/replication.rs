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
                "OAUTH.RATELIMITALL",
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
    let (master, replica) = master_and_replica(Opts::default());
    let mut m = master.conn();
    workload(&mut m);
    master.wait_replica(&replica);
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

/// A deterministic xorshift PRNG.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A long random mix of every write command, with failures (bad verifiers,
/// reuse, wrong kinds) and 1-second TTLs so keys expire during the run.
/// Answers how many calls of each command succeeded.
fn random_mix(
    c: &mut Connection,
    seed: u64,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut ok = std::collections::BTreeMap::new();
    let mut r = Rng(seed);
    for i in 0..n {
        let t = r.next(40); // hash tag: grants and their members share it
        let tag = format!("{{m{t}}}");
        let ttl = if r.next(4) == 0 { "1" } else { "300" };
        let code = format!("code:{tag}:{}", r.next(6));
        let verifier = if r.next(5) == 0 {
            "wrong-verifier-wrong-verifier-wrong-verifier"
        } else {
            VERIFIER
        };
        let args: Vec<String> = match r.next(17) {
            0 | 1 => vec![
                "OAUTH.SAVECODE".into(),
                code,
                ttl.into(),
                "FIELDS".into(),
                "5".into(),
                "client_id".into(),
                "app1".into(),
                "redirect_uri".into(),
                "https://app/cb".into(),
                "code_challenge".into(),
                CHALLENGE.into(),
                "code_challenge_method".into(),
                "S256".into(),
                "scope".into(),
                "a b".into(),
            ],
            2 | 3 => vec![
                "OAUTH.EXCHANGE".into(),
                code,
                "app1".into(),
                "https://app/cb".into(),
                verifier.into(),
                "ISSUE".into(),
                format!("at:{tag}:{i}"),
                ttl.into(),
                "REFRESH".into(),
                format!("rt:{tag}:{}", r.next(6)),
                "300".into(),
                "GRANT".into(),
                format!("g:{tag}"),
            ],
            4 => vec![
                "OAUTH.ROTATE".into(),
                format!("rt:{tag}:{}", r.next(6)),
                format!("rt:{tag}:{}", r.next(6)),
                "300".into(),
                "ISSUE".into(),
                format!("at:{tag}:r{i}"),
                ttl.into(),
                "GRACE".into(),
                r.next(3).to_string(),
            ],
            5 => vec![
                "OAUTH.REVOKE".into(),
                format!("at:{tag}:{}", r.next(n as u64)),
                format!("rt:{tag}:{}", r.next(6)),
            ],
            6 => vec!["OAUTH.REVOKEGRANT".into(), format!("g:{tag}")],
            7 => vec![
                "OAUTH.SAVESTATE".into(),
                format!("st:{tag}:{}", r.next(4)),
                ttl.into(),
                "FIELDS".into(),
                "1".into(),
                "n".into(),
                i.to_string(),
            ],
            8 => vec![
                "OAUTH.CONSUMESTATE".into(),
                format!("st:{tag}:{}", r.next(4)),
            ],
            9 => vec![
                "OAUTH.RATELIMIT".into(),
                format!("rl:{tag}"),
                "3".into(),
                "2".into(),
            ],
            10 => vec![
                "OAUTH.THROTTLE".into(),
                format!("th:{tag}"),
                "1".into(),
                "5".into(),
                "2".into(),
            ],
            11 => vec!["OAUTH.REVOKEBEFORE".into(), format!("cut:{tag}")],
            12 => vec![
                "OAUTH.SAVETOKEN".into(),
                format!("at:{tag}:s{i}"),
                ttl.into(),
                "GRANT".into(),
                format!("g:{tag}"),
                "FIELDS".into(),
                "2".into(),
                "client_id".into(),
                "app1".into(),
                "scope".into(),
                "a".into(),
            ],
            13 => vec![
                "OAUTH.RATELIMIT".into(),
                format!("sw:{tag}"),
                "3".into(),
                "2".into(),
                "SLIDING".into(),
            ],
            14 => vec![
                "OAUTH.RATELIMITALL".into(),
                "2".into(),
                format!("rl:{tag}:ip"),
                format!("rl:{tag}:user"),
                "5".into(),
                "2".into(),
                "3".into(),
                "60".into(),
                "COST".into(),
                (1 + r.next(2)).to_string(),
            ],
            15 => vec![
                "OAUTH.SAVECLIENT".into(),
                format!("client:{tag}"),
                "FIELDS".into(),
                "2".into(),
                "client_id".into(),
                format!("c{t}"),
                "client_secret".into(),
                "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t".into(),
            ],
            _ => vec!["OAUTH.DELETECLIENT".into(), format!("client:{tag}")],
        };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // Failures are part of the mix.
        if run(c, &refs).is_ok() {
            *ok.entry(args[0].clone()).or_insert(0) += 1;
        }
    }
    ok
}

/// Compares master and replica key by key. Keys that expire between the two
/// reads are skipped: they are legitimately racing the clock.
fn assert_same(master: &Server, replica: &Server) {
    master.wait_replica(replica);
    let ms = snapshot(&mut master.conn());
    let rs = snapshot(&mut replica.conn());
    let now_ms = {
        let t: Vec<String> = redis::cmd("TIME").query(&mut master.conn()).unwrap();
        t[0].parse::<i64>().unwrap() * 1000
    };
    let settled = |s: &Vec<KeyState>| -> Vec<KeyState> {
        s.iter()
            .filter(|k| k.3 == -1 || k.3 > now_ms + 1500)
            .cloned()
            .collect()
    };
    assert_eq!(settled(&ms), settled(&rs), "replica differs from master");
    assert!(
        ms.iter().all(|k| k.3 != -1),
        "a key without expiry on the master"
    );
}

#[test]
fn replica_follows_a_long_random_mix_through_full_and_partial_resyncs() {
    let (master, replica) = master_and_replica(Opts::default());
    let mut m = master.conn();
    let done = random_mix(&mut m, 7, 4000);
    assert_same(&master, &replica);
    // The mix reached every kind of state, not only errors.
    for name in [
        "OAUTH.SAVECODE",
        "OAUTH.EXCHANGE",
        "OAUTH.ROTATE",
        "OAUTH.REVOKE",
        "OAUTH.REVOKEGRANT",
        "OAUTH.SAVESTATE",
        "OAUTH.CONSUMESTATE",
        "OAUTH.RATELIMIT",
        "OAUTH.THROTTLE",
        "OAUTH.REVOKEBEFORE",
        "OAUTH.SAVETOKEN",
        "OAUTH.RATELIMITALL",
        "OAUTH.SAVECLIENT",
        "OAUTH.DELETECLIENT",
    ] {
        assert!(
            done.get(name).copied().unwrap_or(0) > 0,
            "{name} never succeeded: {done:?}"
        );
    }
    let snap = snapshot(&mut m);
    for kind in ["code", "token", "refresh", "state", "client"] {
        assert!(
            snap.iter()
                .any(|k| k.2.contains(&("_kind".into(), kind.into()))),
            "no {kind} record"
        );
    }
    assert!(snap.iter().any(|k| k.1 == "set"), "no grant index");

    // Partial resync: drop the link; the replica reconnects and continues.
    run(&mut replica.conn(), &["CLIENT", "KILL", "TYPE", "master"]).unwrap();
    random_mix(&mut m, 11, 1500);
    wait_link_up(&replica);
    assert_same(&master, &replica);
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut master.conn())
        .unwrap();
    assert!(
        info.contains("sync_partial_ok:1"),
        "expected a partial resync:\n{info}"
    );

    // Full resync: a new replica process with an empty dataset.
    drop(replica);
    random_mix(&mut m, 13, 1500);
    let fresh = replica_of(&master);
    random_mix(&mut m, 17, 500);
    assert_same(&master, &fresh);
}

#[test]
fn a_replica_never_expires_or_writes_on_its_own() {
    let (master, replica) = master_and_replica(Opts {
        server_args: vec!["--enable-debug-command".into(), "yes".into()],
        ..Opts::default()
    });
    let mut m = master.conn();
    run(&mut m, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap();
    run(
        &mut m,
        &["OAUTH.SAVETOKEN", "tok", "1", "FIELDS", "1", "sub", "u"],
    )
    .unwrap();
    master.wait_replica(&replica);
    let mut r = replica.conn();
    assert_eq!(
        field(
            &run(&mut r, &["OAUTH.INTROSPECT", "tok"]).unwrap(),
            "active"
        )
        .as_deref(),
        Some("1")
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let before: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    // Read-only commands on the read-only replica see the token as expired...
    assert_eq!(
        field(
            &run(&mut r, &["OAUTH.INTROSPECT", "tok"]).unwrap(),
            "active"
        )
        .as_deref(),
        Some("0")
    );
    assert_eq!(
        redis::cmd("OAUTH.VERIFYCLIENT")
            .arg("cl")
            .arg("x")
            .query::<i64>(&mut r)
            .unwrap(),
        0
    );
    // ...but the replica does not delete it: only the master's DEL does.
    let after: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    assert_eq!(before, after);
    assert_eq!(after, 1);
    for cmd in [
        vec!["OAUTH.RATELIMIT", "rl", "1", "1"],
        vec!["OAUTH.REVOKE", "tok"],
        vec!["OAUTH.CONSUMESTATE", "s"],
    ] {
        assert!(err(&mut r, &cmd).starts_with("READONLY"), "{cmd:?}");
    }
    let offset = |s: &Server| -> String {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut s.conn())
            .unwrap();
        info.lines()
            .find(|l| l.starts_with("master_repl_offset"))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        offset(&master),
        offset(&replica),
        "the replica produced no writes of its own"
    );
}

/// Keys whose expiry is at least `margin_ms` after the server's clock: the
/// ones that cannot legitimately expire between two snapshots.
fn settled(s: &[KeyState], now_ms: i64, margin_ms: i64) -> Vec<KeyState> {
    s.iter()
        // -1: no expiry; -2: the key expired between listing and reading it.
        .filter(|k| k.3 == -1 || k.3 > now_ms + margin_ms)
        .cloned()
        .collect()
}

/// Asserts two snapshots are equal, showing only the keys that differ.
fn assert_same_keys(a: &[KeyState], b: &[KeyState], what: &str) {
    let only_a: Vec<&KeyState> = a.iter().filter(|k| !b.contains(k)).collect();
    let only_b: Vec<&KeyState> = b.iter().filter(|k| !a.contains(k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "{what}:\n before only: {only_a:?}\n after only: {only_b:?}"
    );
}

#[test]
fn the_random_mix_survives_an_aof_restart_and_an_rdb_reload() {
    let server = Server::start_with(Opts {
        server_args: vec![
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--enable-debug-command".into(),
            "yes".into(),
        ],
        ..Opts::default()
    });
    let mut c = server.conn();
    random_mix(&mut c, 23, 3000);
    let before = snapshot(&mut c);
    assert!(before.iter().all(|k| k.3 != -1), "a key without expiry");
    drop(c);

    // AOF replay of the replicated effects.
    let server = server.restart();
    let mut c = server.conn();
    let now = server_ms(&mut c);
    let after = snapshot(&mut c);
    assert!(after.len() > 100, "too little state: {}", after.len());
    assert_same_keys(
        &settled(&before, now, 1500),
        &settled(&after, now, 1500),
        "AOF restart differs",
    );

    // RDB: save and load the dataset in place.
    let before = snapshot(&mut c);
    run(&mut c, &["DEBUG", "RELOAD"]).unwrap();
    let now = server_ms(&mut c);
    let after = snapshot(&mut c);
    assert_same_keys(
        &settled(&before, now, 1500),
        &settled(&after, now, 1500),
        "RDB reload differs",
    );
    let immortal: Vec<&KeyState> = after.iter().filter(|k| k.3 == -1).collect();
    assert!(immortal.is_empty(), "keys lost their expiry: {immortal:?}");
}
