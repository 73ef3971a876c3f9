//! SAVECODE and SAVESTATE write their record, EXCHANGE and ROTATE their
//! tombstone, in one piece (`RESTORE key at payload ABSTTL [REPLACE]`, a
//! listpack built by the module) when it fits a listpack under the server's
//! settings, and field by field otherwise; every other record is written
//! field by field. Either way the record must be the
//! hash `HSET` would have built: same fields in the same order, same
//! encoding, same memory. These tests compare the two against a real server,
//! make Redis validate every payload deeply, and check the fallback.

mod common;
use common::*;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const LONG_URI: &str =
    "https://app.example.com/oauth2/callback?tenant=contoso-production&region=eu-west-1";

fn restores(c: &mut Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_restore:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn encoding(c: &mut Connection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(c)
        .unwrap()
}

fn memory(c: &mut Connection, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg("0")
        .query(c)
        .unwrap()
}

/// HGETALL in stored order (not sorted): the listpack order must match too.
fn ordered(c: &mut Connection, key: &str) -> Vec<String> {
    redis::cmd("HGETALL").arg(key).query(c).unwrap()
}

/// A code's fields, with values of every listpack integer width, a value
/// that only looks like an integer, and an empty value.
fn code_fields(redirect: &str) -> Vec<(&str, String)> {
    vec![
        ("client_id", "app1".into()),
        ("redirect_uri", redirect.into()),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
        ("auth_time", "1700000000".into()),
        ("i7", "127".into()),
        ("i13", "-4096".into()),
        ("i16", "32767".into()),
        ("i24", "-8388608".into()),
        ("i64", "-9223372036854775808".into()),
        ("not_int", "007".into()),
        ("minus_zero", "-0".into()),
        ("empty", String::new()),
    ]
}

fn savecode(c: &mut Connection, key: &str, fields: &[(&str, String)]) {
    let n = fields.len().to_string();
    let mut args = vec!["OAUTH.SAVECODE", key, "600", "FIELDS", n.as_str()];
    for (f, v) in fields {
        args.push(f);
        args.push(v);
    }
    ok(c, &args);
}

/// The plain hash a gateway would write, `_kind` first as the module does,
/// with an expiry (Valkey keeps it in the key's own allocation).
fn plain(c: &mut Connection, key: &str, fields: &[(&str, String)]) {
    let flat: Vec<&str> = fields.iter().flat_map(|(f, v)| [*f, v.as_str()]).collect();
    plain_record(c, key, "code", 600_000, &flat);
}

/// What a plain client would write for a module record of `kind`: HSET with
/// the module's `_kind` and the caller's pairs, then the same TTL (Valkey
/// keeps the expiry in the key object, so a key without one is smaller).
fn plain_record(c: &mut Connection, key: &str, kind: &str, ttl_ms: u64, pairs: &[&str]) {
    let mut args = vec!["HSET", key, "_kind", kind];
    args.extend_from_slice(pairs);
    run(c, &args).expect("HSET");
    let ttl = ttl_ms.to_string();
    run(c, &["PEXPIRE", key, &ttl]).expect("PEXPIRE");
}

fn assert_same_hash(c: &mut Connection, module: &str, reference: &str) {
    let enc = encoding(c, module);
    assert_eq!(enc, encoding(c, reference));
    if enc == "listpack" {
        assert_eq!(ordered(c, module), ordered(c, reference));
    } else {
        // A hashtable's order is its own (Valkey seeds each table).
        assert_eq!(hgetall(c, module), hgetall(c, reference));
    }
    // A listpack: the same bytes in the same allocation (the key names have
    // the same length). A hashtable's size depends on how it grew, which
    // differs between HSET and the module API from one server to the next.
    assert_eq!(module.len(), reference.len());
    if enc == "listpack" {
        assert_eq!(memory(c, module), memory(c, reference));
    }
}

#[test]
fn records_are_the_hash_hset_builds_under_every_setting() {
    let s = Server::start();
    let mut c = s.conn();

    // Defaults (hash-max-listpack-value 64): short fields go in one piece.
    let before = restores(&mut c);
    savecode(&mut c, "m:1", &code_fields("https://app/cb"));
    plain(&mut c, "p:1", &code_fields("https://app/cb"));
    assert_eq!(restores(&mut c), before + 1, "written in one piece");
    assert_eq!(encoding(&mut c, "m:1"), "listpack");
    assert_same_hash(&mut c, "m:1", "p:1");
    let at = pexpiretime(&mut c, "m:1");
    assert!(at > server_ms(&mut c) + 590_000, "expiry {at}");

    // An 82-byte value is over the default limit: field by field, a
    // hashtable like HSET's.
    let before = restores(&mut c);
    savecode(&mut c, "m:2", &code_fields(LONG_URI));
    plain(&mut c, "p:2", &code_fields(LONG_URI));
    assert_eq!(restores(&mut c), before, "not a listpack: field by field");
    assert_eq!(encoding(&mut c, "m:2"), "hashtable");
    assert_same_hash(&mut c, "m:2", "p:2");

    // CONFIG SET is followed at once: with 256 the long record is a listpack
    // again, in one piece.
    ok(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "256"]);
    let before = restores(&mut c);
    savecode(&mut c, "m:3", &code_fields(LONG_URI));
    plain(&mut c, "p:3", &code_fields(LONG_URI));
    assert_eq!(restores(&mut c), before + 1);
    assert_eq!(encoding(&mut c, "m:3"), "listpack");
    assert_same_hash(&mut c, "m:3", "p:3");

    // Fewer entries allowed than the record has: field by field, hashtable.
    ok(&mut c, &["CONFIG", "SET", "hash-max-listpack-entries", "4"]);
    let before = restores(&mut c);
    savecode(&mut c, "m:4", &code_fields("https://app/cb"));
    plain(&mut c, "p:4", &code_fields("https://app/cb"));
    assert_eq!(restores(&mut c), before);
    assert_eq!(encoding(&mut c, "m:4"), "hashtable");
    assert_same_hash(&mut c, "m:4", "p:4");

    // The old alias names reach the same settings.
    ok(
        &mut c,
        &["CONFIG", "SET", "hash-max-ziplist-entries", "128"],
    );
    let before = restores(&mut c);
    savecode(&mut c, "m:5", &code_fields("https://app/cb"));
    assert_eq!(restores(&mut c), before + 1);
    assert_eq!(encoding(&mut c, "m:5"), "listpack");
}

