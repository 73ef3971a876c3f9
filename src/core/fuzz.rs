//! Property-based fuzzing of every parser, validator and decision function of
//! the pure core: arbitrary bytes, arbitrary records and arbitrary integers
//! (biased towards the bounds) go in; nothing may panic, and the basic
//! invariants of each function must hold. Runs in a few seconds with
//! `cargo test --release --lib fuzz`; also meaningful in debug builds, where
//! integer overflow panics.

use proptest::prelude::*;

use super::error::ErrorCode;
use super::gcra::{gcra, Gcra};
use super::pkce::{self, Binding, Method, PkceFailure};
use super::rate::{
    ceil_seconds, combine, fixed_window, CounterState, CounterWrite, FixedWindow, RateReply,
    MAX_LIMIT, MAX_WINDOW_SECONDS,
};
use super::record::{
    self, after_failure, check_exchange, code_state, AttemptOutcome, CodeState, ExchangeRequest,
    GrantFailure, Record,
};
use super::sliding::{sliding_window, SlidingState};
use super::token::{
    decide_rotation, is_cut_off, rotated_marks, scope_within, secret_hash, successor_fields,
    verify_secret, RotateDecision,
};
use super::validate::{parse_bounded, parse_fields, parse_i64, parse_ttl, Limits, Pair};

const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Integers at and past every bound the module checks, plus anything.
fn edge_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => any::<i64>(),
        2 => -3i64..1_000,
        1 => prop::sample::select(vec![
            0,
            -1,
            1,
            2,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX - 1,
            MAX_LIMIT - 1,
            MAX_LIMIT,
            MAX_LIMIT + 1,
            MAX_WINDOW_SECONDS,
            MAX_WINDOW_SECONDS + 1,
            MAX_WINDOW_SECONDS * 1000,
            1_000,
            999,
            1_001,
        ]),
    ]
}

/// Bytes that often look like numbers, keywords or verifiers, sometimes anything.
fn fuzz_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..48),
        3 => prop::collection::vec(
            prop::sample::select(b"-+0123456789 .ex".to_vec()),
            0..24,
        ),
        1 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        1 => any::<i128>().prop_map(|n| n.to_string().into_bytes()),
        1 => prop::sample::select(vec![
            b"".to_vec(),
            b"0".to_vec(),
            b"-0".to_vec(),
            b"-".to_vec(),
            b"+1".to_vec(),
            b" 1".to_vec(),
            b"1.5".to_vec(),
            b"99999999999999999999".to_vec(),
            b"9223372036854775807".to_vec(),
            b"9223372036854775808".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"-9223372036854775809".to_vec(),
            b"0000000000000000000001".to_vec(),
            b"\x00".to_vec(),
            b"\xff\xfe".to_vec(),
        ]),
    ]
}

/// A verifier-alphabet string around the 43..=128 bounds.
fn verifier_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"ABCXYZabcxyz0189-._~+/= \x00\xc3".to_vec()),
        40..132,
    )
}

/// Field names a record or a request may carry: the ones the module reads,
/// reserved ones, and random ones.
fn field_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(vec![
            b"_kind".to_vec(),
            b"_created".to_vec(),
            b"_attempts".to_vec(),
            b"_consumed".to_vec(),
            b"_token".to_vec(),
            b"_grant".to_vec(),
            b"_rotated".to_vec(),
            b"_successor".to_vec(),
            b"_successor_access".to_vec(),
            b"_grace_until".to_vec(),
            b"_grace_left".to_vec(),
            b"_secret_sha256".to_vec(),
            b"client_id".to_vec(),
            b"redirect_uri".to_vec(),
            b"code_challenge".to_vec(),
            b"code_challenge_method".to_vec(),
            b"scope".to_vec(),
            b"active".to_vec(),
            b"exp".to_vec(),
            b"iat".to_vec(),
            b"sub".to_vec(),
            b"FIELDS".to_vec(),
            b"".to_vec(),
        ]),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ]
}

fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => fuzz_bytes(),
        1 => verifier_like(),
        1 => prop::sample::select(vec![
            b"S256".to_vec(),
            b"plain".to_vec(),
            b"s256".to_vec(),
            b"code".to_vec(),
            b"token".to_vec(),
            b"refresh".to_vec(),
            b"app1".to_vec(),
            b"https://app/cb".to_vec(),
            b"read write".to_vec(),
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_vec(),
            b"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_vec(),
        ]),
    ]
}

fn record_strategy() -> impl Strategy<Value = Record> {
    prop::collection::vec((field_name(), field_value()), 0..12).prop_map(Record::new)
}

fn limits_strategy() -> impl Strategy<Value = Limits> {
    (
        any::<bool>(),
        any::<bool>(),
        -2i64..80,
        -2i64..20_000,
        edge_i64(),
    )
        .prop_map(
            |(require_pkce, allow_plain_pkce, fields, bytes, attempts)| Limits {
                require_pkce,
                allow_plain_pkce,
                record_max_fields: fields,
                record_max_bytes: bytes,
                code_max_attempts: attempts,
                ..Limits::default()
            },
        )
}

/// An argument list for `parse_fields`: often well-formed, often broken.
fn fields_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let keyword = prop::sample::select(vec![
        b"FIELDS".to_vec(),
        b"fields".to_vec(),
        b"FiElDs".to_vec(),
        b"FIELD".to_vec(),
        b"".to_vec(),
    ]);
    let pairs = prop::collection::vec((field_name(), field_value()), 0..10);
    (keyword, pairs, -2i64..12, any::<bool>(), any::<bool>()).prop_map(
        |(kw, pairs, delta, honest, odd)| {
            let mut a = vec![kw];
            let n = if honest {
                pairs.len() as i64
            } else {
                pairs.len() as i64 + delta
            };
            a.push(n.to_string().into_bytes());
            for (f, v) in pairs {
                a.push(f);
                a.push(v);
            }
            if odd {
                a.push(b"x".to_vec());
            }
            a
        },
    )
}

/// The reference reading of a strict decimal: optional '-', then ASCII digits.
fn reference_i64(raw: &[u8]) -> Option<i128> {
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i128 = 0;
    for d in digits {
        v = v.saturating_mul(10).saturating_add(i128::from(d - b'0'));
    }
    Some(if raw.first() == Some(&b'-') { -v } else { v })
}

fn check_rate_reply(r: &RateReply, limit: i64) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.limit, limit);
    prop_assert!(r.remaining >= 0, "remaining {} < 0", r.remaining);
    prop_assert!(
        r.remaining <= limit,
        "remaining {} > limit {}",
        r.remaining,
        limit
    );
    prop_assert!(r.reset_after >= 0, "reset_after {} < 0", r.reset_after);
    prop_assert!(r.retry_after >= -1, "retry_after {} < -1", r.retry_after);
    if r.limited {
        prop_assert!(
            r.retry_after == -1 || r.retry_after >= 1,
            "a refusal says retry in {} s",
            r.retry_after
        );
    } else {
        prop_assert_eq!(r.retry_after, -1);
    }
    Ok(())
}

/// A plausible server clock in ms: from 1970 to beyond year 30000, plus edges.
fn now_ms_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 0i64..(1i64 << 50),
        1 => 1_700_000_000_000i64..1_800_000_000_000,
        1 => prop::sample::select(vec![0i64, 1, 999, 1_000, 1 << 50]),
    ]
}

fn params_strategy() -> impl Strategy<Value = (i64, i64, i64)> {
    (
        prop_oneof![3 => 1i64..50, 1 => edge_i64()],
        prop_oneof![3 => 1i64..120, 1 => edge_i64()],
        prop_oneof![3 => 0i64..5, 1 => edge_i64()],
    )
}

