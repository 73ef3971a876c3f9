//! Record rules: kinds, reserved fields, and the life of an authorization code
//! (live, failed attempts, burned, consumed into a tombstone, reused).
//!
//! Records are plain Redis hashes. The module keeps its own bookkeeping in
//! fields whose names begin with `_`; callers may not set those.

use smallvec::SmallVec;

use super::error::{OAuthError, OResult};
use super::pkce::{self, Binding, Method, PkceFailure};
pub use super::validate::is_reserved_field;
use super::validate::{expiry_at, Limits, Pair};

pub const F_KIND: &[u8] = b"_kind";
pub const F_CREATED: &[u8] = b"_created";
pub const F_ATTEMPTS: &[u8] = b"_attempts";
pub const F_CONSUMED: &[u8] = b"_consumed";
pub const F_TOKEN: &[u8] = b"_token";
/// The grant index a record belongs to.
pub const F_GRANT: &[u8] = b"_grant";
/// On an access token issued by an exchange: the code it came from. A reused
/// code revokes the token only when the token names it back, so a hand-made
/// tombstone cannot point the module at someone else's token.
pub const F_CODE: &[u8] = b"_code";

pub const F_CLIENT_ID: &[u8] = b"client_id";
pub const F_REDIRECT_URI: &[u8] = b"redirect_uri";
pub const F_CHALLENGE: &[u8] = b"code_challenge";
pub const F_METHOD: &[u8] = b"code_challenge_method";

/// What a record is. Stored in `_kind`; a command refuses keys of another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Code,
    Token,
    State,
    Refresh,
    Client,
}

impl Kind {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Kind::Code => b"code",
            Kind::Token => b"token",
            Kind::State => b"state",
            Kind::Refresh => b"refresh",
            Kind::Client => b"client",
        }
    }
    pub fn parse(raw: &[u8]) -> Option<Kind> {
        match raw {
            b"code" => Some(Kind::Code),
            b"token" => Some(Kind::Token),
            b"state" => Some(Kind::State),
            b"refresh" => Some(Kind::Refresh),
            b"client" => Some(Kind::Client),
            _ => None,
        }
    }
    /// Whether records of this kind carry their creation time (`_created`).
    pub fn keeps_created(self) -> bool {
        matches!(self, Kind::Token | Kind::Refresh | Kind::Client)
    }
    /// Human name used in WRONGTYPE errors.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Code => "an authorization code",
            Kind::Token => "a token record",
            Kind::State => "a state record",
            Kind::Refresh => "a refresh-token record",
            Kind::Client => "a client registration",
        }
    }
}

/// The error for a hash that is not a record of the expected kind.
pub fn wrong_kind(expected: Kind) -> OAuthError {
    OAuthError::wrong_type(format!(
        "key does not hold {}; it holds another kind of record or a plain hash",
        expected.noun()
    ))
}

/// A record as loaded from its hash, in stored order. Names and values sit
/// back to back in one buffer (loading a record is on every hot path, and one
/// allocation per field would cost more than the lookup itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    buf: Vec<u8>,
    /// Per field: where its name starts, where the value starts, where it ends.
    spans: Vec<(usize, usize, usize)>,
}

impl Record {
    pub fn new(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        let mut rec = Record::with_capacity(
            fields.len(),
            fields.iter().map(|(f, v)| f.len() + v.len()).sum(),
        );
        rec.extend(fields);
        rec
    }
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Record {
            buf: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(fields),
        }
    }
    /// Appends a field (as the hash scan finds it).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(name);
        let mid = self.buf.len();
        self.buf.extend_from_slice(value);
        self.spans.push((start, mid, self.buf.len()));
    }
    /// Every field, in stored order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|&(a, b, c)| {
            (
                self.buf.get(a..b).unwrap_or_default(),
                self.buf.get(b..c).unwrap_or_default(),
            )
        })
    }
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields().find(|(f, _)| *f == name).map(|(_, v)| v)
    }
    pub fn kind(&self) -> Option<Kind> {
        self.get(F_KIND).and_then(Kind::parse)
    }
    /// Checks the kind, answering WRONGTYPE otherwise.
    pub fn expect_kind(&self, kind: Kind) -> OResult<()> {
        if self.kind() == Some(kind) {
            Ok(())
        } else {
            Err(wrong_kind(kind))
        }
    }
    /// An internal integer field (absent or unparsable counts as `default`).
    pub fn int_field(&self, name: &[u8], default: i64) -> i64 {
        self.get(name)
            .and_then(super::validate::parse_i64)
            .unwrap_or(default)
    }
    /// The caller's own fields: everything that is not module bookkeeping.
    pub fn user_fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields().filter(|(f, _)| !is_reserved_field(f))
    }
}

