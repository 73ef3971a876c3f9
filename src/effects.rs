//! The write path. A handler decides everything first, then describes its
//! writes: one [`Write`] on a key it holds open, through [`apply`], or a
//! list of them in an [`Effects`] journal, through [`Effects::commit`].
//! Both end in the same `write`, which applies a write through the key API
//! (or one `RESTORE`), replicates it as a concrete command with absolute
//! times, and raises the keyspace event the native command would. Applying
//! and replicating are one step, so they cannot diverge; and how a record is
//! written, in one `RESTORE` or field by field, is decided here only.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_int, c_longlong};
use std::ptr;
use std::sync::atomic::AtomicPtr;

use redis_module::{raw, Context, NotifyEvent, RedisString};
use smallvec::SmallVec;

use crate::core::record::Record;
use crate::core::sliding::{F_CURRENT, F_PREVIOUS, F_START};
use crate::core::validate::Pair;
use crate::keys::{made_once, new_string, rstr, share, take_made, Key, KeyKind};
use crate::reply::Forward;

/// One write on one key, as a handler describes it.
pub enum Write<'a> {
    /// `DEL key`
    Del,
    /// `HSET key field value ...` (on a key that is a hash or absent): names
    /// and values alternate, as module strings used both to write and to
    /// replicate. Fewer than one pair writes nothing.
    HSet(Vec<RedisString>),
    /// `PEXPIREAT key at_ms`
    PExpireAt(i64),
    /// `SET key value PXAT at` of an integer (a fixed window's count, a
    /// throttle's TAT, a cutoff). `expiry` is the key's expiry as the
    /// handler read it (None when it has none or was not read): the expiry
    /// is set only when it is not already `at`.
    SetInt {
        value: i64,
        at: i64,
        expiry: Option<i64>,
    },
    /// A sliding window's state (`core::sliding`): `HSET key window_start s
    /// current c previous p`, then `PEXPIREAT key at`.
    Sliding { values: [i64; 3], at: i64 },
    /// A new record (see [`NewRecord`]).
    Record(NewRecord<'a>),
    /// `SADD key member ...` (the 7.0 key API has no set calls: runs through
    /// `RedisModule_Call` without propagation, which also raises the event)
    SAdd(Vec<Vec<u8>>),
    /// `SREM key member ...`
    SRem(Vec<Vec<u8>>),
}

impl<'a> Write<'a> {
    /// A new record on an absent key whose fields the command's own
    /// arguments have already shown in `MONITOR` and `SLOWLOG` (SAVECODE,
    /// SAVESTATE): the header and the caller's pairs, borrowed. The last
    /// `held.len() / 2` pairs are the module strings `held` (the command's
    /// arguments), shared rather than copied if the record is written field
    /// by field.
    pub fn public_record(pairs: &'a [Pair<'a>], held: &'a [RedisString], at: i64) -> Self {
        Write::Record(NewRecord {
            body: Body::Public { pairs, held },
            at,
            replace: false,
        })
    }
}

/// A hash and its absolute expiry, on a key that is absent (or deleted
/// earlier in the same journal) or, with `replace`, in place of whatever the
/// key holds. An empty one writes nothing (deletes the key, when replacing).
pub struct NewRecord<'a> {
    body: Body<'a>,
    at: i64,
    replace: bool,
}

/// The fields of a new record.
enum Body<'a> {
    /// Module strings the handler already holds, names and values alternating.
    Strings(Vec<RedisString>),
    /// Bytes the handler built, kept in one buffer (module strings are made
    /// of them when the record is written).
    Owned(Record),
    /// Fields that hold nothing `MONITOR` has not shown already: a
    /// SAVECODE's or SAVESTATE's own arguments, a tombstone's bookkeeping
    /// (kind, times, key names). Only these may be written by one `RESTORE`
    /// (see [`write_record`]). The last `held.len() / 2` pairs are also the
    /// module strings `held`.
    Public {
        pairs: &'a [Pair<'a>],
        held: &'a [RedisString],
    },
}

