//! The write journal. A handler decides everything first, then lists its writes
//! here; `commit` applies each through the key API, replicates it as a concrete
//! command with absolute times, and raises the keyspace event the native command
//! would. Applying and replicating are one loop, so they cannot diverge.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_int, c_longlong};
use std::ptr;
use std::sync::atomic::AtomicPtr;

use redis_module::{raw, Context, NotifyEvent, RedisString};
use smallvec::SmallVec;

use crate::core::record::Record;
use crate::keys::{made_once, new_string, rstr, share, take_made, Key, KeyKind};
use crate::reply::Forward;

enum Op {
    /// `DEL key`
    Del(RedisString),
    /// `HSET key field value ...` (on a key that is a hash or absent): names
    /// and values alternate, as module strings used both to write and to
    /// replicate.
    HSet(RedisString, Vec<RedisString>),
    /// `PEXPIREAT key at_ms`
    PExpireAt(RedisString, i64),
    /// A new hash with its absolute expiry: `DEL` (when replacing), `HSET`,
    /// `PEXPIREAT`; a tombstone in one `RESTORE` (see
    /// [`Effects::replace_tombstone`]). Without replace the key is absent when
    /// the entry runs.
    Create {
        key: RedisString,
        body: Body,
        at: i64,
        replace: bool,
        tombstone: bool,
    },
    /// `SET key value PXAT at_ms`
    SetPxAt(RedisString, Vec<u8>, i64),
    /// `SADD key member ...` (the 7.0 key API has no set calls: runs through
    /// RedisModule_Call without propagation, which also raises the event)
    SAdd(RedisString, Vec<Vec<u8>>),
    /// `SREM key member ...`
    SRem(RedisString, Vec<Vec<u8>>),
}

/// The fields of a hash to create: module strings the handler already holds
/// (names and values alternating), or bytes it built, kept in one buffer
/// (module strings are made of those only if the record has to be written
/// field by field).
enum Body {
    Strings(Vec<RedisString>),
    Owned(Record),
}

impl Body {
    fn pairs(&self) -> Vec<(&[u8], &[u8])> {
        match self {
            Body::Strings(strings) => strings
                .chunks_exact(2)
                .filter_map(|fv| match fv {
                    [f, v] => Some((f.as_slice(), v.as_slice())),
                    _ => None,
                })
                .collect(),
            Body::Owned(rec) => rec.fields().collect(),
        }
    }
    /// The module strings to write field by field, when the handler has them.
    fn strings(&self) -> Option<&[RedisString]> {
        match self {
            Body::Strings(strings) => Some(strings),
            Body::Owned(_) => None,
        }
    }
}

