//! Issue 6, access control: ACL users limited by key patterns get NOPERM for
//! every command form that names a key outside their patterns (and nothing is
//! written); read and write key permissions follow the key specs; the module's
//! commands carry no ACL category; keys after a keyword are found by the
//! module (a field value equal to a keyword is not a key); records forged with
//! plain writes cannot lead the module's grant handling outside the user's
//! patterns; and every rule of docs/acl.md, in both its ACL SETUSER and
//! users.acl forms, does what the page says.

mod common;
use common::*;

use std::collections::BTreeSet;

const SECRET: &str = "client-secret-0123456789abcdef0123456789";
const DOC: &str = include_str!("../docs/acl.md");

// ---------------------------------------------------------------------------
// Commands as templates, replies
// ---------------------------------------------------------------------------

/// Key names of one case: role -> key. `outside` puts one role outside the
/// user's patterns; rate-limit roles (`rl...`) live under the rate-limit prefix.
#[derive(Clone, Copy)]
struct K {
    /// The hash tag of every key.
    tag: &'static str,
    oauth: &'static str,
    rl: &'static str,
    out_oauth: &'static str,
    out_rl: &'static str,
    outside: Option<&'static str>,
}

impl K {
    fn k(&self, role: &str) -> String {
        let rl = role.starts_with("rl");
        let prefix = match (self.outside == Some(role), rl) {
            (true, true) => self.out_rl,
            (true, false) => self.out_oauth,
            (false, true) => self.rl,
            (false, false) => self.oauth,
        };
        format!("{prefix}{{{}}}:{role}", self.tag)
    }

    /// A command from a template: words split on spaces; `$CB`, `$VERIFIER`,
    /// `$CHALLENGE` and `$SECRET` are the constants, any other `$role` the key
    /// of that role.
    fn fill(&self, template: &str) -> Vec<String> {
        template
            .split_whitespace()
            .map(|word| match word.strip_prefix('$') {
                None => word.to_string(),
                Some("CB") => CB.to_string(),
                Some("VERIFIER") => VERIFIER.to_string(),
                Some("CHALLENGE") => CHALLENGE.to_string(),
                Some("SECRET") => SECRET.to_string(),
                Some(role) => self.k(role),
            })
            .collect()
    }
}

/// Keys `oauth:{g1}:<role>` and `rl:{g1}:<role>`; outside: `other:{g1}:<role>`.
const PLAIN: K = K {
    tag: "g1",
    oauth: "oauth:",
    rl: "rl:",
    out_oauth: "other:",
    out_rl: "other:",
    outside: None,
};

/// The tenant gateway's keys; outside: a longer tenant name, another prefix.
const ACME: K = K {
    tag: "g1",
    oauth: "oauth:acme:",
    rl: "rl:acme:",
    out_oauth: "oauth:acmecorp:",
    out_rl: "rl:other:",
    outside: None,
};

/// A literal command (templates without roles).
fn w(template: &str) -> Vec<String> {
    PLAIN.fill(template)
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".to_string(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        other => panic!("not an array: {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    items(v).iter().map(text).collect()
}

fn succeeds(c: &mut Connection, args: &[String]) -> Value {
    run(c, &refs(args)).unwrap_or_else(|e| panic!("{args:?} failed: {}", error_text(&e)))
}

fn go(c: &mut Connection, template: &str) -> Value {
    succeeds(c, &w(template))
}

// ---------------------------------------------------------------------------
// Users and denials
// ---------------------------------------------------------------------------

/// `ACL SETUSER` with the given rule tokens (the user name first).
fn setuser<S: AsRef<str>>(admin: &mut Connection, tokens: &[S]) {
    let mut args = vec!["ACL", "SETUSER"];
    args.extend(tokens.iter().map(AsRef::as_ref));
    ok(admin, &args);
}

/// A new connection authenticated as `user`.
fn login(s: &Server, user: &str, pass: &str) -> Connection {
    let mut c = s.conn();
    ok(&mut c, &["AUTH", user, pass]);
    c
}

/// The newest ACL LOG entry: (reason, object).
fn last_denial(admin: &mut Connection) -> (String, String) {
    let log = run(admin, &["ACL", "LOG", "1"]).expect("ACL LOG");
    let entry = items(&log).first().expect("an ACL LOG entry");
    let get = |name: &str| field(entry, name).unwrap_or_default();
    (get("reason"), get("object"))
}

/// `args`, run by `c`, is refused because of `key`: the ACL LOG names that
/// key, and nothing in the database changed.
fn denied_key(admin: &mut Connection, c: &mut Connection, args: &[String], key: &str) {
    ok(admin, &["ACL", "LOG", "RESET"]);
    let before = snapshot(admin);
    let e = err(c, &refs(args));
    assert!(
        e.starts_with("NOPERM") && !e.contains("command"),
        "{args:?}: expected a NOPERM key error, got {e}"
    );
    assert_eq!(
        last_denial(admin),
        ("key".to_string(), key.to_string()),
        "{args:?}: the ACL LOG names the refused key"
    );
    assert_eq!(snapshot(admin), before, "{args:?}: NOPERM wrote nothing");
}

/// `args`, run by `c`, is refused because of the command; nothing changed.
fn denied_command(admin: &mut Connection, c: &mut Connection, args: &[String]) {
    ok(admin, &["ACL", "LOG", "RESET"]);
    let before = snapshot(admin);
    let e = err(c, &refs(args));
    assert!(
        e.starts_with("NOPERM") && e.contains("command"),
        "{args:?}: expected a NOPERM command error, got {e}"
    );
    assert_eq!(last_denial(admin).0, "command", "{args:?}");
    assert_eq!(snapshot(admin), before, "{args:?}: NOPERM wrote nothing");
}

// ---------------------------------------------------------------------------
// The rules of docs/acl.md
// ---------------------------------------------------------------------------

const DOC_USERS: [&str; 5] = [
    "oauth-gateway",
    "oauth-gateway-acme",
    "oauth-support",
    "oauth-ratelimit",
    "oauth-admin",
];

/// Lines inside the page's fenced code blocks.
fn doc_code_lines() -> Vec<&'static str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in DOC.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if inside {
            out.push(line.trim());
        }
    }
    out
}

/// The page's code lines starting with `prefix`, as their tokens after it.
fn doc_rules(prefix: &str) -> Vec<Vec<String>> {
    doc_code_lines()
        .into_iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|r| r.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The `ACL SETUSER` rule of `user`: its tokens, the name first.
fn doc_rule(user: &str) -> Vec<String> {
    doc_rules("ACL SETUSER ")
        .into_iter()
        .find(|r| r[0] == user)
        .unwrap_or_else(|| panic!("docs/acl.md has no ACL SETUSER line for {user}"))
}

fn password(rule: &[String]) -> String {
    rule.iter()
        .find_map(|t| t.strip_prefix('>'))
        .expect("the rule sets a password")
        .to_string()
}

/// Creates the page's user `name` and logs in as it.
fn doc_user(s: &Server, admin: &mut Connection, name: &str) -> Connection {
    let rule = doc_rule(name);
    setuser(admin, &rule);
    login(s, name, &password(&rule))
}

// ---------------------------------------------------------------------------
// Every command form, with the permission each of its keys needs
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Need {
    R,
    W,
    RW,
}
use Need::{R, RW, W};

impl Need {
    fn allowed_by(self, user: Need) -> bool {
        user == RW || self == user
    }
}

/// The permission a key needs, from its key-spec flags (as Redis's ACL does:
/// `access` needs read; `insert`, `update`, `delete` need write).
fn need_of(flags: &[String]) -> Option<Need> {
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let r = has("access");
    let w = has("insert") || has("update") || has("delete");
    match (r, w) {
        (true, true) => Some(RW),
        (true, false) => Some(R),
        (false, true) => Some(W),
        (false, false) => None,
    }
}

struct Case {
    name: &'static str,
    /// The command's keys in key-spec order, with the permission each needs.
    roles: &'static [(&'static str, Need)],
    /// Run by the admin first, so that the command succeeds when allowed.
    setup: &'static [&'static str],
    args: &'static str,
}