impl<F: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(F, V)> for Record {
    fn from_iter<I: IntoIterator<Item = (F, V)>>(fields: I) -> Self {
        let mut rec = Record::default();
        rec.extend(fields);
        rec
    }
}

impl<F: AsRef<[u8]>, V: AsRef<[u8]>> Extend<(F, V)> for Record {
    fn extend<I: IntoIterator<Item = (F, V)>>(&mut self, fields: I) {
        for (f, v) in fields {
            self.push(f.as_ref(), v.as_ref());
        }
    }
}

/// The bookkeeping fields a new record starts with: `_kind`, and `_created`
/// where it is read: token and refresh cutoffs and `iat`, and a client's
/// registration time (a long-lived record; RFC 7591 `client_id_issued_at`).
/// Codes and state are one-shot records that live minutes and nothing judges
/// by age, so they carry `_kind` only: an 8-field code then stays in the same
/// allocation size class as the plain hash.
pub fn header(kind: Kind, now_ms: i64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let created = created_value(kind, now_ms);
    header_pairs(kind, created.as_deref())
        .map(|(f, v)| (f.to_vec(), v.to_vec()))
        .collect()
}

/// The value of `_created` for a kind that carries it (see [`header`]).
pub fn created_value(kind: Kind, now_ms: i64) -> Option<Vec<u8>> {
    kind.keeps_created()
        .then(|| now_ms.to_string().into_bytes())
}

/// [`header`] as borrowed pairs, `created` from [`created_value`]: nothing
/// is allocated for a code or a state.
pub fn header_pairs(kind: Kind, created: Option<&[u8]>) -> impl Iterator<Item = Pair<'_>> {
    std::iter::once((F_KIND, kind.as_bytes())).chain(created.map(|c| (F_CREATED, c)))
}

/// A new record: header plus the caller's fields.
pub fn new_record(kind: Kind, now_ms: i64, fields: &[Pair<'_>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = header(kind, now_ms);
    out.extend(fields.iter().map(|(f, v)| (f.to_vec(), v.to_vec())));
    out
}

// ---------------------------------------------------------------------------
// Authorization codes
// ---------------------------------------------------------------------------

/// Checks an `OAUTH.SAVECODE` field list against RFC 7636 and the settings.
pub fn validate_code_fields(fields: &[Pair<'_>], limits: &Limits) -> OResult<()> {
    let get = |name: &[u8]| fields.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
    match get(F_CLIENT_ID) {
        Some(c) if !c.is_empty() => {}
        _ => return Err(OAuthError::invalid_request("client_id is required")),
    }
    let method_raw = get(F_METHOD);
    match get(F_CHALLENGE) {
        None => {
            if limits.require_pkce {
                return Err(OAuthError::invalid_request(
                    "code_challenge is required (require-pkce is on)",
                ));
            }
            if method_raw.is_some() {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method given without code_challenge",
                ));
            }
        }
        Some(challenge) => {
            let method = Method::parse(method_raw).ok_or_else(|| {
                OAuthError::invalid_request("code_challenge_method must be S256 or plain")
            })?;
            if method == Method::Plain && !limits.allow_plain_pkce {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method plain is not allowed (allow-plain-pkce is off); use S256",
                ));
            }
            if !pkce::is_valid_syntax(challenge) {
                return Err(OAuthError::invalid_request(
                    "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
                ));
            }
        }
    }
    Ok(())
}

