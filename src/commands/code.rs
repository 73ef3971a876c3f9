//! Authorization codes: `OAUTH.SAVECODE` and `OAUTH.EXCHANGE`, the whole story
//! of a code from issue to tombstone.
//!
//! Exchange is one atomic step: load the code, run every check, then either
//! count the failed attempt (or burn the code), or consume it into a tombstone
//! and optionally create the access token. A reused code revokes that token.

use redis_module::{Context, RedisString};

use super::{arg, bytes, expiry_at};
use crate::clock::now_ms;
use crate::core::record::{
    self, after_failure, check_exchange, code_state, AttemptOutcome, CodeState, ExchangeRequest,
    GrantFailure, Kind, Record, F_ATTEMPTS,
};
use crate::core::validate::{check_record_size, is_keyword, parse_fields, parse_ttl, Limits, Pair};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{load_record, require_absent, Key, KeyKind};
use crate::reply::{bytes_map, Reply};

/// `OAUTH.SAVECODE key ttl FIELDS numfields field value [field value ...]`
pub fn savecode(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let limits = Limits::load();
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let ttl = parse_ttl(arg(&a, 2)?, limits.code_max_ttl)?;
    let fields = parse_fields(a.get(3..).unwrap_or_default(), &limits)?;
    record::validate_code_fields(&fields, &limits)?;
    require_absent(&Key::open(ctx, key, true))?;

    let now = now_ms();
    let mut fx = Effects::new();
    fx.create_hash(
        key,
        record::new_record(Kind::Code, now, &fields),
        expiry_at(now, ttl)?,
    );
    fx.commit(ctx);
    info::bump(Counter::CodesSaved);
    Ok(Reply::Ok)
}

/// Options after the four fixed arguments of EXCHANGE.
struct ExchangeOptions<'a> {
    /// (argument index of token_key, ttl seconds)
    issue: Option<(usize, i64)>,
    fields: Vec<Pair<'a>>,
}

fn parse_exchange_options<'a>(a: &[&'a [u8]], limits: &Limits) -> OResult<ExchangeOptions<'a>> {
    let mut opts = ExchangeOptions {
        issue: None,
        fields: Vec::new(),
    };
    let mut i = 5;
    let mut saw_fields = false;
    while let Some(word) = a.get(i) {
        if is_keyword(word, "ISSUE") {
            if opts.issue.is_some() {
                return Err(OAuthError::invalid_request("ISSUE is given twice"));
            }
            let ttl = a.get(i + 2).ok_or_else(|| {
                OAuthError::invalid_request("ISSUE needs token_key and token_ttl")
            })?;
            opts.issue = Some((i + 1, parse_ttl(ttl, limits.token_max_ttl)?));
            i += 3;
        } else if is_keyword(word, "FIELDS") {
            opts.fields = parse_fields(a.get(i..).unwrap_or_default(), limits)?;
            saw_fields = true;
            break;
        } else {
            return Err(OAuthError::invalid_request(
                "unknown option; expected ISSUE token_key token_ttl or FIELDS numfields ...",
            ));
        }
    }
    if saw_fields && opts.issue.is_none() {
        return Err(OAuthError::invalid_request(
            "FIELDS needs ISSUE: they are the issued token's fields",
        ));
    }
    Ok(opts)
}

/// `OAUTH.EXCHANGE key client_id redirect_uri code_verifier [ISSUE token_key token_ttl] [FIELDS ...]`
pub fn exchange(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let limits = Limits::load();
    let code_key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let req = ExchangeRequest {
        client_id: arg(&a, 2)?,
        redirect_uri: arg(&a, 3)?,
        verifier: arg(&a, 4)?,
    };
    let opts = parse_exchange_options(&a, &limits)?;
    let token_key = match opts.issue {
        Some((idx, ttl)) => {
            let k = args
                .get(idx)
                .ok_or_else(|| OAuthError::invalid_request("ISSUE needs token_key"))?;
            if k.as_slice() == code_key.as_slice() {
                return Err(OAuthError::invalid_request(
                    "token_key must differ from the code key",
                ));
            }
            Some((k, ttl))
        }
        None => None,
    };

    let (rec, code_expiry) = {
        let key = Key::open(ctx, code_key, true);
        match load_record(&key, Kind::Code)? {
            Some(rec) => (rec, key.abs_expire()),
            None => return Err(refuse(GrantFailure::NotFound, false)),
        }
    };
    let now = now_ms();

    if let CodeState::Consumed { token_key: issued } = code_state(&rec) {
        // RFC 6749 §4.1.2: a reused code revokes the tokens issued from it.
        let mut fx = Effects::new();
        if let Some(issued) = issued {
            let issued = ctx.create_string(issued);
            let is_token = {
                let k = Key::open(ctx, &issued, true);
                k.kind() == KeyKind::Hash && Record::new(k.read_hash()).kind() == Some(Kind::Token)
            };
            if is_token {
                fx.del(&issued);
                info::bump(Counter::TokensRevoked);
            }
        }
        fx.commit(ctx);
        return Err(refuse(GrantFailure::Reused, false));
    }

    if let Err(failure) = check_exchange(&rec, &req) {
        let mut burned = false;
        if failure.counts_attempt() {
            let mut fx = Effects::new();
            match after_failure(rec.int_field(F_ATTEMPTS, 0), limits.code_max_attempts) {
                AttemptOutcome::Count(n) => {
                    fx.hset(
                        code_key,
                        vec![(F_ATTEMPTS.to_vec(), n.to_string().into_bytes())],
                    );
                }
                AttemptOutcome::Burn => {
                    fx.del(code_key);
                    burned = true;
                    info::bump(Counter::CodesBurned);
                }
            }
            fx.commit(ctx);
        }
        return Err(refuse(failure, burned));
    }

    // The grant is valid. Check what ISSUE would create before writing anything.
    let mut fx = Effects::new();
    let tombstone_at = match code_expiry {
        Some(at) => at,
        None => expiry_at(now, limits.code_max_ttl)?,
    };
    let token_fields = match token_key {
        Some((tk, ttl)) => {
            require_absent(&Key::open(ctx, tk, true))?;
            let fields = record::token_fields_from_code(&rec, &opts.fields);
            check_record_size(
                i64::try_from(fields.len()).unwrap_or(i64::MAX),
                fields.iter().map(|(f, v)| f.len() + v.len()),
                &limits,
            )?;
            Some((
                tk,
                expiry_at(now, ttl)?,
                record::new_record(Kind::Token, now, &fields),
            ))
        }
        None => None,
    };
    fx.del(code_key).create_hash(
        code_key,
        record::tombstone(
            &rec,
            now,
            token_fields.as_ref().map(|(tk, _, _)| tk.as_slice()),
        ),
        tombstone_at,
    );
    if let Some((tk, at, fields)) = token_fields {
        fx.create_hash(tk, fields, at);
        info::bump(Counter::TokensSaved);
    }
    fx.commit(ctx);
    info::bump(Counter::CodesExchanged);
    Ok(bytes_map(record::exchange_reply_fields(&rec)))
}

fn refuse(failure: GrantFailure, burned: bool) -> OAuthError {
    info::grant_failure(failure);
    if burned {
        OAuthError::invalid_grant(format!(
            "{}; the authorization code is revoked after too many failed attempts",
            failure.sentence()
        ))
    } else {
        OAuthError::invalid_grant(failure.sentence())
    }
}
