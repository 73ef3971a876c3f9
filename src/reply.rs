//! Replies. Handlers return a [`Reply`] or an [`OAuthError`]; this file is the
//! only place that writes to the client, so protocol choices live here:
//! maps are RESP3 maps and flat `[k, v, ...]` arrays in RESP2 (Redis does the
//! downgrade), booleans are `#t/#f` in RESP3 and `:1/:0` in RESP2.

use std::ffi::CString;
use std::os::raw::{c_char, c_long};

use redis_module::{raw, Context};

use crate::core::record::Record;
use crate::core::OAuthError;

pub enum Value {
    Bytes(Vec<u8>),
    Int(i64),
    Bool(bool),
    /// A nested map (a listed record's fields).
    Map(Vec<(Vec<u8>, Value)>),
}

pub enum Reply {
    Ok,
    Null,
    Integer(i64),
    Integers(Vec<i64>),
    /// Up to six integers without a heap allocation (the rate limiters'
    /// verdicts): the first `len` of the array.
    Ints([i64; 6], usize),
    /// Status lines, as Redis's own `... HELP` answers.
    Lines(Vec<String>),
    Map(Vec<(Vec<u8>, Value)>),
    /// A map of a record's fields, answered straight from the loaded record.
    Record(RecordMap),
    /// A bulk string (a cursor).
    Bulk(Vec<u8>),
    /// An array of replies (a cursor and what one step found).
    Array(Vec<Reply>),
    /// The `+OK` of a command the module ran through `RedisModule_Call`,
    /// passed on as Redis wrote it.
    Forward(Forward),
}

/// The reply of a command the module ran through `RedisModule_Call` (the
/// `RESTORE` that writes a record), freed on drop. `into_reply` passes a
/// `+OK` on as is: `RedisModule_ReplyWithCallReply` copies its five bytes,
/// where `RedisModule_ReplyWithSimpleString` copies the text into a new
/// string to check it for line breaks (an allocation on every SAVECODE).
pub struct Forward(*mut raw::RedisModuleCallReply);

impl Forward {
    /// Takes ownership of `reply` (not null, not yet freed).
    ///
    /// # Safety
    /// `reply` comes from `RedisModule_Call` and nothing else frees it.
    pub unsafe fn new(reply: *mut raw::RedisModuleCallReply) -> Forward {
        Forward(reply)
    }

    /// `Reply::Forward` when the reply is exactly `+OK`, else `Reply::Ok`.
    pub fn into_reply(self) -> Reply {
        let mut len = 0usize;
        // SAFETY: self.0 is a live call reply; the protocol bytes live as
        // long as it does and are only compared here.
        let is_ok = unsafe {
            raw::RedisModule_CallReplyProto.is_some_and(|f| {
                let p = f(self.0, &mut len);
                !p.is_null() && std::slice::from_raw_parts(p.cast::<u8>(), len) == b"+OK\r\n"
            })
        };
        // SAFETY: reading a function pointer filled in by RedisModule_Init.
        let can_forward = unsafe {
            let f = raw::RedisModule_ReplyWithCallReply;
            f.is_some()
        };
        if is_ok && can_forward {
            Reply::Forward(self)
        } else {
            Reply::Ok
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        // SAFETY: self.0 is a live call reply owned by this value.
        unsafe {
            if let Some(free) = raw::RedisModule_FreeCallReply {
                free(self.0);
            }
        }
    }
}

/// A map reply: `head`, then the fields of `rec` that `keep` selects, in
/// stored order, then `tail`.
pub struct RecordMap {
    pub head: Vec<(&'static [u8], Value)>,
    pub rec: Record,
    pub keep: fn(&[u8]) -> bool,
    pub tail: Vec<(&'static [u8], Value)>,
}

/// The five integers of a rate-limit verdict, then `extra` (RATELIMITALL's
/// deciding limit), as an array reply.
pub fn verdict(five: [i64; 5], extra: Option<i64>) -> Reply {
    let [a, b, c, d, e] = five;
    match extra {
        Some(f) => Reply::Ints([a, b, c, d, e, f], 6),
        None => Reply::Ints([a, b, c, d, e, 0], 5),
    }
}

/// A map reply from byte pairs.
pub fn bytes_map<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(f, v)| (f.to_vec(), Value::Bytes(v.to_vec())))
            .collect(),
    )
}

fn simple(ctx: *mut raw::RedisModuleCtx, s: &str) {
    let c = CString::new(s.replace(['\r', '\n', '\0'], " ")).unwrap_or_default();
    // SAFETY: ctx is the live command context; c outlives the call.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithSimpleString {
            f(ctx, c.as_ptr());
        }
    }
}