const SAVE_CODE: &str = "OAUTH.SAVECODE $code 600 FIELDS 4 client_id app1 \
    redirect_uri $CB code_challenge $CHALLENGE code_challenge_method S256";
const SAVE_TOKEN: &str = "OAUTH.SAVETOKEN $tok 600 FIELDS 2 sub u1 scope read";
const SAVE_CLIENT: &str = "OAUTH.SAVECLIENT $client FIELDS 2 client_id app1 client_secret $SECRET";
/// A refresh token at `old`, in the grant `setup-grant`.
const MAKE_REFRESH: &[&str] = &[
    "OAUTH.SAVECODE $setup-code 600 FIELDS 4 client_id app1 redirect_uri $CB \
     code_challenge $CHALLENGE code_challenge_method S256",
    "OAUTH.EXCHANGE $setup-code app1 $CB $VERIFIER REFRESH $old 3600 GRANT $setup-grant",
];

const CASES: &[Case] = &[
    Case {
        name: "savecode",
        roles: &[("code", W)],
        setup: &[],
        args: SAVE_CODE,
    },
    Case {
        name: "exchange",
        roles: &[("code", RW)],
        setup: &[SAVE_CODE],
        args: "OAUTH.EXCHANGE $code app1 $CB $VERIFIER",
    },
    Case {
        name: "exchange ISSUE REFRESH GRANT",
        roles: &[("code", RW), ("at", W), ("rt", W), ("grant", W)],
        setup: &[SAVE_CODE],
        args: "OAUTH.EXCHANGE $code app1 $CB $VERIFIER ISSUE $at 600 REFRESH $rt 3600 \
               GRANT $grant FIELDS 1 sub u1",
    },
    Case {
        name: "savetoken",
        roles: &[("tok", W)],
        setup: &[],
        args: SAVE_TOKEN,
    },
    Case {
        name: "savetoken GRANT",
        roles: &[("tok", W), ("grant", W)],
        setup: &[],
        args: "OAUTH.SAVETOKEN $tok 600 GRANT $grant FIELDS 1 sub u1",
    },
    Case {
        name: "introspect",
        roles: &[("tok", R)],
        setup: &[SAVE_TOKEN],
        args: "OAUTH.INTROSPECT $tok",
    },
    Case {
        name: "introspect CUTOFF",
        roles: &[("tok", R), ("cut1", R), ("cut2", R)],
        setup: &[SAVE_TOKEN],
        args: "OAUTH.INTROSPECT $tok CUTOFF 2 $cut1 $cut2",
    },
    Case {
        name: "revoke",
        roles: &[("t1", W), ("t2", W)],
        setup: &[
            "OAUTH.SAVETOKEN $t1 600 FIELDS 1 sub u1",
            "OAUTH.SAVETOKEN $t2 600 FIELDS 1 sub u1",
        ],
        args: "OAUTH.REVOKE $t1 $t2",
    },
    Case {
        name: "savestate",
        roles: &[("st", W)],
        setup: &[],
        args: "OAUTH.SAVESTATE $st 600 FIELDS 1 nonce n1",
    },
    Case {
        name: "consumestate",
        roles: &[("st", RW)],
        setup: &["OAUTH.SAVESTATE $st 600 FIELDS 1 nonce n1"],
        args: "OAUTH.CONSUMESTATE $st",
    },
    Case {
        name: "ratelimit",
        roles: &[("rl", RW)],
        setup: &[],
        args: "OAUTH.RATELIMIT $rl 10 60",
    },
    Case {
        name: "ratelimit COST SLIDING",
        roles: &[("rl", RW)],
        setup: &[],
        args: "OAUTH.RATELIMIT $rl 10 60 COST 2 SLIDING",
    },
    Case {
        name: "ratelimitall",
        roles: &[("rl1", RW), ("rl2", RW)],
        setup: &[],
        args: "OAUTH.RATELIMITALL 2 $rl1 $rl2 10 60 100 3600",
    },
    Case {
        name: "throttle",
        roles: &[("rlth", RW)],
        setup: &[],
        args: "OAUTH.THROTTLE $rlth 15 30 60",
    },
    Case {
        name: "rotate",
        roles: &[("old", RW), ("new", W)],
        setup: MAKE_REFRESH,
        args: "OAUTH.ROTATE $old $new 3600",
    },
    Case {
        name: "rotate ISSUE GRACE CUTOFF",
        roles: &[("old", RW), ("new", W), ("at", W), ("cut1", R), ("cut2", R)],
        setup: MAKE_REFRESH,
        args: "OAUTH.ROTATE $old $new 3600 ISSUE $at 600 GRACE 5 CUTOFF 2 $cut1 $cut2",
    },
    Case {
        name: "revokegrant",
        roles: &[("grant", RW)],
        setup: &["OAUTH.SAVETOKEN $setup-tok 600 GRANT $grant FIELDS 1 sub u1"],
        args: "OAUTH.REVOKEGRANT $grant",
    },
    Case {
        name: "revokebefore",
        // Its reply is the stored cutoff: read as well as write.
        roles: &[("cut", RW)],
        setup: &[],
        args: "OAUTH.REVOKEBEFORE $cut",
    },
    Case {
        name: "saveclient",
        roles: &[("client", W)],
        setup: &[],
        args: "OAUTH.SAVECLIENT $client TTL 3600 FIELDS 2 client_id app1 client_secret $SECRET",
    },
    Case {
        name: "verifyclient",
        roles: &[("client", R)],
        setup: &[SAVE_CLIENT],
        args: "OAUTH.VERIFYCLIENT $client $SECRET",
    },
    Case {
        name: "getclient",
        roles: &[("client", R)],
        setup: &[SAVE_CLIENT],
        args: "OAUTH.GETCLIENT $client",
    },
    Case {
        name: "deleteclient",
        roles: &[("client", W)],
        setup: &[SAVE_CLIENT],
        args: "OAUTH.DELETECLIENT $client",
    },
    Case {
        name: "help",
        roles: &[],
        setup: &[],
        args: "OAUTH.HELP",
    },
];

impl Case {
    /// Empties the database and runs the setup as the admin; answers the command.
    fn prepare(&self, admin: &mut Connection, k: &K) -> Vec<String> {
        ok(admin, &["FLUSHALL"]);
        for s in self.setup {
            succeeds(admin, &k.fill(s));
        }
        k.fill(self.args)
    }

