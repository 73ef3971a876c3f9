//! Argument validation on raw bytes: integers, TTLs, and `FIELDS numfields f v ...`.
//!
//! Everything here runs before a command opens a key for writing, so a rejected
//! request changes nothing.

use smallvec::SmallVec;

use super::error::{OAuthError, OResult};

/// Bounds that come from the module configuration, snapshotted once per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub code_max_ttl: i64,
    pub token_max_ttl: i64,
    pub state_max_ttl: i64,
    pub code_max_attempts: i64,
    pub require_pkce: bool,
    pub allow_plain_pkce: bool,
    pub record_max_fields: i64,
    pub record_max_bytes: i64,
    pub refresh_max_ttl: i64,
    pub refresh_grace_max: i64,
    pub refresh_grace_uses: i64,
    pub client_max_ttl: i64,
}

impl Limits {
    /// The settings' defaults: the one place they are written (the module
    /// configuration registers these, and unit tests use them).
    pub const DEFAULT: Limits = Limits {
        code_max_ttl: 600,
        token_max_ttl: 2_592_000,
        state_max_ttl: 600,
        code_max_attempts: 3,
        require_pkce: true,
        allow_plain_pkce: false,
        record_max_fields: 64,
        record_max_bytes: 16_384,
        refresh_max_ttl: 31_536_000,
        refresh_grace_max: 300,
        refresh_grace_uses: 2,
        client_max_ttl: 10 * 366 * 24 * 3600,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A strict signed 64-bit decimal: optional `-`, digits only, no spaces, no `+`.
pub fn parse_i64(raw: &[u8]) -> Option<i64> {
    let (neg, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        let digit = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(digit)?
        } else {
            v.checked_add(digit)?
        };
    }
    Some(v)
}

/// An integer argument within `min..=max`; `what` names it in the error.
pub fn parse_bounded(raw: &[u8], what: &str, min: i64, max: i64) -> OResult<i64> {
    match parse_i64(raw) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(_) => Err(OAuthError::invalid_request(format!(
            "{what} must be an integer from {min} to {max}"
        ))),
        None => Err(OAuthError::invalid_request(format!(
            "{what} is not an integer"
        ))),
    }
}

/// Absolute expiry `ttl_s` seconds after `now_ms`, checked.
pub fn expiry_at(now_ms: i64, ttl_s: i64) -> OResult<i64> {
    ttl_s
        .checked_mul(1000)
        .and_then(|ms| now_ms.checked_add(ms))
        .ok_or_else(|| OAuthError::invalid_request("ttl is too large"))
}

/// A TTL in whole seconds, at least 1 and at most `max`.
pub fn parse_ttl(raw: &[u8], max: i64) -> OResult<i64> {
    parse_bounded(raw, "ttl", 1, max)
}

/// Case-insensitive keyword match, as Redis does for options.
pub fn is_keyword(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Field names the module sets itself or computes in replies: any name that
/// begins with `_`, and `active`, `exp` and `iat` in any case.
pub fn is_reserved_field(name: &[u8]) -> bool {
    name.first() == Some(&b'_')
        || [&b"active"[..], b"exp", b"iat"]
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
}

/// Field names the module reads with a meaning: the client and redirect
/// binding and PKCE of a code, a client's secret, the scope a rotation may
/// only narrow. They are matched exactly as spelled here, so a name that
/// differs from one of them only in case is refused: `Client_Secret` would
/// otherwise be stored in clear, and `SCOPE` would sit beside `scope`
/// unchecked.
pub const INTERPRETED_FIELDS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "client_secret",
    "client_secret_expires_at",
    "scope",
];

/// The interpreted field name that `name` misspells by case, if any.
pub fn case_variant_of(name: &[u8]) -> Option<&'static str> {
    INTERPRETED_FIELDS
        .iter()
        .copied()
        .find(|k| name != k.as_bytes() && name.eq_ignore_ascii_case(k.as_bytes()))
}

/// One caller-supplied field.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// A command's `FIELDS` pairs: inline up to 16 (a code has 8), no allocation.
pub type Fields<'a> = SmallVec<[Pair<'a>; 16]>;

/// Parses `FIELDS numfields field value [field value ...]`, which must be the
/// rest of the arguments. Rejects a count that does not match, empty, duplicate
/// and reserved names, and input beyond the record caps.
pub fn parse_fields<'a>(args: &[&'a [u8]], limits: &Limits) -> OResult<Fields<'a>> {
    let (kw, rest) = match args.split_first() {
        Some(x) => x,
        None => {
            return Err(OAuthError::invalid_request(
                "FIELDS numfields field value ... is required",
            ))
        }
    };
    if !is_keyword(kw, "FIELDS") {
        return Err(OAuthError::invalid_request(
            "expected FIELDS numfields field value ...",
        ));
    }
    let (count, pairs) = match rest.split_first() {
        Some(x) => x,
        None => return Err(OAuthError::invalid_request("FIELDS needs numfields")),
    };
    let n = parse_i64(count)
        .filter(|n| *n >= 0)
        .ok_or_else(|| OAuthError::invalid_request("numfields must be a non-negative integer"))?;
    let given = pairs.len() / 2;
    if pairs.len() % 2 != 0 || i64::try_from(given).ok() != Some(n) {
        let given = match (pairs.len() % 2, pairs.len()) {
            (0, 2) => "1 pair follows".to_string(),
            (0, len) => format!("{} pairs follow", len / 2),
            (_, 1) => "1 argument follows, an odd number".to_string(),
            (_, len) => format!("{len} arguments follow, an odd number"),
        };
        return Err(OAuthError::invalid_request(format!(
            "numfields is {n} but {given}; FIELDS must be last and hold exactly numfields field value pairs"
        )));
    }
    check_record_size(n, pairs.iter().map(|p| p.len()), limits)?;
    let mut out: Fields<'a> = SmallVec::with_capacity(given);
    for chunk in pairs.chunks_exact(2) {
        let (f, v) = match chunk {
            [f, v] => (*f, *v),
            _ => continue,
        };
        if f.is_empty() {
            return Err(OAuthError::invalid_request("field names must not be empty"));
        }
        if is_reserved_field(f) {
            return Err(OAuthError::invalid_request(
                "field names beginning with '_' and the names active, exp and iat are reserved for the module",
            ));
        }
        if let Some(k) = case_variant_of(f) {
            return Err(OAuthError::invalid_request(format!(
                "a field name differs from {k} only in case; the module reads {k} exactly as spelled, so write it so"
            )));
        }
        if out.iter().any(|(seen, _)| *seen == f) {
            return Err(OAuthError::invalid_request("a field name is given twice"));
        }
        out.push((f, v));
    }
    Ok(out)
}