/// Where a code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState<'r> {
    Live,
    /// A tombstone: consumed at some time, possibly with the token it issued.
    Consumed {
        token_key: Option<&'r [u8]>,
    },
}

pub fn code_state(rec: &Record) -> CodeState<'_> {
    if rec.get(F_CONSUMED).is_some() {
        CodeState::Consumed {
            token_key: rec.get(F_TOKEN),
        }
    } else {
        CodeState::Live
    }
}

/// A token request's claims about the code.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeRequest<'a> {
    pub client_id: &'a [u8],
    pub redirect_uri: &'a [u8],
    /// Empty means no verifier was sent.
    pub verifier: &'a [u8],
}

/// Why an exchange was refused. Each maps to an INFO counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantFailure {
    NotFound,
    Reused,
    Client,
    Redirect,
    Pkce(PkceFailure),
}

impl GrantFailure {
    pub fn sentence(self) -> &'static str {
        match self {
            GrantFailure::NotFound => "authorization code not found or expired",
            GrantFailure::Reused => "authorization code already used",
            GrantFailure::Client => "client_id does not match the authorization code",
            GrantFailure::Redirect => "redirect_uri does not match the authorization request",
            GrantFailure::Pkce(p) => p.sentence(),
        }
    }
    /// Whether this failure counts against the code's attempt budget.
    pub fn counts_attempt(self) -> bool {
        !matches!(self, GrantFailure::NotFound | GrantFailure::Reused)
    }
}

/// Runs the checks of RFC 6749 §4.1.3 and RFC 7636 §4.6 against a live code,
/// in a fixed order: client, redirect URI, PKCE.
pub fn check_exchange(rec: &Record, req: &ExchangeRequest<'_>) -> Result<(), GrantFailure> {
    let client_ok = rec
        .get(F_CLIENT_ID)
        .is_some_and(|c| pkce::ct_eq(c, req.client_id));
    if !client_ok {
        return Err(GrantFailure::Client);
    }
    let redirect_ok = match rec.get(F_REDIRECT_URI) {
        Some(stored) => stored == req.redirect_uri,
        None => req.redirect_uri.is_empty(),
    };
    if !redirect_ok {
        return Err(GrantFailure::Redirect);
    }
    let binding = match rec.get(F_CHALLENGE) {
        None => None,
        Some(challenge) => {
            // A stored method the module could not have written counts as a mismatch.
            let method = Method::parse(rec.get(F_METHOD))
                .ok_or(GrantFailure::Pkce(PkceFailure::Mismatch))?;
            Some(Binding { challenge, method })
        }
    };
    pkce::verify(binding, req.verifier).map_err(GrantFailure::Pkce)
}

/// What a counted failure does to the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Store the new failure count.
    Count(i64),
    /// The budget is spent: delete the code.
    Burn,
}

pub fn after_failure(previous_failures: i64, max_attempts: i64) -> AttemptOutcome {
    let n = previous_failures.max(0).saturating_add(1);
    if n >= max_attempts {
        AttemptOutcome::Burn
    } else {
        AttemptOutcome::Count(n)
    }
}

/// What a token request does to a code: the whole rule of RFC 6749 §4.1.2
/// (single use; a reused code revokes what it issued), §4.1.3 (client and
/// redirect URI) and RFC 7636 §4.6 (PKCE), with the attempt budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeDecision<'r> {
    /// Refused, nothing written: no code, or one whose expiry has passed on
    /// the clock (MULTI/EXEC and scripts still find it: Redis freezes the
    /// time it checks expiry against there).
    NotFound,
    /// A consumed code presented again: refused, and what it issued is
    /// revoked (its grant, or else the access token named here).
    Reused { token_key: Option<&'r [u8]> },
    /// A check failed: refused, and the failure counted or the code burned.
    Failed {
        failure: GrantFailure,
        attempts: AttemptOutcome,
    },
    /// Redeemed: a tombstone expiring at `tombstone_at` replaces the code;
    /// the access and refresh tokens asked for expire at their times.
    Redeem {
        tombstone_at: i64,
        token_at: Option<i64>,
        refresh_at: Option<i64>,
    },
}

