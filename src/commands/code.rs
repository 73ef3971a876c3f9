//! Authorization codes: `OAUTH.SAVECODE` and `OAUTH.EXCHANGE`, the whole story
//! of a code from issue to tombstone.
//!
//! Exchange is one atomic step: load the code, run every check, then either
//! count the failed attempt (or burn the code), or consume it into a tombstone
//! and optionally create the access token. A reused code revokes that token.

use redis_module::{Context, RedisString};
use smallvec::SmallVec;

use super::{arg, bytes, create_record};
use crate::clock::now_ms;
use crate::core::grammar::{self, Grammar};
use crate::core::record::{
    self, decide_exchange, AttemptOutcome, ExchangeDecision, ExchangeRequest, GrantFailure, Kind,
    Record, F_ATTEMPTS, F_CODE, F_GRANT,
};
use crate::core::validate::{check_record_size, parse_fields, parse_ttl, Fields, Limits};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{load_record, require_absent, Key, KeyKind};
use crate::reply::{RecordMap, Reply};

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
    let reply = create_record(ctx, args, key, Kind::Code, &fields, now_ms(), ttl)?;
    info::bump(Counter::CodesSaved);
    Ok(reply)
}

/// EXCHANGE's options, after `key client_id redirect_uri code_verifier`.
pub static GRAMMAR: Grammar = Grammar {
    from: 5,
    options: &[
        grammar::ISSUE,
        grammar::REFRESH,
        grammar::GRANT,
        grammar::FIELDS,
    ],
};

/// Options after the four fixed arguments of EXCHANGE, by argument index.
#[derive(Default)]
struct ExchangeOptions<'a> {
    /// (index of token_key, ttl seconds)
    issue: Option<(usize, i64)>,
    /// (index of refresh_key, ttl seconds)
    refresh: Option<(usize, i64)>,
    /// index of grant_key
    grant: Option<usize>,
    fields: Fields<'a>,
}

fn parse_exchange_options<'a>(a: &[&'a [u8]], limits: &Limits) -> OResult<ExchangeOptions<'a>> {
    let g = &GRAMMAR;
    let p = grammar::parse(g, a)?;
    let ttl_of = |word: &str, max: i64| -> OResult<Option<(usize, i64)>> {
        match (p.keyword_at(g, word), p.args(g, word, a)) {
            (Some(at), Some([_, ttl])) => Ok(Some((at + 1, parse_ttl(ttl, max)?))),
            _ => Ok(None),
        }
    };
    let opts = ExchangeOptions {
        issue: ttl_of("ISSUE", limits.token_max_ttl)?,
        refresh: ttl_of("REFRESH", limits.refresh_max_ttl)?,
        grant: p.keyword_at(g, "GRANT").map(|at| at + 1),
        fields: match p.args(g, "FIELDS", a) {
            Some(f) => parse_fields(f, limits)?,
            None => Fields::default(),
        },
    };
    if p.keyword_at(g, "FIELDS").is_some() && opts.issue.is_none() && opts.refresh.is_none() {
        return Err(OAuthError::invalid_request(
            "FIELDS needs ISSUE or REFRESH: they are the issued tokens' fields",
        ));
    }
    if opts.refresh.is_some() && opts.grant.is_none() {
        return Err(OAuthError::invalid_request(
            "REFRESH needs GRANT: reuse detection revokes the refresh token's grant",
        ));
    }
    Ok(opts)
}