impl Body<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Body::Strings(s) => s.len() < 2,
            Body::Owned(rec) => rec.is_empty(),
            Body::Public { pairs, .. } => pairs.is_empty(),
        }
    }

    /// The fields as module strings, names and values alternating.
    fn into_strings(self) -> Vec<RedisString> {
        match self {
            Body::Strings(strings) => strings,
            Body::Owned(rec) => rec
                .fields()
                .flat_map(|(f, v)| [new_string(f), new_string(v)])
                .collect(),
            Body::Public { pairs, held } => {
                let made = pairs.len().saturating_sub(held.len() / 2);
                let mut out = Vec::with_capacity(2 * made + held.len());
                for (f, v) in pairs.get(..made).unwrap_or_default() {
                    out.push(new_string(f));
                    out.push(new_string(v));
                }
                out.extend(held.iter().map(share));
                out
            }
        }
    }
}

/// Applies, replicates and notifies one write on `name` through `key`, the
/// handle the handler checked it with (opened again for writing if it was
/// opened read-only), then closes it. `RESTORE`'s reply when the write was
/// a public record written by one `RESTORE` (SAVECODE passes its `+OK` on);
/// None otherwise.
pub fn apply(ctx: &Context, name: &RedisString, key: Key, w: Write<'_>) -> Option<Forward> {
    let mut handle = key.is_writable().then_some(key);
    write(ctx, name, &mut handle, w)
}