/// Decides an exchange of `code` (the record and its absolute expiry, if
/// there is one) asking for tokens of `token_ttl_s` / `refresh_ttl_s`
/// seconds. Errors only for an expiry that overflows.
pub fn decide_exchange<'r>(
    code: Option<(&'r Record, Option<i64>)>,
    req: &ExchangeRequest<'_>,
    token_ttl_s: Option<i64>,
    refresh_ttl_s: Option<i64>,
    now_ms: i64,
    limits: &Limits,
) -> OResult<ExchangeDecision<'r>> {
    let Some((rec, expiry)) = code else {
        return Ok(ExchangeDecision::NotFound);
    };
    if expiry.is_some_and(|at| at <= now_ms) {
        return Ok(ExchangeDecision::NotFound);
    }
    if let CodeState::Consumed { token_key } = code_state(rec) {
        return Ok(ExchangeDecision::Reused { token_key });
    }
    if let Err(failure) = check_exchange(rec, req) {
        let attempts = after_failure(rec.int_field(F_ATTEMPTS, 0), limits.code_max_attempts);
        return Ok(ExchangeDecision::Failed { failure, attempts });
    }
    let at = |ttl: Option<i64>| ttl.map(|t| expiry_at(now_ms, t)).transpose();
    Ok(ExchangeDecision::Redeem {
        tombstone_at: match expiry {
            Some(at) => at,
            None => expiry_at(now_ms, limits.code_max_ttl)?,
        },
        token_at: at(token_ttl_s)?,
        refresh_at: at(refresh_ttl_s)?,
    })
}

/// The tombstone that replaces a consumed code: kind, consumption time (and
/// the creation time of a code written before codes stopped carrying one),
/// and the token it issued. The client data and the challenge are gone.
/// (As a record: what the tests read; exchange writes [`tombstone_pairs`].)
#[cfg(test)]
pub fn tombstone(rec: &Record, now_ms: i64, token_key: Option<&[u8]>) -> Record {
    let mut buf = [0u8; 20];
    tombstone_pairs(rec, decimal(now_ms, &mut buf), token_key, None)
        .into_iter()
        .collect()
}

