//! The operators' view of the keyspace: what class of record a key holds,
//! the filters of `OAUTH.SCAN` and `OAUTH.PURGECLIENT`, and the census tally
//! behind the live counts in `INFO oauth_census`.
//!
//! The shell walks the keyspace with `SCAN` (bounded work per call or per
//! server tick) and asks this file what each key is; nothing here reads Redis.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use super::error::{OAuthError, OResult};
use super::record::{Kind, Record, F_CLIENT_ID, F_CONSUMED};
use super::token::F_ROTATED;
use super::validate::{is_keyword, parse_bounded};

/// The subject field of tokens (RFC 7662 `sub`).
pub const F_SUB: &[u8] = b"sub";

/// What an operator counts and lists. Codes and refresh tokens are split in
/// two: the live ones, and the tombstones kept to detect a replay (a redeemed
/// code, a rotated refresh token), which are no longer usable credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Code,
    RedeemedCode,
    Token,
    Refresh,
    RotatedRefresh,
    Client,
    State,
    Grant,
}

impl Class {
    /// Every class, in the order INFO and replies list them.
    pub const ALL: [Class; 8] = [
        Class::Code,
        Class::RedeemedCode,
        Class::Token,
        Class::Refresh,
        Class::RotatedRefresh,
        Class::Client,
        Class::State,
        Class::Grant,
    ];

    /// The name used by `KIND`, in replies and in INFO (`records_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Class::Code => "code",
            Class::RedeemedCode => "redeemed_code",
            Class::Token => "token",
            Class::Refresh => "refresh",
            Class::RotatedRefresh => "rotated_refresh",
            Class::Client => "client",
            Class::State => "state",
            Class::Grant => "grant",
        }
    }

    /// The INFO field of this class's live count.
    pub fn info_field(self) -> &'static str {
        match self {
            Class::Code => "records_code",
            Class::RedeemedCode => "records_redeemed_code",
            Class::Token => "records_token",
            Class::Refresh => "records_refresh",
            Class::RotatedRefresh => "records_rotated_refresh",
            Class::Client => "records_client",
            Class::State => "records_state",
            Class::Grant => "records_grant",
        }
    }

    pub fn parse(raw: &[u8]) -> Option<Class> {
        Class::ALL
            .into_iter()
            .find(|c| raw.eq_ignore_ascii_case(c.name().as_bytes()))
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether a live record of this class counts toward active subjects.
    fn is_live_credential(self) -> bool {
        matches!(self, Class::Token | Class::Refresh)
    }
}

/// The class of a hash, from its bookkeeping fields; None for a hash the
/// module did not write (no `_kind`, or an unknown one).
pub fn classify(rec: &Record) -> Option<Class> {
    Some(match rec.kind()? {
        Kind::Code if rec.get(F_CONSUMED).is_some() => Class::RedeemedCode,
        Kind::Code => Class::Code,
        Kind::Token => Class::Token,
        Kind::Refresh if rec.get(F_ROTATED).is_some() => Class::RotatedRefresh,
        Kind::Refresh => Class::Refresh,
        Kind::Client => Class::Client,
        Kind::State => Class::State,
    })
}

/// Whether a set is a grant index: `member` is one of its members, and the
/// record stored at that member (a code tombstone or a token) names the set
/// in `_grant`. A set the module did not write fails this test.
pub fn is_grant_member(set_key: &[u8], member_rec: &Record) -> bool {
    matches!(
        member_rec.kind(),
        Some(Kind::Code | Kind::Token | Kind::Refresh)
    ) && member_rec.get(super::record::F_GRANT) == Some(set_key)
}

/// The filters of `OAUTH.SCAN`: a class, a client and a subject, each
/// optional. A grant is judged by the record of the member that proved it a
/// grant (its client and subject are the grant's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter<'a> {
    pub class: Option<Class>,
    pub client: Option<&'a [u8]>,
    pub subject: Option<&'a [u8]>,
}

impl Filter<'_> {
    pub fn matches(&self, class: Class, rec: &Record) -> bool {
        self.class.is_none_or(|c| c == class)
            && self.client.is_none_or(|c| rec.get(F_CLIENT_ID) == Some(c))
            && self.subject.is_none_or(|s| rec.get(F_SUB) == Some(s))
    }
}

/// Most keys one `OAUTH.SCAN` or `OAUTH.PURGECLIENT` call looks at (`COUNT`).
pub const MAX_COUNT: i64 = 10_000;
/// `COUNT` when none is given, as SCAN's.
pub const DEFAULT_COUNT: i64 = 10;

