//! Window rate limits: `OAUTH.RATELIMIT key limit window [COST n] [SLIDING]`
//! and the all-or-nothing `OAUTH.RATELIMITALL numkeys key [key ...] limit
//! window [limit window ...] [COST n] [SLIDING]`.
//!
//! Fixed-window counters are plain integer strings written as `SET key n PXAT t`.
//! Sliding-window state is a hash `{window_start, current, previous}` written
//! with `HSET` + `PEXPIREAT`. A denied request is not counted; `COST 0` peeks.

use std::collections::HashSet;

use redis_module::{Context, RedisString};
use smallvec::SmallVec;

use super::{arg, bytes, int_arg, raw_arg};
use crate::clock::now_ms;
use crate::core::rate::{
    combine, fixed_window, CounterState, CounterWrite, FixedWindow, RateReply,
};
use crate::core::sliding::{
    sliding_window, SlidingState, SlidingWrite, F_CURRENT, F_PREVIOUS, F_START,
};
use crate::core::validate::{is_keyword, parse_i64};
use crate::core::{OAuthError, OResult};
use crate::effects::{self, Write};
use crate::info::{self, Counter};
use crate::keys::{wrong_redis_type, Key, KeyKind};
use crate::reply::{self, Reply};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fixed,
    Sliding,
}

/// Parses trailing `[COST n] [SLIDING]` in any order.
fn parse_options(a: &[&[u8]], allow_sliding: bool) -> OResult<(i64, Mode)> {
    let mut cost = None;
    let mut mode = None;
    let mut i = 0;
    while let Some(word) = a.get(i) {
        if is_keyword(word, "COST") && cost.is_none() {
            let n = a
                .get(i + 1)
                .ok_or_else(|| OAuthError::invalid_request("COST needs a value"))?;
            cost = Some(int_arg(n, "COST")?);
            i += 2;
        } else if allow_sliding && is_keyword(word, "SLIDING") && mode.is_none() {
            mode = Some(Mode::Sliding);
            i += 1;
        } else {
            let expected = if allow_sliding {
                "COST n or SLIDING"
            } else {
                "COST n"
            };
            return Err(OAuthError::invalid_request(format!(
                "unknown or repeated option; expected {expected}"
            )));
        }
    }
    Ok((cost.unwrap_or(1), mode.unwrap_or(Mode::Fixed)))
}

/// Reads a fixed-window counter: missing, or an integer string with its expiry.
fn load_counter(key: &Key) -> OResult<Option<CounterState>> {
    match key.kind() {
        KeyKind::Missing => Ok(None),
        KeyKind::String => {
            let count = key
                .string_bytes()
                .and_then(parse_i64)
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    OAuthError::wrong_type("key holds a string that is not a rate-limit counter")
                })?;
            Ok(Some(CounterState {
                count,
                expire_at_ms: key.abs_expire(),
            }))
        }
        KeyKind::Hash => Err(OAuthError::wrong_type(
            "key holds a hash: a sliding-window counter needs SLIDING",
        )),
        KeyKind::Set | KeyKind::Other => Err(wrong_redis_type()),
    }
}

/// Reads a sliding-window hash of exactly its three integer fields.
fn load_sliding(ctx: &Context, key: &Key) -> OResult<Option<SlidingState>> {
    let bad = || OAuthError::wrong_type("key holds a hash that is not a sliding-window counter");
    match key.kind() {
        KeyKind::Missing => Ok(None),
        KeyKind::Hash => {
            let values = match effects::sliding_names() {
                Some(names) => key.hash_ints3(ctx, names).ok_or_else(bad)?,
                None => {
                    let fields = key.read_hash();
                    if fields.len() != 3 {
                        return Err(bad());
                    }
                    let get = |name: &[u8]| fields.get(name).and_then(parse_i64);
                    [get(F_START), get(F_CURRENT), get(F_PREVIOUS)]
                }
            };
            match values {
                [Some(window_start_ms), Some(current), Some(previous)] => Ok(Some(SlidingState {
                    window_start_ms,
                    current,
                    previous,
                })),
                _ => Err(bad()),
            }
        }
        KeyKind::String => Err(OAuthError::wrong_type(
            "key holds a string, not a sliding-window counter (a fixed-window counter needs no SLIDING)",
        )),
        KeyKind::Set | KeyKind::Other => Err(wrong_redis_type()),
    }
}

/// A limit's verdict and the write it would make.
enum Pending {
    Fixed(CounterWrite),
    Sliding(SlidingWrite),
}

/// The verdict of one limit, its key, still open for the write, and the
/// key's expiry as read (a fixed-window counter's; None otherwise).
type Verdict = (RateReply, Option<Pending>, Key, Option<i64>);

fn evaluate(
    ctx: &Context,
    key: &RedisString,
    params: FixedWindow,
    mode: Mode,
    now: i64,
) -> OResult<Verdict> {
    let k = Key::open(ctx, key, true);
    let (reply, pending, expiry) = match mode {
        Mode::Fixed => {
            let state = load_counter(&k)?;
            let d = fixed_window(params, state, now);
            let expiry = state.and_then(|s| s.expire_at_ms);
            (d.reply, d.write.map(Pending::Fixed), expiry)
        }
        Mode::Sliding => {
            let d = sliding_window(
                params.limit,
                params.window_ms,
                params.cost,
                load_sliding(ctx, &k)?,
                now,
            );
            (d.reply, d.write.map(Pending::Sliding), None)
        }
    };
    Ok((reply, pending, k, expiry))
}

