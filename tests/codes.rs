//! OAUTH.SAVECODE and OAUTH.EXCHANGE: the life of an authorization code from
//! issue to tombstone, every refusal with its exact sentence, the attempt
//! budget, ISSUE and reuse revocation, the record caps, and single use under
//! concurrency.

mod common;
use common::*;

const NOT_FOUND: &str = "INVALID_GRANT authorization code not found or expired";
const REUSED: &str = "INVALID_GRANT authorization code already used";
const CLIENT: &str = "INVALID_GRANT client_id does not match the authorization code";
const REDIRECT: &str = "INVALID_GRANT redirect_uri does not match the authorization request";
const PKCE_MISMATCH: &str = "INVALID_GRANT code_verifier does not match code_challenge";
const VERIFIER_MISSING: &str =
    "INVALID_GRANT code_verifier is required for this authorization code";
const VERIFIER_MALFORMED: &str =
    "INVALID_GRANT code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~";
const VERIFIER_UNEXPECTED: &str =
    "INVALID_GRANT code_verifier given for an authorization code issued without code_challenge";
const BURNED_SUFFIX: &str = "; the authorization code is revoked after too many failed attempts";
const NOT_A_CODE: &str = "WRONGTYPE key does not hold an authorization code; it holds another kind of record or a plain hash";

/// A valid-syntax verifier that does not match CHALLENGE.
const OTHER_VERIFIER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn exchange(c: &mut Connection, key: &str) -> redis::RedisResult<Value> {
    run(
        c,
        &["OAUTH.EXCHANGE", key, "app1", "https://app/cb", VERIFIER],
    )
}

/// The state of the server with every `_attempts` field removed.
fn without_attempts(snap: Vec<KeyState>) -> Vec<KeyState> {
    snap.into_iter()
        .map(|(k, t, content, exp)| {
            let content = content
                .into_iter()
                .filter(|(f, _)| f != "_attempts")
                .collect();
            (k, t, content, exp)
        })
        .collect()
}

fn attempts(c: &mut Connection, key: &str) -> Option<String> {
    hgetall(c, key)
        .into_iter()
        .find(|(f, _)| f == "_attempts")
        .map(|(_, v)| v)
}

fn field_of(c: &mut Connection, key: &str, name: &str) -> Option<String> {
    hgetall(c, key)
        .into_iter()
        .find(|(f, _)| f == name)
        .map(|(_, v)| v)
}

#[test]
fn rfc7636_vector_exchanges_once_and_leaves_a_tombstone() {
    let s = Server::start();
    let mut c = s.conn();
    let t0 = server_ms(&mut c);
    save_code(&mut c, "code:1");
    let t1 = server_ms(&mut c);

    // The stored record: `_kind` plus the caller's fields, with its expiry. A
    // code carries no `_created`: nothing judges a code by its age.
    let stored = hgetall(&mut c, "code:1");
    let mut expected = owned(&[
        ("_kind", "code"),
        ("client_id", "app1"),
        ("redirect_uri", "https://app/cb"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("user_id", "u42"),
    ]);
    expected.sort();
    assert_eq!(stored, expected);
    let expiry = pexpiretime(&mut c, "code:1");
    assert!(
        (t0 + 600_000..=t1 + 600_000).contains(&expiry),
        "expiry {expiry} is not 600 s after creation"
    );

    // RFC 7636 Appendix B: the verifier matches the S256 challenge.
    let t2 = server_ms(&mut c);
    let reply = exchange(&mut c, "code:1").expect("exchange");
    let t3 = server_ms(&mut c);
    assert_eq!(
        sorted_pairs(&reply),
        owned(&[
            ("client_id", "app1"),
            ("redirect_uri", "https://app/cb"),
            ("user_id", "u42"),
        ])
    );
    for (f, _) in pairs(&reply) {
        assert!(!f.starts_with('_'), "internal field {f} in the reply");
        assert!(!f.starts_with("code_challenge"), "{f} in the reply");
    }

    // The tombstone: kind and consumption time; no client data.
    let tomb = hgetall(&mut c, "code:1");
    let fields: Vec<&str> = tomb.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, vec!["_consumed", "_kind"], "{tomb:?}");
    assert_eq!(field_of(&mut c, "code:1", "_kind").as_deref(), Some("code"));
    let consumed: i64 = field_of(&mut c, "code:1", "_consumed")
        .unwrap()
        .parse()
        .unwrap();
    assert!((t2..=t3).contains(&consumed));
    assert_eq!(
        pexpiretime(&mut c, "code:1"),
        expiry,
        "the tombstone must keep the code's original expiry"
    );

    // A second exchange, even with other credentials, is a reuse; the tombstone stays.
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:1",
            "app1",
            "https://app/cb",
            VERIFIER,
        ],
        REUSED,
    );
    refused_unchanged(
        &mut c,
        &["OAUTH.EXCHANGE", "code:1", "app2", "", ""],
        REUSED,
    );
    assert_eq!(attempts(&mut c, "code:1"), None);
}

