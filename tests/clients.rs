//! Client registrations: `OAUTH.SAVECLIENT`, `OAUTH.VERIFYCLIENT`,
//! `OAUTH.GETCLIENT` and `OAUTH.DELETECLIENT`; secrets stored only as hashes,
//! fields the module owns and weak secrets refused.

mod common;
use common::*;

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