    fn command(&self) -> &'static str {
        self.args.split_whitespace().next().unwrap_or_default()
    }
}

/// For every case: with all keys inside the user's patterns the command
/// succeeds; with any one key outside, it is refused with NOPERM naming that
/// key, nothing is written, and the very same command then succeeds for the
/// admin (so the refusal came from the ACL alone).
fn every_form_inside_ok_outside_refused(admin: &mut Connection, user: &mut Connection, keys: K) {
    for case in CASES {
        for (role, _) in case.roles {
            let k = K {
                outside: Some(role),
                ..keys
            };
            let args = case.prepare(admin, &k);
            denied_key(admin, user, &args, &k.k(role));
            succeeds(admin, &args);
        }
        let args = case.prepare(admin, &keys);
        succeeds(user, &args);
    }
}

// ---------------------------------------------------------------------------
// The page's users
// ---------------------------------------------------------------------------

#[test]
fn doc_defines_each_user_once_in_both_forms() {
    let setuser: Vec<String> = doc_rules("ACL SETUSER ")
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(setuser, DOC_USERS, "ACL SETUSER lines of docs/acl.md");
    let file = doc_rules("user ");
    let names: Vec<&str> = file.iter().map(|r| r[0].as_str()).collect();
    let mut expected = vec!["default"];
    expected.extend(DOC_USERS);
    assert_eq!(names, expected, "users.acl lines of docs/acl.md");
    for rule in &file[1..] {
        assert_eq!(
            rule,
            &doc_rule(&rule[0]),
            "the file line and the ACL SETUSER line of {} are the same rule",
            rule[0]
        );
    }
    for user in DOC_USERS {
        let rule = doc_rule(user);
        assert_eq!(rule[1], "reset", "{user} starts from a clean user");
        assert!(password(&rule).starts_with("CHANGE-ME"), "{user}");
    }
}

#[test]
fn gateway_runs_every_form_on_its_keys_only() {
    let s = Server::start();
    let mut admin = s.conn();
    let mut gw = doc_user(&s, &mut admin, "oauth-gateway");
    // AUTH and HELLO need no permission; PING is granted.
    go(&mut gw, "HELLO 2");
    assert_eq!(text(&go(&mut gw, "PING")), "PONG");
    every_form_inside_ok_outside_refused(&mut admin, &mut gw, PLAIN);
    // The module's own fields cannot be forged through FIELDS.
    let e = err(
        &mut gw,
        &refs(&w(
            "OAUTH.SAVETOKEN oauth:{g1}:t 600 FIELDS 1 _grant other:{g1}:g",
        )),
    );
    assert!(e.starts_with("INVALID_REQUEST"), "{e}");
}

#[test]
fn tenant_gateway_is_held_to_its_tenant_prefix() {
    let s = Server::start();
    let mut admin = s.conn();
    let mut acme = doc_user(&s, &mut admin, "oauth-gateway-acme");
    // Outside keys are oauth:acmecorp:{g1}:... : a prefix that ends with its
    // separator does not match a longer tenant name.
    every_form_inside_ok_outside_refused(&mut admin, &mut acme, ACME);

    // The untenanted prefix is not the tenant's either, same hash tag or not.
    let plain = Case {
        name: "exchange",
        roles: &[],
        setup: &[SAVE_CODE],
        args: "OAUTH.EXCHANGE $code app1 $CB $VERIFIER",
    };
    let args = plain.prepare(&mut admin, &PLAIN);
    denied_key(&mut admin, &mut acme, &args, "oauth:{g1}:code");

    // A whole authorization under the tenant prefix, one hash tag: code,
    // tokens, grant, rotation, revocation.
    let g7 = K { tag: "g7", ..ACME };
    for step in [
        SAVE_CODE,
        "OAUTH.EXCHANGE $code app1 $CB $VERIFIER ISSUE $at 600 REFRESH $rt 3600 GRANT $grant",
        "OAUTH.ROTATE $rt $rt2 3600 ISSUE $at2 600",
    ] {
        succeeds(&mut acme, &g7.fill(step));
    }
    let n = succeeds(&mut acme, &g7.fill("OAUTH.REVOKEGRANT $grant"));
    assert_eq!(
        n,
        Value::Int(5),
        "code tombstone, two access, two refresh tokens"
    );
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("oauth:acme:{g7}:*")
        .query(&mut admin)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn support_user_reads_but_never_writes() {
    let s = Server::start();
    let mut admin = s.conn();
    go(&mut admin, SAVE_CODE); // oauth:{g1}:code
    go(
        &mut admin,
        "OAUTH.EXCHANGE oauth:{g1}:code app1 $CB $VERIFIER ISSUE oauth:{g1}:at 600 \
         REFRESH oauth:{g1}:rt 3600 GRANT oauth:{g1}:grant FIELDS 1 sub u1",
    );
    go(&mut admin, SAVE_CLIENT); // oauth:{g1}:client
    go(&mut admin, "OAUTH.RATELIMIT rl:{g1}:ip 10 60");
    go(
        &mut admin,
        "OAUTH.SAVETOKEN other:{g1}:at 600 FIELDS 1 sub u1",
    );

    let mut sup = doc_user(&s, &mut admin, "oauth-support");
    let before = snapshot(&mut admin);
    let r = go(&mut sup, "OAUTH.INTROSPECT oauth:{g1}:at");
    assert_eq!(field(&r, "active").as_deref(), Some("1"));
    assert_eq!(field(&r, "sub").as_deref(), Some("u1"));
    let r = go(
        &mut sup,
        "OAUTH.INTROSPECT oauth:{g1}:at CUTOFF 1 oauth:{g1}:cut",
    );
    assert_eq!(field(&r, "active").as_deref(), Some("1"));
    let r = go(&mut sup, "OAUTH.GETCLIENT oauth:{g1}:client");
    assert_eq!(field(&r, "client_id").as_deref(), Some("app1"));
    assert!(field(&r, "_secret_sha256").is_none());
    // HGETALL shows every field, the secret's hash included.
    let h = pairs(&go(&mut sup, "HGETALL oauth:{g1}:client"));
    assert!(h.iter().any(|(f, _)| f == "_secret_sha256"), "{h:?}");
    go(&mut sup, "OAUTH.HELP");
    let h = pairs(&go(&mut sup, "HGETALL oauth:{g1}:at"));
    assert!(h.contains(&("sub".to_string(), "u1".to_string())), "{h:?}");
    assert_eq!(text(&go(&mut sup, "HGET oauth:{g1}:at sub")), "u1");
    go(&mut sup, "HMGET oauth:{g1}:at sub scope");
    assert_eq!(text(&go(&mut sup, "GET rl:{g1}:ip")), "1");
    for cmd in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"] {
        let t: i64 = text(&go(&mut sup, &format!("{cmd} oauth:{{g1}}:at")))
            .parse()
            .unwrap();
        assert!(t > 0, "{cmd} {t}");
    }
    assert_eq!(text(&go(&mut sup, "TYPE oauth:{g1}:grant")), "set");
    assert_eq!(text(&go(&mut sup, "EXISTS oauth:{g1}:at")), "1");
    assert_eq!(strings(&go(&mut sup, "SMEMBERS oauth:{g1}:grant")).len(), 3);
    assert_eq!(text(&go(&mut sup, "SCARD oauth:{g1}:grant")), "3");
    assert_eq!(
        text(&go(&mut sup, "SISMEMBER oauth:{g1}:grant oauth:{g1}:at")),
        "1"
    );
    assert_eq!(text(&go(&mut sup, "PING")), "PONG");
    assert_eq!(snapshot(&mut admin), before, "reading wrote nothing");

    // Outside its patterns even reads are refused.
    for (args, key) in [
        ("OAUTH.INTROSPECT other:{g1}:at", "other:{g1}:at"),
        ("HGETALL other:{g1}:at", "other:{g1}:at"),
        (
            "OAUTH.INTROSPECT oauth:{g1}:at CUTOFF 2 oauth:{g1}:cut other:{g1}:cut",
            "other:{g1}:cut",
        ),
    ] {
        denied_key(&mut admin, &mut sup, &w(args), key);
    }

    // No module command that writes, even on its own keys; not VERIFYCLIENT
    // (an oracle for guessing secrets); no plain write.
    let granted = ["OAUTH.INTROSPECT", "OAUTH.GETCLIENT", "OAUTH.HELP"];
    for case in CASES.iter().filter(|c| !granted.contains(&c.command())) {
        let args = case.prepare(&mut admin, &PLAIN);
        denied_command(&mut admin, &mut sup, &args);
    }
    for args in [
        "HSET oauth:{g1}:at sub u2",
        "DEL oauth:{g1}:at",
        "SET rl:{g1}:ip 0",
        "EXPIRE oauth:{g1}:at 1",
        "SADD oauth:{g1}:grant x",
        "SCAN 0",
        "KEYS *",
    ] {
        denied_command(&mut admin, &mut sup, &w(args));
    }
}