#[test]
fn issue_creates_the_token_and_reuse_revokes_it() {
    let s = Server::start();
    let mut c = s.conn();
    ok(
        &mut c,
        &[
            "OAUTH.SAVECODE",
            "code:2",
            "600",
            "FIELDS",
            "6",
            "client_id",
            "app1",
            "redirect_uri",
            "https://app/cb",
            "code_challenge",
            CHALLENGE,
            "code_challenge_method",
            "S256",
            "user_id",
            "u42",
            "scope",
            "mcp:read mcp:write",
        ],
    );
    let code_expiry = pexpiretime(&mut c, "code:2");
    let t0 = server_ms(&mut c);
    let reply = run(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:2",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "tok:2",
            "3600",
            "FIELDS",
            "2",
            "scope",
            "mcp:read",
            "jti",
            "j-2",
        ],
    )
    .expect("exchange with ISSUE");
    let t1 = server_ms(&mut c);
    // The reply is the code's data, not the token's overrides.
    assert_eq!(
        sorted_pairs(&reply),
        owned(&[
            ("client_id", "app1"),
            ("redirect_uri", "https://app/cb"),
            ("user_id", "u42"),
            ("scope", "mcp:read mcp:write"),
        ])
    );

    // The token: code fields (no PKCE material) overridden by FIELDS, with its ttl.
    let token = hgetall(&mut c, "tok:2");
    let created: i64 = token
        .iter()
        .find(|(f, _)| f == "_created")
        .expect("_created")
        .1
        .parse()
        .unwrap();
    assert!((t0..=t1).contains(&created));
    let mut expected = owned(&[
        ("_kind", "token"),
        ("client_id", "app1"),
        ("redirect_uri", "https://app/cb"),
        ("user_id", "u42"),
        ("scope", "mcp:read"),
        ("jti", "j-2"),
        // The code it came from: a reuse revokes only a token naming it back.
        ("_code", "code:2"),
    ]);
    expected.push(("_created".into(), created.to_string()));
    expected.sort();
    assert_eq!(token, expected);
    let token_expiry = pexpiretime(&mut c, "tok:2");
    assert!((t0 + 3_600_000..=t1 + 3_600_000).contains(&token_expiry));
    let intro = run(&mut c, &["OAUTH.INTROSPECT", "tok:2"]).unwrap();
    assert_eq!(field(&intro, "active").as_deref(), Some("1"));

    // The tombstone remembers the token.
    let tomb = hgetall(&mut c, "code:2");
    let names: Vec<&str> = tomb.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, vec!["_consumed", "_kind", "_token"]);
    assert_eq!(
        field_of(&mut c, "code:2", "_token").as_deref(),
        Some("tok:2")
    );
    assert_eq!(pexpiretime(&mut c, "code:2"), code_expiry);

    // Reuse: refused, and the issued token is revoked (RFC 6749 §4.1.2).
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.EXCHANGE",
                "code:2",
                "app1",
                "https://app/cb",
                VERIFIER
            ]
        ),
        REUSED
    );
    assert!(
        !exists(&mut c, "tok:2"),
        "reuse must revoke the issued token"
    );
    let intro = run(&mut c, &["OAUTH.INTROSPECT", "tok:2"]).unwrap();
    assert_eq!(pairs(&intro), vec![("active".into(), "0".into())]);
    assert_eq!(hgetall(&mut c, "code:2"), tomb, "the tombstone stays");
    assert_eq!(pexpiretime(&mut c, "code:2"), code_expiry);
    // And again: still a reuse, still nothing else.
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.EXCHANGE",
                "code:2",
                "app1",
                "https://app/cb",
                VERIFIER
            ]
        ),
        REUSED
    );
    assert_eq!(
        snapshot(&mut c).len(),
        1,
        "only the tombstone is left: {:?}",
        snapshot(&mut c)
    );
}

#[test]
fn reuse_message_is_exact_and_does_not_touch_an_unrelated_key() {
    let s = Server::start();
    let mut c = s.conn();
    save_code(&mut c, "code:3");
    exchange(&mut c, "code:3").expect("first exchange");
    ok(&mut c, &["SET", "tok:other", "x"]);
    let before = snapshot(&mut c);
    for _ in 0..2 {
        assert_eq!(
            err(
                &mut c,
                &[
                    "OAUTH.EXCHANGE",
                    "code:3",
                    "app1",
                    "https://app/cb",
                    VERIFIER
                ]
            ),
            REUSED
        );
    }
    assert_eq!(snapshot(&mut c), before);
}

#[test]
fn issue_into_an_existing_key_is_exists_and_the_code_stays_live() {
    let s = Server::start();
    let mut c = s.conn();
    save_code(&mut c, "code:4");
    ok(
        &mut c,
        &[
            "OAUTH.SAVETOKEN",
            "tok:4",
            "60",
            "FIELDS",
            "1",
            "sub",
            "old",
        ],
    );
    ok(&mut c, &["SET", "str:4", "x"]);
    for target in ["tok:4", "str:4"] {
        refused_unchanged(
            &mut c,
            &[
                "OAUTH.EXCHANGE",
                "code:4",
                "app1",
                "https://app/cb",
                VERIFIER,
                "ISSUE",
                target,
                "60",
            ],
            EXISTS,
        );
    }
    assert_eq!(attempts(&mut c, "code:4"), None);
    // The code was not consumed: a plain exchange still succeeds.
    let reply = exchange(&mut c, "code:4").expect("code still live");
    assert_eq!(field(&reply, "user_id").as_deref(), Some("u42"));
    assert_eq!(field_of(&mut c, "tok:4", "sub").as_deref(), Some("old"));
}

