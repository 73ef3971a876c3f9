//! Client registrations (RFC 7591): `OAUTH.SAVECLIENT`, `.VERIFY`, `.GET`,
//! `.DELETE`. A `client_secret` is never stored: only its SHA-256, compared in
//! constant time. These commands are flagged no-monitor/no-slowlog so secrets
//! do not show up in MONITOR or SLOWLOG.

use redis_module::{Context, RedisString};

use super::{arg, bytes, expiry_at};
use crate::clock::now_ms;
use crate::core::record::{self, Kind};
use crate::core::token::{secret_hash, verify_secret, F_CLIENT_SECRET, F_SECRET_HASH};
use crate::core::validate::{is_keyword, parse_fields, parse_ttl, Limits, Pair};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{load_record, Key};
use crate::reply::{Reply, Value};

/// `OAUTH.SAVECLIENT key [TTL seconds] FIELDS numfields field value ...`:
/// creates or replaces a registration. Reply: `client_secret_expires_at`
/// (Unix seconds when the registration, and so its secret, expires).
pub fn save(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let limits = Limits::load();
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let (ttl, from) = if a.get(2).is_some_and(|w| is_keyword(w, "TTL")) {
        (parse_ttl(arg(&a, 3)?, limits.client_max_ttl)?, 4)
    } else {
        (limits.client_max_ttl, 2)
    };
    let fields = parse_fields(a.get(from..).unwrap_or_default(), &limits)?;
    check_client_fields(&fields)?;
    let existing = load_record(&Key::open(ctx, key, true), Kind::Client)?;

    let now = now_ms();
    let at = expiry_at(now, ttl)?;
    let hashed = fields
        .iter()
        .find(|(f, _)| *f == F_CLIENT_SECRET)
        .map(|(_, v)| secret_hash(v).into_bytes());
    let kept: Vec<Pair> = fields
        .into_iter()
        .filter(|(f, _)| *f != F_CLIENT_SECRET)
        .collect();
    let mut rec = record::new_record(Kind::Client, now, &kept);
    if let Some(h) = hashed {
        rec.push((F_SECRET_HASH.to_vec(), h));
    }
    let mut fx = Effects::new();
    if existing.is_some() {
        fx.replace_hash(key, rec, at);
    } else {
        fx.create_hash(key, rec, at);
    }
    fx.commit(ctx);
    info::bump(Counter::ClientsSaved);
    Ok(Reply::Map(vec![(
        b"client_secret_expires_at".to_vec(),
        Value::Int(at / 1000),
    )]))
}

/// The shortest `client_secret` accepted: its SHA-256 is only as strong as
/// the secret's entropy, so a short (guessable) one is refused outright.
pub const MIN_SECRET_BYTES: usize = 16;

fn check_client_fields(fields: &[Pair]) -> OResult<()> {
    for (f, v) in fields {
        if *f == b"client_secret_expires_at" {
            return Err(OAuthError::invalid_request(
                "client_secret_expires_at is set by the module from the registration's expiry",
            ));
        }
        if *f == F_CLIENT_SECRET && v.len() < MIN_SECRET_BYTES {
            return Err(OAuthError::invalid_request(format!(
                "client_secret must be at least {MIN_SECRET_BYTES} bytes of a high-entropy secret"
            )));
        }
    }
    Ok(())
}

/// `OAUTH.VERIFYCLIENT key secret`: 1 when the secret matches, else 0
/// (also for an unknown client or one without a secret).
pub fn verify(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let secret = arg(&a, 2)?;
    let ok = load_record(&Key::open(ctx, key, false), Kind::Client)?
        .and_then(|r| r.get(F_SECRET_HASH).map(|h| verify_secret(h, secret)))
        .unwrap_or(false);
    if !ok {
        info::bump(Counter::ClientVerifyFailed);
    }
    Ok(Reply::Integer(i64::from(ok)))
}

/// `OAUTH.GETCLIENT key`: the registration's fields without secret material;
/// nil when missing.
pub fn get(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let k = Key::open(ctx, key, false);
    let Some(rec) = load_record(&k, Kind::Client)? else {
        return Ok(Reply::Null);
    };
    let mut out: Vec<(Vec<u8>, Value)> = rec
        .user_fields()
        .map(|(f, v)| (f.to_vec(), Value::Bytes(v.to_vec())))
        .collect();
    if let Some(at) = k.abs_expire() {
        out.push((b"client_secret_expires_at".to_vec(), Value::Int(at / 1000)));
    }
    Ok(Reply::Map(out))
}

/// `OAUTH.DELETECLIENT key`: 1 when a registration was removed, else 0.
pub fn delete(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    if load_record(&Key::open(ctx, key, true), Kind::Client)?.is_none() {
        return Ok(Reply::Integer(0));
    }
    let mut fx = Effects::new();
    fx.del(key);
    fx.commit(ctx);
    Ok(Reply::Integer(1))
}
