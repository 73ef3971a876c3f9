//! The server clock, read once per command. Everything downstream takes `now_ms`
//! as an argument; only absolute times derived from it are replicated.

use redis_module::raw;

/// Unix time in milliseconds from the server (`RedisModule_Milliseconds`).
pub fn now_ms() -> i64 {
    // SAFETY: a plain read of the server clock; presence is checked at load.
    unsafe { raw::RedisModule_Milliseconds.map_or(0, |f| f()) }
}