#[test]
fn arity_errors_come_from_redis() {
    let s = Server::start();
    let mut c = s.conn();
    for args in [
        &["OAUTH.SAVECODE"][..],
        &["OAUTH.SAVECODE", "k"],
        &["OAUTH.SAVECODE", "k", "60"],
        &["OAUTH.SAVECODE", "k", "60", "FIELDS"],
    ] {
        refused_unchanged(
            &mut c,
            args,
            "ERR wrong number of arguments for 'oauth.savecode' command",
        );
    }
    for args in [
        &["OAUTH.EXCHANGE"][..],
        &["OAUTH.EXCHANGE", "k"],
        &["OAUTH.EXCHANGE", "k", "app1", "https://app/cb"],
    ] {
        refused_unchanged(
            &mut c,
            args,
            "ERR wrong number of arguments for 'oauth.exchange' command",
        );
    }
    assert!(snapshot(&mut c).is_empty());
}

fn savecode_args<'a>(key: &'a str, ttl: &'a str, fields: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["OAUTH.SAVECODE", key, ttl, "FIELDS"];
    v.extend_from_slice(fields);
    v
}

const GOOD_FIELDS: &[&str] = &[
    "3",
    "client_id",
    "app1",
    "code_challenge",
    CHALLENGE,
    "code_challenge_method",
    "S256",
];

#[test]
fn savecode_ttl_must_be_in_range() {
    let s = Server::start();
    let mut c = s.conn();
    for ttl in ["0", "-1", "601", "86400", "9223372036854775807"] {
        refused_unchanged(
            &mut c,
            &savecode_args("k", ttl, GOOD_FIELDS),
            "INVALID_REQUEST ttl must be an integer from 1 to 600",
        );
    }
    for ttl in [
        "abc",
        "1.5",
        "",
        " 60",
        "+60",
        "60s",
        "99999999999999999999",
    ] {
        refused_unchanged(
            &mut c,
            &savecode_args("k", ttl, GOOD_FIELDS),
            "INVALID_REQUEST ttl is not an integer",
        );
    }
    assert!(snapshot(&mut c).is_empty());
    // The bounds themselves are accepted.
    ok(&mut c, &savecode_args("k1", "1", GOOD_FIELDS));
    ok(&mut c, &savecode_args("k600", "600", GOOD_FIELDS));
    assert!(pexpiretime(&mut c, "k1") > 0);
    assert!(pexpiretime(&mut c, "k600") > 0);
}

#[test]
fn savecode_field_list_errors() {
    let s = Server::start();
    let mut c = s.conn();
    let mismatch = |n: &str, follow: usize| {
        let given = match (follow % 2, follow) {
            (0, 2) => "1 pair follows".to_string(),
            (0, _) => format!("{} pairs follow", follow / 2),
            (_, 1) => "1 argument follows, an odd number".to_string(),
            _ => format!("{follow} arguments follow, an odd number"),
        };
        format!(
            "INVALID_REQUEST numfields is {n} but {given}; FIELDS must be last and hold exactly numfields field value pairs"
        )
    };
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec![
                "4",
                "client_id",
                "app1",
                "code_challenge",
                CHALLENGE,
                "code_challenge_method",
                "S256",
            ],
            mismatch("4", 6),
        ),
        (
            vec![
                "2",
                "client_id",
                "app1",
                "code_challenge",
                CHALLENGE,
                "code_challenge_method",
                "S256",
            ],
            mismatch("2", 6),
        ),
        (
            vec![
                "3",
                "client_id",
                "app1",
                "code_challenge",
                CHALLENGE,
                "code_challenge_method",
            ],
            mismatch("3", 5),
        ),
        (vec!["1", "client_id"], mismatch("1", 1)),
        (
            vec!["x", "client_id", "app1"],
            "INVALID_REQUEST numfields must be a non-negative integer".into(),
        ),
        (
            vec!["-1", "client_id", "app1"],
            "INVALID_REQUEST numfields must be a non-negative integer".into(),
        ),
        (
            vec!["2", "client_id", "app1", "client_id", "app2"],
            "INVALID_REQUEST a field name is given twice".into(),
        ),
        (
            vec!["1", "", "x"],
            "INVALID_REQUEST field names must not be empty".into(),
        ),
    ];
    for (fields, expected) in &cases {
        refused_unchanged(&mut c, &savecode_args("k", "60", fields), expected);
    }
    // FIELDS must be the keyword.
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.SAVECODE",
            "k",
            "60",
            "FIELDZ",
            "1",
            "client_id",
            "app1",
        ],
        "INVALID_REQUEST expected FIELDS numfields field value ...",
    );
    // Reserved names, with an otherwise valid code.
    for name in [
        "_x",
        "_kind",
        "_created",
        "_attempts",
        "_consumed",
        "_token",
        "_",
        "exp",
        "iat",
        "active",
    ] {
        let mut fields: Vec<&str> = GOOD_FIELDS.to_vec();
        fields[0] = "4";
        fields.push(name);
        fields.push("1");
        refused_unchanged(&mut c, &savecode_args("k", "60", &fields), RESERVED);
    }
    assert!(snapshot(&mut c).is_empty());
    // The keyword is case-insensitive; names that merely resemble reserved ones are fine.
    let mut fields: Vec<&str> = GOOD_FIELDS.to_vec();
    fields[0] = "5";
    fields.extend_from_slice(&["kind", "k", "expires", "e"]);
    let mut args = savecode_args("k", "60", &fields);
    args[3] = "fields";
    ok(&mut c, &args);
}

