//! Grants: an index set of every key issued from one authorization (the code's
//! tombstone, access tokens, refresh tokens), so one step can revoke all of it.
//!
//! The index is a plain Redis set (`SMEMBERS` shows it). Its expiry is raised
//! to the latest member's absolute expiry whenever a member is added, so it
//! never outlives its members, and revoked members are removed from it.
//! Every member carries `_grant` naming its index.

use std::collections::HashSet;

use redis_module::{Context, RedisString};

use crate::core::inventory::is_grant_member;
use crate::core::record::{Kind, Record, F_GRANT};
use crate::core::{OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{is_set_member, set_members, wrong_redis_type, Key, KeyKind};
use crate::reply::Reply;

/// Fails with WRONGTYPE unless the grant key is a set or absent.
pub fn check(ctx: &Context, grant: &RedisString) -> OResult<()> {
    match Key::open(ctx, grant, false).kind() {
        KeyKind::Missing | KeyKind::Set => Ok(()),
        _ => Err(wrong_redis_type()),
    }
}

/// Adds members whose latest absolute expiry is `latest_at_ms`, raising the
/// index expiry to at least that.
pub fn register(
    ctx: &Context,
    fx: &mut Effects<'_>,
    grant: &RedisString,
    members: Vec<Vec<u8>>,
    latest_at_ms: i64,
) {
    let current = Key::open(ctx, grant, false).abs_expire().unwrap_or(0);
    fx.sadd(grant, members)
        .pexpireat(grant, current.max(latest_at_ms));
}

/// Queues the deletion of every live member and of the index; answers how
/// many members existed.
pub fn revoke_all(ctx: &Context, fx: &mut Effects<'_>, grant: &RedisString) -> OResult<i64> {
    let mut removed = 0;
    match Key::open(ctx, grant, true).kind() {
        KeyKind::Missing => return Ok(0),
        KeyKind::Set => {}
        _ => return Err(wrong_redis_type()),
    }
    for m in set_members(ctx, grant) {
        let key = crate::keys::rstr(ctx, m.as_slice());
        if belongs_to(&Key::open(ctx, &key, true), grant, false) {
            fx.del(&key);
            removed += 1;
        }
    }
    fx.del(grant);
    info::bump(Counter::GrantsRevoked);
    Ok(removed)
}

/// The grant the record stored at `member` belongs to, as a key: only when
/// the index really lists `member`. A `_grant` field alone is not trusted: a
/// hash written with plain HSET could name any key, and following it would let
/// the module change keys the caller's ACL patterns (and declared keys) do not
/// cover.
pub fn of(ctx: &Context, rec: &Record, member: &[u8]) -> Option<RedisString> {
    let g = crate::keys::rstr(ctx, rec.get(F_GRANT)?);
    is_set_member(ctx, &g, member).then_some(g)
}

/// Whether an index member is a record of this module (code tombstone, access
/// or refresh token; only access tokens when `tokens_only`) whose `_grant`
/// names `grant`. Anything else listed in a set, by a hand-made or stale
/// index, is left alone.
fn belongs_to(key: &Key, grant: &RedisString, tokens_only: bool) -> bool {
    if key.kind() != KeyKind::Hash {
        return false;
    }
    let rec = key.read_hash();
    is_grant_member(grant.as_slice(), &rec) && (!tokens_only || rec.kind() == Some(Kind::Token))
}

/// Revoking a refresh token also revokes its grant's access tokens (RFC 7009
/// §2.1). Queues their deletion and their removal from the index, skipping
/// keys the caller already removes.
pub fn revoke_access_tokens_except(
    ctx: &Context,
    fx: &mut Effects<'_>,
    grant: &RedisString,
    except: &HashSet<&[u8]>,
) -> i64 {
    if Key::open(ctx, grant, false).kind() != KeyKind::Set {
        return 0;
    }
    let mut gone = Vec::new();
    for m in set_members(ctx, grant) {
        if except.contains(&m.as_slice()) {
            continue;
        }
        let key = crate::keys::rstr(ctx, m.as_slice());
        if belongs_to(&Key::open(ctx, &key, true), grant, true) {
            fx.del(&key);
            gone.push(m);
        }
    }
    let n = gone.len() as i64;
    fx.srem(grant, gone);
    n
}

/// `OAUTH.REVOKEGRANT grant_key`: deletes every member and the index; answers
/// how many members were deleted (0 for an unknown grant).
pub fn revokegrant(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let grant = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let mut fx = Effects::new();
    let n = revoke_all(ctx, &mut fx, grant)?;
    fx.commit(ctx);
    info::add(Counter::TokensRevoked, n.unsigned_abs());
    Ok(Reply::Integer(n))
}
