//! Single-use CSRF state and nonces: `OAUTH.SAVESTATE` and `OAUTH.CONSUMESTATE`.

use redis_module::{Context, RedisString};

use super::{arg, bytes, create_record};
use crate::clock::now_ms;
use crate::core::record::Kind;
use crate::core::validate::{parse_fields, parse_ttl, Limits};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{expired, load_record, Key};
use crate::reply::{bytes_map, Reply};

/// `OAUTH.SAVESTATE key ttl FIELDS numfields field value [field value ...]`
pub fn savestate(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let limits = Limits::load();
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let ttl = parse_ttl(arg(&a, 2)?, limits.state_max_ttl)?;
    let fields = parse_fields(a.get(3..).unwrap_or_default(), &limits)?;
    let reply = create_record(ctx, args, key, Kind::State, &fields, now_ms(), ttl)?;
    info::bump(Counter::StatesSaved);
    Ok(reply)
}

/// `OAUTH.CONSUMESTATE key`: the fields, and the record is gone; nil when missing.
pub fn consumestate(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let k = Key::open(ctx, key, true);
    let rec = match load_record(&k, Kind::State)? {
        Some(rec) if !expired(&k, now_ms()) => rec,
        _ => return Ok(Reply::Null),
    };
    drop(k);
    let mut fx = Effects::new();
    fx.del(key);
    fx.commit(ctx);
    info::bump(Counter::StatesConsumed);
    Ok(bytes_map(rec.user_fields()))
}
