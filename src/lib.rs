//! redis-oauth: atomic OAuth 2.0 storage commands for Redis.
//!
//! `core` is the pure domain (no Redis). Everything else is the thin shell:
//! `commands` (one file per command family, plus the command table),
//! `keys` (reads), `effects` (writes + replication), `encoding` (the
//! server's listpack limits), `census` (live counts by class), `reply`,
//! `config`, `info` and `clock`.

use redis_module::{redis_module, Context, InfoContext, RedisResult, RedisString, Status};

pub mod census;
pub mod clock;
pub mod commands;
pub mod config;
pub mod core;
pub mod effects;
pub mod encoding;
pub mod info;
pub mod keys;
pub mod reply;

/// The server API this module needs, all present from Redis 7.0 on. Checked
/// before anything is registered, so an older server refuses the module with
/// a clear log line instead of crashing.
fn missing_api() -> Option<&'static str> {
    use redis_module::raw;
    // SAFETY: reading function pointers filled in by RedisModule_Init.
    unsafe {
        [
            ("RedisModule_SetAbsExpire", {
                let f = raw::RedisModule_SetAbsExpire;
                f.is_some()
            }),
            ("RedisModule_GetAbsExpire", {
                let f = raw::RedisModule_GetAbsExpire;
                f.is_some()
            }),
            ("RedisModule_SetCommandInfo", {
                let f = raw::RedisModule_SetCommandInfo;
                f.is_some()
            }),
            ("RedisModule_RegisterNumericConfig", {
                let f = raw::RedisModule_RegisterNumericConfig;
                f.is_some()
            }),
            ("RedisModule_LoadConfigs", {
                let f = raw::RedisModule_LoadConfigs;
                f.is_some()
            }),
            ("RedisModule_ScanKey", {
                let f = raw::RedisModule_ScanKey;
                f.is_some()
            }),
            ("RedisModule_Milliseconds", {
                let f = raw::RedisModule_Milliseconds;
                f.is_some()
            }),
        ]
        .into_iter()
        .find(|(_, present)| !present)
        .map(|(name, _)| name)
    }
}

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    if let Some(name) = missing_api() {
        ctx.log_warning(&format!(
            "redis-oauth requires Redis 7.0 or newer, or Valkey (tested: Redis 7.0, 7.4, Valkey 9.1): this server lacks {name}. Not loading."
        ));
        return Status::Err;
    }
    std::panic::set_hook(Box::new(|info| {
        redis_module::logging::log_warning(format!(
            "redis-oauth: internal error (panic caught): {info}"
        ));
    }));
    let given = match config::parse_module_args(args) {
        Ok(g) => g,
        Err(e) => {
            ctx.log_warning(&format!("redis-oauth: {e}. Not loading."));
            return Status::Err;
        }
    };
    if let Err(e) = commands::register(ctx) {
        ctx.log_warning(&format!("redis-oauth: {e}. Not loading."));
        return Status::Err;
    }
    config::register(ctx, &given);
    // SAFETY: LoadConfigs exists (checked above); called once from OnLoad.
    unsafe {
        if let Some(load) = redis_module::raw::RedisModule_LoadConfigs {
            if load(ctx.get_raw()) == redis_module::raw::Status::Err as i32 {
                ctx.log_warning("redis-oauth: could not load its configuration. Not loading.");
                return Status::Err;
            }
        }
    }
    encoding::track(ctx);
    if let Err(e) = census::start(ctx) {
        ctx.log_warning(&format!("redis-oauth: {e}. Not loading."));
        return Status::Err;
    }
    Status::Ok
}

fn deinit(_ctx: &Context) -> Status {
    effects::free_words();
    keys::free_scan_cursor();
    census::stop();
    Status::Ok
}

// Unit tests run outside Redis, where the Redis allocator does not exist.
#[cfg(not(test))]
redis_module! {
    name: "oauth",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    deinit: deinit,
    info: info_section,
}

#[cfg(test)]
redis_module! {
    name: "oauth",
    version: 1,
    allocator: (std::alloc::System, std::alloc::System),
    data_types: [],
    init: init,
    deinit: deinit,
    info: info_section,
}

fn info_section(ctx: &InfoContext, for_crash_report: bool) {
    if info::section(ctx, for_crash_report).is_err() {
        redis_module::logging::log_warning("redis-oauth: could not build the INFO section");
    }
}
