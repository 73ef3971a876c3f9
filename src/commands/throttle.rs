//! `OAUTH.THROTTLE key max_burst count period [COST n]`: GCRA with the reply of
//! `CL.THROTTLE` and the `GCRA` command proposed for Redis (held out of 8.8):
//! `[limited, limit, remaining, retry_after, reset_after]` (seconds, rounded up;
//! retry_after -1 when allowed or never possible).
//!
//! The key holds the theoretical arrival time in Unix nanoseconds as a plain
//! integer string. Only allowed requests with a positive cost write, as
//! `SET key tat PXAT t` (t = the TAT, when the bucket is full again).

use redis_module::{Context, RedisString};

use super::{int_arg, raw_arg};
use crate::clock::now_ns;
use crate::core::gcra::{gcra, Gcra};
use crate::core::validate::{is_keyword, parse_i64};
use crate::core::{OAuthError, OResult};
use crate::effects::{self, Write};
use crate::info::{self, Counter};
use crate::keys::{wrong_redis_type, Key, KeyKind};
use crate::reply::{self, Reply};

fn load_tat(key: &Key) -> OResult<Option<i64>> {
    match key.kind() {
        KeyKind::Missing => Ok(None),
        KeyKind::String => key
            .string_bytes()
            .and_then(parse_i64)
            .filter(|tat| *tat >= 0)
            .map(Some)
            .ok_or_else(|| {
                OAuthError::wrong_type("key holds a string that is not a throttle state")
            }),
        _ => Err(wrong_redis_type()),
    }
}

pub fn throttle(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let burst = int_arg(raw_arg(args, 2)?, "max_burst")?;
    let count = int_arg(raw_arg(args, 3)?, "count")?;
    let period = int_arg(raw_arg(args, 4)?, "period")?;
    let cost = match args.get(5..).unwrap_or_default() {
        [] => 1,
        [kw, n] if is_keyword(kw.as_slice(), "COST") => int_arg(n.as_slice(), "COST")?,
        _ => {
            return Err(OAuthError::invalid_request(
                "unknown option; expected COST n",
            ))
        }
    };
    let params = Gcra::new(burst, count, period, cost)?;

    let k = Key::open(ctx, key, true);
    let tat = load_tat(&k)?;
    let d = gcra(params, tat, now_ns());
    if let Some(w) = d.write {
        // The expiry moves with the TAT on nearly every write: it is set
        // without being read first.
        let write = Write::SetInt {
            value: w.tat_ns,
            at: w.expire_at_ms,
            expiry: None,
        };
        effects::apply(ctx, key, k, write);
    } else {
        drop(k);
    }
    info::bump(if d.reply.limited {
        Counter::RateLimitLimited
    } else {
        Counter::RateLimitAllowed
    });
    Ok(reply::verdict(d.reply.to_array(), None))
}