#[test]
fn savecode_client_and_pkce_rules() {
    let s = Server::start();
    let mut c = s.conn();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["2", "code_challenge", CHALLENGE, "code_challenge_method", "S256"],
            "INVALID_REQUEST client_id is required",
        ),
        (
            vec!["3", "client_id", "", "code_challenge", CHALLENGE, "code_challenge_method", "S256"],
            "INVALID_REQUEST client_id is required",
        ),
        (
            vec!["1", "client_id", "app1"],
            "INVALID_REQUEST code_challenge is required (require-pkce is on)",
        ),
        (
            vec!["2", "client_id", "app1", "code_challenge_method", "S256"],
            "INVALID_REQUEST code_challenge is required (require-pkce is on)",
        ),
        (
            vec!["3", "client_id", "app1", "code_challenge", CHALLENGE, "code_challenge_method", "plain"],
            "INVALID_REQUEST code_challenge_method plain is not allowed (allow-plain-pkce is off); use S256",
        ),
        // RFC 7636 §4.3: no method means plain.
        (
            vec!["2", "client_id", "app1", "code_challenge", CHALLENGE],
            "INVALID_REQUEST code_challenge_method plain is not allowed (allow-plain-pkce is off); use S256",
        ),
        (
            vec!["3", "client_id", "app1", "code_challenge", CHALLENGE, "code_challenge_method", "s256"],
            "INVALID_REQUEST code_challenge_method must be S256 or plain",
        ),
        (
            vec!["3", "client_id", "app1", "code_challenge", CHALLENGE, "code_challenge_method", ""],
            "INVALID_REQUEST code_challenge_method must be S256 or plain",
        ),
    ];
    for (fields, expected) in &cases {
        refused_unchanged(&mut c, &savecode_args("k", "60", fields), expected);
    }
    let short = &CHALLENGE[..42];
    let long = "a".repeat(129);
    let plus = format!("{}+", &CHALLENGE[..42]);
    let space = format!("{} ", &CHALLENGE[..42]);
    for bad in [short, long.as_str(), plus.as_str(), space.as_str(), ""] {
        refused_unchanged(
            &mut c,
            &savecode_args(
                "k",
                "60",
                &[
                    "3",
                    "client_id",
                    "app1",
                    "code_challenge",
                    bad,
                    "code_challenge_method",
                    "S256",
                ],
            ),
            "INVALID_REQUEST code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        );
    }
    assert!(snapshot(&mut c).is_empty());
    // 43 and 128 characters of the full alphabet are accepted.
    let max = "Az09-._~".repeat(16);
    ok(
        &mut c,
        &savecode_args(
            "k128",
            "60",
            &[
                "3",
                "client_id",
                "app1",
                "code_challenge",
                &max,
                "code_challenge_method",
                "S256",
            ],
        ),
    );
}

#[test]
fn savecode_on_an_existing_key_is_exists() {
    let s = Server::start();
    let mut c = s.conn();
    save_code(&mut c, "code:5");
    ok(&mut c, &["SET", "str:5", "v"]);
    run(&mut c, &["RPUSH", "list:5", "a"]).unwrap();
    for key in ["code:5", "str:5", "list:5"] {
        refused_unchanged(&mut c, &savecode_args(key, "60", GOOD_FIELDS), EXISTS);
    }
}

#[test]
fn exchange_on_another_type_or_kind_is_wrongtype() {
    let s = Server::start();
    let mut c = s.conn();
    ok(&mut c, &["SET", "str", "v"]);
    run(&mut c, &["RPUSH", "list", "a"]).unwrap();
    run(&mut c, &["HSET", "hash", "client_id", "app1"]).unwrap();
    ok(
        &mut c,
        &[
            "OAUTH.SAVETOKEN",
            "tok",
            "60",
            "FIELDS",
            "1",
            "client_id",
            "app1",
        ],
    );
    ok(
        &mut c,
        &[
            "OAUTH.SAVESTATE",
            "st",
            "60",
            "FIELDS",
            "1",
            "client_id",
            "app1",
        ],
    );
    for key in ["str", "list"] {
        refused_unchanged(
            &mut c,
            &["OAUTH.EXCHANGE", key, "app1", "https://app/cb", VERIFIER],
            WRONG_REDIS_TYPE,
        );
    }
    for key in ["hash", "tok", "st"] {
        refused_unchanged(
            &mut c,
            &["OAUTH.EXCHANGE", key, "app1", "https://app/cb", VERIFIER],
            NOT_A_CODE,
        );
        refused_unchanged(&mut c, &["OAUTH.EXCHANGE", key, "app1", "", ""], NOT_A_CODE);
    }
}

