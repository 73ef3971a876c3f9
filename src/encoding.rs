//! The server's hash encoding limits (`hash-max-listpack-entries`,
//! `hash-max-listpack-value`), which decide whether a new record can be
//! written in one piece as a listpack (`core::dump`) or must go field by
//! field. Read when the module loads and again after every `CONFIG SET`, so a
//! record is encoded exactly as `HSET` would encode it under the current
//! settings.

use std::os::raw::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::{raw, Context, RedisValue};

use crate::core::dump::ListpackLimits;

/// 0 until read: the one-piece write stays off until the limits are known.
static MAX_ENTRIES: AtomicU64 = AtomicU64::new(0);
static MAX_VALUE: AtomicU64 = AtomicU64::new(0);

/// The current limits, if they could be read.
pub fn limits() -> Option<ListpackLimits> {
    let max_entries = MAX_ENTRIES.load(Ordering::Relaxed);
    let max_value = MAX_VALUE.load(Ordering::Relaxed);
    (max_entries > 0 && max_value > 0).then_some(ListpackLimits {
        max_entries,
        max_value,
    })
}

/// Reads both settings with `CONFIG GET`; on any failure the one-piece write
/// turns off (every record is then written field by field).
pub fn refresh(ctx: &Context) {
    let read = |name: &str| -> Option<u64> {
        match ctx.call("CONFIG", &["GET", name][..]) {
            Ok(RedisValue::Array(v)) => v.get(1).and_then(|value| match value {
                RedisValue::SimpleString(s) => s.parse().ok(),
                RedisValue::BulkString(s) => s.parse().ok(),
                RedisValue::BulkRedisString(s) => s.try_as_str().ok()?.parse().ok(),
                RedisValue::StringBuffer(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            }),
            _ => None,
        }
    };
    let (entries, value) = (
        read("hash-max-listpack-entries"),
        read("hash-max-listpack-value"),
    );
    MAX_ENTRIES.store(entries.unwrap_or(0), Ordering::Relaxed);
    MAX_VALUE.store(value.unwrap_or(0), Ordering::Relaxed);
}

/// Reads the limits now and after every configuration change.
pub fn track(ctx: &Context) {
    refresh(ctx);
    // SAFETY: SubscribeToServerEvent exists from Redis 7.0 (checked at load);
    // the callback is a plain function that lives as long as the module.
    unsafe {
        if let Some(subscribe) = raw::RedisModule_SubscribeToServerEvent {
            subscribe(
                ctx.get_raw(),
                raw::RedisModuleEvent {
                    id: raw::REDISMODULE_EVENT_CONFIG,
                    dataver: 1,
                },
                Some(on_config_change),
            );
        }
    }
}

extern "C" fn on_config_change(
    ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut c_void,
) {
    // A configuration change is rare: read both settings again rather than
    // parse which ones changed. Never unwind into Redis.
    let _ = std::panic::catch_unwind(|| refresh(&Context::new(ctx)));
}