/// One step of a cursor walk: where to resume, how many keys to look at, and
/// which keys (a `MATCH` glob, passed to SCAN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'a> {
    pub cursor: &'a [u8],
    pub count: i64,
    pub pattern: Option<&'a [u8]>,
    pub filter: Filter<'a>,
}

/// Which options a command takes after its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Options {
    /// `OAUTH.SCAN`: MATCH, COUNT, KIND, CLIENT, SUBJECT.
    Scan,
    /// `OAUTH.PURGECLIENT`: MATCH and COUNT (the client is positional).
    Purge,
}

/// A SCAN cursor: an unsigned 64-bit decimal, as SCAN accepts.
fn check_cursor(raw: &[u8]) -> OResult<()> {
    let ok = !raw.is_empty()
        && raw.len() <= 20
        && raw.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some();
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "cursor must be 0 or a cursor returned by the previous call",
        ))
    }
}

/// Parses `cursor [option value ...]` (the arguments after the command name,
/// and after the client id for PURGECLIENT). Each option at most once.
pub fn parse_step<'a>(args: &[&'a [u8]], options: Options) -> OResult<Step<'a>> {
    let (&cursor, mut rest) = args
        .split_first()
        .ok_or_else(|| OAuthError::invalid_request("wrong number of arguments"))?;
    check_cursor(cursor)?;
    let mut step = Step {
        cursor,
        count: DEFAULT_COUNT,
        pattern: None,
        filter: Filter::default(),
    };
    let mut seen: Vec<&'static str> = Vec::new();
    while let [name, value, tail @ ..] = rest {
        let known: &[&'static str] = match options {
            Options::Scan => &["MATCH", "COUNT", "KIND", "CLIENT", "SUBJECT"],
            Options::Purge => &["MATCH", "COUNT"],
        };
        let Some(&opt) = known.iter().find(|k| is_keyword(name, k)) else {
            return Err(unknown_option(options));
        };
        if seen.contains(&opt) {
            return Err(OAuthError::invalid_request(format!(
                "{opt} is given more than once"
            )));
        }
        seen.push(opt);
        match opt {
            "MATCH" => step.pattern = Some(value),
            "COUNT" => step.count = parse_bounded(value, "COUNT", 1, MAX_COUNT)?,
            "KIND" => {
                step.filter.class = Some(Class::parse(value).ok_or_else(|| {
                    OAuthError::invalid_request(
                        "KIND must be one of code, redeemed_code, token, refresh, rotated_refresh, client, state, grant",
                    )
                })?)
            }
            "CLIENT" => step.filter.client = Some(value),
            _ => step.filter.subject = Some(value),
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(OAuthError::invalid_request(
            "an option is missing its value",
        ));
    }
    Ok(step)
}

fn unknown_option(options: Options) -> OAuthError {
    OAuthError::invalid_request(match options {
        Options::Scan => "unknown option; expected MATCH, COUNT, KIND, CLIENT or SUBJECT",
        Options::Purge => "unknown option; expected MATCH or COUNT",
    })
}

/// Counts by class, and the distinct subjects of live access and refresh
/// tokens ("active users"). Subjects are kept as 64-bit hashes for one pass
/// (16 bytes or so each), never as their values.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: [u64; Class::ALL.len()],
    subjects: HashSet<u64>,
    /// Sets seen, and grant names that live records point to (`_grant`):
    /// a set both seen and pointed to is a grant index. The census counts
    /// grants this way so that it never opens a key by name (which would
    /// touch it, count a keyspace hit, or expire it).
    sets: HashSet<u64>,
    grant_refs: HashSet<u64>,
    /// Keys looked at, whatever they held.
    pub keys: u64,
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Tally {
    pub fn add(&mut self, class: Class, rec: &Record) {
        if let Some(c) = self.counts.get_mut(class.index()) {
            *c = c.saturating_add(1);
        }
        if class.is_live_credential() {
            if let Some(sub) = rec.get(F_SUB) {
                self.subjects.insert(digest(sub));
            }
        }
    }

    /// A record seen by the census: counted by class, and its grant noted.
    pub fn add_record(&mut self, rec: &Record) {
        let Some(class) = classify(rec) else {
            return;
        };
        self.add(class, rec);
        if matches!(rec.kind(), Some(Kind::Code | Kind::Token | Kind::Refresh)) {
            if let Some(g) = rec.get(super::record::F_GRANT) {
                self.grant_refs.insert(digest(g));
            }
        }
    }

    /// A set seen by the census (a grant index if a live record names it).
    pub fn add_set(&mut self, name: &[u8]) {
        self.sets.insert(digest(name));
    }

    /// Adds `n` to a class without a record (deletions by PURGECLIENT).
    pub fn add_n(&mut self, class: Class, n: u64) {
        if let Some(c) = self.counts.get_mut(class.index()) {
            *c = c.saturating_add(n);
        }
    }

    pub fn count(&self, class: Class) -> u64 {
        self.counts.get(class.index()).copied().unwrap_or(0)
    }

    /// Distinct subjects of live access and refresh tokens.
    pub fn subjects(&self) -> u64 {
        self.subjects.len() as u64
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The published form: counts and the number of subjects, without the
    /// subject set (which is dropped with the pass).
    pub fn summary(&self) -> Summary {
        let mut counts = self.counts;
        let grants = self.sets.intersection(&self.grant_refs).count() as u64;
        if let Some(c) = counts.get_mut(Class::Grant.index()) {
            *c = c.saturating_add(grants);
        }
        Summary {
            counts,
            subjects: self.subjects(),
            keys: self.keys,
        }
    }
}

/// The result of one finished census pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub counts: [u64; Class::ALL.len()],
    pub subjects: u64,
    pub keys: u64,
}

