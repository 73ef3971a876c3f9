//! Crash recovery and persistence: kill -9 under load with appendfsync
//! always, BGREWRITEAOF, and DEBUG RELOAD (RDB) round trips.

mod common;
use common::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn aof_opts() -> Opts {
    Opts {
        server_args: vec![
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--enable-debug-command".into(),
            "yes".into(),
        ],
        ..Opts::default()
    }
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write() {
    let server = aof_opts();
    let mut s = Server::start_with(server);
    let saved = Arc::new(Mutex::new(Vec::<String>::new()));
    let consumed = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let mut c = s.conn();
            let (saved, consumed, stop) = (saved.clone(), consumed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let code = format!("code:{{w{w}i{i}}}");
                    if run(
                        &mut c,
                        &[
                            "OAUTH.SAVECODE",
                            &code,
                            "600",
                            "FIELDS",
                            "4",
                            "client_id",
                            "app1",
                            "redirect_uri",
                            "https://app/cb",
                            "code_challenge",
                            CHALLENGE,
                            "code_challenge_method",
                            "S256",
                        ],
                    )
                    .is_err()
                    {
                        break; // the server is gone
                    }
                    saved.lock().unwrap().push(code.clone());
                    if i % 2 == 0 {
                        let tok = format!("tok:{{w{w}i{i}}}");
                        match run(
                            &mut c,
                            &[
                                "OAUTH.EXCHANGE",
                                &code,
                                "app1",
                                "https://app/cb",
                                VERIFIER,
                                "ISSUE",
                                &tok,
                                "600",
                            ],
                        ) {
                            Ok(_) => consumed.lock().unwrap().push(code),
                            Err(_) => break,
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(800));
    s.stop(false); // SIGKILL mid-load
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let s = s.restart();
    let mut c = s.conn();
    let saved = saved.lock().unwrap().clone();
    let consumed: HashSet<String> = consumed.lock().unwrap().iter().cloned().collect();
    assert!(saved.len() > 50, "too little load: {}", saved.len());
    for code in &saved {
        let h: Vec<(String, String)> = redis::cmd("HGETALL").arg(code).query(&mut c).unwrap();
        assert!(!h.is_empty(), "acknowledged code {code} lost");
        if consumed.contains(code) {
            assert!(
                h.iter().any(|(f, _)| f == "_consumed"),
                "consumed code {code} is live again"
            );
            let e = err(
                &mut c,
                &["OAUTH.EXCHANGE", code, "app1", "https://app/cb", VERIFIER],
            );
            assert_eq!(e, "INVALID_GRANT authorization code already used");
        }
    }
    for (k, _, _, exp) in snapshot(&mut c) {
        assert!(exp > 0, "{k} lost its expiry");
    }
}

#[test]
fn bgrewriteaof_and_debug_reload_round_trip() {
    let s = Server::start_with(aof_opts());
    let mut c = s.conn();
    for i in 0..50 {
        let code = format!("code:{{r{i}}}");
        save_code(&mut c, &code);
        if i % 2 == 0 {
            run(
                &mut c,
                &[
                    "OAUTH.EXCHANGE",
                    &code,
                    "app1",
                    "https://app/cb",
                    VERIFIER,
                    "ISSUE",
                    &format!("at:{{r{i}}}"),
                    "600",
                    "REFRESH",
                    &format!("rt:{{r{i}}}"),
                    "600",
                    "GRANT",
                    &format!("g:{{r{i}}}"),
                ],
            )
            .unwrap();
        }
    }
    run(&mut c, &["OAUTH.RATELIMIT", "rl", "5", "60"]).unwrap();
    run(&mut c, &["OAUTH.THROTTLE", "th", "5", "1", "60"]).unwrap();
    run(&mut c, &["OAUTH.RATELIMIT", "sl", "5", "60", "SLIDING"]).unwrap();
    let before = snapshot(&mut c);
    run(&mut c, &["BGREWRITEAOF"]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        if info.contains("aof_rewrite_in_progress:0")
            && info.contains("aof_rewrite_scheduled:0")
            && info.contains("aof_last_bgrewrite_status:ok")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rewrite never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run(&mut c, &["DEBUG", "RELOAD"]).unwrap();
    assert_eq!(
        snapshot(&mut c),
        before,
        "DEBUG RELOAD (RDB) changed the data"
    );
    drop(c);
    let s = s.restart();
    assert_eq!(
        snapshot(&mut s.conn()),
        before,
        "the rewritten AOF changed the data"
    );
    let e = err(
        &mut s.conn(),
        &[
            "OAUTH.EXCHANGE",
            "code:{r0}",
            "app1",
            "https://app/cb",
            VERIFIER,
        ],
    );
    assert_eq!(e, "INVALID_GRANT authorization code already used");
}