#[test]
fn each_failed_check_has_its_sentence_and_only_counts_an_attempt() {
    let s = Server::start();
    let mut c = s.conn();
    let long = "a".repeat(129);
    let bad_char = format!("{}+", &VERIFIER[..42]);
    let cases: Vec<([&str; 3], &str)> = vec![
        (["app2", "https://app/cb", VERIFIER], CLIENT),
        (["", "https://app/cb", VERIFIER], CLIENT),
        (["APP1", "https://app/cb", VERIFIER], CLIENT),
        // Client is checked first.
        (["app2", "https://evil/cb", ""], CLIENT),
        (["app1", "https://app/cb/", VERIFIER], REDIRECT),
        (["app1", "https://app/CB", VERIFIER], REDIRECT),
        (["app1", "", VERIFIER], REDIRECT),
        // Redirect is checked before PKCE.
        (["app1", "https://evil/cb", "short"], REDIRECT),
        (["app1", "https://app/cb", OTHER_VERIFIER], PKCE_MISMATCH),
        (["app1", "https://app/cb", CHALLENGE], PKCE_MISMATCH),
        (["app1", "https://app/cb", ""], VERIFIER_MISSING),
        (["app1", "https://app/cb", "short"], VERIFIER_MALFORMED),
        (["app1", "https://app/cb", &long], VERIFIER_MALFORMED),
        (["app1", "https://app/cb", &bad_char], VERIFIER_MALFORMED),
    ];
    for (i, ([client, redirect, verifier], expected)) in cases.iter().enumerate() {
        let key = format!("code:{i}");
        save_code(&mut c, &key);
        let before = snapshot(&mut c);
        let args = ["OAUTH.EXCHANGE", &key, client, redirect, verifier];
        assert_eq!(err(&mut c, &args), *expected, "{args:?}");
        let after = snapshot(&mut c);
        assert_eq!(
            without_attempts(after),
            without_attempts(before),
            "{args:?} changed more than the attempt counter"
        );
        assert_eq!(attempts(&mut c, &key).as_deref(), Some("1"), "{args:?}");
        // Still live: the right request succeeds.
        exchange(&mut c, &key).unwrap_or_else(|e| panic!("{args:?} then a good exchange: {e}"));
    }
    assert_eq!(info_counter(&mut c, "exchange_fail_client"), 4);
    assert_eq!(info_counter(&mut c, "exchange_fail_redirect"), 4);
    assert_eq!(info_counter(&mut c, "exchange_fail_pkce"), 6);
}

#[test]
fn codes_without_challenge_when_pkce_is_not_required() {
    let s = Server::with_module_args(&["require-pkce", "no"]);
    let mut c = s.conn();
    // No redirect_uri stored: the request must send "".
    ok(
        &mut c,
        &savecode_args("c1", "60", &["2", "client_id", "app1", "scope", "s"]),
    );
    ok(
        &mut c,
        &savecode_args("c2", "60", &["2", "client_id", "app1", "scope", "s"]),
    );
    // A method without a challenge is refused.
    refused_unchanged(
        &mut c,
        &savecode_args(
            "c3",
            "60",
            &["2", "client_id", "app1", "code_challenge_method", "S256"],
        ),
        "INVALID_REQUEST code_challenge_method given without code_challenge",
    );
    let before = snapshot(&mut c);
    assert_eq!(
        err(&mut c, &["OAUTH.EXCHANGE", "c1", "app1", "", VERIFIER]),
        VERIFIER_UNEXPECTED
    );
    assert_eq!(without_attempts(snapshot(&mut c)), without_attempts(before));
    assert_eq!(attempts(&mut c, "c1").as_deref(), Some("1"));
    assert_eq!(
        err(
            &mut c,
            &["OAUTH.EXCHANGE", "c1", "app1", "https://app/cb", ""]
        ),
        REDIRECT
    );
    assert_eq!(attempts(&mut c, "c1").as_deref(), Some("2"));
    let reply = run(&mut c, &["OAUTH.EXCHANGE", "c1", "app1", "", ""]).expect("exchange");
    assert_eq!(
        sorted_pairs(&reply),
        owned(&[("client_id", "app1"), ("scope", "s")])
    );
    // A verifier that happens to be malformed is still "unexpected", not "malformed".
    assert_eq!(
        err(&mut c, &["OAUTH.EXCHANGE", "c2", "app1", "", "x"]),
        VERIFIER_UNEXPECTED
    );
}

#[test]
fn plain_pkce_when_allowed() {
    let s = Server::with_module_args(&["allow-plain-pkce", "yes"]);
    let mut c = s.conn();
    ok(
        &mut c,
        &savecode_args(
            "p1",
            "60",
            &[
                "3",
                "client_id",
                "app1",
                "code_challenge",
                VERIFIER,
                "code_challenge_method",
                "plain",
            ],
        ),
    );
    // Absent method means plain.
    ok(
        &mut c,
        &savecode_args(
            "p2",
            "60",
            &["2", "client_id", "app1", "code_challenge", VERIFIER],
        ),
    );
    // plain compares verbatim: the S256 challenge is not a plain verifier for it.
    assert_eq!(
        err(&mut c, &["OAUTH.EXCHANGE", "p1", "app1", "", CHALLENGE]),
        PKCE_MISMATCH
    );
    for key in ["p1", "p2"] {
        let reply = run(&mut c, &["OAUTH.EXCHANGE", key, "app1", "", VERIFIER]).expect("plain");
        assert_eq!(sorted_pairs(&reply), owned(&[("client_id", "app1")]));
    }
}

