//! The command surface as seen from outside a command: what a replica's
//! keyspace listener sees, what MONITOR and SLOWLOG show, how time frozen by
//! MULTI/EXEC and scripts is treated, calls with tens of thousands of keys,
//! and field names that differ from the module's only in case.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use sha2::{Digest, Sha256};

const SECRET: &str = "s3cret-0123456789abcdef-never-shown";

fn code_args(key: &str, ttl: &str) -> Vec<String> {
    [
        "OAUTH.SAVECODE",
        key,
        ttl,
        "FIELDS",
        "5",
        "client_id",
        "app1",
        "redirect_uri",
        CB,
        "code_challenge",
        CHALLENGE,
        "code_challenge_method",
        "S256",
        "upstream_jwt",
        "eyJ-upstream-login-token",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn w(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

/// The write commands of a whole gateway's life, every record kind and every
/// write path (new, replaced, consumed, rotated, reused, revoked, limited).
fn every_write() -> Vec<Vec<String>> {
    let mut v = vec![
        code_args("{g}:code", "600"),
        w(&format!(
            "OAUTH.EXCHANGE {{g}}:code app1 {CB} {VERIFIER} ISSUE {{g}}:at 600 REFRESH {{g}}:rt 3600 GRANT {{g}}:grant FIELDS 1 scope read"
        )),
        w("OAUTH.ROTATE {g}:rt {g}:rt2 3600 ISSUE {g}:at2 600 GRACE 5"),
        w("OAUTH.ROTATE {g}:rt {g}:rt2 3600 ISSUE {g}:at2 600 GRACE 5"),
        w("OAUTH.ROTATE {g}:rt2 {g}:rt3 3600"),
        w("OAUTH.ROTATE {g}:rt2 {g}:rt4 3600"),
        code_args("{h}:code", "600"),
        w(&format!(
            "OAUTH.EXCHANGE {{h}}:code app1 {CB} {VERIFIER} ISSUE {{h}}:at 600"
        )),
        w(&format!(
            "OAUTH.EXCHANGE {{h}}:code app1 {CB} {VERIFIER} ISSUE {{h}}:at9 600"
        )),
        code_args("{b}:code", "600"),
        w("OAUTH.EXCHANGE {b}:code x y z"),
        w("OAUTH.SAVETOKEN {t}:tok 600 GRANT {t}:grant FIELDS 1 sub u1"),
        w("OAUTH.REVOKE {t}:tok {t}:missing"),
        w("OAUTH.SAVETOKEN {t}:tok2 600 GRANT {t}:grant FIELDS 0"),
        w("OAUTH.REVOKEGRANT {t}:grant"),
        w("OAUTH.REVOKEBEFORE {t}:cutoff"),
        w("OAUTH.SAVESTATE st 300 FIELDS 1 nonce n1"),
        w("OAUTH.CONSUMESTATE st"),
        w(&format!(
            "OAUTH.SAVECLIENT client TTL 600 FIELDS 2 client_id app1 client_secret {SECRET}"
        )),
        w(&format!(
            "OAUTH.SAVECLIENT client FIELDS 2 client_id app1 client_secret {SECRET}"
        )),
        w("OAUTH.DELETECLIENT client"),
        w("OAUTH.RATELIMIT rl 1 60"),
        w("OAUTH.RATELIMIT rl 1 60"),
        w("OAUTH.RATELIMIT sl 5 60 SLIDING"),
        w("OAUTH.RATELIMITALL 2 {u}:a {u}:b 5 60 1 60"),
        w("OAUTH.RATELIMITALL 2 {u}:a {u}:b 5 60 1 60"),
        w("OAUTH.THROTTLE th 1 10 60"),
    ];
    // The code expires between two checks: burned by failed attempts.
    for _ in 0..3 {
        v.push(w("OAUTH.EXCHANGE {b}:code x y z"));
    }
    v
}

#[test]
fn a_replica_raises_the_keyspace_events_the_master_raises() {
    let (master, replica) = master_and_replica(Opts::default());
    let mut m = master.conn();
    let mut r = replica.conn();
    for c in [&mut m, &mut r] {
        ok(c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    }
    master.wait_replica(&replica);
    let mut ms = master.conn();
    let mut rs = replica.conn();
    let mut mps = ms.as_pubsub();
    let mut rps = rs.as_pubsub();
    for ps in [&mut mps, &mut rps] {
        ps.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        ps.psubscribe("__keyevent@0__:*").unwrap();
    }
    for (i, args) in every_write().iter().enumerate() {
        let _ = run(&mut m, &refs(args));
        let marker = format!("marker:{i}");
        ok(&mut m, &["SET", &marker, "1"]);
        let on_master = keyevents_until(&mut mps, &marker);
        let on_replica = keyevents_until(&mut rps, &marker);
        assert_eq!(on_master, on_replica, "{args:?}");
    }
    master.wait_replica(&replica);
    assert_eq!(snapshot(&mut m), snapshot(&mut r));
}

/// A connection in MONITOR mode, read as text.
struct Monitor {
    reader: BufReader<UnixStream>,
}

impl Monitor {
    fn start(s: &Server) -> Monitor {
        let mut stream = UnixStream::connect(&s.socket).expect("connect");
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("+OK");
        assert_eq!(line, "+OK\r\n");
        Monitor { reader }
    }

    /// Every line up to the one showing `marker`.
    fn until(&mut self, marker: &str) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("a MONITOR line");
            if line.contains(marker) {
                return all;
            }
            all.push_str(&line);
        }
    }
}

#[test]
fn secrets_and_the_records_made_from_them_stay_out_of_monitor_and_slowlog() {
    let s = Server::start();
    let mut c = s.conn();
    ok(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    ok(&mut c, &["CONFIG", "SET", "slowlog-max-len", "10000"]);
    // The code is saved (and shown, with its fields) before anyone watches.
    let _: Value = run(&mut c, &refs(&code_args("{g}:code", "600"))).unwrap();
    ok(&mut c, &["SLOWLOG", "RESET"]);
    let mut mon = Monitor::start(&s);
    for args in [
        w(&format!(
            "OAUTH.EXCHANGE {{g}}:code app1 {CB} {VERIFIER} ISSUE {{g}}:at 600 REFRESH {{g}}:rt 3600 GRANT {{g}}:grant"
        )),
        w("OAUTH.ROTATE {g}:rt {g}:rt2 3600 ISSUE {g}:at2 600"),
        w(&format!(
            "OAUTH.SAVECLIENT client FIELDS 2 client_id app1 client_secret {SECRET}"
        )),
        w(&format!(
            "OAUTH.SAVECLIENT client FIELDS 2 client_id app1 client_secret {SECRET}x"
        )),
        w(&format!("OAUTH.VERIFYCLIENT client {SECRET}x")),
    ] {
        run(&mut c, &refs(&args)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
    ok(&mut c, &["SET", "monitor-marker", "1"]);
    let shown = mon.until("monitor-marker");
    let slowlog = format!("{:?}", run(&mut c, &["SLOWLOG", "GET", "-1"]).unwrap());
    let hash = hex(&Sha256::digest(format!("{SECRET}x").as_bytes()));
    for (what, text) in [("MONITOR", &shown), ("SLOWLOG", &slowlog)] {
        // The code's field, which the tokens carry, proves that no token went
        // through RESTORE (tombstones may: they hold kind, times and key
        // names only).
        for secret in [VERIFIER, SECRET, hash.as_str(), "eyJ-upstream-login-token"] {
            assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
        }
    }
    // What MONITOR does show: the module's own set commands, by key name.
    assert!(shown.contains("\"SADD\" \"{g}:grant\""), "{shown}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Redis checks expiry against a time frozen at the start of a transaction
/// or script; the module checks against the clock. A code that expires during
/// a MULTI or a script is not redeemed, so no token is issued from a code
/// whose tombstone would already be gone, and a replay is never mistaken for
/// a first use.
#[test]
fn a_record_that_expires_inside_multi_or_a_script_is_gone() {
    let s = Server::start_with(Opts {
        server_args: vec!["--enable-debug-command".into(), "yes".into()],
        ..Opts::default()
    });
    let mut c = s.conn();
    let exchange = |code: &str, token: &str| {
        w(&format!(
            "OAUTH.EXCHANGE {code} app1 {CB} {VERIFIER} ISSUE {token} 600"
        ))
    };
    let not_found = "INVALID_GRANT authorization code not found or expired";

    // MULTI / DEBUG SLEEP / EXCHANGE / EXEC.
    let _: Value = run(&mut c, &refs(&code_args("code:m", "1"))).unwrap();
    let replies = transaction(&s, &[w("DEBUG SLEEP 1.3"), exchange("code:m", "tok:m")]);
    assert_eq!(replies[1], format!("-{not_found}"), "{replies:?}");
    assert!(!exists(&mut c, "tok:m"), "no token from an expired code");
    assert_eq!(err(&mut c, &refs(&exchange("code:m", "tok:m2"))), not_found);

    // The same inside a script that waits on the clock.
    let _: Value = run(&mut c, &refs(&code_args("code:e", "1"))).unwrap();
    let script = "local s = redis.call('TIME') \
        repeat local n = redis.call('TIME') until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 1300000 \
        return redis.pcall(unpack(ARGV))";
    let mut q = vec!["EVAL".to_string(), script.to_string(), "0".to_string()];
    q.extend(exchange("code:e", "tok:e"));
    let e = err(&mut c, &refs(&q));
    assert!(e.contains("not found or expired"), "{e}");
    assert!(!exists(&mut c, "tok:e"));

    // A state and a refresh token that expire inside a transaction are gone too.
    ok(
        &mut c,
        &["OAUTH.SAVESTATE", "st", "1", "FIELDS", "1", "n", "1"],
    );
    ok(
        &mut c,
        &["OAUTH.SAVETOKEN", "{r}:tok", "600", "FIELDS", "0"],
    );
    let _: Value = run(&mut c, &refs(&code_args("{r}:code", "600"))).unwrap();
    run(
        &mut c,
        &refs(&w(&format!(
            "OAUTH.EXCHANGE {{r}}:code app1 {CB} {VERIFIER} REFRESH {{r}}:rt 1 GRANT {{r}}:grant"
        ))),
    )
    .unwrap();
    let replies = transaction(
        &s,
        &[
            w("DEBUG SLEEP 1.3"),
            w("OAUTH.CONSUMESTATE st"),
            w("OAUTH.ROTATE {r}:rt {r}:rt2 600"),
        ],
    );
    assert_eq!(replies[1], "nil", "{replies:?}");
    assert_eq!(
        replies[2], "-INVALID_GRANT refresh token not found or expired",
        "{replies:?}"
    );
    assert!(!exists(&mut c, "{r}:rt2"));

    // A token that expires inside a transaction introspects as inactive.
    ok(
        &mut c,
        &["OAUTH.SAVETOKEN", "tok:i", "1", "FIELDS", "1", "sub", "u"],
    );
    let replies = transaction(&s, &[w("DEBUG SLEEP 1.3"), w("OAUTH.INTROSPECT tok:i")]);
    assert_eq!(replies[1], "[active 0]", "{replies:?}");
    let v = run(&mut c, &["OAUTH.INTROSPECT", "tok:i"]).unwrap();
    assert_eq!(field(&v, "active").as_deref(), Some("0"), "{v:?}");
}

/// MULTI, the commands, EXEC, sent on a raw connection (a client library
/// turns an EXEC holding an error into an error of its own); each reply of
/// EXEC as text: an error as `-CODE message`, a nil as `nil`.
fn transaction(s: &Server, cmds: &[Vec<String>]) -> Vec<String> {
    let mut stream = UnixStream::connect(&s.socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    let multi = [vec!["MULTI".to_string()]];
    let exec = [vec!["EXEC".to_string()]];
    for args in multi.iter().chain(cmds).chain(&exec) {
        out.extend(format!("*{}\r\n", args.len()).into_bytes());
        for a in args {
            out.extend(format!("${}\r\n{a}\r\n", a.len()).into_bytes());
        }
    }
    stream.write_all(&out).expect("send");
    let mut r = BufReader::new(stream);
    assert_eq!(reply(&mut r), "OK", "MULTI");
    for _ in cmds {
        assert_eq!(reply(&mut r), "QUEUED");
    }
    let mut line = String::new();
    r.read_line(&mut line).expect("EXEC's array");
    let n: usize = line
        .trim_end()
        .strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .expect("EXEC's array");
    (0..n).map(|_| reply(&mut r)).collect()
}

/// One RESP2 reply as text: `OK`, `-CODE message`, `nil`, an integer, a
/// string, or an array as `[a b ...]`.
fn reply(r: &mut BufReader<UnixStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("a reply line");
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => rest.to_string(),
        "-" => line.to_string(),
        "$" if rest == "-1" => "nil".to_string(),
        "$" => {
            let mut s = String::new();
            r.read_line(&mut s).expect("a bulk string");
            s.trim_end().to_string()
        }
        "*" => {
            let n: usize = rest.parse().unwrap_or(0);
            let items: Vec<String> = (0..n).map(|_| reply(r)).collect();
            format!("[{}]", items.join(" "))
        }
        _ => panic!("unexpected reply line {line}"),
    }
}

#[test]
fn calls_with_forty_thousand_keys_are_answered() {
    // Both commands used to compare every key with every other; they are
    // linear now (docs/benchmarks.md times them against DEL). Correctness
    // only here: speed is the benchmark's.
    let s = Server::start();
    let mut c = s.conn();
    let n = 40_000;
    let keys: Vec<String> = (0..n).map(|i| format!("{{x}}:tok:{i}")).collect();
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("OAUTH.SAVETOKEN")
            .arg(k)
            .arg(600)
            .arg("FIELDS")
            .arg(0)
            .ignore();
    }
    let () = pipe.query(&mut c).unwrap();
    let mut revoke = redis::cmd("OAUTH.REVOKE");
    revoke.arg(&keys).arg(&keys[..10]);
    let removed: i64 = revoke.query(&mut c).unwrap();
    assert_eq!(removed, n);
    let mut all = redis::cmd("OAUTH.RATELIMITALL");
    all.arg(n).arg(&keys);
    for _ in 0..n {
        all.arg(2).arg(60);
    }
    let reply: Vec<i64> = all.query(&mut c).unwrap();
    assert_eq!(reply[0], 0, "allowed: {:?}", &reply);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, n);
    let mut dup = redis::cmd("OAUTH.RATELIMITALL");
    dup.arg(2)
        .arg(&keys[0])
        .arg(&keys[0])
        .arg(2)
        .arg(60)
        .arg(2)
        .arg(60);
    let e = dup.query::<Value>(&mut c).unwrap_err();
    assert!(error_text(&e).contains("a key appears twice"), "{e}");
}

#[test]
fn field_names_that_differ_from_the_modules_only_in_case_are_refused() {
    let s = Server::start();
    let mut c = s.conn();
    let before = snapshot(&mut c);
    for args in [
        format!("OAUTH.SAVECLIENT client FIELDS 2 client_id app1 Client_Secret {SECRET}"),
        format!("OAUTH.SAVECLIENT client FIELDS 2 client_id app1 CLIENT_SECRET {SECRET}"),
        "OAUTH.SAVECODE code 60 FIELDS 3 client_id app1 Code_Challenge x code_challenge_method S256".to_string(),
        "OAUTH.SAVETOKEN tok 60 FIELDS 1 SCOPE admin".to_string(),
        "OAUTH.SAVESTATE st 60 FIELDS 1 Redirect_Uri x".to_string(),
    ] {
        let e = err(&mut c, &refs(&w(&args)));
        assert!(
            e.starts_with("INVALID_REQUEST") && e.contains("only in case"),
            "{args}: {e}"
        );
        assert!(!e.contains(SECRET), "the error echoes the secret: {e}");
    }
    for args in [
        "OAUTH.SAVETOKEN tok 60 FIELDS 1 EXP 1",
        "OAUTH.SAVETOKEN tok 60 FIELDS 1 Active yes",
    ] {
        let e = err(&mut c, &refs(&w(args)));
        assert!(e.contains("reserved for the module"), "{args}: {e}");
    }
    assert_eq!(snapshot(&mut c), before);
}