/// A journal of writes, committed in order. Most commands journal a few
/// writes on a few keys: those stay inline.
#[derive(Default)]
pub struct Effects<'a> {
    writes: SmallVec<[(RedisString, Write<'a>); 4]>,
    /// Keys open for writing during `commit`, each opened once (or adopted);
    /// None once closed.
    open: SmallVec<[(RedisString, Option<Key>); 4]>,
    /// Where each name is in `open`, once there are more than
    /// [`LINEAR_LOOKUP`] (REVOKE and RATELIMITALL may name thousands of keys:
    /// a scan per write would make them quadratic).
    index: HashMap<Vec<u8>, usize>,
}

/// Up to this many open keys, a name is found by scanning.
const LINEAR_LOOKUP: usize = 8;

impl<'a> Effects<'a> {
    pub fn new() -> Self {
        Effects::default()
    }
    /// Any write on `key`.
    pub fn push(&mut self, key: &RedisString, w: Write<'a>) -> &mut Self {
        self.writes.push((share(key), w));
        self
    }
    pub fn del(&mut self, key: &RedisString) -> &mut Self {
        self.push(key, Write::Del)
    }
    pub fn hset<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: &RedisString,
        pairs: impl IntoIterator<Item = (F, V)>,
    ) -> &mut Self {
        let strings = pairs
            .into_iter()
            .flat_map(|(f, v)| [new_string(f.as_ref()), new_string(v.as_ref())])
            .collect();
        self.hset_strings(key, strings)
    }
    /// `hset` with the names and values already module strings, alternating
    /// (for instance the command's own arguments, which are then not copied).
    pub fn hset_strings(&mut self, key: &RedisString, strings: Vec<RedisString>) -> &mut Self {
        self.push(key, Write::HSet(strings))
    }
    pub fn pexpireat(&mut self, key: &RedisString, at_ms: i64) -> &mut Self {
        self.push(key, Write::PExpireAt(at_ms))
    }
    /// `SET key value PXAT at_ms` of an integer (see [`Write::SetInt`]).
    pub fn set_int(
        &mut self,
        key: &RedisString,
        value: i64,
        at_ms: i64,
        expiry: Option<i64>,
    ) -> &mut Self {
        self.push(
            key,
            Write::SetInt {
                value,
                at: at_ms,
                expiry,
            },
        )
    }
    pub fn sadd(&mut self, key: &RedisString, members: Vec<Vec<u8>>) -> &mut Self {
        self.push(key, Write::SAdd(members))
    }
    pub fn srem(&mut self, key: &RedisString, members: Vec<Vec<u8>>) -> &mut Self {
        self.push(key, Write::SRem(members))
    }
    /// A new record on a key that is absent (or deleted earlier in this
    /// journal): the hash and its expiry, one atomic step.
    pub fn create_hash<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: &RedisString,
        pairs: impl IntoIterator<Item = (F, V)>,
        at_ms: i64,
    ) -> &mut Self {
        self.record(key, Body::Owned(pairs.into_iter().collect()), at_ms, false)
    }
    /// `create_hash` from module strings (see `hset_strings`).
    pub fn create_hash_strings(
        &mut self,
        key: &RedisString,
        strings: Vec<RedisString>,
        at_ms: i64,
    ) -> &mut Self {
        self.record(key, Body::Strings(strings), at_ms, false)
    }
    /// A record that takes the place of whatever `key` holds (a replaced
    /// client registration): as `del` then `create_hash`.
    pub fn replace_hash<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: &RedisString,
        pairs: impl IntoIterator<Item = (F, V)>,
        at_ms: i64,
    ) -> &mut Self {
        self.record(key, Body::Owned(pairs.into_iter().collect()), at_ms, true)
    }
    /// A consumed code's or rotated refresh token's tombstone taking the
    /// place of the record, from borrowed pairs. A tombstone holds only the
    /// module's bookkeeping (kind, times, key names), so it is a public
    /// record (see [`write_record`]): `MONITOR` and `SLOWLOG` learn nothing
    /// from it that a key name does not tell.
    pub fn replace_tombstone(
        &mut self,
        key: &RedisString,
        pairs: &'a [Pair<'a>],
        at_ms: i64,
    ) -> &mut Self {
        self.record(key, Body::Public { pairs, held: &[] }, at_ms, true)
    }
    fn record(&mut self, key: &RedisString, body: Body<'a>, at: i64, replace: bool) -> &mut Self {
        self.push(key, Write::Record(NewRecord { body, at, replace }))
    }

    /// Hands over a key the handler already opened for writing (to read it),
    /// so `commit` writes through the same handle instead of opening it again.
    /// A key opened read-only is simply closed.
    pub fn adopt(&mut self, name: &RedisString, key: Key) -> &mut Self {
        if key.is_writable() {
            match self.position(name.as_slice()) {
                Some(i) => {
                    if let Some((_, slot @ None)) = self.open.get_mut(i) {
                        *slot = Some(key);
                    }
                }
                None => self.open.push((share(name), Some(key))),
            }
        }
        self
    }

    /// Applies, replicates and notifies every write, in order.
    pub fn commit(mut self, ctx: &Context) {
        let writes = std::mem::take(&mut self.writes);
        for (name, w) in writes {
            // A RESTORE's reply matters only to `apply`'s caller.
            drop(write(ctx, &name, self.handle(&name), w));
        }
    }

    /// The index of `name` in `open`.
    fn position(&mut self, name: &[u8]) -> Option<usize> {
        if self.open.len() <= LINEAR_LOOKUP {
            return self.open.iter().position(|(n, _)| n.as_slice() == name);
        }
        for (i, (n, _)) in self.open.iter().enumerate().skip(self.index.len()) {
            self.index.insert(n.as_slice().to_vec(), i);
        }
        self.index.get(name).copied()
    }

    /// The handle slot of `name`: its open key, or None until `write` opens it.
    fn handle(&mut self, name: &RedisString) -> &mut Option<Key> {
        let i = match self.position(name.as_slice()) {
            Some(i) => i,
            None => {
                self.open.push((share(name), None));
                self.open.len() - 1
            }
        };
        &mut self.open[i].1
    }
}

/// The handle in `slot`, opening `name` for writing the first time.
fn open<'k>(ctx: &Context, name: &RedisString, slot: &'k mut Option<Key>) -> &'k Key {
    slot.get_or_insert_with(|| Key::open(ctx, name, true))
}

