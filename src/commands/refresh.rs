//! Refresh-token rotation: `OAUTH.ROTATE old_key new_key refresh_ttl
//! [ISSUE token_key token_ttl] [GRACE seconds] [CUTOFF numkeys key ...] [FIELDS ...]`.
//!
//! One atomic step: a live old token is marked rotated (a tombstone that
//! remembers its successor) and the successor is created in the same grant with
//! the old fields (scope cannot widen), optionally with an access token.
//! Presenting a rotated token again revokes the whole grant, except within the
//! grace window, where it answers the same successor a bounded number of times.

use redis_module::{Context, RedisString};
use smallvec::SmallVec;

use super::{arg, bytes, expiry_at};
use crate::clock::now_ms;
use crate::core::grammar::{self, Grammar};
use crate::core::record::{self, Kind, Record, F_CREATED, F_GRANT, F_KIND};
use crate::core::token::{
    present_refresh, replay_allowed, rotated_marks, successor_fields, Presented, RotateDecision,
    F_GRACE_LEFT, F_PREVIOUS,
};
use crate::core::validate::{
    check_record_size, parse_bounded, parse_fields, parse_ttl, Fields, Limits, Pair,
};
use crate::core::{ErrorCode, OAuthError, OResult};
use crate::effects::Effects;
use crate::info::{self, Counter};
use crate::keys::{load_cutoffs, load_record, require_absent, Key};
use crate::reply::{Reply, Value};

/// ROTATE's options, after `old_key new_key refresh_ttl`.
pub static GRAMMAR: Grammar = Grammar {
    from: 4,
    options: &[
        grammar::ISSUE,
        grammar::GRACE,
        grammar::CUTOFF,
        grammar::FIELDS,
    ],
};

#[derive(Default)]
struct RotateOptions<'a> {
    issue: Option<(usize, i64)>,
    grace_s: i64,
    cutoffs: Vec<usize>,
    fields: Fields<'a>,
}

/// The indexes of the `CUTOFF` keys `g` finds in `a`.
pub fn cutoff_keys(g: &Grammar, p: &grammar::Parsed, a: &[&[u8]]) -> Vec<usize> {
    match (p.keyword_at(g, "CUTOFF"), p.args(g, "CUTOFF", a)) {
        (Some(at), Some(keys)) => (at + 2..at + 2 + keys.len()).collect(),
        _ => Vec::new(),
    }
}

fn parse_options<'a>(a: &[&'a [u8]], limits: &Limits) -> OResult<RotateOptions<'a>> {
    let g = &GRAMMAR;
    let p = grammar::parse(g, a)?;
    Ok(RotateOptions {
        issue: match (p.keyword_at(g, "ISSUE"), p.args(g, "ISSUE", a)) {
            (Some(at), Some([_, ttl])) => Some((at + 1, parse_ttl(ttl, limits.token_max_ttl)?)),
            _ => None,
        },
        grace_s: match p.args(g, "GRACE", a) {
            Some([s]) => parse_bounded(s, "GRACE", 0, limits.refresh_grace_max)?,
            _ => 0,
        },
        cutoffs: cutoff_keys(g, &p, a),
        fields: match p.args(g, "FIELDS", a) {
            Some(f) => parse_fields(f, limits)?,
            None => Fields::default(),
        },
    })
}

/// The reply: the successor's caller fields, then `_refresh_key`,
/// `_access_key` (when an access token was issued) and `_replayed` (1 when a
/// grace-window retry got the existing successor).
fn answer(
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    refresh: &[u8],
    access: Option<&[u8]>,
    replayed: bool,
) -> Reply {
    let mut out: Vec<(Vec<u8>, Value)> = fields
        .into_iter()
        .map(|(f, v)| (f, Value::Bytes(v)))
        .collect();
    out.push((b"_refresh_key".to_vec(), Value::Bytes(refresh.to_vec())));
    if let Some(a) = access {
        out.push((b"_access_key".to_vec(), Value::Bytes(a.to_vec())));
    }
    out.push((b"_replayed".to_vec(), Value::Int(i64::from(replayed))));
    Reply::Map(out)
}