#[test]
fn failed_attempts_grow_then_burn_the_code() {
    let s = Server::start();
    let mut c = s.conn();
    save_code(&mut c, "code:b");
    let expiry = pexpiretime(&mut c, "code:b");
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.EXCHANGE",
                "code:b",
                "app2",
                "https://app/cb",
                VERIFIER
            ]
        ),
        CLIENT
    );
    assert_eq!(attempts(&mut c, "code:b").as_deref(), Some("1"));
    assert_eq!(pexpiretime(&mut c, "code:b"), expiry);
    assert_eq!(
        err(
            &mut c,
            &["OAUTH.EXCHANGE", "code:b", "app1", "https://x", VERIFIER]
        ),
        REDIRECT
    );
    assert_eq!(attempts(&mut c, "code:b").as_deref(), Some("2"));
    assert_eq!(pexpiretime(&mut c, "code:b"), expiry);
    // The third failure (default code-max-attempts 3) burns the code.
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.EXCHANGE",
                "code:b",
                "app1",
                "https://app/cb",
                OTHER_VERIFIER
            ]
        ),
        format!("{PKCE_MISMATCH}{BURNED_SUFFIX}")
    );
    assert!(!exists(&mut c, "code:b"), "a burned code is deleted");
    // Even the right request now finds nothing.
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:b",
            "app1",
            "https://app/cb",
            VERIFIER,
        ],
        NOT_FOUND,
    );
    assert_eq!(info_counter(&mut c, "codes_burned"), 1);

    // Two failures then the right request: the code is still good.
    save_code(&mut c, "code:c");
    for _ in 0..2 {
        assert_eq!(
            err(
                &mut c,
                &["OAUTH.EXCHANGE", "code:c", "app1", "https://app/cb", ""]
            ),
            VERIFIER_MISSING
        );
    }
    assert_eq!(attempts(&mut c, "code:c").as_deref(), Some("2"));
    exchange(&mut c, "code:c").expect("third try with the right verifier");
    assert_eq!(
        attempts(&mut c, "code:c"),
        None,
        "the tombstone drops the counter"
    );
    // Not-found and reuse do not count as attempts (there is nothing to count on).
    refused_unchanged(&mut c, &["OAUTH.EXCHANGE", "code:c", "x", "", ""], REUSED);
}

#[test]
fn missing_code_is_not_found() {
    let s = Server::start();
    let mut c = s.conn();
    refused_unchanged(
        &mut c,
        &["OAUTH.EXCHANGE", "nope", "app1", "https://app/cb", VERIFIER],
        NOT_FOUND,
    );
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "nope",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "tok",
            "60",
        ],
        NOT_FOUND,
    );
    assert!(snapshot(&mut c).is_empty());
    assert_eq!(info_counter(&mut c, "exchange_fail_not_found"), 2);
}

#[test]
fn exchange_option_errors_change_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    save_code(&mut c, "code:o");
    let base = [
        "OAUTH.EXCHANGE",
        "code:o",
        "app1",
        "https://app/cb",
        VERIFIER,
    ];
    let with = |rest: &[&'static str]| -> Vec<&'static str> {
        let mut v: Vec<&'static str> = base.to_vec();
        v.extend_from_slice(rest);
        v
    };
    let mismatch = "INVALID_REQUEST numfields is 2 but 1 pair follows; FIELDS must be last and hold exactly numfields field value pairs";
    // Sentences that list the command's options grow as options are added:
    // their stable beginning is checked.
    let prefix_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            with(&["FOO"]),
            "INVALID_REQUEST unknown option; expected ISSUE",
        ),
        (
            with(&["ISSUE", "tok", "60", "BAR", "1"]),
            "INVALID_REQUEST unknown option; expected ISSUE",
        ),
        (
            with(&["FIELDS", "1", "scope", "x"]),
            "INVALID_REQUEST FIELDS needs ISSUE",
        ),
    ];
    for (args, prefix) in &prefix_cases {
        let before = snapshot(&mut c);
        let e = err(&mut c, args);
        assert!(e.starts_with(prefix), "{args:?}: {e}");
        assert_eq!(snapshot(&mut c), before, "{args:?} changed the data");
    }
    // The token key must differ from the code key.
    let before = snapshot(&mut c);
    let e = err(&mut c, &with(&["ISSUE", "code:o", "60"]));
    assert!(
        e.starts_with("INVALID_REQUEST ") && e.contains("differ"),
        "ISSUE to the code key: {e}"
    );
    assert_eq!(snapshot(&mut c), before);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            with(&["ISSUE", "tok", "60", "ISSUE", "tok2", "60"]),
            "INVALID_REQUEST ISSUE is given twice",
        ),
        (
            with(&["ISSUE", "tok"]),
            "INVALID_REQUEST ISSUE needs token_key and token_ttl",
        ),
        (
            with(&["ISSUE"]),
            "INVALID_REQUEST ISSUE needs token_key and token_ttl",
        ),
        (
            with(&["ISSUE", "tok", "0"]),
            "INVALID_REQUEST ttl must be an integer from 1 to 2592000",
        ),
        (
            with(&["ISSUE", "tok", "2592001"]),
            "INVALID_REQUEST ttl must be an integer from 1 to 2592000",
        ),
        (
            with(&["ISSUE", "tok", "abc"]),
            "INVALID_REQUEST ttl is not an integer",
        ),
        (
            with(&["ISSUE", "tok", "60", "FIELDS", "1", "_x", "y"]),
            RESERVED,
        ),
        (
            with(&["ISSUE", "tok", "60", "FIELDS", "1", "exp", "1"]),
            RESERVED,
        ),
        (
            with(&["ISSUE", "tok", "60", "FIELDS", "1", "active", "1"]),
            RESERVED,
        ),
        (
            with(&["ISSUE", "tok", "60", "FIELDS", "2", "a", "b"]),
            mismatch,
        ),
        (
            with(&["ISSUE", "tok", "60", "FIELDS", "2", "a", "1", "a", "2"]),
            "INVALID_REQUEST a field name is given twice",
        ),
        (
            with(&["ISSUE", "tok", "60", "FIELDS"]),
            "INVALID_REQUEST FIELDS needs numfields",
        ),
    ];
    for (args, expected) in &cases {
        refused_unchanged(&mut c, args, expected);
    }
    assert_eq!(attempts(&mut c, "code:o"), None);
    // The code is untouched and still redeemable, with a case-insensitive ISSUE.
    run(
        &mut c,
        &with(&["issue", "tok", "60", "fields", "1", "jti", "j"]),
    )
    .expect("exchange after refused options");
    assert_eq!(field_of(&mut c, "tok", "jti").as_deref(), Some("j"));
    assert_eq!(info_counter(&mut c, "panics"), 0);
}