/// Most commands journal a few writes on a few keys: those stay inline.
#[derive(Default)]
pub struct Effects {
    ops: SmallVec<[Op; 4]>,
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

impl Effects {
    pub fn new() -> Self {
        Effects::default()
    }
    pub fn del(&mut self, key: &RedisString) -> &mut Self {
        self.ops.push(Op::Del(share(key)));
        self
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
        if strings.len() >= 2 {
            self.ops.push(Op::HSet(share(key), strings));
        }
        self
    }
    pub fn pexpireat(&mut self, key: &RedisString, at_ms: i64) -> &mut Self {
        self.ops.push(Op::PExpireAt(share(key), at_ms));
        self
    }
    pub fn set_pxat(&mut self, key: &RedisString, value: Vec<u8>, at_ms: i64) -> &mut Self {
        self.ops.push(Op::SetPxAt(share(key), value, at_ms));
        self
    }
    pub fn sadd(&mut self, key: &RedisString, members: Vec<Vec<u8>>) -> &mut Self {
        if !members.is_empty() {
            self.ops.push(Op::SAdd(share(key), members));
        }
        self
    }
    pub fn srem(&mut self, key: &RedisString, members: Vec<Vec<u8>>) -> &mut Self {
        if !members.is_empty() {
            self.ops.push(Op::SRem(share(key), members));
        }
        self
    }
    /// A new record on a key that is absent (or deleted earlier in this
    /// journal): the hash and its expiry, one atomic step.
    pub fn create_hash<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: &RedisString,
        pairs: impl IntoIterator<Item = (F, V)>,
        at_ms: i64,
    ) -> &mut Self {
        self.create(key, Body::Owned(pairs.into_iter().collect()), at_ms, false)
    }
    /// `create_hash` from module strings (see `hset_strings`).
    pub fn create_hash_strings(
        &mut self,
        key: &RedisString,
        strings: Vec<RedisString>,
        at_ms: i64,
    ) -> &mut Self {
        self.create(key, Body::Strings(strings), at_ms, false)
    }
    /// A record that takes the place of whatever `key` holds (a replaced
    /// client registration): as `del` then `create_hash`.
    pub fn replace_hash<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: &RedisString,
        pairs: impl IntoIterator<Item = (F, V)>,
        at_ms: i64,
    ) -> &mut Self {
        self.replace(key, pairs.into_iter().collect(), at_ms, false)
    }
    /// A consumed code's or rotated refresh token's tombstone taking the
    /// place of the record: one `RESTORE ... ABSTTL REPLACE` when it fits a
    /// listpack (see [`restore`]), else as `replace_hash`. A tombstone holds
    /// only the module's bookkeeping (kind, times, key names), so `MONITOR`
    /// and `SLOWLOG`, which show that `RESTORE`, learn nothing a key name
    /// does not tell.
    pub fn replace_tombstone<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: &RedisString,
        pairs: impl IntoIterator<Item = (F, V)>,
        at_ms: i64,
    ) -> &mut Self {
        self.replace(key, pairs.into_iter().collect(), at_ms, true)
    }
    fn replace(&mut self, key: &RedisString, rec: Record, at: i64, tombstone: bool) -> &mut Self {
        if rec.is_empty() {
            return self.del(key);
        }
        self.push_create(key, Body::Owned(rec), at, true, tombstone)
    }
    fn create(&mut self, key: &RedisString, body: Body, at: i64, replace: bool) -> &mut Self {
        self.push_create(key, body, at, replace, false)
    }
    fn push_create(
        &mut self,
        key: &RedisString,
        body: Body,
        at: i64,
        replace: bool,
        tombstone: bool,
    ) -> &mut Self {
        let empty = match &body {
            Body::Strings(s) => s.len() < 2,
            Body::Owned(rec) => rec.is_empty(),
        };
        if !empty {
            self.ops.push(Op::Create {
                key: share(key),
                body,
                at,
                replace,
                tombstone,
            });
        }
        self
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
        let ops = std::mem::take(&mut self.ops);
        for op in ops {
            match op {
                Op::Del(key) => {
                    let k = self.key(ctx, &key);
                    // SAFETY: k is an open writable key.
                    unsafe {
                        if let Some(f) = raw::RedisModule_DeleteKey {
                            f(k.raw());
                        }
                    }
                    replicate(ctx, c"DEL", &[key.inner]);
                    notify(ctx, NotifyEvent::GENERIC, c"del", &key);
                }
                Op::HSet(key, strings) => {
                    hash_set(self.key(ctx, &key), &strings);
                    let mut argv = Vec::with_capacity(1 + strings.len());
                    argv.push(key.inner);
                    argv.extend(strings.iter().map(|s| s.inner));
                    replicate(ctx, c"HSET", &argv);
                    notify(ctx, NotifyEvent::HASH, c"hset", &key);
                }
                Op::PExpireAt(key, at) => {
                    set_abs_expire(self.key(ctx, &key), at);
                    let at_s = int_string(ctx, at);
                    replicate(ctx, c"PEXPIREAT", &[key.inner, at_s.inner]);
                    notify(ctx, NotifyEvent::GENERIC, c"expire", &key);
                }
                Op::Create {
                    key,
                    body,
                    at,
                    replace,
                    tombstone,
                } => {
                    let pairs = body.pairs();
                    if !(tombstone && self.restore_tombstone(ctx, &key, &pairs, at)) {
                        self.write_record(ctx, &key, &pairs, body.strings(), at, replace);
                    }
                }
                Op::SetPxAt(key, value, at) => {
                    let k = self.key(ctx, &key);
                    let vs = rstr(ctx, value.as_slice());
                    if !overwrite_string(k, &value) {
                        // SAFETY: k is an open writable key; StringSet copies the value.
                        unsafe {
                            if let Some(f) = raw::RedisModule_StringSet {
                                f(k.raw(), vs.inner);
                            }
                        }
                    }
                    if k.abs_expire() != Some(at) {
                        set_abs_expire(k, at);
                    }
                    let (pxat, at_s) = (rstr(ctx, b"PXAT"), int_string(ctx, at));
                    replicate(ctx, c"SET", &[key.inner, vs.inner, pxat.inner, at_s.inner]);
                    notify(ctx, NotifyEvent::STRING, c"set", &key);
                    notify(ctx, NotifyEvent::GENERIC, c"expire", &key);
                }
                Op::SAdd(key, members) => {
                    self.close(&key);
                    set_call(ctx, "SADD", &key, &members);
                }
                Op::SRem(key, members) => {
                    self.close(&key);
                    set_call(ctx, "SREM", &key, &members);
                }
            }
        }
    }

    /// Writes the hash `name` of `pairs` with its absolute expiry, field by
    /// field (`DEL` when replacing, `HSET`, `PEXPIREAT`), each applied,
    /// replicated and notified as the native command would be, with `held`
    /// (the same pairs as module strings the handler already has) or module
    /// strings made from `pairs`. Without `replace` the key must be absent
    /// (or deleted earlier in this journal). Records with the caller's or a
    /// secret's values never go through `RESTORE`: a `RESTORE` run by the
    /// module shows in `MONITOR` and `SLOWLOG` with the whole record (only
    /// SAVECODE and SAVESTATE records, see [`create_at_once`], and
    /// tombstones, see [`Effects::replace_tombstone`], do).
    fn write_record(
        &mut self,
        ctx: &Context,
        name: &RedisString,
        pairs: &[(&[u8], &[u8])],
        held: Option<&[RedisString]>,
        at: i64,
        replace: bool,
    ) {
        if replace {
            notify(ctx, NotifyEvent::GENERIC, c"del", name);
        }
        match held {
            Some(strings) => self.write_fields(ctx, name, strings, at, replace),
            None => {
                let strings: Vec<RedisString> = pairs
                    .iter()
                    .flat_map(|(f, v)| [new_string(f), new_string(v)])
                    .collect();
                self.write_fields(ctx, name, &strings, at, replace);
            }
        }
        notify(ctx, NotifyEvent::HASH, c"hset", name);
        notify(ctx, NotifyEvent::GENERIC, c"expire", name);
    }

    /// A tombstone in one `RESTORE ... ABSTTL REPLACE`, which raises only
    /// its own `restore` event, on the master and on a replica alike. False,
    /// having changed nothing, when it would not be a listpack or the server
    /// refuses: the caller then writes it field by field.
    fn restore_tombstone(
        &mut self,
        ctx: &Context,
        name: &RedisString,
        pairs: &[(&[u8], &[u8])],
        at: i64,
    ) -> bool {
        let Some(payload) = payload(pairs) else {
            return false;
        };
        // RESTORE replaces the key behind our handle: close it first, so a
        // later entry on this key opens it afresh.
        self.close(name);
        restore(ctx, name, &payload, at, true).is_some()
    }

    /// A new hash written field by field: `DEL` (when replacing; its event
    /// is the caller's), `HSET`, `PEXPIREAT`, each applied and replicated.
    fn write_fields(
        &mut self,
        ctx: &Context,
        key: &RedisString,
        strings: &[RedisString],
        at: i64,
        replace: bool,
    ) {
        if replace {
            let k = self.key(ctx, key);
            // SAFETY: k is an open writable key.
            unsafe {
                if let Some(f) = raw::RedisModule_DeleteKey {
                    f(k.raw());
                }
            }
            replicate(ctx, c"DEL", &[key.inner]);
        }
        hash_set(self.key(ctx, key), strings);
        let mut argv = Vec::with_capacity(1 + strings.len());
        argv.push(key.inner);
        argv.extend(strings.iter().map(|s| s.inner));
        replicate(ctx, c"HSET", &argv);
        set_abs_expire(self.key(ctx, key), at);
        let at_s = int_string(ctx, at);
        replicate(ctx, c"PEXPIREAT", &[key.inner, at_s.inner]);
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

    /// The open handle of `name`, opening it for writing the first time.
    fn key(&mut self, ctx: &Context, name: &RedisString) -> &Key {
        let i = match self.position(name.as_slice()) {
            Some(i) => i,
            None => {
                self.open.push((share(name), None));
                self.open.len() - 1
            }
        };
        self.open[i]
            .1
            .get_or_insert_with(|| Key::open(ctx, name, true))
    }

    /// Closes the handle of `name`, before a write that does not go through it.
    fn close(&mut self, name: &RedisString) {
        if let Some(i) = self.position(name.as_slice()) {
            if let Some((_, slot)) = self.open.get_mut(i) {
                *slot = None;
            }
        }
    }
}