impl Summary {
    pub fn count(&self, class: Class) -> u64 {
        self.counts.get(class.index()).copied().unwrap_or(0)
    }
}

/// The census's batch (keys per server tick) when none is configured: about
/// 10,000 keys a second at the default `hz 10`.
pub const DEFAULT_CENSUS_BATCH: i64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ErrorCode;

    fn rec(pairs: &[(&str, &str)]) -> Record {
        pairs.iter().map(|(f, v)| (*f, *v)).collect()
    }

    #[test]
    fn classes_follow_kind_and_tombstone_fields() {
        let cases = [
            (vec![("_kind", "code")], Some(Class::Code)),
            (
                vec![("_kind", "code"), ("_consumed", "1")],
                Some(Class::RedeemedCode),
            ),
            (vec![("_kind", "token")], Some(Class::Token)),
            (vec![("_kind", "refresh")], Some(Class::Refresh)),
            (
                vec![("_kind", "refresh"), ("_rotated", "1")],
                Some(Class::RotatedRefresh),
            ),
            (vec![("_kind", "client")], Some(Class::Client)),
            (vec![("_kind", "state")], Some(Class::State)),
            (vec![("_kind", "other")], None),
            (vec![("kind", "code")], None),
            (vec![], None),
        ];
        for (fields, want) in cases {
            assert_eq!(classify(&rec(&fields)), want, "{fields:?}");
        }
    }

    #[test]
    fn names_round_trip_in_any_case() {
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name().as_bytes()), Some(c));
            assert_eq!(Class::parse(c.name().to_uppercase().as_bytes()), Some(c));
            assert_eq!(c.info_field(), format!("records_{}", c.name()));
        }
        assert_eq!(Class::parse(b"tokens"), None);
    }

    #[test]
    fn a_grant_is_proved_by_a_member_naming_it() {
        let member = rec(&[("_kind", "token"), ("_grant", "g1")]);
        assert!(is_grant_member(b"g1", &member));
        assert!(!is_grant_member(b"g2", &member));
        let client = rec(&[("_kind", "client"), ("_grant", "g1")]);
        assert!(
            !is_grant_member(b"g1", &client),
            "clients are never members"
        );
        assert!(!is_grant_member(b"g1", &rec(&[("_grant", "g1")])));
    }

    #[test]
    fn filters_combine() {
        let tok = rec(&[("_kind", "token"), ("client_id", "app"), ("sub", "u1")]);
        let all = Filter::default();
        assert!(all.matches(Class::Token, &tok));
        let f = Filter {
            class: Some(Class::Token),
            client: Some(b"app"),
            subject: Some(b"u1"),
        };
        assert!(f.matches(Class::Token, &tok));
        assert!(!f.matches(Class::Refresh, &tok));
        let other_client = Filter {
            client: Some(b"ap"),
            ..Filter::default()
        };
        assert!(
            !other_client.matches(Class::Token, &tok),
            "exact, not prefix"
        );
        let other_sub = Filter {
            subject: Some(b"u2"),
            ..Filter::default()
        };
        assert!(!other_sub.matches(Class::Token, &tok));
        let no_sub = rec(&[("_kind", "token")]);
        let f = Filter {
            subject: Some(b""),
            ..Filter::default()
        };
        assert!(
            !f.matches(Class::Token, &no_sub),
            "a missing field never matches"
        );
    }

    fn err(args: &[&str], options: Options) -> (ErrorCode, String) {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        let e = parse_step(&a, options).expect_err("refused");
        (e.code, e.message.to_string())
    }

    #[test]
    fn steps_parse_with_defaults_and_options() {
        let a: Vec<&[u8]> = vec![b"0"];
        let s = parse_step(&a, Options::Scan).expect("parsed");
        assert_eq!(s.cursor, b"0");
        assert_eq!(s.count, DEFAULT_COUNT);
        assert_eq!(s.pattern, None);
        assert_eq!(s.filter, Filter::default());

        let a: Vec<&[u8]> = vec![
            b"18446744073709551615",
            b"count",
            b"500",
            b"Kind",
            b"TOKEN",
            b"MATCH",
            b"oauth:*",
            b"CLIENT",
            b"app",
            b"subject",
            b"u1",
        ];
        let s = parse_step(&a, Options::Scan).expect("parsed");
        assert_eq!(s.count, 500);
        assert_eq!(s.pattern, Some(&b"oauth:*"[..]));
        assert_eq!(s.filter.class, Some(Class::Token));
        assert_eq!(s.filter.client, Some(&b"app"[..]));
        assert_eq!(s.filter.subject, Some(&b"u1"[..]));
    }

    #[test]
    fn bad_steps_are_refused_with_a_reason() {
        use ErrorCode::InvalidRequest as IR;
        let cases: &[(&[&str], Options, &str)] = &[
            (&[], Options::Scan, "wrong number of arguments"),
            (&["-1"], Options::Scan, "cursor must be 0"),
            (&["18446744073709551616"], Options::Scan, "cursor must be 0"),
            (&["1x"], Options::Scan, "cursor must be 0"),
            (&["0", "COUNT"], Options::Scan, "missing its value"),
            (
                &["0", "COUNT", "0"],
                Options::Scan,
                "COUNT must be an integer from 1 to 10000",
            ),
            (
                &["0", "COUNT", "10001"],
                Options::Scan,
                "COUNT must be an integer from 1",
            ),
            (
                &["0", "COUNT", "x"],
                Options::Scan,
                "COUNT is not an integer",
            ),
            (
                &["0", "KIND", "tokens"],
                Options::Scan,
                "KIND must be one of",
            ),
            (&["0", "TYPE", "hash"], Options::Scan, "unknown option"),
            (
                &["0", "KIND", "token", "KIND", "code"],
                Options::Scan,
                "KIND is given more than once",
            ),
            (
                &["0", "CLIENT", "app"],
                Options::Purge,
                "expected MATCH or COUNT",
            ),
        ];
        for (args, options, want) in cases {
            let (code, msg) = err(args, *options);
            assert_eq!(code, IR, "{args:?}");
            assert!(msg.contains(want), "{args:?}: {msg}");
        }
    }

    #[test]
    fn tally_counts_classes_and_distinct_live_subjects() {
        let mut t = Tally::default();
        t.add(Class::Token, &rec(&[("sub", "u1")]));
        t.add(Class::Token, &rec(&[("sub", "u1")]));
        t.add(Class::Refresh, &rec(&[("sub", "u2")]));
        t.add(Class::RotatedRefresh, &rec(&[("sub", "u3")]));
        t.add(Class::Code, &rec(&[("sub", "u4")]));
        t.add_n(Class::Grant, 3);
        assert_eq!(t.count(Class::Token), 2);
        assert_eq!(t.count(Class::Refresh), 1);
        assert_eq!(t.count(Class::Grant), 3);
        assert_eq!(t.total(), 8);
        assert_eq!(t.subjects(), 2, "only live access and refresh tokens count");
        let s = t.summary();
        assert_eq!(s.count(Class::Token), 2);
        assert_eq!(s.subjects, 2);
    }

    #[test]
    fn the_census_counts_a_set_as_a_grant_when_a_live_record_names_it() {
        let mut t = Tally::default();
        t.add_record(&rec(&[("_kind", "token"), ("_grant", "g1"), ("sub", "u1")]));
        t.add_record(&rec(&[
            ("_kind", "code"),
            ("_consumed", "1"),
            ("_grant", "g1"),
        ]));
        t.add_record(&rec(&[("_kind", "client"), ("_grant", "g2")]));
        t.add_record(&rec(&[("_grant", "g3")]));
        t.add_record(&rec(&[("_kind", "refresh"), ("_grant", "g4")]));
        for set in ["g1", "g2", "g3", "other"] {
            t.add_set(set.as_bytes());
        }
        let s = t.summary();
        assert_eq!(
            s.count(Class::Grant),
            1,
            "g1 only: g2 is named by a client, g3 by no record, g4 is no set"
        );
        assert_eq!(s.count(Class::Token), 1);
        assert_eq!(s.count(Class::RedeemedCode), 1);
        assert_eq!(s.count(Class::Client), 1);
        assert_eq!(s.count(Class::Refresh), 1);
        assert_eq!(s.subjects, 1);
    }
}