/// Applies, replicates and notifies `w` on `name`, through the handle in
/// `slot` (opened on first use, closed before a write that does not go
/// through it). `RESTORE`'s reply when it wrote a record.
fn write(
    ctx: &Context,
    name: &RedisString,
    slot: &mut Option<Key>,
    w: Write<'_>,
) -> Option<Forward> {
    match w {
        Write::Del => {
            delete(open(ctx, name, slot));
            replicate(ctx, c"DEL", &[name.inner]);
            notify(ctx, NotifyEvent::GENERIC, c"del", name);
        }
        Write::HSet(strings) => {
            if strings.len() >= 2 {
                hash_set(open(ctx, name, slot), &strings);
                replicate_hset(ctx, name, &strings);
                notify(ctx, NotifyEvent::HASH, c"hset", name);
            }
        }
        Write::PExpireAt(at) => {
            set_abs_expire(open(ctx, name, slot), at);
            let at_s = int_string(ctx, at);
            replicate(ctx, c"PEXPIREAT", &[name.inner, at_s.inner]);
            notify(ctx, NotifyEvent::GENERIC, c"expire", name);
        }
        Write::SetInt { value, at, expiry } => {
            set_int(ctx, name, open(ctx, name, slot), value, at, expiry);
        }
        Write::Sliding { values, at } => {
            if !set_sliding(ctx, name, open(ctx, name, slot), values, at) {
                let [start, current, previous] = values.map(|v| v.to_string());
                let strings = [
                    (F_START, start),
                    (F_CURRENT, current),
                    (F_PREVIOUS, previous),
                ]
                .iter()
                .flat_map(|(f, v)| [new_string(f), new_string(v.as_bytes())])
                .collect();
                write(ctx, name, slot, Write::HSet(strings));
                write(ctx, name, slot, Write::PExpireAt(at));
            }
        }
        Write::Record(rec) => return write_record(ctx, name, slot, rec),
        Write::SAdd(members) => {
            if !members.is_empty() {
                *slot = None;
                set_call(ctx, "SADD", name, &members);
            }
        }
        Write::SRem(members) => {
            if !members.is_empty() {
                *slot = None;
                set_call(ctx, "SREM", name, &members);
            }
        }
    }
    None
}

/// Writes a new record. Public fields (see [`Body::Public`]) go in one
/// `RESTORE ... ABSTTL [REPLACE]` when they make a listpack under the
/// server's settings (see [`restore`]); `RESTORE` raises only its own
/// `restore` event, on the master and on a replica alike. Every other record,
/// or one the server refuses to restore, is written field by field: `DEL`
/// (when replacing), `HSET`, `PEXPIREAT`, each applied and replicated as the
/// native command would be, with the events `del` (when replacing), `hset`
/// and `expire`. Records with the caller's or a secret's values never go
/// through `RESTORE`: a `RESTORE` run by the module shows in `MONITOR` and
/// `SLOWLOG` with the whole record.
fn write_record(
    ctx: &Context,
    name: &RedisString,
    slot: &mut Option<Key>,
    rec: NewRecord<'_>,
) -> Option<Forward> {
    let NewRecord { body, at, replace } = rec;
    if body.is_empty() {
        if replace {
            write(ctx, name, slot, Write::Del);
        }
        return None;
    }
    if let Body::Public { pairs, .. } = &body {
        if let Some(payload) = payload(pairs) {
            // RESTORE replaces the key behind the handle: close it first, so
            // a later write on this key opens it afresh.
            *slot = None;
            if let Some(reply) = restore(ctx, name, &payload, at, replace) {
                return Some(reply);
            }
        }
    }
    if replace {
        notify(ctx, NotifyEvent::GENERIC, c"del", name);
    }
    write_fields(ctx, name, slot, &body.into_strings(), at, replace);
    notify(ctx, NotifyEvent::HASH, c"hset", name);
    notify(ctx, NotifyEvent::GENERIC, c"expire", name);
    None
}