/// A new record on the absent key `name`, written at once rather than
/// journaled: one `RESTORE` (see [`restore`]), which raises its own keyspace
/// event, `restore`, on the master and on every replica alike. `open` is the
/// handle the caller checked the key with; it is closed first. `RESTORE`'s
/// reply (for the command to pass on); None, having changed nothing, when
/// the record would not be a listpack under the server's settings or the
/// server refuses: the caller then writes it through the journal, field by
/// field. This is the path of SAVECODE and SAVESTATE only, which write
/// nothing else: it spares them the journal's module strings and
/// bookkeeping. `MONITOR` and `SLOWLOG` show the `RESTORE` with the record,
/// which holds nothing the command's own arguments did not show there.
pub fn create_at_once(
    ctx: &Context,
    name: &RedisString,
    open: Key,
    pairs: &[(&[u8], &[u8])],
    at: i64,
) -> Option<Forward> {
    let payload = payload(pairs)?;
    drop(open);
    restore(ctx, name, &payload, at, false)
}

/// What `replace_tombstone` then `commit` do for `name`, done now and from
/// borrowed pairs (no journal entry, no copy of the fields into a record).
/// No key of `name` may be open.
pub fn replace_tombstone_at_once(
    ctx: &Context,
    name: &RedisString,
    pairs: &[(&[u8], &[u8])],
    at: i64,
) {
    let mut fx = Effects::new();
    if !fx.restore_tombstone(ctx, name, pairs, at) {
        fx.write_record(ctx, name, pairs, None, at, true);
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

/// What `SET name value PXAT at` does to a counter (a fixed window's count,
/// a throttle's TAT), done at once through the open handle `k` and without
/// the journal: the value is written in place (`StringTruncate` + DMA, a new
/// string only when the key is absent), the expiry set only when it is not
/// already `at` (`current_expiry`: the expiry the caller read, None when it
/// has none or did not read it), then the same `SET ... PXAT` is replicated
/// and the same `set` and `expire` events raised as through the journal.
/// No module string is made per call: the value and the time go to
/// `RedisModule_Replicate` as bytes ("b": Redis makes one small object of
/// each, where "l" makes two and a module string costs a module call and a
/// free more), `PXAT` is a word made once.
pub fn set_counter(
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

/// What the journal's `HSET key window_start s current c previous p` then
/// `PEXPIREAT key at` do to a sliding window, done at once through the open
/// handle `k`: the three field names are words made once (`sliding_names`),
/// the three values module strings made here (`HashSet` takes no bytes),
/// shared by the write and the replicated `HSET`; the expiry is set only
/// when it is not already `at`, but `PEXPIREAT` is replicated and `expire`
/// raised as before. False, having done nothing, when the names cannot be
/// made: the caller then goes through the journal.
pub fn set_sliding(ctx: &Context, name: &RedisString, k: &Key, values: [i64; 3], at: i64) -> bool {
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

/// Writes `value` over a string key in place (keeping the key, its dict entry
/// and its expiry), as INCR does; false when the key does not hold a string.
fn overwrite_string(k: &Key, value: &[u8]) -> bool {
    k.kind() == KeyKind::String && write_string(k, value)
}

/// `overwrite_string`, or on an absent key a new string of `value` made by
/// `StringTruncate` (a plain string Redis allocates, no module string); false
/// when the key holds another type or the value is empty.
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