fn reused(ctx: &Context, old_key: &RedisString, old: &Record) -> OResult<Reply> {
    let mut fx = Effects::new();
    if let Some(g) = super::grant::of(ctx, old, old_key.as_slice()) {
        let n = super::grant::revoke_all(ctx, &mut fx, &g)?;
        info::add(Counter::TokensRevoked, n.unsigned_abs());
    }
    fx.commit(ctx);
    info::bump(Counter::RefreshReused);
    Err(OAuthError::invalid_grant(
        "refresh token reused; its grant is revoked",
    ))
}

pub fn rotate(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let a = bytes(args);
    let limits = Limits::load();
    let old_key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("old_key is required"))?;
    let new_key = args
        .get(2)
        .ok_or_else(|| OAuthError::invalid_request("new_key is required"))?;
    let ttl = parse_ttl(arg(&a, 3)?, limits.refresh_max_ttl)?;
    let opts = parse_options(&a, &limits)?;
    let token_key = opts.issue.and_then(|(i, t)| args.get(i).map(|k| (k, t)));
    let mut named: Vec<&[u8]> = vec![old_key.as_slice(), new_key.as_slice()];
    named.extend(token_key.iter().map(|(k, _)| k.as_slice()));
    if named
        .iter()
        .enumerate()
        .any(|(i, k)| named.get(..i).unwrap_or_default().contains(k))
    {
        return Err(OAuthError::invalid_request(
            "old_key, new_key and token_key must all differ",
        ));
    }
    let cutoff_keys: Vec<&RedisString> = opts.cutoffs.iter().filter_map(|i| args.get(*i)).collect();
    let cutoffs = load_cutoffs(ctx, &cutoff_keys)?;

    let (old, old_expiry) = {
        let k = Key::open(ctx, old_key, true);
        let rec = load_record(&k, Kind::Refresh)?;
        (rec, k.abs_expire())
    };
    let now = now_ms();
    let decision = match present_refresh(old.as_ref().map(|r| (r, old_expiry)), &cutoffs, now) {
        Presented::Gone => {
            return Err(OAuthError::invalid_grant(
                "refresh token not found or expired",
            ))
        }
        Presented::CutOff => return Err(OAuthError::invalid_grant("refresh token revoked")),
        Presented::Decision(d) => d,
    };
    let Some(old) = old else {
        return Err(OAuthError::internal(
            "a presented refresh token without its record",
        ));
    };

    match decision {
        RotateDecision::Reuse => reused(ctx, old_key, &old),
        RotateDecision::Replay {
            successor,
            access,
            uses_left,
        } => {
            let succ_key = crate::keys::rstr(ctx, successor.as_slice());
            let succ = load_record(&Key::open(ctx, &succ_key, false), Kind::Refresh)
                .ok()
                .flatten();
            match succ {
                Some(s) if replay_allowed(Some(&s), old_key.as_slice(), now) => {
                    let mut fx = Effects::new();
                    fx.hset(
                        old_key,
                        vec![(F_GRACE_LEFT.to_vec(), uses_left.to_string().into_bytes())],
                    );
                    fx.commit(ctx);
                    info::bump(Counter::RefreshReplayed);
                    let fields = s
                        .user_fields()
                        .map(|(f, v)| (f.to_vec(), v.to_vec()))
                        .collect();
                    Ok(answer(fields, &successor, access.as_deref(), true))
                }
                _ => reused(ctx, old_key, &old),
            }
        }
        RotateDecision::Rotate => {
            let fields = successor_fields(&old, &opts.fields)
                .map_err(|m| OAuthError::new(ErrorCode::InvalidScope, m))?;
            check_record_size(
                i64::try_from(fields.len()).unwrap_or(i64::MAX),
                fields.iter().map(|(f, v)| f.len() + v.len()),
                &limits,
            )?;
            require_absent(&Key::open(ctx, new_key, true))?;
            if let Some((tk, _)) = token_key {
                require_absent(&Key::open(ctx, tk, true))?;
            }
            let grant = super::grant::of(ctx, &old, old_key.as_slice());
            if let Some(g) = &grant {
                super::grant::check(ctx, g)?;
            }
            let with_grant = |mut f: Vec<(Vec<u8>, Vec<u8>)>| {
                if let Some(g) = &grant {
                    f.push((F_GRANT.to_vec(), g.as_slice().to_vec()));
                }
                f
            };
            // The old token becomes a tombstone: bookkeeping and the rotation marks.
            let mut stone: Vec<(Vec<u8>, Vec<u8>)> =
                vec![(F_KIND.to_vec(), Kind::Refresh.as_bytes().to_vec())];
            if let Some(c) = old.get(F_CREATED) {
                stone.push((F_CREATED.to_vec(), c.to_vec()));
            }
            stone = with_grant(stone);
            stone.extend(rotated_marks(
                now,
                new_key.as_slice(),
                token_key.map(|(k, _)| k.as_slice()),
                opts.grace_s.saturating_mul(1000),
                limits.refresh_grace_uses,
            ));
            let stone_at = match old_expiry {
                Some(at) => at,
                None => expiry_at(now, limits.refresh_max_ttl)?,
            };
            let stone_pairs: SmallVec<[Pair<'_>; 8]> = stone
                .iter()
                .map(|(f, v)| (f.as_slice(), v.as_slice()))
                .collect();
            let mut fx = Effects::new();
            fx.replace_tombstone(old_key, &stone_pairs, stone_at);
            let new_at = expiry_at(now, ttl)?;
            let mut successor = with_grant(record::new_record(Kind::Refresh, now, &fields));
            successor.push((F_PREVIOUS.to_vec(), old_key.as_slice().to_vec()));
            fx.create_hash(new_key, successor, new_at);
            let mut members = vec![new_key.as_slice().to_vec()];
            let mut latest = new_at.max(stone_at);
            if let Some((tk, tttl)) = token_key {
                let at = expiry_at(now, tttl)?;
                fx.create_hash(
                    tk,
                    with_grant(record::new_record(Kind::Token, now, &fields)),
                    at,
                );
                members.push(tk.as_slice().to_vec());
                latest = latest.max(at);
                info::bump(Counter::TokensSaved);
            }
            if let Some(g) = &grant {
                super::grant::register(ctx, &mut fx, g, members, latest);
            }
            fx.commit(ctx);
            info::bump(Counter::RefreshRotated);
            let reply_fields = fields
                .iter()
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect();
            Ok(answer(
                reply_fields,
                new_key.as_slice(),
                token_key.map(|(k, _)| k.as_slice()),
                false,
            ))
        }
    }
}

/// `OAUTH.REVOKEBEFORE cutoff_key`: every token created at or before now that
/// is checked against this key (INTROSPECT / ROTATE ... CUTOFF) is inactive.
/// The key holds the cutoff in Unix ms and expires when no token it could
/// affect can still be alive (the longest token or refresh ttl from now).
pub fn revokebefore(ctx: &Context, args: &[RedisString]) -> OResult<Reply> {
    let key = args
        .get(1)
        .ok_or_else(|| OAuthError::invalid_request("key is required"))?;
    let limits = Limits::load();
    let existing = load_cutoffs(ctx, &[key])?;
    let now = now_ms();
    let cutoff = existing.iter().copied().fold(now, i64::max);
    let horizon = expiry_at(now, limits.token_max_ttl.max(limits.refresh_max_ttl))?;
    let expiry = Key::open(ctx, key, false).abs_expire();
    let at = expiry.unwrap_or(0).max(horizon);
    let mut fx = Effects::new();
    fx.set_int(key, cutoff, at, expiry);
    fx.commit(ctx);
    info::bump(Counter::CutoffsSet);
    Ok(Reply::Integer(cutoff))
}