#[test]
fn redis_accepts_every_payload_under_deep_sanitization() {
    // RESTORE then walks every entry of every payload and refuses a bad one
    // (which would silently send the module down the field-by-field path:
    // the RESTORE count below says it did not). Valkey sets this at start only.
    let s = Server::start_with(Opts {
        server_args: vec!["--sanitize-dump-payload".into(), "yes".into()],
        ..Opts::default()
    });
    let mut c = s.conn();
    let before = restores(&mut c);

    savecode(&mut c, "{g}:code", &code_fields("https://app/cb"));
    let reply = run(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "{g}:code",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "{g}:at",
            "3600",
            "REFRESH",
            "{g}:rt",
            "86400",
            "GRANT",
            "{g}:grant",
            "FIELDS",
            "2",
            "scope",
            "read",
            "n",
            "4095",
        ],
    );
    reply.expect("exchange");
    // The code, then its tombstone (RESTORE ... REPLACE); the tokens are
    // written field by field (a RESTORE run by the module shows in MONITOR).
    assert_eq!(restores(&mut c), before + 2);
    assert_eq!(
        field_of(&mut c, "{g}:code", "_kind").as_deref(),
        Some("code")
    );
    assert_eq!(field_of(&mut c, "{g}:at", "n").as_deref(), Some("4095"));

    let before = restores(&mut c);
    run(
        &mut c,
        &[
            "OAUTH.ROTATE",
            "{g}:rt",
            "{g}:rt2",
            "86400",
            "ISSUE",
            "{g}:at2",
            "3600",
        ],
    )
    .expect("rotate");
    // The old token's tombstone; successor and new access token field by field.
    assert_eq!(restores(&mut c), before + 1);

    let before = restores(&mut c);
    ok(
        &mut c,
        &["OAUTH.SAVESTATE", "st", "300", "FIELDS", "1", "nonce", "-1"],
    );
    ok(
        &mut c,
        &["OAUTH.SAVETOKEN", "tok", "3600", "FIELDS", "1", "sub", "u1"],
    );
    // The state; the token field by field.
    assert_eq!(restores(&mut c), before + 1);
    for key in [
        "{g}:code", "{g}:at", "{g}:rt", "{g}:rt2", "{g}:at2", "st", "tok",
    ] {
        assert!(pexpiretime(&mut c, key) > 0, "{key} has an expiry");
    }
}