#[test]
fn record_caps_are_enforced() {
    let s = Server::with_module_args(&["record-max-fields", "4", "record-max-bytes", "200"]);
    let mut c = s.conn();
    let too_many = "INVALID_REQUEST too many fields: at most 4 per record (record-max-fields)";
    let too_big =
        "INVALID_REQUEST record too large: at most 200 bytes of field names and values (record-max-bytes)";
    let mut five: Vec<&str> = GOOD_FIELDS.to_vec();
    five[0] = "5";
    five.extend_from_slice(&["a", "1", "b", "2"]);
    refused_unchanged(&mut c, &savecode_args("k", "60", &five), too_many);
    let big = "v".repeat(200);
    let mut heavy: Vec<&str> = GOOD_FIELDS.to_vec();
    heavy[0] = "4";
    heavy.extend_from_slice(&["blob", &big]);
    refused_unchanged(&mut c, &savecode_args("k", "60", &heavy), too_big);
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.SAVETOKEN",
            "t",
            "60",
            "FIELDS",
            "5",
            "a",
            "1",
            "b",
            "2",
            "c",
            "3",
            "d",
            "4",
            "e",
            "5",
        ],
        too_many,
    );
    refused_unchanged(
        &mut c,
        &["OAUTH.SAVESTATE", "st", "60", "FIELDS", "1", "blob", &big],
        too_big,
    );
    // Exactly at the caps is fine: 4 fields, and 200 bytes.
    save_code_with_redirect(&mut c, "code:cap");
    let exact = "v".repeat(200 - 4);
    ok(
        &mut c,
        &[
            "OAUTH.SAVETOKEN",
            "t200",
            "60",
            "FIELDS",
            "1",
            "blob",
            &exact,
        ],
    );

    // ISSUE: the token's fields (code fields + FIELDS) are capped as a whole,
    // after the grant checks and before anything is written.
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:cap",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "tok",
            "60",
            "FIELDS",
            "3",
            "a",
            "1",
            "b",
            "2",
            "c",
            "3",
        ],
        too_many,
    );
    // client_id+app1 (13) + redirect_uri+https://app/cb (26) + x + 162 = 202 bytes.
    let v162 = "v".repeat(162);
    refused_unchanged(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:cap",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "tok",
            "60",
            "FIELDS",
            "1",
            "x",
            &v162,
        ],
        too_big,
    );
    assert_eq!(attempts(&mut c, "code:cap"), None);
    // 200 bytes exactly, 4 fields: accepted.
    let v160 = "v".repeat(160);
    run(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:cap",
            "app1",
            "https://app/cb",
            VERIFIER,
            "ISSUE",
            "tok",
            "60",
            "FIELDS",
            "1",
            "x",
            &v160,
        ],
    )
    .expect("exchange within the caps");
    assert_eq!(field_of(&mut c, "tok", "x"), Some(v160));
}

/// A code with exactly four fields: client_id, redirect_uri and S256 PKCE.
fn save_code_with_redirect(c: &mut Connection, key: &str) {
    ok(
        c,
        &[
            "OAUTH.SAVECODE",
            key,
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
    );
}

#[test]
fn default_record_caps() {
    let s = Server::start();
    let mut c = s.conn();
    let names: Vec<String> = (0..65).map(|i| format!("f{i}")).collect();
    let mut args: Vec<&str> = vec!["OAUTH.SAVETOKEN", "t", "60", "FIELDS", "65"];
    for n in &names {
        args.push(n);
        args.push("v");
    }
    refused_unchanged(
        &mut c,
        &args,
        "INVALID_REQUEST too many fields: at most 64 per record (record-max-fields)",
    );
    args[4] = "64";
    args.truncate(args.len() - 2);
    ok(&mut c, &args);
    let big = "v".repeat(16_384);
    refused_unchanged(
        &mut c,
        &["OAUTH.SAVETOKEN", "t2", "60", "FIELDS", "1", "b", &big],
        "INVALID_REQUEST record too large: at most 16384 bytes of field names and values (record-max-bytes)",
    );
}

#[test]
fn racing_connections_redeem_each_code_exactly_once() {
    const CODES: usize = 200;
    const THREADS: usize = 8;
    let s = Server::start();
    let mut c = s.conn();
    for i in 0..CODES {
        save_code(&mut c, &format!("race:{i}"));
    }
    let barrier = std::sync::Barrier::new(THREADS);
    let wins: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut conn = s.conn();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut won = Vec::new();
                    for j in 0..CODES {
                        // Each thread walks the codes from its own starting point.
                        let i = (j + t * CODES / THREADS) % CODES;
                        let key = format!("race:{i}");
                        match exchange(&mut conn, &key) {
                            Ok(v) => {
                                assert_eq!(field(&v, "user_id").as_deref(), Some("u42"));
                                won.push(i);
                            }
                            Err(e) => assert_eq!(error_text(&e), REUSED),
                        }
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<usize> = wins.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..CODES).collect::<Vec<_>>(),
        "exactly one success per code"
    );
    assert_eq!(info_counter(&mut c, "codes_exchanged"), CODES as u64);
    assert_eq!(
        info_counter(&mut c, "exchange_fail_reused"),
        (CODES * (THREADS - 1)) as u64
    );
    for i in 0..CODES {
        assert!(field_of(&mut c, &format!("race:{i}"), "_consumed").is_some());
    }
}