#[test]
fn support_patterns_alone_refuse_every_write() {
    // The support user's %R~ patterns with +@all instead of its command list.
    let s = Server::start();
    let mut admin = s.conn();
    let rule = doc_rule("oauth-support");
    let mut tokens: Vec<&str> = vec!["support-all", "reset", "on", ">pw", "+@all"];
    tokens.extend(
        rule.iter()
            .filter(|t| t.starts_with("%R~"))
            .map(String::as_str),
    );
    assert_eq!(tokens.len(), 7, "{rule:?}");
    setuser(&mut admin, &tokens);
    let mut c = login(&s, "support-all", "pw");
    for case in CASES {
        let args = case.prepare(&mut admin, &PLAIN);
        match case.roles.iter().find(|(_, n)| *n != R) {
            None => {
                succeeds(&mut c, &args);
            }
            Some((role, _)) => denied_key(&mut admin, &mut c, &args, &PLAIN.k(role)),
        }
    }
    denied_key(
        &mut admin,
        &mut c,
        &w("HSET oauth:{g1}:x a b"),
        "oauth:{g1}:x",
    );
    denied_key(&mut admin, &mut c, &w("SET rl:{g1}:x 1"), "rl:{g1}:x");
}

#[test]
fn ratelimit_user_limits_and_does_nothing_else() {
    let s = Server::start();
    let mut admin = s.conn();
    let mut rlu = doc_user(&s, &mut admin, "oauth-ratelimit");
    go(&mut rlu, "OAUTH.RATELIMIT rl:{u1}:ip 10 60");
    go(&mut rlu, "OAUTH.RATELIMIT rl:{u1}:sliding 10 60 SLIDING");
    go(
        &mut rlu,
        "OAUTH.RATELIMITALL 2 rl:{u1}:minute rl:{u1}:hour 10 60 100 3600",
    );
    go(&mut rlu, "OAUTH.THROTTLE rl:{u1}:gcra 15 30 60");
    assert_eq!(text(&go(&mut rlu, "PING")), "PONG");

    for (args, key) in [
        ("OAUTH.RATELIMIT oauth:{u1}:ip 10 60", "oauth:{u1}:ip"),
        (
            "OAUTH.RATELIMITALL 2 rl:{u1}:minute oauth:{u1}:hour 10 60 100 3600",
            "oauth:{u1}:hour",
        ),
        ("OAUTH.THROTTLE other:{u1}:gcra 15 30 60", "other:{u1}:gcra"),
    ] {
        denied_key(&mut admin, &mut rlu, &w(args), key);
    }
    let granted = ["OAUTH.RATELIMIT", "OAUTH.RATELIMITALL", "OAUTH.THROTTLE"];
    for case in CASES.iter().filter(|c| !granted.contains(&c.command())) {
        denied_command(&mut admin, &mut rlu, &PLAIN.fill(case.args));
    }
    for args in ["GET rl:{u1}:ip", "DEL rl:{u1}:ip", "SET rl:{u1}:ip 0"] {
        denied_command(&mut admin, &mut rlu, &w(args));
    }
}

/// A DRYRUN of `name` (e.g. `config|set`) for `user`, with as many dummy
/// arguments as its arity needs.
fn dryrun(admin: &mut Connection, user: &str, name: &str) -> String {
    let parts: Vec<&str> = name.split('|').collect();
    for extra in 0..10 {
        let mut args = vec!["ACL", "DRYRUN", user];
        args.extend(&parts);
        args.extend(std::iter::repeat_n("x", extra));
        match run(admin, &args) {
            Ok(v) => return text(&v),
            Err(e) if error_text(&e).contains("wrong number of arguments") => continue,
            Err(e) => return error_text(&e),
        }
    }
    panic!("no arity fits {name}");
}

#[test]
fn doc_users_run_nothing_dangerous_and_no_plain_write() {
    let s = Server::start();
    let mut admin = s.conn();
    for user in DOC_USERS {
        setuser(&mut admin, &doc_rule(user));
    }
    let support_reads = ["exists", "ttl", "pttl", "type", "expiretime", "pexpiretime"];
    let mut checked = BTreeSet::new();
    for cat in ["dangerous", "admin", "write", "scripting", "keyspace"] {
        for name in strings(&succeeds(&mut admin, &w(&format!("ACL CAT {cat}")))) {
            for user in DOC_USERS {
                if user == "oauth-support" && support_reads.contains(&name.as_str()) {
                    continue;
                }
                if user == "oauth-admin" && name == "info" {
                    continue; // INFO oauth_census, the operators' counts
                }
                let answer = dryrun(&mut admin, user, &name);
                assert!(
                    answer.contains("no permissions to run"),
                    "{user} may run {name} (@{cat}): {answer}"
                );
            }
            checked.insert(name);
        }
    }
    for name in [
        "flushall",
        "keys",
        "config|set",
        "module|load",
        "eval",
        "hset",
        "del",
    ] {
        assert!(checked.contains(name), "{name} was checked");
    }
}