/// `OAUTH.EXCHANGE key client_id redirect_uri code_verifier [ISSUE token_key token_ttl]
/// [REFRESH refresh_key refresh_ttl] [GRANT grant_key] [FIELDS ...]`
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
    let key_at = |idx: usize| {
        args.get(idx)
            .ok_or_else(|| OAuthError::invalid_request("wrong number of arguments"))
    };
    let issue = opts
        .issue
        .map(|(i, ttl)| key_at(i).map(|k| (k, ttl)))
        .transpose()?;
    let refresh = opts
        .refresh
        .map(|(i, ttl)| key_at(i).map(|k| (k, ttl)))
        .transpose()?;
    let grant = opts.grant.map(key_at).transpose()?;
    let named = [
        Some(code_key.as_slice()),
        issue.map(|(k, _)| k.as_slice()),
        refresh.map(|(k, _)| k.as_slice()),
        grant.map(|k| k.as_slice()),
    ];
    if named
        .iter()
        .enumerate()
        .any(|(i, k)| k.is_some() && named.get(..i).unwrap_or_default().contains(k))
    {
        return Err(OAuthError::invalid_request(
            "the code, token, refresh and grant keys must all differ",
        ));
    }
    if let Some(g) = grant {
        super::grant::check(ctx, g)?;
    }

    let code = Key::open(ctx, code_key, true);
    let rec = load_record(&code, Kind::Code)?;
    let now = now_ms();
    let decision = decide_exchange(
        rec.as_ref().map(|r| (r, code.abs_expire())),
        &req,
        issue.map(|(_, ttl)| ttl),
        refresh.map(|(_, ttl)| ttl),
        now,
        &limits,
    )?;
    let (tombstone_at, token_at, refresh_at) = match decision {
        ExchangeDecision::NotFound => return Err(refuse(GrantFailure::NotFound, false)),
        ExchangeDecision::Reused { token_key } => {
            drop(code);
            revoke_reuse(ctx, code_key, rec.as_ref(), token_key)?;
            return Err(refuse(GrantFailure::Reused, false));
        }
        ExchangeDecision::Failed { failure, attempts } => {
            let mut fx = Effects::new();
            fx.adopt(code_key, code);
            let burned = attempts == AttemptOutcome::Burn;
            match attempts {
                AttemptOutcome::Count(n) => {
                    fx.hset(
                        code_key,
                        vec![(F_ATTEMPTS.to_vec(), n.to_string().into_bytes())],
                    );
                }
                AttemptOutcome::Burn => {
                    fx.del(code_key);
                    info::bump(Counter::CodesBurned);
                }
            }
            fx.commit(ctx);
            return Err(refuse(failure, burned));
        }
        ExchangeDecision::Redeem {
            tombstone_at,
            token_at,
            refresh_at,
        } => (tombstone_at, token_at, refresh_at),
    };
    let Some(rec) = rec else {
        return Err(OAuthError::internal("a redeemed code without its record"));
    };

    // The grant is valid. Check what would be created before writing anything.
    let created: SmallVec<[(&RedisString, i64, Kind); 2]> = issue
        .iter()
        .zip(token_at)
        .map(|((k, _), at)| (*k, at, Kind::Token))
        .chain(
            refresh
                .iter()
                .zip(refresh_at)
                .map(|((k, _), at)| (*k, at, Kind::Refresh)),
        )
        .collect();
    let token_fields = if created.is_empty() {
        Vec::new()
    } else {
        let fields = record::token_fields_from_code(&rec, &opts.fields);
        check_record_size(
            i64::try_from(fields.len()).unwrap_or(i64::MAX),
            fields.iter().map(|(f, v)| f.len() + v.len()),
            &limits,
        )?;
        fields
    };
    let mut consumed = [0u8; 20];
    let tombstone = record::tombstone_pairs(
        &rec,
        record::decimal(now, &mut consumed),
        issue.map(|(k, _)| k.as_slice()),
        grant.map(RedisString::as_slice),
    );
    let mut fx = Effects::new();
    for (k, _, _) in &created {
        let key = Key::open(ctx, k, true);
        require_absent(&key)?;
        fx.adopt(k, key);
    }

    // Every check has passed: from here on everything is written, the
    // tombstone first, from its borrowed fields.
    drop(code);
    fx.replace_tombstone(code_key, &tombstone, tombstone_at);
    let mut latest = tombstone_at;
    for (k, at, kind) in &created {
        // new_record(kind, now, token_fields) and _grant, without copying them first.
        let header = record::header(*kind, now);
        let fields = header
            .iter()
            .map(|(f, v)| (f.as_slice(), v.as_slice()))
            .chain(token_fields.iter().copied())
            .chain(grant.map(|g| (F_GRANT, g.as_slice())))
            .chain((*kind == Kind::Token).then_some((F_CODE, code_key.as_slice())));
        fx.create_hash(k, fields, *at);
        latest = latest.max(*at);
        info::bump(Counter::TokensSaved);
    }
    if let Some(g) = grant {
        let members = std::iter::once(code_key)
            .chain(created.iter().map(|(k, _, _)| *k))
            .map(|k| k.as_slice().to_vec())
            .collect();
        super::grant::register(ctx, &mut fx, g, members, latest);
    }
    fx.commit(ctx);
    drop(tombstone); // it borrows `rec`, which the reply takes
    info::bump(Counter::CodesExchanged);
    Ok(Reply::Record(RecordMap {
        head: Vec::new(),
        rec,
        keep: record::is_exchange_reply_field,
        tail: Vec::new(),
    }))
}

/// RFC 6749 §4.1.2: a reused code revokes the tokens issued from it: its
/// grant, when the code has one that lists it, or else the access token it
/// issued, if that token still names the code (`_code`).
fn revoke_reuse(
    ctx: &Context,
    code_key: &RedisString,
    rec: Option<&Record>,
    issued: Option<&[u8]>,
) -> OResult<()> {
    let mut fx = Effects::new();
    if let Some(g) = rec.and_then(|r| super::grant::of(ctx, r, code_key.as_slice())) {
        let n = super::grant::revoke_all(ctx, &mut fx, &g)?;
        info::add(Counter::TokensRevoked, n.unsigned_abs());
    } else if let Some(issued) = issued {
        let issued = crate::keys::rstr(ctx, issued);
        let is_token = {
            let k = Key::open(ctx, &issued, true);
            k.kind() == KeyKind::Hash && {
                let t = k.read_hash();
                t.kind() == Some(Kind::Token) && t.get(F_CODE) == Some(code_key.as_slice())
            }
        };
        if is_token {
            fx.del(&issued);
            info::bump(Counter::TokensRevoked);
        }
    }
    fx.commit(ctx);
    Ok(())
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
