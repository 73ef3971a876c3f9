//! Counters since start (`INFO oauth_stats`) and the census's live counts
//! (`INFO oauth_census`, from `crate::census`); Redis prefixes every field
//! with `oauth_`.
//! One list declares each counter with its INFO name, so none is forgotten.

use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::{InfoContext, RedisResult};

use crate::core::record::GrantFailure;

/// Declares `Counter` and, in the same order, the INFO name of each variant:
/// one list, so a counter cannot exist without its name.
macro_rules! counters {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy)]
        #[repr(usize)]
        pub enum Counter {
            $($variant,)*
        }

        const NAMES: &[&str] = &[$($name,)*];
    };
}

counters! {
    CodesSaved => "codes_saved",
    CodesExchanged => "codes_exchanged",
    ExchangeFailNotFound => "exchange_fail_not_found",
    ExchangeFailReused => "exchange_fail_reused",
    ExchangeFailClient => "exchange_fail_client",
    ExchangeFailRedirect => "exchange_fail_redirect",
    ExchangeFailPkce => "exchange_fail_pkce",
    CodesBurned => "codes_burned",
    TokensSaved => "tokens_saved",
    TokensIntrospected => "tokens_introspected",
    TokensRevoked => "tokens_revoked",
    StatesSaved => "states_saved",
    StatesConsumed => "states_consumed",
    RateLimitAllowed => "ratelimit_allowed",
    RateLimitLimited => "ratelimit_limited",
    RefreshRotated => "refresh_rotated",
    RefreshReplayed => "refresh_replayed",
    RefreshReused => "refresh_reused",
    GrantsRevoked => "grants_revoked",
    CutoffsSet => "cutoffs_set",
    ClientsSaved => "clients_saved",
    ClientVerifyFailed => "client_verify_failed",
    RecordsPurged => "records_purged",
    Panics => "panics",
}

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

/// The module's INFO sections (Redis prefixes them with the module name:
/// `oauth_stats`, `oauth_census`).
pub fn section(ctx: &InfoContext, _for_crash_report: bool) -> RedisResult<()> {
    let mut section = ctx.builder().add_section("stats");
    for (name, value) in NAMES.iter().zip(COUNTERS.iter()) {
        section = section.field(name, value.load(Ordering::Relaxed))?;
    }
    let mut census = section.build_section()?.add_section("census");
    for (name, value) in crate::census::info_fields() {
        census = census.field(name, value)?;
    }
    census.build_section()?.build_info()?;
    Ok(())
}
