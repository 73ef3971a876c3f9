//! The server clock, read once per command. Everything downstream takes `now_ms`
//! as an argument; only absolute times derived from it are replicated.

use redis_module::raw;

/// Unix time in milliseconds from the server (`RedisModule_Milliseconds`).
pub fn now_ms() -> i64 {
    // SAFETY: a plain read of the server clock; presence is checked at load.
    unsafe { raw::RedisModule_Milliseconds.map_or(0, |f| f()) }
}

/// Unix time in nanoseconds for GCRA's sub-millisecond arithmetic. Uses the
/// server's microsecond clock where it has one (7.2+), else the system clock
/// (the same wall clock Redis reads). Only ever evaluated on the master: the
/// resulting TAT is replicated as a value, never recomputed.
pub fn now_ns() -> i64 {
    // SAFETY: a plain read of the server clock.
    let micros = unsafe { raw::RedisModule_Microseconds.map(|f| f()) };
    match micros {
        Some(us) if us > 0 => us.saturating_mul(1000),
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or_else(|_| now_ms().saturating_mul(1_000_000)),
    }
}