/// A new hash written field by field: `DEL` (when replacing; its event is
/// the caller's), `HSET`, `PEXPIREAT`, each applied and replicated.
fn write_fields(
    ctx: &Context,
    name: &RedisString,
    slot: &mut Option<Key>,
    strings: &[RedisString],
    at: i64,
    replace: bool,
) {
    if replace {
        delete(open(ctx, name, slot));
        replicate(ctx, c"DEL", &[name.inner]);
    }
    hash_set(open(ctx, name, slot), strings);
    replicate_hset(ctx, name, strings);
    set_abs_expire(open(ctx, name, slot), at);
    let at_s = int_string(ctx, at);
    replicate(ctx, c"PEXPIREAT", &[name.inner, at_s.inner]);
}

/// `HSET name field value ...`, replicated from the strings written.
fn replicate_hset(ctx: &Context, name: &RedisString, strings: &[RedisString]) {
    let mut argv = Vec::with_capacity(1 + strings.len());
    argv.push(name.inner);
    argv.extend(strings.iter().map(|s| s.inner));
    replicate(ctx, c"HSET", &argv);
}

fn delete(k: &Key) {
    // SAFETY: k is an open writable key.
    unsafe {
        if let Some(f) = raw::RedisModule_DeleteKey {
            f(k.raw());
        }
    }
}

/// The `DUMP` payload of a hash of `pairs` when it is a listpack under the
/// server's current settings (`crate::encoding`).
fn payload(pairs: &[(&[u8], &[u8])]) -> Option<Vec<u8>> {
    crate::core::dump::hash_payload(pairs, crate::encoding::limits()?)
}

/// `RESTORE name at payload ABSTTL [REPLACE]` through `RedisModule_Call`
/// with `!`, so it is applied and replicated as that one deterministic
/// command: the listpack built in one piece (`core::dump`) instead of growing
/// by a reallocation per field, and one command for the replicas and the AOF
/// instead of `HSET` + `PEXPIREAT` in `MULTI`. No key of `name` may be open.
/// `RESTORE`'s reply on success; None when the server refuses (the key
/// exists without `replace`, or `RESTORE` is renamed away): nothing was
/// written then.
fn restore(
    ctx: &Context,
    name: &RedisString,
    payload: &[u8],
    at: i64,
    replace: bool,
) -> Option<Forward> {
    let abs = word(&ABSTTL, b"ABSTTL");
    let rep = word(&REPLACE, b"REPLACE");
    if abs.is_null() || rep.is_null() {
        return None;
    }
    // SAFETY: "!" replicates the command as run; "s" a live module string
    // (the words live as long as the module), "l" a long long, "b" a
    // pointer and its length; the reply is returned to the caller, who
    // frees it (`Forward`), or freed here when it is an error.
    unsafe {
        let (Some(call), Some(kind), Some(free)) = (
            raw::RedisModule_Call,
            raw::RedisModule_CallReplyType,
            raw::RedisModule_FreeCallReply,
        ) else {
            return None;
        };
        let (c, cmd, at) = (ctx.get_raw(), c"RESTORE".as_ptr(), at as c_longlong);
        let (p, n, k) = (payload.as_ptr(), payload.len(), name.inner);
        let reply = if replace {
            call(c, cmd, c"!slbss".as_ptr(), k, at, p, n, abs, rep)
        } else {
            call(c, cmd, c"!slbs".as_ptr(), k, at, p, n, abs)
        };
        if reply.is_null() {
            return None;
        }
        if kind(reply) == raw::REDISMODULE_REPLY_ERROR as c_int {
            free(reply);
            return None;
        }
        Some(Forward::new(reply))
    }
}