proptest! {
    #![proptest_config(config())]

    // -----------------------------------------------------------------
    // validate
    // -----------------------------------------------------------------

    #[test]
    fn parse_i64_matches_a_reference(raw in fuzz_bytes()) {
        let got = parse_i64(&raw);
        let reference = reference_i64(&raw).and_then(|v| i64::try_from(v).ok());
        let digits = raw.strip_prefix(b"-").unwrap_or(&raw).len();
        if digits <= 19 {
            prop_assert_eq!(got, reference, "{:?}", raw);
        } else {
            // Over 19 digits is refused even with leading zeros.
            prop_assert_eq!(got, None);
        }
    }

    #[test]
    fn parse_i64_round_trips_every_i64(n in edge_i64()) {
        prop_assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
        prop_assert_eq!(parse_i64(format!("+{n}").as_bytes()), None);
        prop_assert_eq!(parse_i64(format!(" {n}").as_bytes()), None);
        prop_assert_eq!(parse_i64(format!("{n}.0").as_bytes()), None);
        let past = i128::from(n) * 10 + 7;
        if i64::try_from(past).is_err() {
            prop_assert_eq!(parse_i64(past.to_string().as_bytes()), None);
        }
    }

    #[test]
    fn parse_bounded_and_ttl_stay_in_range(
        raw in fuzz_bytes(),
        a in edge_i64(),
        b in edge_i64(),
    ) {
        let (min, max) = (a.min(b), a.max(b));
        match parse_bounded(&raw, "n", min, max) {
            Ok(v) => {
                prop_assert!((min..=max).contains(&v));
                prop_assert_eq!(parse_i64(&raw), Some(v));
            }
            Err(e) => {
                prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
                prop_assert!(parse_i64(&raw).is_none_or(|v| !(min..=max).contains(&v)));
            }
        }
        match parse_ttl(&raw, max) {
            Ok(v) => prop_assert!(v >= 1 && v <= max),
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidRequest),
        }
    }

    #[test]
    fn parse_fields_accepts_exactly_the_wellformed(
        args in fields_args(),
        limits in limits_strategy(),
    ) {
        let a: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        match parse_fields(&a, &limits) {
            Ok(out) => {
                prop_assert!(a[0].eq_ignore_ascii_case(b"FIELDS"));
                let n = parse_i64(a[1]);
                prop_assert_eq!(n, Some(out.len() as i64));
                prop_assert_eq!(a.len(), 2 + 2 * out.len());
                prop_assert!(out.len() as i64 <= limits.record_max_fields);
                let total: usize = a[2..].iter().map(|x| x.len()).sum();
                prop_assert!(total as i64 <= limits.record_max_bytes);
                for (i, (f, v)) in out.iter().enumerate() {
                    prop_assert_eq!(*f, a[2 + 2 * i]);
                    prop_assert_eq!(*v, a[3 + 2 * i]);
                    prop_assert!(!f.is_empty());
                    prop_assert!(!record::is_reserved_field(f));
                    prop_assert!(!out[..i].iter().any(|(g, _)| g == f));
                }
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidRequest),
        }
    }

    #[test]
    fn parse_fields_never_panics_on_random_lists(
        args in prop::collection::vec(fuzz_bytes(), 0..9),
        limits in limits_strategy(),
    ) {
        let a: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        if let Err(e) = parse_fields(&a, &limits) {
            prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
        }
        // Error messages never echo caller input (it may be a secret).
        let secret = b"SECRET-0123456789-SECRET";
        let mut with_secret = a.clone();
        with_secret.push(secret);
        if let Err(e) = parse_fields(&with_secret, &limits) {
            prop_assert!(!e.message.contains("SECRET-0123456789"));
        }
    }

    // -----------------------------------------------------------------
    // pkce
    // -----------------------------------------------------------------

    #[test]
    fn pkce_syntax_matches_rfc7636(raw in prop_oneof![verifier_like(), fuzz_bytes()]) {
        let expected = (43..=128).contains(&raw.len())
            && raw.iter().all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c));
        prop_assert_eq!(pkce::is_valid_syntax(&raw), expected);
    }

    #[test]
    fn pkce_method_names_are_exact(raw in prop::option::of(field_value())) {
        let got = Method::parse(raw.as_deref());
        let expected = match raw.as_deref() {
            None | Some(b"plain") => Some(Method::Plain),
            Some(b"S256") => Some(Method::S256),
            Some(_) => None,
        };
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn pkce_verify_follows_the_downgrade_rules(
        challenge in prop_oneof![verifier_like(), fuzz_bytes()],
        s256 in any::<bool>(),
        has_binding in any::<bool>(),
        verifier in prop_oneof![verifier_like(), fuzz_bytes()],
        derive in any::<bool>(),
    ) {
        let method = if s256 { Method::S256 } else { Method::Plain };
        // Half of the time the challenge really is derived from the verifier.
        let challenge = match (derive, s256) {
            (true, true) => pkce::s256_challenge(&verifier).to_vec(),
            (true, false) => verifier.clone(),
            (false, _) => challenge,
        };
        let binding = has_binding.then_some(Binding { challenge: &challenge, method });
        let got = pkce::verify(binding, &verifier);
        let expected = match binding {
            None if verifier.is_empty() => Ok(()),
            None => Err(PkceFailure::VerifierUnexpected),
            Some(_) if verifier.is_empty() => Err(PkceFailure::VerifierMissing),
            Some(_) if !pkce::is_valid_syntax(&verifier) => Err(PkceFailure::VerifierMalformed),
            Some(b) => {
                let want = match b.method {
                    Method::S256 => pkce::s256_challenge(&verifier).to_vec(),
                    Method::Plain => verifier.clone(),
                };
                if want == b.challenge { Ok(()) } else { Err(PkceFailure::Mismatch) }
            }
        };
        prop_assert_eq!(got, expected);
        prop_assert_eq!(
            pkce::ct_eq(&challenge, &verifier),
            challenge == verifier
        );
    }

    // -----------------------------------------------------------------
    // record
    // -----------------------------------------------------------------

    #[test]
    fn code_field_validation_enforces_its_rules(
        pairs in prop::collection::vec((field_name(), field_value()), 0..8),
        limits in limits_strategy(),
    ) {
        let fields: Vec<Pair> = pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
        let get = |name: &[u8]| fields.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
        match record::validate_code_fields(&fields, &limits) {
            Ok(()) => {
                prop_assert!(get(b"client_id").is_some_and(|c| !c.is_empty()));
                match get(b"code_challenge") {
                    None => {
                        prop_assert!(!limits.require_pkce);
                        prop_assert!(get(b"code_challenge_method").is_none());
                    }
                    Some(ch) => {
                        prop_assert!(pkce::is_valid_syntax(ch));
                        let m = Method::parse(get(b"code_challenge_method"));
                        prop_assert!(m.is_some());
                        if m == Some(Method::Plain) {
                            prop_assert!(limits.allow_plain_pkce);
                        }
                    }
                }
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidRequest),
        }
    }

    #[test]
    fn exchange_checks_hold_on_arbitrary_records(
        rec in record_strategy(),
        client in field_value(),
        redirect in field_value(),
        verifier in prop_oneof![verifier_like(), field_value()],
        copy_client in any::<bool>(),
        copy_redirect in any::<bool>(),
        now in edge_i64(),
        failures in edge_i64(),
        max_attempts in edge_i64(),
    ) {
        let client = match (copy_client, rec.get(b"client_id")) {
            (true, Some(c)) => c.to_vec(),
            _ => client,
        };
        let redirect = match (copy_redirect, rec.get(b"redirect_uri")) {
            (true, Some(r)) => r.to_vec(),
            (true, None) => Vec::new(),
            _ => redirect,
        };
        let req = ExchangeRequest { client_id: &client, redirect_uri: &redirect, verifier: &verifier };
        match check_exchange(&rec, &req) {
            Ok(()) => {
                prop_assert_eq!(rec.get(b"client_id"), Some(client.as_slice()));
                prop_assert_eq!(rec.get(b"redirect_uri").unwrap_or_default(), redirect.as_slice());
                let binding = rec.get(b"code_challenge").map(|challenge| Binding {
                    challenge,
                    method: Method::parse(rec.get(b"code_challenge_method")).unwrap_or(Method::S256),
                });
                prop_assert_eq!(pkce::verify(binding, &verifier), Ok(()));
            }
            Err(f) => {
                prop_assert!(f.counts_attempt());
                prop_assert!(!f.sentence().is_empty());
            }
        }
        match after_failure(failures, max_attempts) {
            AttemptOutcome::Count(n) => {
                prop_assert!(n >= 1);
                prop_assert!(n < max_attempts);
            }
            AttemptOutcome::Burn => {
                prop_assert!(failures.max(0).saturating_add(1) >= max_attempts);
            }
        }
        // Consuming keeps no client data or PKCE material.
        let token = b"tok:1".to_vec();
        let stone = record::tombstone(&rec, now, Some(&token));
        prop_assert_eq!(code_state(&stone), CodeState::Consumed { token_key: Some(&token[..]) });
        for (f, _) in stone.fields() {
            prop_assert!(f.first() == Some(&b'_'), "tombstone keeps {:?}", f);
        }
        for (f, _) in record::exchange_reply_fields(&rec) {
            prop_assert!(!record::is_reserved_field(f));
            prop_assert!(f != b"code_challenge" && f != b"code_challenge_method");
        }
        let extra: Vec<Pair> = vec![(b"scope", b"narrow")];
        let t = record::token_fields_from_code(&rec, &extra);
        prop_assert_eq!(t.iter().filter(|(f, _)| *f == b"scope").count(), 1);
        for (f, _) in &t {
            prop_assert!(!record::is_reserved_field(f));
        }
        let _ = GrantFailure::NotFound.counts_attempt();
    }

    // -----------------------------------------------------------------
    // rate limits
    // -----------------------------------------------------------------

    #[test]
    fn fixed_window_invariants(
        (limit, window, cost) in params_strategy(),
        state in prop::option::of((edge_i64(), prop::option::of(edge_i64()))),
        now in prop_oneof![3 => now_ms_strategy(), 1 => edge_i64()],
    ) {
        let Ok(p) = FixedWindow::new(limit, window, cost) else {
            prop_assert!(
                !(1..=MAX_LIMIT).contains(&limit)
                    || !(1..=MAX_WINDOW_SECONDS).contains(&window)
                    || cost < 0
            );
            return Ok(());
        };
        let state = state.map(|(count, expire_at_ms)| CounterState { count, expire_at_ms });
        let d = fixed_window(p, state, now);
        check_rate_reply(&d.reply, limit)?;
        if cost > limit {
            prop_assert!(d.reply.limited);
            prop_assert_eq!(d.reply.retry_after, -1);
        }
        match d.write {
            Some(CounterWrite::Set { count, expire_at_ms }) => {
                prop_assert!(!d.reply.limited);
                prop_assert!(cost > 0);
                prop_assert!((0..=limit).contains(&count));
                prop_assert_eq!(d.reply.remaining, limit - count);
                if state.is_none() {
                    prop_assert_eq!(expire_at_ms, now.saturating_add(p.window_ms));
                }
            }
            Some(CounterWrite::Expire { .. }) => {
                // Only an immortal counter is repaired.
                let immortal = matches!(state, Some(CounterState { expire_at_ms: None, .. }));
                prop_assert!(immortal);
            }
            None => {
                prop_assert!(d.reply.limited || cost == 0);
                // A counter without expiry is never left without one.
                let immortal = matches!(state, Some(CounterState { expire_at_ms: None, .. }));
                prop_assert!(!immortal);
            }
        }
    }

    #[test]
    fn gcra_invariants(
        burst in prop_oneof![3 => 0i64..50, 1 => edge_i64()],
        count in prop_oneof![3 => 1i64..100, 1 => edge_i64()],
        period in prop_oneof![3 => 1i64..120, 1 => edge_i64()],
        cost in prop_oneof![3 => 0i64..5, 1 => edge_i64()],
        tat in prop::option::of(edge_i64()),
        now in prop_oneof![
            3 => 1_600_000_000_000_000_000i64..1_900_000_000_000_000_000,
            1 => edge_i64(),
        ],
    ) {
        let Ok(p) = Gcra::new(burst, count, period, cost) else {
            return Ok(());
        };
        let d = gcra(p, tat, now);
        check_rate_reply(&d.reply, p.limit())?;
        if cost > p.limit() {
            prop_assert!(d.reply.limited);
            prop_assert_eq!(d.reply.retry_after, -1);
        }
        if let Some(w) = d.write {
            prop_assert!(!d.reply.limited);
            prop_assert!(cost > 0);
            prop_assert!(w.tat_ns >= now || w.tat_ns == i64::MAX, "tat {} before now {}", w.tat_ns, now);
            if w.tat_ns < i64::MAX && w.tat_ns >= 0 {
                prop_assert!(i128::from(w.expire_at_ms) * 1_000_000 >= i128::from(w.tat_ns));
                prop_assert!(i128::from(w.expire_at_ms) * 1_000_000 < i128::from(w.tat_ns) + 1_000_000);
            }
        } else {
            prop_assert!(d.reply.limited || cost == 0);
        }
        // Waiting the advertised time is enough (the state is unchanged by a refusal).
        if d.reply.limited && d.reply.retry_after >= 1 {
            if let Some(later) = d.reply.retry_after.checked_mul(1_000_000_000).and_then(|w| now.checked_add(w)) {
                prop_assert!(!gcra(p, tat, later).reply.limited, "still limited after retry_after");
            }
        }
    }

    #[test]
    fn sliding_window_invariants(
        (limit, window, cost) in params_strategy(),
        state in prop::option::of((edge_i64(), edge_i64(), edge_i64())),
        align in any::<bool>(),
        prev_window in any::<bool>(),
        now in now_ms_strategy(),
    ) {
        let Ok(p) = FixedWindow::new(limit, window, cost) else {
            return Ok(());
        };
        let w = p.window_ms;
        let start = now - now.rem_euclid(w);
        // Arbitrary counts; half of the time in the current or previous window.
        let stored = state.map(|(ws, current, previous)| SlidingState {
            window_start_ms: match (align, prev_window) {
                (true, false) => start,
                (true, true) => start - w,
                _ => ws,
            },
            current,
            previous,
        });
        let d = sliding_window(p.limit, w, p.cost, stored, now);
        check_rate_reply(&d.reply, limit)?;
        if cost > limit {
            prop_assert!(d.reply.limited);
            prop_assert_eq!(d.reply.retry_after, -1);
        }
        match d.write {
            Some(wr) => {
                prop_assert!(!d.reply.limited);
                prop_assert!(cost > 0);
                prop_assert_eq!(wr.state.window_start_ms, start);
                prop_assert!((0..=limit).contains(&wr.state.current));
                prop_assert!(wr.state.previous >= 0);
                prop_assert!(wr.expire_at_ms > now);
                prop_assert_eq!(wr.expire_at_ms, start + 2 * w);
            }
            None => prop_assert!(d.reply.limited || cost == 0),
        }
        // A refusal does not change the state: waiting retry_after seconds is enough.
        if d.reply.limited && d.reply.retry_after >= 1 {
            let later = now + d.reply.retry_after * 1000;
            prop_assert!(
                !sliding_window(p.limit, w, p.cost, stored, later).reply.limited,
                "still limited {} s later",
                d.reply.retry_after
            );
        }
    }

    #[test]
    fn combine_and_rounding(
        replies in prop::collection::vec(
            (any::<bool>(), edge_i64(), edge_i64(), edge_i64(), edge_i64()),
            0..6,
        ),
        ms in edge_i64(),
    ) {
        let replies: Vec<RateReply> = replies
            .into_iter()
            .map(|(limited, limit, remaining, retry_after, reset_after)| RateReply {
                limited,
                limit,
                remaining,
                retry_after,
                reset_after,
            })
            .collect();
        match combine(&replies) {
            None => prop_assert!(replies.is_empty()),
            Some((c, i)) => {
                prop_assert!((1..=replies.len()).contains(&i));
                prop_assert_eq!(c.limited, replies.iter().any(|r| r.limited));
                prop_assert_eq!(c.limit, replies[i - 1].limit);
                prop_assert_eq!(c.remaining, replies[i - 1].remaining);
            }
        }
        let s = ceil_seconds(ms);
        prop_assert!(s >= 0);
        if ms > 0 {
            prop_assert!(i128::from(s) * 1000 >= i128::from(ms));
            prop_assert!(i128::from(s - 1) * 1000 < i128::from(ms));
        }
    }

    // -----------------------------------------------------------------
    // token lifecycle
    // -----------------------------------------------------------------

    #[test]
    fn scopes_never_widen(
        old in prop::option::of(prop::collection::vec(
            prop::sample::select(b"ab  cd\x00".to_vec()), 0..12)),
        new in prop::collection::vec(prop::sample::select(b"ab  cd\x00".to_vec()), 0..12),
        rec in record_strategy(),
        extra in prop::collection::vec((field_name(), field_value()), 0..4),
    ) {
        prop_assert!(scope_within(old.as_deref(), old.as_deref().unwrap_or_default()));
        prop_assert!(scope_within(None, &new));
        if scope_within(old.as_deref(), &new) {
            if let Some(o) = &old {
                let have: Vec<&[u8]> = o.split(|b| *b == b' ').collect();
                for s in new.split(|b| *b == b' ').filter(|s| !s.is_empty()) {
                    prop_assert!(have.contains(&s));
                }
            }
        }
        let extra: Vec<Pair> = extra.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
        match successor_fields(&rec, &extra) {
            Ok(out) => {
                for e in &extra {
                    prop_assert!(out.contains(e));
                }
                if let Some((_, s)) = extra.iter().find(|(f, _)| *f == b"scope") {
                    prop_assert!(scope_within(rec.get(b"scope"), s));
                }
                for (f, _) in &out {
                    prop_assert!(
                        !record::is_reserved_field(f) || extra.iter().any(|(e, _)| e == f)
                    );
                }
            }
            Err(_) => {
                let (_, s) = extra.iter().find(|(f, _)| *f == b"scope").expect("only scope refuses");
                prop_assert!(!scope_within(rec.get(b"scope"), s));
            }
        }
    }

    #[test]
    fn rotation_decisions_are_consistent(
        rec in record_strategy(),
        now in edge_i64(),
        grace_ms in edge_i64(),
        uses in edge_i64(),
        cutoffs in prop::collection::vec(edge_i64(), 0..4),
        secret in fuzz_bytes(),
    ) {
        match decide_rotation(&rec, now) {
            RotateDecision::Rotate => prop_assert!(rec.get(b"_rotated").is_none()),
            RotateDecision::Replay { successor, uses_left, .. } => {
                prop_assert!(rec.get(b"_rotated").is_some());
                prop_assert_eq!(rec.get(b"_successor"), Some(successor.as_slice()));
                prop_assert!(uses_left >= 0);
                prop_assert!(now < rec.int_field(b"_grace_until", 0));
            }
            RotateDecision::Reuse => prop_assert!(rec.get(b"_rotated").is_some()),
        }
        // Marks written at `now` decide Replay only within grace, with uses left.
        let mut marked = Record::default();
        marked.extend(rec.fields().filter(|(f, _)| f.first() != Some(&b'_')));
        marked.extend(rotated_marks(now, b"succ", Some(b"acc"), grace_ms, uses));
        let d = decide_rotation(&marked, now);
        let replay = grace_ms > 0 && uses > 0 && now < now.saturating_add(grace_ms);
        prop_assert_eq!(matches!(d, RotateDecision::Replay { .. }), replay, "{:?}", d);
        let created = rec.int_field(b"_created", i64::MIN);
        prop_assert_eq!(is_cut_off(&rec, &cutoffs), cutoffs.iter().any(|c| created <= *c));
        let h = secret_hash(&secret);
        prop_assert_eq!(h.len(), 64);
        prop_assert!(verify_secret(h.as_bytes(), &secret));
        let mut other = secret.clone();
        other.push(b'!');
        prop_assert!(!verify_secret(h.as_bytes(), &other));
    }
}
