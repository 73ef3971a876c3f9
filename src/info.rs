//! Counters since start, shown by `INFO oauth` (fields prefixed `oauth_`).
//! The INFO section iterates the same enum the handlers bump, so none is forgotten.

use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::{InfoContext, RedisResult};

use crate::core::record::GrantFailure;

#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Counter {
    CodesSaved,
    CodesExchanged,
    ExchangeFailNotFound,
    ExchangeFailReused,
    ExchangeFailClient,
    ExchangeFailRedirect,
    ExchangeFailPkce,
    CodesBurned,
    TokensSaved,
    TokensIntrospected,
    TokensRevoked,
    StatesSaved,
    StatesConsumed,
    RateLimitAllowed,
    RateLimitLimited,
    RefreshRotated,
    RefreshReplayed,
    RefreshReused,
    GrantsRevoked,
    CutoffsSet,
    ClientsSaved,
    ClientVerifyFailed,
    Panics,
}

const NAMES: &[&str] = &[
    "codes_saved",
    "codes_exchanged",
    "exchange_fail_not_found",
    "exchange_fail_reused",
    "exchange_fail_client",
    "exchange_fail_redirect",
    "exchange_fail_pkce",
    "codes_burned",
    "tokens_saved",
    "tokens_introspected",
    "tokens_revoked",
    "states_saved",
    "states_consumed",
    "ratelimit_allowed",
    "ratelimit_limited",
    "refresh_rotated",
    "refresh_replayed",
    "refresh_reused",
    "grants_revoked",
    "cutoffs_set",
    "clients_saved",
    "client_verify_failed",
    "panics",
];

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
static COUNTERS: [AtomicU64; NAMES.len()] = [ZERO; NAMES.len()];

pub fn bump(c: Counter) {
    add(c, 1);
}

pub fn add(c: Counter, n: u64) {
    if let Some(a) = COUNTERS.get(c as usize) {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

pub fn grant_failure(f: GrantFailure) {
    bump(match f {
        GrantFailure::NotFound => Counter::ExchangeFailNotFound,
        GrantFailure::Reused => Counter::ExchangeFailReused,
        GrantFailure::Client => Counter::ExchangeFailClient,
        GrantFailure::Redirect => Counter::ExchangeFailRedirect,
        GrantFailure::Pkce(_) => Counter::ExchangeFailPkce,
    });
}

/// The `oauth` INFO section (Redis prefixes it with the module name: `oauth_stats`).
pub fn section(ctx: &InfoContext, _for_crash_report: bool) -> RedisResult<()> {
    let mut section = ctx.builder().add_section("stats");
    for (name, value) in NAMES.iter().zip(COUNTERS.iter()) {
        section = section.field(name, value.load(Ordering::Relaxed))?;
    }
    section.build_section()?.build_info()?;
    Ok(())
}