/// `SET name value PXAT at` of an integer through the open handle `k`: the
/// value is written in place (`StringTruncate` + DMA, a new string only when
/// the key is absent), the expiry set only when `current_expiry` is not
/// already `at`, then the same `SET ... PXAT` is replicated and the `set`
/// and `expire` events raised. No module string is made per call: the value
/// and the time go to `RedisModule_Replicate` as bytes ("b": Redis makes one
/// small object of each, where "l" makes two and a module string costs a
/// module call and a free more), `PXAT` is a word made once.
fn set_int(
    ctx: &Context,
    name: &RedisString,
    k: &Key,
    value: i64,
    at: i64,
    current_expiry: Option<i64>,
) {
    let mut buf = [0u8; 20];
    let text = crate::core::record::decimal(value, &mut buf);
    if !write_string(k, text) && !k.raw().is_null() {
        let vs = rstr(ctx, text);
        // SAFETY: k is an open writable key; StringSet copies the value.
        unsafe {
            if let Some(f) = raw::RedisModule_StringSet {
                f(k.raw(), vs.inner);
            }
        }
    }
    if current_expiry != Some(at) {
        set_abs_expire(k, at);
    }
    let mut at_buf = [0u8; 20];
    let at_text = crate::core::record::decimal(at, &mut at_buf);
    let pxat = word(&PXAT, b"PXAT");
    // SAFETY: "s" a live module string (the key; the word lives as long as
    // the module), "b" a pointer and its length (Redis copies the bytes into
    // an object of its own), "c" a C string; one argument per letter.
    unsafe {
        if let Some(f) = raw::RedisModule_Replicate {
            let (c, set) = (ctx.get_raw(), c"SET".as_ptr());
            let (v, vn, t, tn) = (text.as_ptr(), text.len(), at_text.as_ptr(), at_text.len());
            if pxat.is_null() {
                let px = c"PXAT".as_ptr();
                f(c, set, c"sbcb".as_ptr(), name.inner, v, vn, px, t, tn);
            } else {
                f(c, set, c"sbsb".as_ptr(), name.inner, v, vn, pxat, t, tn);
            }
        }
    }
    notify(ctx, NotifyEvent::STRING, c"set", name);
    notify(ctx, NotifyEvent::GENERIC, c"expire", name);
}

/// `HSET key window_start s current c previous p` then `PEXPIREAT key at`
/// through the open handle `k`: the three field names are words made once
/// (`sliding_names`), the three values module strings made here (`HashSet`
/// takes no bytes), shared by the write and the replicated `HSET`; the
/// expiry is set only when it is not already `at`, but `PEXPIREAT` is
/// replicated and `expire` raised all the same. False, having done nothing,
/// when the names cannot be made: the caller then writes the fields from
/// strings of its own.
fn set_sliding(ctx: &Context, name: &RedisString, k: &Key, values: [i64; 3], at: i64) -> bool {
    let Some([n1, n2, n3]) = sliding_names() else {
        return false;
    };
    if k.raw().is_null() {
        return false;
    }
    let [v1, v2, v3] = values.map(|v| int_string(ctx, v));
    // SAFETY: k is an open writable key holding a hash or nothing; every
    // pointer is a live module string (HashSet copies them, Replicate
    // retains them); each format letter is matched by one argument.
    unsafe {
        let (Some(hs), Some(rep)) = (raw::RedisModule_HashSet, raw::RedisModule_Replicate) else {
            return false;
        };
        let none = raw::REDISMODULE_HASH_NONE as c_int;
        let (v1, v2, v3) = (v1.inner, v2.inner, v3.inner);
        hs(
            k.raw(),
            none,
            n1,
            v1,
            n2,
            v2,
            n3,
            v3,
            ptr::null_mut::<raw::RedisModuleString>(),
        );
        let c = ctx.get_raw();
        rep(
            c,
            c"HSET".as_ptr(),
            c"sssssss".as_ptr(),
            name.inner,
            n1,
            v1,
            n2,
            v2,
            n3,
            v3,
        );
    }
    notify(ctx, NotifyEvent::HASH, c"hset", name);
    if k.abs_expire() != Some(at) {
        set_abs_expire(k, at);
    }
    let mut at_buf = [0u8; 20];
    let at_text = crate::core::record::decimal(at, &mut at_buf);
    // SAFETY: "s" the live key name, "b" a pointer and its length.
    unsafe {
        if let Some(rep) = raw::RedisModule_Replicate {
            let (p, n) = (at_text.as_ptr(), at_text.len());
            rep(
                ctx.get_raw(),
                c"PEXPIREAT".as_ptr(),
                c"sb".as_ptr(),
                name.inner,
                p,
                n,
            );
        }
    }
    notify(ctx, NotifyEvent::GENERIC, c"expire", name);
    true
}