#[test]
fn users_acl_file_form_loads_the_same_users() {
    // The file form, loaded at startup after the module.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.acl");
    let lines: Vec<String> = doc_rules("user ")
        .iter()
        .map(|r| format!("user {}\n", r.join(" ")))
        .collect();
    std::fs::write(&path, lines.concat()).expect("write users.acl");
    let from_file = Server::start_with(Opts {
        server_args: vec!["--aclfile".to_string(), path.display().to_string()],
        ..Opts::default()
    });
    // The ACL SETUSER form, on another server.
    let from_setuser = Server::start();
    let mut a2 = from_setuser.conn();
    for user in DOC_USERS {
        setuser(&mut a2, &doc_rule(user));
    }
    let mut a1 = from_file.conn();
    let list = |c: &mut Connection| -> Vec<BTreeSet<String>> {
        let mut v: Vec<BTreeSet<String>> = strings(&go(c, "ACL LIST"))
            .iter()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(&mut a1), list(&mut a2));
    assert_eq!(strings(&go(&mut a1, "ACL USERS")).len(), 6);

    // And the loaded users behave.
    let mut gw = login(&from_file, "oauth-gateway", "CHANGE-ME-gateway");
    save_code(&mut gw, "oauth:{g1}:code");
    denied_key(
        &mut a1,
        &mut gw,
        &w("OAUTH.SAVESTATE other:{g1}:st 60 FIELDS 1 a b"),
        "other:{g1}:st",
    );
    let mut sup = login(&from_file, "oauth-support", "CHANGE-ME-support");
    go(&mut sup, "HGETALL oauth:{g1}:code");
    denied_command(&mut a1, &mut sup, &w("OAUTH.CONSUMESTATE oauth:{g1}:code"));
    let mut rlu = login(&from_file, "oauth-ratelimit", "CHANGE-ME-ratelimit");
    go(&mut rlu, "OAUTH.THROTTLE rl:{u}:x 1 1 60");
    let mut acme = login(&from_file, "oauth-gateway-acme", "CHANGE-ME-acme");
    denied_key(
        &mut a1,
        &mut acme,
        &w("OAUTH.INTROSPECT oauth:{g1}:code"),
        "oauth:{g1}:code",
    );
}

// ---------------------------------------------------------------------------
// Key specs and categories
// ---------------------------------------------------------------------------

#[test]
fn key_permissions_follow_the_key_specs() {
    let s = Server::start();
    let mut admin = s.conn();
    let users = [
        ("reader", "%R~oauth:* %R~rl:*", R),
        ("writer", "%W~oauth:* %W~rl:*", W),
        ("readwriter", "~oauth:* ~rl:*", RW),
    ];
    let mut allowed: Vec<(Need, Vec<&str>)> = Vec::new();
    for (name, patterns, perm) in users {
        setuser(
            &mut admin,
            &w(&format!("{name} reset on >pw +@all {patterns}")),
        );
        let mut c = login(&s, name, "pw");
        let mut ran = Vec::new();
        for case in CASES {
            let args = case.prepare(&mut admin, &PLAIN);
            match case.roles.iter().find(|(_, need)| !need.allowed_by(perm)) {
                Some((role, _)) => denied_key(&mut admin, &mut c, &args, &PLAIN.k(role)),
                None => {
                    succeeds(&mut c, &args);
                    ran.push(case.name);
                }
            }
        }
        allowed.push((perm, ran));
    }
    let reads = vec![
        "introspect",
        "introspect CUTOFF",
        "verifyclient",
        "getclient",
        "help",
    ];
    let writes = vec![
        "savecode",
        "savetoken",
        "savetoken GRANT",
        "revoke",
        "savestate",
        "saveclient",
        "deleteclient",
        "help",
    ];
    let every = CASES.iter().map(|c| c.name).collect();
    assert_eq!(allowed, vec![(R, reads), (W, writes), (RW, every)]);
}

#[test]
fn getkeysandflags_agrees_with_the_permissions_table() {
    let s = Server::start();
    let mut c = s.conn();
    for case in CASES.iter().filter(|c| !c.roles.is_empty()) {
        let reply = go(&mut c, &format!("COMMAND GETKEYSANDFLAGS {}", case.args));
        let got: Vec<(String, Option<Need>)> = items(&reply)
            .iter()
            .map(|e| {
                let e = items(e);
                (text(&e[0]), need_of(&strings(&e[1])))
            })
            .collect();
        let expected: Vec<(String, Option<Need>)> = case
            .roles
            .iter()
            .map(|(role, need)| (PLAIN.k(role), Some(*need)))
            .collect();
        assert_eq!(got, expected, "{}", case.name);
    }
    // Every command with keys has a case.
    let with_keys: BTreeSet<String> = module_commands(&mut c)
        .into_iter()
        .filter(|m| !m.3.is_empty())
        .map(|m| m.0)
        .collect();
    let covered: BTreeSet<String> = CASES
        .iter()
        .filter(|c| !c.roles.is_empty())
        .map(|c| c.command().to_ascii_lowercase())
        .collect();
    assert_eq!(with_keys, covered);
}

/// (name, flags, ACL categories, key-spec flags, key-spec begin_search types)
/// of a module command, from COMMAND INFO.
type CommandInfo = (
    String,
    Vec<String>,
    Vec<String>,
    Vec<Vec<String>>,
    Vec<String>,
);

/// The value after `name` in a COMMAND INFO map given as a flat array.
fn info_field<'a>(map: &'a [Value], name: &str) -> &'a Value {
    let at = map
        .iter()
        .position(|x| text(x) == name)
        .unwrap_or_else(|| panic!("no {name} in {map:?}"));
    &map[at + 1]
}