#[test]
fn racing_exchanges_with_issue_create_one_token_per_code() {
    const CODES: usize = 50;
    const THREADS: usize = 8;
    let s = Server::start();
    let mut c = s.conn();
    for i in 0..CODES {
        save_code(&mut c, &format!("{{r{i}}}:code"));
    }
    let barrier = std::sync::Barrier::new(THREADS);
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut conn = s.conn();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut won = 0;
                    for i in 0..CODES {
                        let key = format!("{{r{i}}}:code");
                        let tok = format!("{{r{i}}}:tok:{t}");
                        let r = run(
                            &mut conn,
                            &[
                                "OAUTH.EXCHANGE",
                                &key,
                                "app1",
                                "https://app/cb",
                                VERIFIER,
                                "ISSUE",
                                &tok,
                                "60",
                            ],
                        );
                        match r {
                            Ok(_) => won += 1,
                            Err(e) => assert_eq!(error_text(&e), REUSED),
                        }
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(total, CODES);
    // Every code issued exactly one token; later reuses may have revoked it.
    assert_eq!(info_counter(&mut c, "tokens_saved"), CODES as u64);
    for i in 0..CODES {
        let tomb = hgetall(&mut c, &format!("{{r{i}}}:code"));
        assert!(tomb.iter().any(|(f, _)| f == "_token"), "{tomb:?}");
    }
}

/// Every key in the database has an expiry.
fn assert_all_keys_expire(c: &mut Connection) {
    for (k, _, _, exp) in snapshot(c) {
        assert!(exp > 0, "key {k:?} has no expiry");
    }
}

/// Redis strings are binary safe: a field value with a NUL byte (an opaque
/// upstream token, say) is stored and handed back byte for byte.
#[test]
fn binary_values_in_a_code_round_trip() {
    let s = Server::start();
    let mut c = s.conn();
    let value: &[u8] = b"id\0token\xff";
    let r: redis::RedisResult<Value> = redis::cmd("OAUTH.SAVECODE")
        .arg("code:bin")
        .arg(600)
        .arg("FIELDS")
        .arg(4)
        .arg("client_id")
        .arg("app1")
        .arg("code_challenge")
        .arg(CHALLENGE)
        .arg("code_challenge_method")
        .arg("S256")
        .arg("id_token")
        .arg(value)
        .query(&mut c);
    // Whatever the answer, no key may be left without its expiry.
    assert_all_keys_expire(&mut c);
    assert_eq!(r.expect("SAVECODE with a NUL byte in a value"), Value::Okay);
    let reply = run(
        &mut c,
        &["OAUTH.EXCHANGE", "code:bin", "app1", "", VERIFIER],
    )
    .unwrap();
    let Value::Array(items) = reply else {
        panic!("{reply:?}")
    };
    assert!(items
        .chunks(2)
        .any(|p| p[0] == Value::BulkString(b"id_token".to_vec())
            && p[1] == Value::BulkString(value.to_vec())));
    assert_all_keys_expire(&mut c);
}

/// A token key with a NUL byte (keys are binary safe) works with ISSUE, and
/// its reuse revokes it. A failure midway must not consume the code, leave a
/// tombstone without expiry or lose the token.
#[test]
fn issue_to_a_binary_token_key() {
    let s = Server::start();
    let mut c = s.conn();
    save_code(&mut c, "code:k");
    let token_key: &[u8] = b"tok\0bin";
    let r: redis::RedisResult<Value> = redis::cmd("OAUTH.EXCHANGE")
        .arg("code:k")
        .arg("app1")
        .arg("https://app/cb")
        .arg(VERIFIER)
        .arg("ISSUE")
        .arg(token_key)
        .arg(60)
        .query(&mut c);
    assert_all_keys_expire(&mut c);
    r.expect("EXCHANGE ... ISSUE with a binary token key");
    let n: i64 = redis::cmd("EXISTS").arg(token_key).query(&mut c).unwrap();
    assert_eq!(n, 1, "the token was created");
    let tomb: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg("code:k").query(&mut c).unwrap();
    assert!(tomb.contains(&(b"_token".to_vec(), token_key.to_vec())));
    assert_eq!(
        err(
            &mut c,
            &[
                "OAUTH.EXCHANGE",
                "code:k",
                "app1",
                "https://app/cb",
                VERIFIER
            ]
        ),
        REUSED
    );
    let n: i64 = redis::cmd("EXISTS").arg(token_key).query(&mut c).unwrap();
    assert_eq!(n, 0, "reuse revokes the binary-named token");
}
