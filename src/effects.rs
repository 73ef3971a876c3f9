//! The write journal. A handler decides everything first, then lists its writes
//! here; `commit` applies each through the key API, replicates it as a concrete
//! command with absolute times, and raises the keyspace event the native command
//! would. Applying and replicating are one loop, so they cannot diverge.

use std::os::raw::c_int;
use std::ptr;

use redis_module::{raw, Context, NotifyEvent, RedisString};

use crate::keys::Key;

enum Op {
    /// `DEL key`
    Del(RedisString),
    /// `HSET key field value ...` (on a key that is a hash or absent)
    HSet(RedisString, Vec<(Vec<u8>, Vec<u8>)>),
    /// `PEXPIREAT key at_ms`
    PExpireAt(RedisString, i64),
    /// `SET key value PXAT at_ms`
    SetPxAt(RedisString, Vec<u8>, i64),
    /// `SADD key member ...` (the 7.0 key API has no set calls: runs through
    /// RedisModule_Call without propagation, which also raises the event)
    SAdd(RedisString, Vec<Vec<u8>>),
    /// `SREM key member ...`
    SRem(RedisString, Vec<Vec<u8>>),
}

#[derive(Default)]
pub struct Effects {
    ops: Vec<Op>,
}

impl Effects {
    pub fn new() -> Self {
        Effects::default()
    }
    pub fn del(&mut self, key: &RedisString) -> &mut Self {
        self.ops.push(Op::Del(key.clone()));
        self
    }
    pub fn hset(&mut self, key: &RedisString, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> &mut Self {
        if !pairs.is_empty() {
            self.ops.push(Op::HSet(key.clone(), pairs));
        }
        self
    }
    pub fn pexpireat(&mut self, key: &RedisString, at_ms: i64) -> &mut Self {
        self.ops.push(Op::PExpireAt(key.clone(), at_ms));
        self
    }
    pub fn set_pxat(&mut self, key: &RedisString, value: Vec<u8>, at_ms: i64) -> &mut Self {
        self.ops.push(Op::SetPxAt(key.clone(), value, at_ms));
        self
    }
    pub fn sadd(&mut self, key: &RedisString, members: Vec<Vec<u8>>) -> &mut Self {
        if !members.is_empty() {
            self.ops.push(Op::SAdd(key.clone(), members));
        }
        self
    }
    pub fn srem(&mut self, key: &RedisString, members: Vec<Vec<u8>>) -> &mut Self {
        if !members.is_empty() {
            self.ops.push(Op::SRem(key.clone(), members));
        }
        self
    }
    /// A new record: the hash and its expiry, one atomic step.
    pub fn create_hash(
        &mut self,
        key: &RedisString,
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        at_ms: i64,
    ) -> &mut Self {
        self.hset(key, pairs).pexpireat(key, at_ms)
    }

    /// Applies, replicates and notifies every write, in order.
    pub fn commit(self, ctx: &Context) {
        for op in self.ops {
            match op {
                Op::Del(key) => {
                    let k = Key::open(ctx, &key, true);
                    // SAFETY: k is an open writable key.
                    unsafe {
                        if let Some(f) = raw::RedisModule_DeleteKey {
                            f(k.raw());
                        }
                    }
                    drop(k);
                    ctx.replicate("DEL", &[key.as_slice()]);
                    ctx.notify_keyspace_event(NotifyEvent::GENERIC, "del", &key);
                }
                Op::HSet(key, pairs) => {
                    let k = Key::open(ctx, &key, true);
                    let mut args: Vec<&[u8]> = Vec::with_capacity(1 + pairs.len() * 2);
                    args.push(key.as_slice());
                    for (f, v) in &pairs {
                        let fs = crate::keys::rstr(ctx, f.as_slice());
                        let vs = crate::keys::rstr(ctx, v.as_slice());
                        // SAFETY: k is an open writable key holding a hash or nothing;
                        // HashSet copies field and value; the list ends with NULL.
                        unsafe {
                            if let Some(hs) = raw::RedisModule_HashSet {
                                hs(
                                    k.raw(),
                                    raw::REDISMODULE_HASH_NONE as c_int,
                                    fs.inner,
                                    vs.inner,
                                    ptr::null_mut::<raw::RedisModuleString>(),
                                );
                            }
                        }
                        args.push(f);
                        args.push(v);
                    }
                    drop(k);
                    ctx.replicate("HSET", args.as_slice());
                    ctx.notify_keyspace_event(NotifyEvent::HASH, "hset", &key);
                }
                Op::PExpireAt(key, at) => {
                    let k = Key::open(ctx, &key, true);
                    set_abs_expire(&k, at);
                    drop(k);
                    let at_s = at.to_string();
                    ctx.replicate("PEXPIREAT", &[key.as_slice(), at_s.as_bytes()]);
                    ctx.notify_keyspace_event(NotifyEvent::GENERIC, "expire", &key);
                }
                Op::SetPxAt(key, value, at) => {
                    let k = Key::open(ctx, &key, true);
                    let vs = crate::keys::rstr(ctx, value.as_slice());
                    // SAFETY: k is an open writable key; StringSet copies the value.
                    unsafe {
                        if let Some(f) = raw::RedisModule_StringSet {
                            f(k.raw(), vs.inner);
                        }
                    }
                    set_abs_expire(&k, at);
                    drop(k);
                    let at_s = at.to_string();
                    ctx.replicate(
                        "SET",
                        &[key.as_slice(), value.as_slice(), b"PXAT", at_s.as_bytes()],
                    );
                    ctx.notify_keyspace_event(NotifyEvent::STRING, "set", &key);
                    ctx.notify_keyspace_event(NotifyEvent::GENERIC, "expire", &key);
                }
                Op::SAdd(key, members) => set_call(ctx, "SADD", &key, &members),
                Op::SRem(key, members) => set_call(ctx, "SREM", &key, &members),
            }
        }
    }
}

fn set_abs_expire(k: &Key, at_ms: i64) {
    // SAFETY: k is an open writable key that exists; SetAbsExpire is checked at load.
    unsafe {
        if let Some(f) = raw::RedisModule_SetAbsExpire {
            f(k.raw(), at_ms);
        }
    }
}

/// Runs SADD/SREM locally (not propagated; the call raises its own keyspace
/// event) and replicates the same command.
fn set_call(ctx: &Context, cmd: &str, key: &RedisString, members: &[Vec<u8>]) {
    let mut args: Vec<&[u8]> = Vec::with_capacity(1 + members.len());
    args.push(key.as_slice());
    args.extend(members.iter().map(Vec::as_slice));
    if ctx.call(cmd, args.as_slice()).is_ok() {
        ctx.replicate(cmd, args.as_slice());
    }
}
