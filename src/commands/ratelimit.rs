//! `OAUTH.RATELIMIT key limit window [COST n]`: a fixed-window counter whose
//! value and expiry are written in one step. The counter is a plain integer
//! string (`GET` and `TTL` show it); writes replicate as `SET key n PXAT t`.

use redis_module::{Context, RedisString};

use super::{arg, bytes};
use crate::clock::now_ms;
use crate::core::rate::{fixed_window, CounterState, CounterWrite, FixedWindow};
use crate::core::validate::{is_keyword, parse_i64};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{wrong_redis_type, Key, KeyKind};
use crate::reply::Reply;

fn int_arg(raw: &[u8], what: &str) -> OResult<i64> {
    parse_i64(raw).ok_or_else(|| OAuthError::invalid_request(format!("{what} is not an integer")))
}

/// Parses `[COST n]`, the only option.
fn parse_cost(a: &[&[u8]], from: usize) -> OResult<i64> {
    match a.get(from..).unwrap_or_default() {
        [] => Ok(1),
        [kw, n] if is_keyword(kw, "COST") => int_arg(n, "COST"),
        _ => Err(OAuthError::invalid_request(
            "unknown option; expected COST n",
        )),
    }
}

/// Reads a counter: missing, or an integer string with its expiry.
pub fn load_counter(key: &Key) -> OResult<Option<CounterState>> {
    match key.kind() {
        KeyKind::Missing => Ok(None),
        KeyKind::String => {
            let raw = key.read_string().unwrap_or_default();
            let count = parse_i64(&raw).filter(|n| *n >= 0).ok_or_else(|| {
                OAuthError::wrong_type("key holds a string that is not a rate-limit counter")
            })?;
            Ok(Some(CounterState {
                count,
                expire_at_ms: key.abs_expire(),
            }))
        }
        _ => Err(wrong_redis_type()),
    }
}

pub fn ratelimit(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let limit = int_arg(arg(&a, 2)?, "limit")?;
    let window = int_arg(arg(&a, 3)?, "window")?;
    let cost = parse_cost(&a, 4)?;
    let params = FixedWindow::new(limit, window, cost)?;

    let state = load_counter(&Key::open(ctx, key, true))?;
    let decision = fixed_window(params, state, now_ms());
    let mut fx = Effects::new();
    match decision.write {
        Some(CounterWrite::Set {
            count,
            expire_at_ms,
        }) => {
            fx.set_pxat(key, count.to_string().into_bytes(), expire_at_ms);
        }
        Some(CounterWrite::Expire { expire_at_ms }) => {
            fx.pexpireat(key, expire_at_ms);
        }
        None => {}
    }
    fx.commit(ctx);
    info::bump(if decision.reply.limited {
        Counter::RateLimitLimited
    } else {
        Counter::RateLimitAllowed
    });
    Ok(Reply::Integers(decision.reply.to_array().to_vec()))
}
