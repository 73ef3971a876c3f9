//! Token metadata: `OAUTH.SAVETOKEN`, `OAUTH.INTROSPECT` (RFC 7662) and
//! `OAUTH.REVOKE` (RFC 7009).

use redis_module::{Context, RedisString};

use super::{arg, bytes, expiry_at};
use crate::clock::now_ms;
use crate::core::record::{self, Kind, Record, F_CREATED};
use crate::core::validate::{parse_fields, parse_ttl, Limits};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{load_record, require_absent, Key, KeyKind};
use crate::reply::{Reply, Value};

/// `OAUTH.SAVETOKEN key ttl FIELDS numfields field value [field value ...]`
pub fn savetoken(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let limits = Limits::load();
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let ttl = parse_ttl(arg(&a, 2)?, limits.token_max_ttl)?;
    let fields = parse_fields(a.get(3..).unwrap_or_default(), &limits)?;
    require_absent(&Key::open(ctx, key, true))?;

    let now = now_ms();
    let mut fx = Effects::new();
    fx.create_hash(
        key,
        record::new_record(Kind::Token, now, &fields),
        expiry_at(now, ttl)?,
    );
    fx.commit(ctx);
    info::bump(Counter::TokensSaved);
    Ok(Reply::Ok)
}

/// `OAUTH.INTROSPECT key`: `active` true with the token's fields, `exp` and
/// `iat` in Unix seconds; anything else answers only `active` false.
pub fn introspect(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    info::bump(Counter::TokensIntrospected);
    let k = Key::open(ctx, key, false);
    let rec = match k.kind() {
        KeyKind::Hash => Record::new(k.read_hash()),
        _ => return Ok(inactive()),
    };
    if rec.kind() != Some(Kind::Token) {
        return Ok(inactive());
    }
    let mut out: Vec<(Vec<u8>, Value)> = Vec::with_capacity(rec.fields.len() + 2);
    out.push((b"active".to_vec(), Value::Bool(true)));
    out.extend(
        rec.user_fields()
            .map(|(f, v)| (f.to_vec(), Value::Bytes(v.to_vec()))),
    );
    if let Some(at) = k.abs_expire() {
        out.push((b"exp".to_vec(), Value::Int(at.div_euclid(1000))));
    }
    let created = rec.int_field(F_CREATED, -1);
    if created >= 0 {
        out.push((b"iat".to_vec(), Value::Int(created / 1000)));
    }
    Ok(Reply::Map(out))
}

fn inactive() -> Reply {
    Reply::Map(vec![(b"active".to_vec(), Value::Bool(false))])
}

/// `OAUTH.REVOKE key [key ...]`: removes token records and answers how many.
/// Unknown keys count 0 (RFC 7009 §2.2); a key of another kind fails the whole
/// call before anything is removed.
pub fn revoke(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let keys = args.get(1..).unwrap_or_default();
    if keys.is_empty() {
        return Err(OAuthError::invalid_request("at least one key is required"));
    }
    let mut fx = Effects::new();
    let mut removed: i64 = 0;
    for (i, key) in keys.iter().enumerate() {
        // A key listed twice is removed once.
        if keys
            .get(..i)
            .unwrap_or_default()
            .iter()
            .any(|k| k.as_slice() == key.as_slice())
        {
            continue;
        }
        if load_record(&Key::open(ctx, key, true), Kind::Token)?.is_some() {
            fx.del(key);
            removed += 1;
        }
    }
    fx.commit(ctx);
    info::add(Counter::TokensRevoked, removed.unsigned_abs());
    Ok(Reply::Integer(removed))
}