/// The field names of a sliding window (`core::sliding`), as words made once.
pub fn sliding_names() -> Option<[*mut raw::RedisModuleString; 3]> {
    let names = [
        word(&F_START_WORD, crate::core::sliding::F_START),
        word(&F_CURRENT_WORD, crate::core::sliding::F_CURRENT),
        word(&F_PREVIOUS_WORD, crate::core::sliding::F_PREVIOUS),
    ];
    (!names.iter().any(|p| p.is_null())).then_some(names)
}

static F_START_WORD: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());
static F_CURRENT_WORD: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());
static F_PREVIOUS_WORD: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());

/// `SET`'s `PXAT`, made once (see [`ABSTTL`]).
static PXAT: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());

/// RESTORE's `ABSTTL` and `REPLACE` as module strings made on first use and
/// kept until the module unloads: `RedisModule_Call` passes a module string
/// on by its reference count, but copies a C string into a new object on
/// every call.
static ABSTTL: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());
static REPLACE: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(ptr::null_mut());

/// The word in `slot`, made from `text` the first time (null if it cannot be).
fn word(slot: &AtomicPtr<raw::RedisModuleString>, text: &[u8]) -> *mut raw::RedisModuleString {
    made_once(slot, || {
        // SAFETY: creating a string with no context (Redis allows NULL); it
        // is owned by the static until `free_words`.
        unsafe {
            raw::RedisModule_CreateString.map_or(ptr::null_mut(), |f| {
                f(ptr::null_mut(), text.as_ptr().cast(), text.len())
            })
        }
    })
}

/// Frees the words (from `OnUnload`).
pub fn free_words() {
    for slot in [
        &ABSTTL,
        &REPLACE,
        &PXAT,
        &F_START_WORD,
        &F_CURRENT_WORD,
        &F_PREVIOUS_WORD,
    ] {
        if let Some(s) = take_made(slot) {
            // SAFETY: s was made by `word` and nothing else holds it
            // (RedisModule_Call releases its references before returning).
            unsafe {
                if let Some(f) = raw::RedisModule_FreeString {
                    f(ptr::null_mut(), s);
                }
            }
        }
    }
}

/// `RedisModule_HashSet` of alternating names and values, up to eight pairs
/// per call: each call opens and checks the key again, so a 9-field record
/// costs two calls instead of nine.
fn hash_set(k: &Key, strings: &[RedisString]) {
    let Some(hs) = (unsafe { raw::RedisModule_HashSet }) else {
        return;
    };
    let (k, none, end) = (
        k.raw(),
        raw::REDISMODULE_HASH_NONE as c_int,
        ptr::null_mut::<raw::RedisModuleString>(),
    );
    for group in strings.chunks(16) {
        let mut buf = [end; 16];
        for (slot, s) in buf.iter_mut().zip(group) {
            *slot = s.inner;
        }
        let s = buf.get(..group.len()).unwrap_or_default();
        // SAFETY: k is an open writable key holding a hash or nothing; every
        // pointer is a live module string that HashSet copies; each list of
        // names and values ends with NULL.
        unsafe {
            match *s {
                [a, b] => hs(k, none, a, b, end),
                [a, b, c, d] => hs(k, none, a, b, c, d, end),
                [a, b, c, d, e, f] => hs(k, none, a, b, c, d, e, f, end),
                [a, b, c, d, e, f, g, h] => hs(k, none, a, b, c, d, e, f, g, h, end),
                [a, b, c, d, e, f, g, h, i, j] => hs(k, none, a, b, c, d, e, f, g, h, i, j, end),
                [a, b, c, d, e, f, g, h, i, j, l, m] => {
                    hs(k, none, a, b, c, d, e, f, g, h, i, j, l, m, end)
                }
                [a, b, c, d, e, f, g, h, i, j, l, m, n, o] => {
                    hs(k, none, a, b, c, d, e, f, g, h, i, j, l, m, n, o, end)
                }
                [a, b, c, d, e, f, g, h, i, j, l, m, n, o, p, q] => {
                    hs(k, none, a, b, c, d, e, f, g, h, i, j, l, m, n, o, p, q, end)
                }
                // Not reached (names and values come in pairs); a pair per
                // call all the same.
                _ => {
                    for fv in s.chunks_exact(2) {
                        if let [f, v] = *fv {
                            hs(k, none, f, v, end);
                        }
                    }
                    0
                }
            };
        }
    }
}