/// Checks a field count and the total bytes of names and values against the caps.
pub fn check_record_size(
    fields: i64,
    lengths: impl Iterator<Item = usize>,
    limits: &Limits,
) -> OResult<()> {
    if fields > limits.record_max_fields {
        return Err(OAuthError::invalid_request(format!(
            "too many fields: at most {} per record (record-max-fields)",
            limits.record_max_fields
        )));
    }
    let total = lengths.fold(0usize, usize::saturating_add);
    if i64::try_from(total).map_or(true, |t| t > limits.record_max_bytes) {
        return Err(OAuthError::invalid_request(format!(
            "record too large: at most {} bytes of field names and values (record-max-bytes)",
            limits.record_max_bytes
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&'static str]) -> Vec<&'static [u8]> {
        v.iter().map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"99999999999999999999"), None);
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"1.5",
            b"1e3",
            b"0x10",
            b"\xff",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(parse_ttl(b"1", 600), Ok(1));
        assert_eq!(parse_ttl(b"600", 600), Ok(600));
        let range = Err(OAuthError::invalid_request(
            "ttl must be an integer from 1 to 600",
        ));
        assert_eq!(parse_ttl(b"601", 600), range);
        assert_eq!(parse_ttl(b"0", 600), range);
        assert_eq!(parse_ttl(b"-1", 600), range);
        assert_eq!(
            parse_ttl(b"abc", 600),
            Err(OAuthError::invalid_request("ttl is not an integer"))
        );
    }

    #[test]
    fn fields_happy_path() {
        let l = Limits::default();
        let f = parse_fields(&a(&["fields", "2", "a", "1", "b", ""]), &l).unwrap();
        assert_eq!(
            f.as_slice(),
            &[(&b"a"[..], &b"1"[..]), (&b"b"[..], &b""[..])]
        );
        assert!(parse_fields(&a(&["FIELDS", "0"]), &l).unwrap().is_empty());
    }

    #[test]
    fn fields_failures() {
        let l = Limits::default();
        for bad in [
            vec![],
            vec!["FIELD", "1", "a", "b"],
            vec!["FIELDS"],
            vec!["FIELDS", "x"],
            vec!["FIELDS", "-1"],
            vec!["FIELDS", "2", "a", "b"],
            vec!["FIELDS", "1", "a", "b", "c"],
            vec!["FIELDS", "1", "a"],
            vec!["FIELDS", "1", "", "b"],
            vec!["FIELDS", "1", "_kind", "b"],
            vec!["FIELDS", "1", "exp", "1"],
            vec!["FIELDS", "2", "a", "1", "a", "2"],
        ] {
            let e = parse_fields(&a(&bad), &l).unwrap_err();
            assert_eq!(
                e.code,
                super::super::error::ErrorCode::InvalidRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn record_caps() {
        let l = Limits {
            record_max_fields: 2,
            record_max_bytes: 10,
            ..Limits::default()
        };
        let e = parse_fields(&a(&["FIELDS", "3", "a", "1", "b", "2", "c", "3"]), &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "INVALID_REQUEST too many fields: at most 2 per record (record-max-fields)"
        );
        let e = parse_fields(&a(&["FIELDS", "1", "abcde", "123456"]), &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "INVALID_REQUEST record too large: at most 10 bytes of field names and values (record-max-bytes)"
        );
        assert!(parse_fields(&a(&["FIELDS", "1", "abcde", "12345"]), &l).is_ok());
    }

    #[test]
    fn reserved_and_interpreted_names_are_matched_in_any_case() {
        let limits = Limits::default();
        for name in ["_x", "active", "EXP", "Iat"] {
            let e = parse_fields(&[b"FIELDS", b"1", name.as_bytes(), b"v"], &limits).unwrap_err();
            assert!(e.message.contains("reserved"), "{name}: {e}");
        }
        for name in ["Client_Secret", "SCOPE", "Code_Challenge", "REDIRECT_URI"] {
            let e = parse_fields(&[b"FIELDS", b"1", name.as_bytes(), b"v"], &limits).unwrap_err();
            assert_eq!(e.code, super::super::ErrorCode::InvalidRequest);
            assert!(e.message.contains("only in case"), "{name}: {e}");
        }
        assert!(parse_fields(
            &[b"FIELDS", b"2", b"scope", b"a", b"client_secret", b"b"],
            &limits
        )
        .is_ok());
    }
}
