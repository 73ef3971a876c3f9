//! A new record from a command's own `FIELDS` (SAVECODE, SAVESTATE,
//! SAVETOKEN): the header of its kind, then the caller's pairs.

use redis_module::{Context, RedisString};
use smallvec::SmallVec;

use super::args::expiry_at;
use crate::core::record::{self, Kind};
use crate::core::validate::Pair;
use crate::core::OResult;
use crate::effects::{self, Write};
use crate::keys::{new_string, require_absent, share, Key};
use crate::reply::{Forward, Reply};

/// Writes a new record on `key`, which must be absent (`EXISTS` otherwise):
/// the header of `kind`, then the caller's `fields`, which `parse_fields`
/// found to be the last `2 * fields.len()` arguments, expiring `ttl_s`
/// seconds from `now_ms`. The record holds nothing the command's arguments
/// did not show, so it is a public record (`effects::Write::public_record`).
/// The reply is `+OK` (`RESTORE`'s own, passed on, when that wrote the
/// record).
pub fn create_record(
    ctx: &Context,
    args: &[RedisString],
    key: &RedisString,
    kind: Kind,
    fields: &[Pair<'_>],
    now_ms: i64,
    ttl_s: i64,
) -> OResult<Reply> {
    let k = Key::open(ctx, key, true);
    require_absent(&k)?;
    let at = expiry_at(now_ms, ttl_s)?;
    let created = record::created_value(kind, now_ms);
    let mut pairs: SmallVec<[Pair<'_>; 18]> = SmallVec::with_capacity(2 + fields.len());
    pairs.extend(record::header_pairs(kind, created.as_deref()));
    pairs.extend_from_slice(fields);
    let held = args
        .get(args.len().saturating_sub(2 * fields.len())..)
        .unwrap_or_default();
    let restored = effects::apply(ctx, key, k, Write::public_record(&pairs, held, at));
    Ok(restored.map_or(Reply::Ok, Forward::into_reply))
}

/// A new record as module strings, names and values alternating: the header,
/// then the caller's `FIELDS` pairs, which `parse_fields` found to be the last
/// `2 * n` arguments. Those are shared with the command's arguments, not copied.
pub fn record_strings(kind: Kind, now_ms: i64, args: &[RedisString], n: usize) -> Vec<RedisString> {
    let header = crate::core::record::header(kind, now_ms);
    let pairs = args
        .get(args.len().saturating_sub(2 * n)..)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(2 * header.len() + pairs.len());
    for (f, v) in &header {
        out.push(new_string(f));
        out.push(new_string(v));
    }
    out.extend(pairs.iter().map(share));
    out
}