/// `RedisModule_Replicate` of `cmd` with arguments that are module strings the
/// caller already holds (Redis only retains them). Short commands pass each
/// string on its own ("s" per argument), which spares Redis growing its
/// argument array; longer ones pass the array ("v").
fn replicate(ctx: &Context, cmd: &CStr, argv: &[*mut raw::RedisModuleString]) {
    // SAFETY: every pointer is a live module string; each format letter is
    // matched by one argument ("v": the array and its length).
    unsafe {
        let Some(f) = raw::RedisModule_Replicate else {
            return;
        };
        let (c, cmd) = (ctx.get_raw(), cmd.as_ptr());
        match *argv {
            [a] => f(c, cmd, c"s".as_ptr(), a),
            [a, b] => f(c, cmd, c"ss".as_ptr(), a, b),
            [a, b, d] => f(c, cmd, c"sss".as_ptr(), a, b, d),
            [a, b, d, e] => f(c, cmd, c"ssss".as_ptr(), a, b, d, e),
            _ => f(c, cmd, c"v".as_ptr(), argv.as_ptr(), argv.len()),
        };
    }
}

/// The decimal module string of `n`, formatted by Redis.
fn int_string(ctx: &Context, n: i64) -> RedisString {
    // SAFETY: plain string creation on the live context; the returned
    // RedisString owns the new string.
    unsafe {
        match raw::RedisModule_CreateStringFromLongLong {
            Some(f) => RedisString::from_redis_module_string(ctx.get_raw(), f(ctx.get_raw(), n)),
            None => rstr(ctx, n.to_string().as_bytes()),
        }
    }
}

/// The keyspace event the native command would raise.
fn notify(ctx: &Context, kind: NotifyEvent, event: &CStr, key: &RedisString) {
    // SAFETY: event is a static C string; key is a live module string.
    unsafe {
        if let Some(f) = raw::RedisModule_NotifyKeyspaceEvent {
            f(ctx.get_raw(), kind.bits(), event.as_ptr(), key.inner);
        }
    }
}

/// Writes `value` over a string key in place (keeping the key, its dict
/// entry and its expiry), as INCR does, or on an absent key makes a new
/// string of it with `StringTruncate` (a plain string Redis allocates, no
/// module string); false when the key holds another type or the value is
/// empty.
fn write_string(k: &Key, value: &[u8]) -> bool {
    if k.raw().is_null()
        || !matches!(k.kind(), KeyKind::String | KeyKind::Missing)
        || value.is_empty()
    {
        return false;
    }
    // SAFETY: k is an open writable string key; after Truncate the DMA pointer
    // is valid for exactly value.len() bytes.
    unsafe {
        let (Some(truncate), Some(dma)) =
            (raw::RedisModule_StringTruncate, raw::RedisModule_StringDMA)
        else {
            return false;
        };
        if truncate(k.raw(), value.len()) != raw::Status::Ok as c_int {
            return false;
        }
        let mut len = 0usize;
        let p = dma(
            k.raw(),
            &mut len,
            (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int,
        );
        if p.is_null() || len != value.len() {
            return false;
        }
        ptr::copy_nonoverlapping(value.as_ptr(), p.cast::<u8>(), len);
    }
    true
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