fn module_commands(c: &mut Connection) -> Vec<CommandInfo> {
    let names = strings(&go(c, "COMMAND LIST FILTERBY MODULE oauth"));
    assert_eq!(names.len(), 20, "{names:?}");
    let info = go(c, &format!("COMMAND INFO {}", names.join(" ")));
    let mut out: Vec<CommandInfo> = items(&info)
        .iter()
        .map(|e| {
            let e = items(e);
            let specs: Vec<&[Value]> = items(&e[8]).iter().map(items).collect();
            let flags = specs
                .iter()
                .map(|spec| strings(info_field(spec, "flags")))
                .collect();
            let begins = specs
                .iter()
                .map(|spec| text(info_field(items(info_field(spec, "begin_search")), "type")))
                .collect();
            (text(&e[0]), strings(&e[2]), strings(&e[6]), flags, begins)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn readonly_commands_are_exactly_those_whose_keys_are_only_read() {
    let s = Server::start();
    let mut c = s.conn();
    let mut readonly = BTreeSet::new();
    for (name, flags, _, specs, _) in module_commands(&mut c) {
        let needs: Vec<Option<Need>> = specs.iter().map(|f| need_of(f)).collect();
        assert!(
            needs.iter().all(Option::is_some),
            "{name}: every key spec says how the key is used: {specs:?}"
        );
        let writes = needs.iter().any(|n| matches!(n, Some(W) | Some(RW)));
        let is_readonly = flags.iter().any(|f| f == "readonly");
        let is_write = flags.iter().any(|f| f == "write");
        assert!(
            is_readonly != is_write,
            "{name}: exactly one of readonly/write: {flags:?}"
        );
        // OAUTH.PURGECLIENT declares no key (it finds them, one SCAN step a
        // call, and checks each against the caller's ACL itself).
        if name != "oauth.purgeclient" {
            assert_eq!(
                is_write, writes,
                "{name}: a write command writes a key, a readonly one none: {flags:?} {specs:?}"
            );
        }
        if is_readonly {
            readonly.insert(name);
        }
    }
    let expected: BTreeSet<String> = [
        "oauth.getclient",
        "oauth.verifyclient",
        "oauth.help",
        "oauth.introspect",
        "oauth.scan",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(readonly, expected);
}

#[test]
fn key_specs_are_complete() {
    // No key spec is `incomplete`: the module refuses every argument list in
    // which Redis's own search of a keyword spec would find another key than
    // the handler uses, so Redis, ACL and cluster clients can trust the specs
    // without asking COMMAND GETKEYS.
    let s = Server::start();
    let mut c = s.conn();
    let mut keyword = 0;
    for (name, _flags, _, specs, begins) in module_commands(&mut c) {
        for (i, (spec, begin)) in specs.iter().zip(&begins).enumerate() {
            assert!(
                !spec.iter().any(|f| f == "incomplete"),
                "{name} key spec {i}: {spec:?}"
            );
            keyword += usize::from(begin == "keyword");
        }
    }
    assert_eq!(
        keyword, 7,
        "ISSUE, REFRESH, GRANT; GRANT; CUTOFF; ISSUE, CUTOFF"
    );
}

#[test]
fn permissions_table_of_the_doc_matches_the_key_specs() {
    let s = Server::start();
    let mut c = s.conn();
    // | `OAUTH.X` | key | `flags` | permission |
    let mut rows: Vec<(String, Vec<String>, String)> = Vec::new();
    for line in DOC.lines().filter(|l| l.starts_with("| `OAUTH.")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() != 6 {
            continue; // another table
        }
        let name = cells[1].trim_matches('`').to_ascii_lowercase();
        let flags: Vec<String> = match cells[3] {
            "none" => Vec::new(),
            f => f
                .trim_matches('`')
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        };
        rows.push((name, flags, cells[4].to_string()));
    }
    for (name, _, _, specs, _) in module_commands(&mut c) {
        let doc: Vec<&(String, Vec<String>, String)> =
            rows.iter().filter(|r| r.0 == name).collect();
        if specs.is_empty() {
            assert_eq!(doc.len(), 1, "{name}: one row saying none");
            let found_keys = ["oauth.scan", "oauth.purgeclient"].contains(&name.as_str());
            if found_keys {
                assert!(doc[0].2.starts_with("checked per key"), "{name}");
            } else {
                assert_eq!(doc[0].2, "none", "{name}");
            }
            continue;
        }
        let doc_flags: Vec<Vec<String>> = doc.iter().map(|r| r.1.clone()).collect();
        assert_eq!(
            doc_flags, specs,
            "{name}: the table lists its key specs in order"
        );
        for (row, spec) in doc.iter().zip(&specs) {
            let need = match need_of(spec) {
                Some(R) => "read",
                Some(W) => "write",
                Some(RW) => "read + write",
                None => "none",
            };
            assert_eq!(row.2, need, "{name} {spec:?}");
        }
    }
    let named: BTreeSet<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(named.len(), 20, "every command has a row");
}

#[test]
fn module_commands_are_in_no_acl_category() {
    let s = Server::start();
    let mut admin = s.conn();
    let cats = strings(&go(&mut admin, "ACL CAT"));
    assert!(cats.contains(&"write".to_string()), "{cats:?}");
    for cat in &cats {
        let names = strings(&go(&mut admin, &format!("ACL CAT {cat}")));
        let ours: Vec<&String> = names.iter().filter(|n| n.starts_with("oauth.")).collect();
        assert!(ours.is_empty(), "@{cat} holds {ours:?}");
    }
    for (name, _, categories, ..) in module_commands(&mut admin) {
        assert!(categories.is_empty(), "{name}: {categories:?}");
    }

    // +@read does not grant a read-only module command ...
    setuser(&mut admin, &w("readcat reset on >pw %R~oauth:* +@read"));
    let mut c = login(&s, "readcat", "pw");
    assert_eq!(text(&go(&mut c, "EXISTS oauth:x")), "0");
    denied_command(&mut admin, &mut c, &w("OAUTH.INTROSPECT oauth:x"));

    // ... and -@write does not take a write command away.
    setuser(
        &mut admin,
        &w("nowrite reset on >pw ~oauth:* +@all -@write"),
    );
    let mut c = login(&s, "nowrite", "pw");
    denied_command(&mut admin, &mut c, &w("HSET oauth:x a b"));
    go(
        &mut c,
        "OAUTH.SAVESTATE oauth:{g1}:st 600 FIELDS 1 nonce n1",
    );
    assert!(exists(&mut admin, "oauth:{g1}:st"));

    // +@all -@dangerous grants every module command (none is dangerous) and
    // the plain write commands along with them (hence the page's lists).
    setuser(
        &mut admin,
        &w("nodanger reset on >pw ~oauth:* ~rl:* +@all -@dangerous"),
    );
    let mut c = login(&s, "nodanger", "pw");
    for case in CASES {
        let args = case.prepare(&mut admin, &PLAIN);
        succeeds(&mut c, &args);
    }
    denied_command(&mut admin, &mut c, &w("FLUSHALL"));
    go(&mut c, "HSET oauth:x _kind token");
    go(&mut c, "SADD oauth:g other:victim");
    // SCAN lists key names outside the user's patterns.
    go(&mut admin, "SET other:{g1}:name 1");
    let scan = go(&mut c, "SCAN 0 COUNT 1000");
    assert!(strings(&items(&scan)[1]).contains(&"other:{g1}:name".to_string()));

    // Granting by name works on every server.
    setuser(
        &mut admin,
        &w("byname reset on >pw ~oauth:* +oauth.savestate"),
    );
    let mut c = login(&s, "byname", "pw");
    go(
        &mut c,
        "OAUTH.SAVESTATE oauth:{g1}:st2 600 FIELDS 1 nonce n1",
    );
    denied_command(&mut admin, &mut c, &w("OAUTH.CONSUMESTATE oauth:{g1}:st2"));
}

// ---------------------------------------------------------------------------
// Limits (docs/acl.md "Limits")
// ---------------------------------------------------------------------------

/// Commands whose FIELDS hold a key-locating keyword followed by a name
/// outside the user's patterns.
const KEYWORDS_IN_FIELDS: &[Case] = &[
    Case {
        name: "exchange, GRANT in FIELDS",
        roles: &[("code", RW), ("at", W)],
        setup: &[SAVE_CODE],
        args: "OAUTH.EXCHANGE $code app1 $CB $VERIFIER ISSUE $at 600 \
               FIELDS 2 note GRANT other:{g1}:x y",
    },
    Case {
        name: "exchange, REFRESH and GRANT in FIELDS",
        roles: &[("code", RW), ("at", W)],
        setup: &[SAVE_CODE],
        args: "OAUTH.EXCHANGE $code app1 $CB $VERIFIER ISSUE $at 600 \
               FIELDS 4 n1 REFRESH other:{g1}:x 3600 n2 GRANT other:{g1}:y z",
    },
    Case {
        name: "exchange, ISSUE in FIELDS",
        roles: &[("code", RW), ("rt", W), ("grant", W)],
        setup: &[SAVE_CODE],
        args: "OAUTH.EXCHANGE $code app1 $CB $VERIFIER REFRESH $rt 3600 GRANT $grant \
               FIELDS 2 note ISSUE other:{g1}:x 600",
    },
    Case {
        name: "savetoken, GRANT in FIELDS",
        roles: &[("tok", W)],
        setup: &[],
        args: "OAUTH.SAVETOKEN $tok 600 FIELDS 2 note GRANT other:{g1}:x y",
    },
    Case {
        name: "rotate, ISSUE and CUTOFF in FIELDS",
        roles: &[("old", RW), ("new", W)],
        setup: MAKE_REFRESH,
        args: "OAUTH.ROTATE $old $new 3600 \
               FIELDS 4 note ISSUE other:{g1}:x 600 m CUTOFF 1 other:{g1}:y",
    },
];

/// COMMAND GETKEYSANDFLAGS of `args`: (key, permission it needs).
fn keys_and_needs(c: &mut Connection, args: &[String]) -> Vec<(String, Option<Need>)> {
    let mut q = w("COMMAND GETKEYSANDFLAGS");
    q.extend(args.iter().cloned());
    items(&succeeds(c, &q))
        .iter()
        .map(|e| {
            let e = items(e);
            (text(&e[0]), need_of(&strings(&e[1])))
        })
        .collect()
}

#[test]
fn an_argument_spelled_like_a_keyword_is_refused_and_reported() {
    // Redis (and every cluster client reading COMMAND INFO) takes the argument
    // after the first ISSUE, REFRESH, GRANT or CUTOFF for a key. The module
    // refuses any other argument spelled like one of those keywords, so the
    // keys it is asked to touch are always the keys Redis checked. The
    // argument after the stray keyword is reported as a key all the same: a
    // user whose patterns do not cover it is refused by the ACL first.
    let s = Server::start();
    let mut admin = s.conn();
    let mut gw = doc_user(&s, &mut admin, "oauth-gateway");
    for t in KEYWORDS_IN_FIELDS {
        let name = t.name;
        let args = t.prepare(&mut admin, &PLAIN);
        let reported: Vec<String> = keys_and_needs(&mut admin, &args)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for (role, _) in t.roles {
            assert!(reported.contains(&PLAIN.k(role)), "{name}: {reported:?}");
        }
        assert!(
            reported.contains(&"other:{g1}:x".to_string()),
            "{name}: {reported:?}"
        );
        let before = snapshot(&mut admin);
        let e = err(&mut admin, &refs(&args));
        assert!(
            e.starts_with("INVALID_REQUEST") && e.contains("may appear only as the"),
            "{name}: {e}"
        );
        assert_eq!(
            snapshot(&mut admin),
            before,
            "{name}: refused, nothing written"
        );
        denied_key(&mut admin, &mut gw, &args, "other:{g1}:x");
    }
}

#[test]
fn keyword_named_keys_cannot_smuggle_a_key_past_the_acl() {
    // The repros of the command-surface issue: a user allowed `~ISSUE` names
    // its grant key ISSUE so that Redis's search stops there, while the
    // handler (left to right) would take the next ISSUE's key.
    let s = Server::start();
    let mut admin = s.conn();
    setuser(&mut admin, &w("ua reset on >pa ~oauth:{a}:* ~ISSUE +@all"));
    let mut ua = login(&s, "ua", "pa");
    go(
        &mut admin,
        &format!(
            "OAUTH.SAVECODE oauth:{{a}}:code 600 FIELDS 4 client_id app1 redirect_uri {CB} \
             code_challenge {CHALLENGE} code_challenge_method S256"
        ),
    );
    let before = snapshot(&mut admin);
    let smuggle = w(&format!(
        "OAUTH.EXCHANGE oauth:{{a}}:code app1 {CB} {VERIFIER} GRANT ISSUE ISSUE oauth:{{b}}:victim 600"
    ));
    let e = err(&mut ua, &refs(&smuggle));
    assert!(
        e.starts_with("INVALID_REQUEST") && e.contains("ISSUE"),
        "{e}"
    );
    assert_eq!(
        snapshot(&mut admin),
        before,
        "nothing written, the code not consumed"
    );
    // A key named FIELDS does not hide the ISSUE after it: its key is checked.
    let oracle = w(&format!(
        "OAUTH.EXCHANGE oauth:{{a}}:code app1 {CB} {VERIFIER} GRANT FIELDS ISSUE oauth:{{b}}:x 600"
    ));
    denied_key(&mut admin, &mut ua, &oracle, "oauth:{b}:x");
    let rotate = w("OAUTH.ROTATE r r2 600 CUTOFF 1 ISSUE ISSUE victim 600");
    let mut q = w("COMMAND GETKEYS");
    q.extend(rotate.clone());
    let keys = strings(&succeeds(&mut admin, &q));
    assert!(keys.contains(&"ISSUE".to_string()), "{keys:?}");
    let e = err(&mut admin, &refs(&rotate));
    assert!(
        e.starts_with("INVALID_REQUEST") && e.contains("ISSUE"),
        "{e}"
    );
    assert_eq!(snapshot(&mut admin), before);
}

#[test]
fn a_malformed_command_is_refused_and_writes_nothing() {
    // The module reports the keys a malformed command names, as far as they
    // are given: a user allowed those keys gets the syntax error, like the
    // admin; one key outside its patterns answers NOPERM first.
    let s = Server::start();
    let mut admin = s.conn();
    setuser(&mut admin, &w("reader reset on >pw %R~oauth:* +@all"));
    let mut c = login(&s, "reader", "pw");
    go(&mut admin, SAVE_TOKEN); // oauth:{g1}:tok
    let before = snapshot(&mut admin);
    for args in [
        "OAUTH.INTROSPECT oauth:{g1}:tok CUTOFF 2 oauth:{g1}:cut",
        "OAUTH.INTROSPECT oauth:{g1}:tok CUTOFF x oauth:{g1}:cut",
        "OAUTH.INTROSPECT oauth:{g1}:tok CUTOFF 1",
        "OAUTH.INTROSPECT oauth:{g1}:tok CUTOFF 0 oauth:{g1}:cut",
    ] {
        let e = err(&mut c, &refs(&w(args)));
        assert!(e.starts_with("INVALID_REQUEST"), "{args}: {e}");
        assert!(err(&mut admin, &refs(&w(args))).starts_with("INVALID_REQUEST"));
    }
    denied_key(
        &mut admin,
        &mut c,
        &w("OAUTH.INTROSPECT oauth:{g1}:tok CUTOFF 3 oauth:{g1}:cut other:{g1}:cut"),
        "other:{g1}:cut",
    );
    assert_eq!(snapshot(&mut admin), before);
}

/// The keys the module reads from its records (a record's `_grant`, a grant
/// index's members) are not ACL-checked, so the module checks them itself: it
/// follows a record's `_grant` only when that index lists the record, and a
/// grant revocation deletes only members that are the module's records of
/// that grant. A user who may run plain writes on its own keys (against the
/// advice of docs/acl.md) forges records and indexes that name keys outside its
/// patterns; the module then changes none of those keys. Each module command
/// must answer as expected, so it really ran (no NOPERM).
#[test]
fn records_cannot_lead_the_module_outside_the_users_patterns() {
    let s = Server::start();
    let mut admin = s.conn();
    setuser(
        &mut admin,
        &w("nodanger reset on >pw ~oauth:* +@all -@dangerous"),
    );
    let mut c = login(&s, "nodanger", "pw");
    // Another user's keys: a plain value, and two grants with their tokens as
    // the module writes them.
    for setup in [
        "SET victim:key precious",
        "HSET victim:tok1 _kind token _grant victim:grant1",
        "SADD victim:grant1 victim:tok1",
        "HSET victim:tok2 _kind token _grant victim:grant2",
        "SADD victim:grant2 victim:tok2",
        "SADD victim:grant3 victim:member",
    ] {
        go(&mut admin, setup);
    }
    let victims = |admin: &mut Connection| -> Vec<KeyState> {
        snapshot(admin)
            .into_iter()
            .filter(|k| k.0.starts_with("victim:"))
            .collect()
    };
    let untouched = victims(&mut admin);
    assert_eq!(untouched.len(), 6);
    // The user cannot touch them directly ...
    denied_key(&mut admin, &mut c, &w("DEL victim:key"), "victim:key");

    // (what, forging steps, the module command, its reply: a value or an error code)
    let scenarios: &[(&str, &[&str], &str, &str)] = &[
        // ... nor through a grant index it filled itself,
        (
            "REVOKEGRANT of an index listing a key outside the patterns",
            &["SADD oauth:g victim:key"],
            "OAUTH.REVOKEGRANT oauth:g",
            "0",
        ),
        // ... a forged refresh token naming another grant,
        (
            "REVOKE of a refresh token naming another grant",
            &["HSET oauth:rt _kind refresh _grant victim:grant1"],
            "OAUTH.REVOKE oauth:rt",
            "1",
        ),
        // ... a forged used code naming it,
        (
            "EXCHANGE of a used code naming another grant",
            &["HSET oauth:code _kind code _consumed 1 _grant victim:grant2"],
            "OAUTH.EXCHANGE oauth:code a b c",
            "INVALID_GRANT",
        ),
        // ... or a forged refresh token that rotates into another grant.
        (
            "ROTATE of a refresh token naming another grant",
            &["HSET oauth:rt3 _kind refresh _grant victim:grant3"],
            "OAUTH.ROTATE oauth:rt3 oauth:rt4 3600",
            "oauth:rt4",
        ),
        // Its own grant index listing another grant's tokens: they are not
        // records of this grant.
        (
            "REVOKEGRANT of an index listing another grant's tokens",
            &["SADD oauth:g5 victim:tok1 victim:tok2 victim:key"],
            "OAUTH.REVOKEGRANT oauth:g5",
            "0",
        ),
        (
            "REVOKE of a refresh token whose grant lists another grant's tokens",
            &[
                "HSET oauth:rt6 _kind refresh _grant oauth:g6",
                "SADD oauth:g6 oauth:rt6 victim:tok1 victim:tok2",
            ],
            "OAUTH.REVOKE oauth:rt6",
            "1",
        ),
        (
            "ROTATE of a reused refresh token whose grant lists another grant's tokens",
            &[
                "HSET oauth:rt7 _kind refresh _rotated 1 _successor oauth:rt7b _grant oauth:g7",
                "SADD oauth:g7 oauth:rt7 victim:tok1 victim:key",
            ],
            "OAUTH.ROTATE oauth:rt7 oauth:rt8 3600",
            "INVALID_GRANT",
        ),
        (
            "EXCHANGE of a used code whose grant lists another grant's tokens",
            &[
                "HSET oauth:code9 _kind code _consumed 1 _grant oauth:g9",
                "SADD oauth:g9 oauth:code9 victim:tok2 victim:member",
            ],
            "OAUTH.EXCHANGE oauth:code9 a b c",
            "INVALID_GRANT",
        ),
    ];
    for (what, forge, command, reply) in scenarios {
        for step in *forge {
            go(&mut c, step);
        }
        let got = match run(&mut c, &refs(&w(command))) {
            // A rotation answers a map: its new refresh token's key.
            Ok(v @ Value::Array(_)) => field(&v, "_refresh_key").unwrap_or_default(),
            Ok(v) => text(&v),
            Err(e) => error_text(&e),
        };
        assert_eq!(
            got.split_whitespace().next(),
            Some(*reply),
            "{what}: {command} answered {got}"
        );
        assert_eq!(victims(&mut admin), untouched, "{what}");
    }

    // The module did its own work on the user's keys: the indexes are gone,
    // the revoked tokens too, and the rotated token's successor joined no grant.
    for gone in [
        "oauth:g",
        "oauth:rt",
        "oauth:g5",
        "oauth:rt6",
        "oauth:rt7",
        "oauth:g7",
        "oauth:code9",
        "oauth:g9",
    ] {
        assert!(!exists(&mut admin, gone), "{gone}");
    }
    let successor = hgetall(&mut admin, "oauth:rt4");
    assert!(
        successor.iter().all(|(f, _)| f != "_grant"),
        "{successor:?}"
    );
    assert_eq!(
        strings(&go(&mut admin, "SMEMBERS oauth:g6")).len(),
        2,
        "only the revoked refresh token left the index"
    );
}

#[test]
fn admin_user_runs_the_operators_tasks_on_its_keys_only() {
    let s = Server::start();
    let mut admin = s.conn();
    for (key, client) in [("oauth:client:app1", "app1"), ("other:client:app1", "app1")] {
        succeeds(
            &mut admin,
            &w(&format!(
                "OAUTH.SAVECLIENT {key} FIELDS 2 client_id {client} client_secret a-long-enough-client-secret-value"
            )),
        );
    }
    for key in ["oauth:{g1}:t", "other:{g1}:t"] {
        succeeds(
            &mut admin,
            &w(&format!(
                "OAUTH.SAVETOKEN {key} 600 FIELDS 2 client_id app1 sub u1"
            )),
        );
    }
    let mut ops = doc_user(&s, &mut admin, "oauth-admin");
    // Lists only its keys.
    let listed = go(&mut ops, "OAUTH.SCAN 0 COUNT 1000");
    let keys: BTreeSet<String> = items(&items(&listed)[1])
        .iter()
        .map(|item| text(&items(item)[1]))
        .collect();
    let expected: BTreeSet<String> = ["oauth:client:app1", "oauth:{g1}:t"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(keys, expected);
    // Reads the census.
    let info = text(&go(&mut ops, "INFO oauth_census"));
    assert!(info.contains("oauth_records_client:"), "{info}");
    // Purges only its keys.
    let purged = go(&mut ops, "OAUTH.PURGECLIENT app1 0 COUNT 1000");
    let counts = strings(&items(&purged)[1]);
    assert_eq!(
        counts,
        w("code 0 redeemed_code 0 token 1 refresh 0 rotated_refresh 0 client 1 state 0 grant 0")
    );
    for key in ["other:client:app1", "other:{g1}:t"] {
        assert_eq!(
            text(&go(&mut admin, &format!("EXISTS {key}"))),
            "1",
            "{key}"
        );
    }
    // Nothing else.
    for cmd in [
        "OAUTH.SAVETOKEN oauth:{g2}:t 600 FIELDS 1 sub u",
        "HSET oauth:x f v",
        "DEL oauth:client:app1",
        "CONFIG GET oauth.*",
    ] {
        let e = err(&mut ops, &refs(&w(cmd)));
        assert!(e.starts_with("NOPERM"), "{cmd}: {e}");
    }
}
