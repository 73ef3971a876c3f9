//! Token metadata: `OAUTH.SAVETOKEN` (optionally in a grant),
//! `OAUTH.INTROSPECT` (RFC 7662, with optional revoke-before cutoffs) and
//! `OAUTH.REVOKE` (RFC 7009, with the refresh-token cascade of §2.1).

use std::collections::HashSet;

use redis_module::{Context, RedisString};

use super::refresh::cutoff_keys;
use super::{arg, bytes, expiry_at, record_strings};
use crate::clock::now_ms;
use crate::core::grammar::{self, Grammar};
use crate::core::record::{self, is_reserved_field, Kind, Record, F_CREATED, F_GRANT};
use crate::core::token::is_cut_off;
use crate::core::validate::{parse_fields, parse_ttl, Limits};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{
    expired, load_cutoffs, new_string, require_absent, share, wrong_redis_type, Key, KeyKind,
};
use crate::reply::{RecordMap, Reply, Value};

/// SAVETOKEN's options, after `key ttl`.
pub static SAVETOKEN_GRAMMAR: Grammar = Grammar {
    from: 3,
    options: &[grammar::GRANT, grammar::FIELDS],
};

/// INTROSPECT's options, after `key`.
pub static INTROSPECT_GRAMMAR: Grammar = Grammar {
    from: 2,
    options: &[grammar::CUTOFF],
};

/// `OAUTH.SAVETOKEN key ttl [GRANT grant_key] FIELDS numfields field value [field value ...]`
pub fn savetoken(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let limits = Limits::load();
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let ttl = parse_ttl(arg(&a, 2)?, limits.token_max_ttl)?;
    let g = &SAVETOKEN_GRAMMAR;
    let p = grammar::parse(g, &a)?;
    let grant = match p.keyword_at(g, "GRANT") {
        Some(at) => {
            let g = args
                .get(at + 1)
                .ok_or_else(|| OAuthError::invalid_request("GRANT needs grant_key"))?;
            if g.as_slice() == key.as_slice() {
                return Err(OAuthError::invalid_request(
                    "grant_key must differ from the token key",
                ));
            }
            Some(g)
        }
        None => None,
    };
    let fields = parse_fields(p.args(g, "FIELDS", &a).unwrap_or_default(), &limits)?;
    let k = Key::open(ctx, key, true);
    require_absent(&k)?;
    if let Some(g) = grant {
        super::grant::check(ctx, g)?;
    }

    let now = now_ms();
    let at = expiry_at(now, ttl)?;
    let mut rec = record_strings(Kind::Token, now, args, fields.len());
    let mut fx = Effects::new();
    fx.adopt(key, k);
    if let Some(g) = grant {
        rec.extend([new_string(F_GRANT), share(g)]);
        fx.create_hash_strings(key, rec, at);
        super::grant::register(ctx, &mut fx, g, vec![key.as_slice().to_vec()], at);
    } else {
        fx.create_hash_strings(key, rec, at);
    }
    fx.commit(ctx);
    info::bump(Counter::TokensSaved);
    Ok(Reply::Ok)
}

/// `OAUTH.INTROSPECT key [CUTOFF numkeys cutoff_key ...]`: `active` true with
/// the token's fields, `exp` and `iat` in Unix seconds; a missing, expired,
/// revoked, cut-off or non-token key answers only `active` false.
pub fn introspect(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let g = &INTROSPECT_GRAMMAR;
    let p = grammar::parse(g, &a)?;
    let cutoff_keys: Vec<&RedisString> = cutoff_keys(g, &p, &a)
        .iter()
        .filter_map(|i| args.get(*i))
        .collect();
    info::bump(Counter::TokensIntrospected);
    let k = Key::open(ctx, key, false);
    let rec = match k.kind() {
        KeyKind::Hash => k.read_hash(),
        _ => return Ok(inactive()),
    };
    if rec.kind() != Some(Kind::Token) || expired(&k, now_ms()) {
        return Ok(inactive());
    }
    if !cutoff_keys.is_empty() && is_cut_off(&rec, &load_cutoffs(ctx, &cutoff_keys)?) {
        return Ok(inactive());
    }
    let mut tail: Vec<(&'static [u8], Value)> = Vec::with_capacity(2);
    if let Some(at) = k.abs_expire() {
        tail.push((b"exp", Value::Int(at.div_euclid(1000))));
    }
    let created = rec.int_field(F_CREATED, -1);
    if created >= 0 {
        tail.push((b"iat", Value::Int(created / 1000)));
    }
    Ok(Reply::Record(RecordMap {
        head: vec![(b"active", Value::Bool(true))],
        rec,
        keep: |f| !is_reserved_field(f),
        tail,
    }))
}

fn inactive() -> Reply {
    Reply::Map(vec![(b"active".to_vec(), Value::Bool(false))])
}

/// `OAUTH.REVOKE key [key ...]`: removes access- and refresh-token records and
/// answers how many were removed. Revoking a refresh token also removes its
/// grant's access tokens (counted too). Unknown keys count 0 (RFC 7009 §2.2);
/// a key of another kind fails the whole call before anything is removed.
pub fn revoke(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let keys = args.get(1..).unwrap_or_default();
    if keys.is_empty() {
        return Err(OAuthError::invalid_request("at least one key is required"));
    }
    // Check every key first, so a WRONGTYPE anywhere changes nothing.
    let mut found: Vec<(&RedisString, Record)> = Vec::new();
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(keys.len());
    for key in keys {
        if !seen.insert(key.as_slice()) {
            continue;
        }
        let k = Key::open(ctx, key, true);
        match k.kind() {
            KeyKind::Missing => {}
            KeyKind::Hash => {
                let rec = k.read_hash();
                match rec.kind() {
                    Some(Kind::Token) | Some(Kind::Refresh) => found.push((key, rec)),
                    _ => return Err(record::wrong_kind(Kind::Token)),
                }
            }
            _ => return Err(wrong_redis_type()),
        }
    }
    let mut fx = Effects::new();
    let mut removed: i64 = 0;
    let mut cascaded: HashSet<Vec<u8>> = HashSet::new();
    for (key, rec) in &found {
        fx.del(key);
        removed += 1;
        if let Some(g) = super::grant::of(ctx, rec, key.as_slice()) {
            fx.srem(&g, vec![key.as_slice().to_vec()]);
            if rec.kind() == Some(Kind::Refresh) && cascaded.insert(g.as_slice().to_vec()) {
                removed += super::grant::revoke_access_tokens_except(ctx, &mut fx, &g, &seen);
            }
        }
    }
    fx.commit(ctx);
    info::add(Counter::TokensRevoked, removed.unsigned_abs());
    Ok(Reply::Integer(removed))
}