fn field_of(c: &mut Connection, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET").arg(key).arg(field).query(c).unwrap()
}

#[test]
fn without_restore_records_are_written_field_by_field() {
    // Operators often disable RESTORE. The module then writes as before.
    let s = Server::start_with(Opts {
        server_args: vec!["--rename-command".into(), "RESTORE".into(), "".into()],
        ..Opts::default()
    });
    let mut c = s.conn();
    savecode(&mut c, "m:1", &code_fields("https://app/cb"));
    plain(&mut c, "p:1", &code_fields("https://app/cb"));
    assert_same_hash(&mut c, "m:1", "p:1");
    assert!(pexpiretime(&mut c, "m:1") > 0);
    let reply = run(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "m:1",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "t:1",
            "60",
        ],
    );
    reply.expect("exchange");
    // The tombstone replaced the code whole: the client's fields are gone.
    assert_eq!(field_of(&mut c, "m:1", "_token").as_deref(), Some("t:1"));
    assert_eq!(field_of(&mut c, "m:1", "_kind").as_deref(), Some("code"));
    assert_eq!(field_of(&mut c, "m:1", "client_id"), None);
    assert!(pexpiretime(&mut c, "m:1") > 0);
    assert!(pexpiretime(&mut c, "t:1") > 0);
}

/// The state record a plain client would write (see `plain_record`).
fn plain_state(c: &mut Connection, key: &str, pairs: &[&str]) {
    plain_record(c, key, "state", 300_000, pairs);
}

#[test]
fn states_take_the_same_two_paths_as_codes() {
    // SAVESTATE writes its record at once (one RESTORE), or field by field
    // when it is no listpack under the settings; either way the hash HSET
    // builds, with its expiry.
    let s = Server::start();
    let mut c = s.conn();
    let before = restores(&mut c);
    ok(
        &mut c,
        &[
            "OAUTH.SAVESTATE",
            "m:s1",
            "300",
            "FIELDS",
            "1",
            "nonce",
            "n-1",
        ],
    );
    plain_state(&mut c, "p:s1", &["nonce", "n-1"]);
    assert_eq!(restores(&mut c), before + 1, "written in one piece");
    assert_same_hash(&mut c, "m:s1", "p:s1");

    let before = restores(&mut c);
    ok(
        &mut c,
        &[
            "OAUTH.SAVESTATE",
            "m:s2",
            "300",
            "FIELDS",
            "1",
            "nonce",
            LONG_URI,
        ],
    );
    plain_state(&mut c, "p:s2", &["nonce", LONG_URI]);
    assert_eq!(restores(&mut c), before, "not a listpack: field by field");
    assert_eq!(encoding(&mut c, "m:s2"), "hashtable");
    assert_same_hash(&mut c, "m:s2", "p:s2");
    for key in ["m:s1", "m:s2"] {
        assert!(pexpiretime(&mut c, key) > server_ms(&mut c), "{key}");
    }
}

#[test]
fn a_record_of_16_kib_or_more_is_restored_and_checked() {
    // A listpack of 16 KiB or more has the 5-byte RDB length; Redis walks it
    // entry by entry under deep sanitization and accepts it.
    let s = Server::start_with(Opts {
        server_args: vec!["--sanitize-dump-payload".into(), "yes".into()],
        module_args: vec!["record-max-bytes".into(), "1000000".into()],
        ..Opts::default()
    });
    let mut c = s.conn();
    ok(
        &mut c,
        &["CONFIG", "SET", "hash-max-listpack-value", "100000"],
    );
    let big = "v".repeat(20_000);
    let before = restores(&mut c);
    ok(
        &mut c,
        &[
            "OAUTH.SAVESTATE",
            "m:big",
            "300",
            "FIELDS",
            "1",
            "blob",
            &big,
        ],
    );
    plain_state(&mut c, "p:big", &["blob", &big]);
    assert_eq!(restores(&mut c), before + 1, "written in one piece");
    assert_same_hash(&mut c, "m:big", "p:big");
}
