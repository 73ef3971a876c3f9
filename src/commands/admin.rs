//! The operators' commands: `OAUTH.SCAN` lists records of a class, with
//! their fields, one SCAN step per call; `OAUTH.PURGECLIENT` deletes, one
//! SCAN step per call, everything issued to a client. Both walk the keyspace
//! of the node they run on with SCAN's cursor, so each call does bounded work
//! and the caller loops until the cursor is 0 (on every master in Cluster).
//!
//! They declare no keys (the keys are found, not named), so Redis's ACL cannot
//! check them before the call: each key found is checked here against the
//! caller's ACL key patterns, and keys the caller may not read are skipped as
//! if absent. The census (`crate::census`) classifies keys with the same
//! rules (`core::inventory`), without opening them by name.

use std::collections::HashSet;
use std::os::raw::c_int;
use std::ptr;

use redis_module::{raw, Context, RedisString, RedisValue};

use super::bytes;
use crate::clock::now_ms;
use crate::core::inventory::{self, classify, is_grant_member, Class, Options, Step};
use crate::core::record::{Record, F_CLIENT_ID, F_CREATED};
use crate::core::{ErrorCode, OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{expired, rstr, Key, KeyKind};
use crate::reply::{Reply, Value};

/// What a key holds, seen by an operator.
struct Found {
    pub class: Class,
    /// The record itself, or for a grant the member record that proved it one
    /// (its client and subject are the grant's).
    pub rec: Record,
    pub expires_at_ms: Option<i64>,
    /// A grant's member count (0 for a record).
    pub members: usize,
}

/// Looks at one key: a record the module wrote, or a grant index. None for
/// anything else (plain keys, rate-limit counters, missing or expired keys).
/// Reads through the key API only: nothing shows in MONITOR.
fn look(ctx: &Context, name: &RedisString, now: i64) -> Option<Found> {
    let key = Key::open(ctx, name, false);
    if expired(&key, now) {
        return None;
    }
    let expires_at_ms = key.abs_expire();
    match key.kind() {
        KeyKind::Hash => {
            let rec = key.read_hash();
            Some(Found {
                class: classify(&rec)?,
                rec,
                expires_at_ms,
                members: 0,
            })
        }
        KeyKind::Set => {
            let members = key.read_set(GRANT_PROOF_TRIES);
            let count = key.element_count();
            drop(key);
            let rec = grant_proof(ctx, name, &members, now)?;
            Some(Found {
                class: Class::Grant,
                rec,
                expires_at_ms,
                members: count,
            })
        }
        _ => None,
    }
}

/// How many members of a set are tried as the proof that it is a grant.
const GRANT_PROOF_TRIES: usize = 16;

/// A live member record of the set at `name` that names the set as its
/// grant: the proof that the set is a grant index. Up to 16 members are
/// tried (members expire or are revoked one by one), preferring one that
/// carries a `client_id` (a code's tombstone keeps only bookkeeping).
fn grant_proof(ctx: &Context, name: &RedisString, members: &[Vec<u8>], now: i64) -> Option<Record> {
    let mut fallback = None;
    for member in members.iter().take(GRANT_PROOF_TRIES) {
        let Some(rec) = member_record(ctx, name, member, now) else {
            continue;
        };
        if rec.get(F_CLIENT_ID).is_some() {
            return Some(rec);
        }
        fallback.get_or_insert(rec);
    }
    fallback
}

/// The record at `member` when it is a live member of the grant `grant`.
fn member_record(ctx: &Context, grant: &RedisString, member: &[u8], now: i64) -> Option<Record> {
    let key = Key::open(ctx, &rstr(ctx, member), false);
    if key.kind() != KeyKind::Hash || expired(&key, now) {
        return None;
    }
    let rec = key.read_hash();
    is_grant_member(grant.as_slice(), &rec).then_some(rec)
}

/// Every live member of a grant index, with its class (what REVOKEGRANT
/// would delete).
fn grant_members(ctx: &Context, grant: &RedisString, now: i64) -> Vec<(RedisString, Class)> {
    Key::open(ctx, grant, false)
        .read_set(usize::MAX)
        .into_iter()
        .filter_map(|m| {
            let rec = member_record(ctx, grant, &m, now)?;
            Some((rstr(ctx, &m), classify(&rec)?))
        })
        .collect()
}

fn value_bytes(v: &RedisValue) -> Option<&[u8]> {
    match v {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => Some(s.as_bytes()),
        RedisValue::StringBuffer(b) => Some(b),
        RedisValue::BulkRedisString(s) => Some(s.as_slice()),
        _ => None,
    }
}

/// One SCAN step on the node: the next cursor and the key names found.
pub fn scan_step(
    ctx: &Context,
    cursor: &[u8],
    count: i64,
    pattern: Option<&[u8]>,
) -> OResult<(Vec<u8>, Vec<RedisString>)> {
    let count = count.to_string();
    let mut args: Vec<&[u8]> = vec![cursor, b"COUNT", count.as_bytes()];
    if let Some(p) = pattern {
        args.extend_from_slice(&[b"MATCH", p]);
    }
    let failed = || OAuthError::internal("SCAN failed; details are in the server log");
    let reply = match ctx.call("SCAN", args.as_slice()) {
        Ok(r) => r,
        Err(e) => {
            ctx.log_warning(&format!("redis-oauth: SCAN failed: {e}"));
            return Err(failed());
        }
    };
    let RedisValue::Array(parts) = reply else {
        return Err(failed());
    };
    let [next, RedisValue::Array(keys)] = parts.as_slice() else {
        return Err(failed());
    };
    let next = value_bytes(next).ok_or_else(failed)?.to_vec();
    let names = keys
        .iter()
        .filter_map(value_bytes)
        .map(|k| rstr(ctx, k))
        .collect();
    Ok((next, names))
}

/// The caller's ACL user, to check keys the command finds rather than
/// declares. None when the caller is the server itself (no user to check).
struct AclUser(*mut raw::RedisModuleUser);

impl AclUser {
    fn current(ctx: &Context) -> OResult<Option<AclUser>> {
        // SAFETY: both functions exist from Redis 7.0 (the module refuses
        // older servers); the name string is ours and freed here, the user
        // is freed on drop.
        unsafe {
            let (Some(name_of), Some(user_of), Some(free)) = (
                raw::RedisModule_GetCurrentUserName,
                raw::RedisModule_GetModuleUserFromUserName,
                raw::RedisModule_FreeString,
            ) else {
                return Err(no_acl());
            };
            let name = name_of(ctx.get_raw());
            if name.is_null() {
                return Ok(None);
            }
            let user = user_of(name);
            free(ptr::null_mut(), name);
            if user.is_null() {
                return Err(no_acl());
            }
            Ok(Some(AclUser(user)))
        }
    }

    /// Whether the user's key patterns allow `flags` (REDISMODULE_CMD_KEY_*) on `key`.
    fn allows(&self, key: &RedisString, flags: u32) -> bool {
        // SAFETY: self.0 is a live user; key a live string.
        unsafe {
            raw::RedisModule_ACLCheckKeyPermissions.is_some_and(|check| {
                check(self.0, key.inner, flags as c_int) == raw::REDISMODULE_OK as c_int
            })
        }
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        // SAFETY: the user came from GetModuleUserFromUserName and is freed once.
        unsafe {
            if let Some(free) = raw::RedisModule_FreeModuleUser {
                free(self.0);
            }
        }
    }
}

fn no_acl() -> OAuthError {
    OAuthError::new(
        ErrorCode::NoPerm,
        "the calling user's ACL could not be read, so no key is shown",
    )
}

fn may(user: &Option<AclUser>, key: &RedisString, flags: u32) -> bool {
    user.as_ref().is_none_or(|u| u.allows(key, flags))
}

const READ: u32 = raw::REDISMODULE_CMD_KEY_ACCESS;
const DELETE: u32 = raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_DELETE;

/// `OAUTH.SCAN cursor [MATCH pattern] [COUNT count] [KIND kind] [CLIENT
/// client_id] [SUBJECT sub]`: one SCAN step; answers the next cursor and the
/// records found in it that pass the filters, each as a map (key, kind,
/// expires_at_ms, created_ms, fields). Like SCAN, a call may answer no
/// record while the cursor is not yet 0.
pub fn scan(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let step = inventory::parse_step(a.get(1..).unwrap_or_default(), Options::Scan)?;
    let user = AclUser::current(ctx)?;
    let now = now_ms();
    let (next, names) = scan_step(ctx, step.cursor, step.count, step.pattern)?;
    let mut items = Vec::new();
    for name in &names {
        if !may(&user, name, READ) {
            continue;
        }
        let Some(found) = look(ctx, name, now) else {
            continue;
        };
        if step.filter.matches(found.class, &found.rec) {
            items.push(item(name, &found));
        }
    }
    Ok(Reply::Array(vec![Reply::Bulk(next), Reply::Array(items)]))
}

fn item(name: &RedisString, found: &Found) -> Reply {
    let fields: Vec<(Vec<u8>, Value)> = if found.class == Class::Grant {
        let members = found.members.to_string().into_bytes();
        let mut f = vec![(b"members".to_vec(), Value::Bytes(members))];
        for shown in [F_CLIENT_ID, inventory::F_SUB] {
            if let Some(v) = found.rec.get(shown) {
                f.push((shown.to_vec(), Value::Bytes(v.to_vec())));
            }
        }
        f
    } else {
        found
            .rec
            .user_fields()
            .map(|(f, v)| (f.to_vec(), Value::Bytes(v.to_vec())))
            .collect()
    };
    let created = if found.class == Class::Grant {
        -1
    } else {
        found.rec.int_field(F_CREATED, -1)
    };
    Reply::Map(vec![
        (b"key".to_vec(), Value::Bytes(name.as_slice().to_vec())),
        (
            b"kind".to_vec(),
            Value::Bytes(found.class.name().as_bytes().to_vec()),
        ),
        (
            b"expires_at_ms".to_vec(),
            Value::Int(found.expires_at_ms.unwrap_or(-1)),
        ),
        (b"created_ms".to_vec(), Value::Int(created)),
        (b"fields".to_vec(), Value::Map(fields)),
    ])
}

/// `OAUTH.PURGECLIENT client_id cursor [MATCH pattern] [COUNT count]`: one
/// SCAN step; deletes every record in it whose `client_id` is the client's
/// (its registration, codes and their tombstones, access and refresh tokens,
/// states) and the grant indexes of its grants. Answers the next cursor and a
/// map of how many of each class went. A step whose deletions the caller's
/// ACL does not allow deletes nothing and answers NOPERM.
pub fn purgeclient(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let client = *a
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("wrong number of arguments"))?;
    if client.is_empty() {
        return Err(OAuthError::invalid_request("client_id must not be empty"));
    }
    let step: Step = inventory::parse_step(a.get(2..).unwrap_or_default(), Options::Purge)?;
    let user = AclUser::current(ctx)?;
    let now = now_ms();
    let (next, names) = scan_step(ctx, step.cursor, step.count, step.pattern)?;

    let mut doomed: Vec<(RedisString, Class)> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut doom = |key: RedisString, class: Class, doomed: &mut Vec<(RedisString, Class)>| {
        if seen.insert(key.as_slice().to_vec()) {
            doomed.push((key, class));
        }
    };
    for name in &names {
        if !may(&user, name, READ) {
            continue;
        }
        let Some(found) = look(ctx, name, now) else {
            continue;
        };
        if found.rec.get(F_CLIENT_ID) != Some(client) {
            continue;
        }
        // A grant goes whole, as OAUTH.REVOKEGRANT takes it: its index and
        // every member (the code's tombstone, which keeps no client_id, too).
        let grant = match found.class {
            Class::Grant => Some(rstr(ctx, name.as_slice())),
            _ => super::grant::of(ctx, &found.rec, name.as_slice()),
        };
        doom(rstr(ctx, name.as_slice()), found.class, &mut doomed);
        if let Some(g) = grant {
            for (member, class) in grant_members(ctx, &g, now) {
                doom(member, class, &mut doomed);
            }
            doom(g, Class::Grant, &mut doomed);
        }
    }
    if doomed.iter().any(|(k, _)| !may(&user, k, DELETE)) {
        return Err(OAuthError::new(
            ErrorCode::NoPerm,
            "this user has no permissions to delete one of the client's keys; nothing was deleted",
        ));
    }
    let mut counts = inventory::Tally::default();
    let mut fx = Effects::new();
    for (key, class) in &doomed {
        fx.del(key);
        counts.add_n(*class, 1);
    }
    fx.commit(ctx);
    info::add(Counter::RecordsPurged, counts.total());
    let map = Class::ALL
        .iter()
        .map(|c| {
            let n = i64::try_from(counts.count(*c)).unwrap_or(i64::MAX);
            (c.name().as_bytes().to_vec(), Value::Int(n))
        })
        .collect();
    Ok(Reply::Array(vec![Reply::Bulk(next), Reply::Map(map)]))
}