/// `tombstone` as borrowed pairs (no allocation: exchange journals them as
/// they are, and the tombstone's payload is built from them): `_kind`, the code's `_created` if
/// it has one, `_consumed` (`consumed`, the decimal time), the issued token,
/// the code's `_grant` if it has one, and `grant`.
pub fn tombstone_pairs<'a>(
    rec: &'a Record,
    consumed: &'a [u8],
    token_key: Option<&'a [u8]>,
    grant: Option<&'a [u8]>,
) -> SmallVec<[Pair<'a>; 6]> {
    let mut out: SmallVec<[Pair<'a>; 6]> = SmallVec::new();
    out.push((F_KIND, Kind::Code.as_bytes()));
    if let Some(created) = rec.get(F_CREATED) {
        out.push((F_CREATED, created));
    }
    out.push((F_CONSUMED, consumed));
    if let Some(t) = token_key {
        out.push((F_TOKEN, t));
    }
    if let Some(g) = rec.get(F_GRANT) {
        out.push((F_GRANT, g));
    }
    if let Some(g) = grant {
        out.push((F_GRANT, g));
    }
    out
}

/// The decimal form of `n`, written into `buf` (20 bytes hold any `i64`).
/// Digit by digit from the end of `buf`, without `core::fmt` (this runs on
/// every rate-limiter call; docs/benchmarks.md has the measurements).
pub fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut v = n.unsigned_abs();
    let mut at = buf.len();
    loop {
        at = at.saturating_sub(1);
        if let Some(b) = buf.get_mut(at) {
            *b = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        at = at.saturating_sub(1);
        if let Some(b) = buf.get_mut(at) {
            *b = b'-';
        }
    }
    buf.get(at..).unwrap_or_default()
}

/// Whether an exchange answers a field: the code's own, without PKCE material.
pub fn is_exchange_reply_field(name: &[u8]) -> bool {
    !is_reserved_field(name) && name != F_CHALLENGE && name != F_METHOD
}

/// The fields an exchange answers: the code's own, without PKCE material.
pub fn exchange_reply_fields(rec: &Record) -> Vec<(&[u8], &[u8])> {
    rec.fields()
        .filter(|(f, _)| is_exchange_reply_field(f))
        .collect()
}

/// The caller fields of a token issued from a code: the code's fields (without
/// PKCE material) overridden by the ones given with ISSUE.
pub fn token_fields_from_code<'a>(rec: &'a Record, extra: &[Pair<'a>]) -> Vec<Pair<'a>> {
    let mut out: Vec<Pair<'a>> = exchange_reply_fields(rec)
        .into_iter()
        .filter(|(f, _)| !extra.iter().any(|(e, _)| e == f))
        .collect();
    out.extend_from_slice(extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &[u8] = b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const C: &[u8] = b"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn rec(pairs: &[(&str, &[u8])]) -> Record {
        Record::new(
            pairs
                .iter()
                .map(|(f, v)| (f.as_bytes().to_vec(), v.to_vec()))
                .collect(),
        )
    }

    fn code() -> Record {
        rec(&[
            ("_kind", b"code"),
            ("_created", b"1000"),
            ("client_id", b"app1"),
            ("redirect_uri", b"https://app/cb"),
            ("code_challenge", C),
            ("code_challenge_method", b"S256"),
            ("scope", b"read"),
        ])
    }

    fn req<'a>(client: &'a [u8], redirect: &'a [u8], verifier: &'a [u8]) -> ExchangeRequest<'a> {
        ExchangeRequest {
            client_id: client,
            redirect_uri: redirect,
            verifier,
        }
    }

    #[test]
    fn exchange_checks_in_order() {
        let r = code();
        assert_eq!(
            check_exchange(&r, &req(b"app1", b"https://app/cb", V)),
            Ok(())
        );
        assert_eq!(
            check_exchange(&r, &req(b"app2", b"x", b"")),
            Err(GrantFailure::Client)
        );
        assert_eq!(
            check_exchange(&r, &req(b"app1", b"https://app/cb/", V)),
            Err(GrantFailure::Redirect)
        );
        assert_eq!(
            check_exchange(&r, &req(b"app1", b"", V)),
            Err(GrantFailure::Redirect)
        );
        assert_eq!(
            check_exchange(&r, &req(b"app1", b"https://app/cb", b"")),
            Err(GrantFailure::Pkce(PkceFailure::VerifierMissing))
        );
    }

    #[test]
    fn no_redirect_stored_needs_empty() {
        let r = rec(&[("_kind", b"code"), ("client_id", b"a")]);
        assert_eq!(check_exchange(&r, &req(b"a", b"", b"")), Ok(()));
        assert_eq!(
            check_exchange(&r, &req(b"a", b"https://x", b"")),
            Err(GrantFailure::Redirect)
        );
        assert_eq!(
            check_exchange(&r, &req(b"a", b"", V)),
            Err(GrantFailure::Pkce(PkceFailure::VerifierUnexpected))
        );
    }

    #[test]
    fn attempts_burn_at_max() {
        assert_eq!(after_failure(0, 3), AttemptOutcome::Count(1));
        assert_eq!(after_failure(1, 3), AttemptOutcome::Count(2));
        assert_eq!(after_failure(2, 3), AttemptOutcome::Burn);
        assert_eq!(after_failure(0, 1), AttemptOutcome::Burn);
        assert_eq!(after_failure(i64::MAX, 3), AttemptOutcome::Burn);
    }

    #[test]
    fn creation_time_only_where_a_rule_reads_it() {
        let names =
            |kind| -> Vec<Vec<u8>> { header(kind, 7).into_iter().map(|(f, _)| f).collect() };
        for kind in [Kind::Code, Kind::State] {
            assert_eq!(names(kind), vec![F_KIND.to_vec()]);
        }
        for kind in [Kind::Token, Kind::Refresh, Kind::Client] {
            assert_eq!(names(kind), vec![F_KIND.to_vec(), F_CREATED.to_vec()]);
            assert_eq!(
                header(kind, 7).get(1).map(|(_, v)| v.clone()),
                Some(b"7".to_vec())
            );
        }
    }

    #[test]
    fn tombstone_drops_data() {
        let t = tombstone(&code(), 5000, Some(b"tok:1"));
        assert_eq!(
            code_state(&t),
            CodeState::Consumed {
                token_key: Some(b"tok:1")
            }
        );
        assert_eq!(t.get(F_CHALLENGE), None);
        assert_eq!(t.get(b"client_id"), None);
        assert_eq!(t.get(F_CREATED), Some(&b"1000"[..]));
        assert_eq!(t.get(F_CONSUMED), Some(&b"5000"[..]));
        assert_eq!(code_state(&code()), CodeState::Live);
    }

    #[test]
    fn decimal_writes_any_i64() {
        let mut buf = [0u8; 20];
        for n in [0, 7, -1, 1_765_000_000_000, i64::MAX, i64::MIN] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn tombstone_pairs_add_the_grant_last() {
        let c = code();
        let p = tombstone_pairs(&c, b"5000", None, Some(b"g:1"));
        assert_eq!(p.first(), Some(&(F_KIND, &b"code"[..])));
        assert_eq!(p.last(), Some(&(F_GRANT, &b"g:1"[..])));
        assert!(p.iter().all(|(f, _)| *f != F_TOKEN));
    }

    #[test]
    fn reply_and_token_fields() {
        let r = code();
        let reply = exchange_reply_fields(&r);
        assert_eq!(
            reply,
            vec![
                (&b"client_id"[..], &b"app1"[..]),
                (b"redirect_uri", b"https://app/cb"),
                (b"scope", b"read")
            ]
        );
        let t = token_fields_from_code(&r, &[(b"scope", b"narrow"), (b"jti", b"1")]);
        assert_eq!(
            t,
            vec![
                (&b"client_id"[..], &b"app1"[..]),
                (b"redirect_uri", b"https://app/cb"),
                (b"scope", b"narrow"),
                (b"jti", b"1")
            ]
        );
    }

    /// An INVALID_REQUEST with exactly this sentence.
    fn refused(r: OResult<()>, sentence: &str) {
        assert_eq!(r, Err(OAuthError::invalid_request(sentence.to_string())));
    }

    #[test]
    fn savecode_validation() {
        let l = Limits::default();
        let ok: Vec<Pair> = vec![
            (b"client_id", b"a"),
            (b"code_challenge", C),
            (b"code_challenge_method", b"S256"),
        ];
        assert!(validate_code_fields(&ok, &l).is_ok());
        let no_client: Vec<Pair> =
            vec![(b"code_challenge", C), (b"code_challenge_method", b"S256")];
        refused(
            validate_code_fields(&no_client, &l),
            "client_id is required",
        );
        let plain: Vec<Pair> = vec![(b"client_id", b"a"), (b"code_challenge", C)];
        refused(
            validate_code_fields(&plain, &l),
            "code_challenge_method plain is not allowed (allow-plain-pkce is off); use S256",
        );
        let l2 = Limits {
            allow_plain_pkce: true,
            ..l
        };
        assert!(validate_code_fields(&plain, &l2).is_ok());
        let none: Vec<Pair> = vec![(b"client_id", b"a")];
        refused(
            validate_code_fields(&none, &l),
            "code_challenge is required (require-pkce is on)",
        );
        let l3 = Limits {
            require_pkce: false,
            ..l
        };
        assert!(validate_code_fields(&none, &l3).is_ok());
        let method_only: Vec<Pair> =
            vec![(b"client_id", b"a"), (b"code_challenge_method", b"S256")];
        refused(
            validate_code_fields(&method_only, &l3),
            "code_challenge_method given without code_challenge",
        );
        let bad: Vec<Pair> = vec![
            (b"client_id", b"a"),
            (b"code_challenge", b"short"),
            (b"code_challenge_method", b"S256"),
        ];
        refused(
            validate_code_fields(&bad, &l),
            "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        );
        let bad_m: Vec<Pair> = vec![
            (b"client_id", b"a"),
            (b"code_challenge", C),
            (b"code_challenge_method", b"S512"),
        ];
        refused(
            validate_code_fields(&bad_m, &l),
            "code_challenge_method must be S256 or plain",
        );
    }

    #[test]
    fn reserved_names() {
        // In any case: an `Active` field would sit beside the computed `active`.
        for r in ["_kind", "_x", "_", "active", "exp", "iat", "Active", "EXP"] {
            assert!(is_reserved_field(r.as_bytes()), "{r}");
        }
        for r in ["kind", "scope", "expires", "inactive"] {
            assert!(!is_reserved_field(r.as_bytes()), "{r}");
        }
    }

    /// (what, code and its expiry, request, the decision).
    type Case<'a> = (
        &'static str,
        Option<(&'a Record, Option<i64>)>,
        ExchangeRequest<'a>,
        ExchangeDecision<'a>,
    );

    /// The exchange rules, one row each, at now = 1,000,000 ms with the
    /// default limits.
    #[test]
    fn exchange_decisions_rule_by_rule() {
        let now = 1_000_000;
        let l = Limits::default();
        let live = code();
        let consumed = rec(&[("_kind", b"code"), ("_consumed", b"5"), ("_token", b"tok")]);
        let tried = {
            let mut r = code();
            r.push(b"_attempts", b"2");
            r
        };
        let good = ExchangeRequest {
            client_id: b"app1",
            redirect_uri: b"https://app/cb",
            verifier: V,
        };
        let wrong_client = ExchangeRequest {
            client_id: b"app2",
            ..good
        };
        let wrong_verifier = ExchangeRequest {
            verifier: b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ..good
        };
        let redeem = |tombstone_at| ExchangeDecision::Redeem {
            tombstone_at,
            token_at: Some(now + 60_000),
            refresh_at: None,
        };
        let cases: Vec<Case> = vec![
            ("no code", None, good, ExchangeDecision::NotFound),
            (
                "expired on the clock (frozen in MULTI)",
                Some((&live, Some(now))),
                good,
                ExchangeDecision::NotFound,
            ),
            (
                "live: redeemed, the tombstone keeps the code's expiry",
                Some((&live, Some(now + 1))),
                good,
                redeem(now + 1),
            ),
            (
                "no expiry: the tombstone gets code-max-ttl",
                Some((&live, None)),
                good,
                redeem(now + 600_000),
            ),
            (
                "consumed: reuse, revoke what it issued",
                Some((&consumed, Some(now + 1))),
                good,
                ExchangeDecision::Reused {
                    token_key: Some(b"tok"),
                },
            ),
            (
                "consumed, even with a wrong client",
                Some((&consumed, Some(now + 1))),
                wrong_client,
                ExchangeDecision::Reused {
                    token_key: Some(b"tok"),
                },
            ),
            (
                "wrong client: counted",
                Some((&live, Some(now + 1))),
                wrong_client,
                ExchangeDecision::Failed {
                    failure: GrantFailure::Client,
                    attempts: AttemptOutcome::Count(1),
                },
            ),
            (
                "wrong verifier: counted",
                Some((&live, Some(now + 1))),
                wrong_verifier,
                ExchangeDecision::Failed {
                    failure: GrantFailure::Pkce(PkceFailure::Mismatch),
                    attempts: AttemptOutcome::Count(1),
                },
            ),
            (
                "third failure: burned",
                Some((&tried, Some(now + 1))),
                wrong_client,
                ExchangeDecision::Failed {
                    failure: GrantFailure::Client,
                    attempts: AttemptOutcome::Burn,
                },
            ),
        ];
        for (what, code, req, expected) in cases {
            let got = decide_exchange(code, &req, Some(60), None, now, &l);
            assert_eq!(got, Ok(expected), "{what}");
        }
        // A token expiry that overflows is refused, after the checks passed.
        assert_eq!(
            decide_exchange(Some((&live, None)), &good, Some(i64::MAX), None, now, &l),
            Err(OAuthError::invalid_request("ttl is too large"))
        );
    }
}