fn bulk(ctx: *mut raw::RedisModuleCtx, b: &[u8]) {
    // SAFETY: the buffer is valid for b.len() bytes; Redis copies it.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithStringBuffer {
            f(ctx, b.as_ptr() as *const c_char, b.len());
        }
    }
}

fn int(ctx: *mut raw::RedisModuleCtx, v: i64) {
    // SAFETY: plain reply call on the live context.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithLongLong {
            f(ctx, v);
        }
    }
}

fn array(ctx: *mut raw::RedisModuleCtx, len: usize) {
    // SAFETY: plain reply call on the live context.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithArray {
            f(ctx, len as c_long);
        }
    }
}

/// Writes the reply or the error `"<CODE> <sentence>"`.
pub fn emit(ctx: &Context, result: Result<Reply, OAuthError>) {
    let c = ctx.get_raw();
    match result {
        Err(e) => {
            let msg =
                CString::new(e.to_string().replace(['\r', '\n', '\0'], " ")).unwrap_or_default();
            // SAFETY: msg outlives the call.
            unsafe {
                if let Some(f) = raw::RedisModule_ReplyWithError {
                    f(c, msg.as_ptr());
                }
            }
        }
        Ok(reply) => write(c, reply),
    }
}

/// Writes one reply (recursively for arrays).
fn write(c: *mut raw::RedisModuleCtx, reply: Reply) {
    match reply {
        // SAFETY: plain reply call on the live context with a static string.
        Reply::Ok => unsafe {
            if let Some(f) = raw::RedisModule_ReplyWithSimpleString {
                f(c, c"OK".as_ptr());
            }
        },
        // SAFETY: r holds a live call reply (freed when r drops, after Redis
        // has copied it into the client's output); `into_reply` made a
        // Forward only where ReplyWithCallReply exists.
        Reply::Forward(r) => unsafe {
            if let Some(f) = raw::RedisModule_ReplyWithCallReply {
                f(c, r.0);
            }
        },
        Reply::Null => unsafe {
            // SAFETY: plain reply call on the live context.
            if let Some(f) = raw::RedisModule_ReplyWithNull {
                f(c);
            }
        },
        Reply::Integer(v) => int(c, v),
        Reply::Integers(vs) => {
            array(c, vs.len());
            for v in vs {
                int(c, v);
            }
        }
        Reply::Ints(vs, len) => {
            let vs = vs.get(..len).unwrap_or(&vs);
            array(c, vs.len());
            for v in vs {
                int(c, *v);
            }
        }
        Reply::Lines(lines) => {
            array(c, lines.len());
            for l in lines {
                simple(c, &l);
            }
        }
        Reply::Map(pairs) => {
            map(c, pairs.len());
            for (k, v) in &pairs {
                bulk(c, k);
                value(c, v);
            }
        }
        Reply::Bulk(b) => bulk(c, &b),
        Reply::Array(items) => {
            array(c, items.len());
            for item in items {
                write(c, item);
            }
        }
        Reply::Record(r) => {
            let kept = r.rec.fields().filter(|(f, _)| (r.keep)(f)).count();
            map(c, r.head.len() + kept + r.tail.len());
            for (k, v) in &r.head {
                bulk(c, k);
                value(c, v);
            }
            for (k, v) in r.rec.fields().filter(|(f, _)| (r.keep)(f)) {
                bulk(c, k);
                bulk(c, v);
            }
            for (k, v) in &r.tail {
                bulk(c, k);
                value(c, v);
            }
        }
    }
}

fn map(ctx: *mut raw::RedisModuleCtx, len: usize) {
    // SAFETY: ReplyWithMap emits a flat array of 2*len in RESP2.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithMap {
            f(ctx, len as c_long);
        }
    }
}

fn value(ctx: *mut raw::RedisModuleCtx, v: &Value) {
    match v {
        Value::Bytes(b) => bulk(ctx, b),
        Value::Int(i) => int(ctx, *i),
        Value::Map(pairs) => {
            map(ctx, pairs.len());
            for (k, v) in pairs {
                bulk(ctx, k);
                value(ctx, v);
            }
        }
        Value::Bool(b) => unsafe {
            // SAFETY: ReplyWithBool is `:1/:0` in RESP2, `#t/#f` in RESP3.
            if let Some(f) = raw::RedisModule_ReplyWithBool {
                f(ctx, i32::from(*b));
            }
        },
    }
}