/// Writes one limit's pending change through its open key: applied,
/// replicated and notified before the next limit's.
fn write(ctx: &Context, key: &RedisString, k: Key, pending: Pending, expiry: Option<i64>) {
    let w = match pending {
        Pending::Fixed(CounterWrite::Set {
            count,
            expire_at_ms,
        }) => Write::SetInt {
            value: count,
            at: expire_at_ms,
            expiry,
        },
        Pending::Fixed(CounterWrite::Expire { expire_at_ms }) => Write::PExpireAt(expire_at_ms),
        Pending::Sliding(w) => Write::Sliding {
            values: [w.state.window_start_ms, w.state.current, w.state.previous],
            at: w.expire_at_ms,
        },
    };
    effects::apply(ctx, key, k, w);
}

fn count(reply: &RateReply) {
    info::bump(if reply.limited {
        Counter::RateLimitLimited
    } else {
        Counter::RateLimitAllowed
    });
}

/// `OAUTH.RATELIMIT key limit window [COST n] [SLIDING]`
pub fn ratelimit(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    // The arguments one by one, without the 32-slot list of `bytes`, which
    // a call of four arguments does not need.
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let limit = int_arg(raw_arg(args, 2)?, "limit")?;
    let window = int_arg(raw_arg(args, 3)?, "window")?;
    let options: SmallVec<[&[u8]; 4]> = args
        .get(4..)
        .unwrap_or_default()
        .iter()
        .map(RedisString::as_slice)
        .collect();
    let (cost, mode) = parse_options(&options, true)?;
    let params = FixedWindow::new(limit, window, cost)?;

    let (reply, pending, k, expiry) = evaluate(ctx, key, params, mode, now_ms())?;
    if let Some(p) = pending {
        write(ctx, key, k, p, expiry);
    }
    count(&reply);
    Ok(reply::verdict(reply.to_array(), None))
}

/// Up to this many keys, RATELIMITALL finds a repeated key by comparison.
const FEW_KEYS: usize = 8;

/// `OAUTH.RATELIMITALL numkeys key [key ...] limit window [limit window ...] [COST n] [SLIDING]`
///
/// The keys come first and together (as in `ZUNIONSTORE`) so that Redis's
/// `numkeys` key spec finds them all; the i-th `limit window` pair belongs to
/// the i-th key. Counts the request against every limit only if all allow it.
/// Reply: the five integers of the deciding limit (see `core::rate::combine`)
/// and its 1-based position.
pub fn ratelimit_all(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let n = int_arg(arg(&a, 1)?, "numkeys")?;
    let max = (a.len().saturating_sub(2) / 3) as i64;
    if n < 1 || n > max {
        return Err(OAuthError::invalid_request(
            "numkeys must be at least 1, followed by that many keys and as many limit window pairs",
        ));
    }
    let n = n as usize; // 1..=max, from a usize
    let (cost, mode) = parse_options(a.get(2 + 3 * n..).unwrap_or_default(), true)?;
    let mut specs: SmallVec<[(&RedisString, FixedWindow); 4]> = SmallVec::with_capacity(n);
    // Duplicates: by comparison for a few keys, by a hash set for many.
    let mut seen: HashSet<&[u8]> = HashSet::new();
    for i in 0..n {
        let key = args
            .get(2 + i)
            .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
        let twice = if n <= FEW_KEYS {
            specs.iter().any(|(k, _)| k.as_slice() == key.as_slice())
        } else {
            !seen.insert(key.as_slice())
        };
        if twice {
            return Err(OAuthError::invalid_request(
                "a key appears twice; each limit needs its own key",
            ));
        }
        let pair = 2 + n + 2 * i;
        let limit = int_arg(arg(&a, pair)?, "limit")?;
        let window = int_arg(arg(&a, pair + 1)?, "window")?;
        specs.push((key, FixedWindow::new(limit, window, cost)?));
    }

    let now = now_ms();
    let mut verdicts: SmallVec<[(&RedisString, Verdict); 4]> = SmallVec::with_capacity(n);
    for (key, params) in &specs {
        verdicts.push((*key, evaluate(ctx, key, *params, mode, now)?));
    }
    let replies: SmallVec<[RateReply; 4]> = verdicts.iter().map(|(_, (r, ..))| *r).collect();
    let (combined, deciding) =
        combine(&replies).ok_or_else(|| OAuthError::internal("no limits to combine"))?;
    for (key, (_, pending, k, expiry)) in verdicts {
        match pending {
            // All-or-nothing: counts are written only if every limit allows.
            Some(Pending::Fixed(CounterWrite::Set { .. }) | Pending::Sliding(_))
                if combined.limited => {}
            // Giving an immortal counter its expiry is a repair, not a count.
            Some(p) => write(ctx, key, k, p, expiry),
            None => {}
        }
    }
    count(&combined);
    Ok(reply::verdict(combined.to_array(), Some(deciding as i64)))
}
