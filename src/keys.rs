//! Reading keys through the low-level key API: type, hash contents, string
//! value and absolute expiry. Writes go through `crate::effects` only.

use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::{raw, Context, RedisString};

use crate::core::record::{Kind, Record};
use crate::core::{OAuthError, OResult};

/// What a key holds, as far as the module cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Missing,
    Hash,
    String,
    Set,
    Other,
}

/// An open key, closed on drop.
pub struct Key {
    ptr: *mut raw::RedisModuleKey,
    writable: bool,
}

impl Key {
    pub fn open(ctx: &Context, name: &RedisString, write: bool) -> Key {
        let mode = if write {
            raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
        } else {
            raw::REDISMODULE_READ
        };
        // SAFETY: ctx and the key name are live for the duration of the command.
        let ptr = unsafe {
            match raw::RedisModule_OpenKey {
                Some(open) => open(ctx.get_raw(), name.inner, mode as c_int),
                None => ptr::null_mut(),
            }
        };
        Key {
            ptr: ptr.cast(),
            writable: write,
        }
    }

    /// A key handle Redis opened and will close (the keyspace scan's), used
    /// for reads only and never closed here.
    pub fn borrowed(ptr: *mut raw::RedisModuleKey) -> std::mem::ManuallyDrop<Key> {
        std::mem::ManuallyDrop::new(Key {
            ptr,
            writable: false,
        })
    }

    pub fn raw(&self) -> *mut raw::RedisModuleKey {
        self.ptr
    }

    /// Whether the key was opened for writing.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    pub fn kind(&self) -> KeyKind {
        if self.ptr.is_null() {
            return KeyKind::Missing;
        }
        // SAFETY: ptr is an open key.
        let t = unsafe { raw::RedisModule_KeyType.map_or(0, |f| f(self.ptr)) };
        match raw::KeyType::from(t) {
            raw::KeyType::Empty => KeyKind::Missing,
            raw::KeyType::Hash => KeyKind::Hash,
            raw::KeyType::String => KeyKind::String,
            raw::KeyType::Set => KeyKind::Set,
            _ => KeyKind::Other,
        }
    }

    /// The absolute expiry in Unix ms, or None when the key has no expiry.
    pub fn abs_expire(&self) -> Option<i64> {
        if self.ptr.is_null() {
            return None;
        }
        // SAFETY: ptr is an open key; GetAbsExpire exists (checked at load).
        let at = unsafe { raw::RedisModule_GetAbsExpire.map_or(-1, |f| f(self.ptr)) };
        (at >= 0).then_some(at)
    }

    /// All fields of a hash key, in the order Redis stores them.
    pub fn read_hash(&self) -> Record {
        if self.kind() != KeyKind::Hash {
            return Record::default();
        }
        self.scan_elements(usize::MAX)
    }

    /// Members of a set key (empty for another type), read with the key API
    /// like a hash, so nothing shows in MONITOR or the command stats. Stops
    /// once `at_least` members are read (a step of the scan may add a few
    /// more), so a look at a large set costs what it needs.
    pub fn read_set(&self, at_least: usize) -> Vec<Vec<u8>> {
        if self.kind() != KeyKind::Set {
            return Vec::new();
        }
        self.scan_elements(at_least)
            .fields()
            .map(|(member, _)| member.to_vec())
            .collect()
    }

    /// The number of elements of the value (fields of a hash, members of a
    /// set), 0 for a missing key.
    pub fn element_count(&self) -> usize {
        if self.ptr.is_null() {
            return 0;
        }
        // SAFETY: ptr is an open key.
        unsafe { raw::RedisModule_ValueLength.map_or(0, |f| f(self.ptr)) }
    }

    /// The elements of a hash (field, value) or a set (member, empty), up to
    /// `limit` or a few more (the scan goes a step at a time).
    fn scan_elements(&self, limit: usize) -> Record {
        let mut out = Record::with_capacity(16, 512);
        // SAFETY: scan functions exist from Redis 6.0.6; the callback only copies
        // the borrowed strings into `out`, which outlives the scan. The
        // cursor is the module's one (see `scan_cursor`), restarted first.
        unsafe {
            let (Some(restart), Some(scan)) =
                (raw::RedisModule_ScanCursorRestart, raw::RedisModule_ScanKey)
            else {
                return out;
            };
            let cursor = scan_cursor();
            if cursor.is_null() {
                return out;
            }
            restart(cursor);
            let data = (&mut out as *mut Record).cast::<c_void>();
            while out.len() < limit && scan(self.ptr, cursor, Some(collect_pair), data) != 0 {}
        }
        out
    }

    /// The integer values of the three fields `names` of a hash that holds
    /// exactly three fields: three `HashGet` lookups in place of a scan of
    /// the whole hash into a record. None when the key is not a hash of three
    /// fields; a value is None when its field is missing or not an integer.
    /// The value strings Redis makes are freed before returning.
    pub fn hash_ints3(
        &self,
        ctx: &Context,
        names: [*mut raw::RedisModuleString; 3],
    ) -> Option<[Option<i64>; 3]> {
        let [n1, n2, n3] = names;
        if self.ptr.is_null() || n1.is_null() || n2.is_null() || n3.is_null() {
            return None;
        }
        // SAFETY: ptr is an open key; the names are live module strings; each
        // name is followed by where its value goes, the list ends with NULL;
        // the values HashGet makes are ours to free, and freed here once read.
        unsafe {
            let (Some(len), Some(get), Some(free)) = (
                raw::RedisModule_ValueLength,
                raw::RedisModule_HashGet,
                raw::RedisModule_FreeString,
            ) else {
                return None;
            };
            if self.kind() != KeyKind::Hash || len(self.ptr) != 3 {
                return None;
            }
            let mut v = [ptr::null_mut::<raw::RedisModuleString>(); 3];
            let [v1, v2, v3] = &mut v;
            get(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                n1,
                v1 as *mut *mut raw::RedisModuleString,
                n2,
                v2 as *mut *mut raw::RedisModuleString,
                n3,
                v3 as *mut *mut raw::RedisModuleString,
                ptr::null_mut::<c_void>(),
            );
            Some(v.map(|s| {
                if s.is_null() {
                    return None;
                }
                let n = crate::core::validate::parse_i64(string_slice(s));
                free(ctx.get_raw(), s);
                n
            }))
        }
    }

    /// The bytes of a string key.
    pub fn read_string(&self) -> Option<Vec<u8>> {
        self.string_bytes().map(<[u8]>::to_vec)
    }

    /// The bytes of a string key, borrowed: valid until the key is written.
    pub fn string_bytes(&self) -> Option<&[u8]> {
        if self.kind() != KeyKind::String {
            return None;
        }
        let mut len: usize = 0;
        // SAFETY: ptr is an open string key; DMA in read mode only reads, and
        // the borrow of self ends before any write through this handle.
        unsafe {
            let p = raw::RedisModule_StringDMA?(self.ptr, &mut len, raw::REDISMODULE_READ as c_int);
            if p.is_null() {
                return Some(&[]);
            }
            Some(std::slice::from_raw_parts(p as *const u8, len))
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: closing a key we opened.
            unsafe {
                if let Some(close) = raw::RedisModule_CloseKey {
                    close(self.ptr);
                }
            }
        }
    }
}

/// The scan cursor every hash read uses, made on first use and kept for the
/// module's life, so reading a hash allocates no cursor. Commands run on the
/// main thread one at a time and a read scans to the end before returning,
/// so one cursor is never used by two reads at once.
static CURSOR: AtomicPtr<raw::RedisModuleScanCursor> = AtomicPtr::new(ptr::null_mut());

fn scan_cursor() -> *mut raw::RedisModuleScanCursor {
    // SAFETY: ScanCursorCreate exists from Redis 6.0.6 and only allocates.
    made_once(&CURSOR, || unsafe {
        raw::RedisModule_ScanCursorCreate.map_or(ptr::null_mut(), |f| f())
    })
}

/// Frees the scan cursor (from `OnUnload`).
pub fn free_scan_cursor() {
    if let Some(c) = take_made(&CURSOR) {
        // SAFETY: c was made by scan_cursor and no read is running.
        unsafe {
            if let Some(f) = raw::RedisModule_ScanCursorDestroy {
                f(c);
            }
        }
    }
}

/// The object in `slot`, made by `make` the first time it is asked for (and
/// again while `make` gives null). For objects of the server the module keeps
/// for its whole life; main thread only, like every command handler.
pub fn made_once<T>(slot: &AtomicPtr<T>, make: impl FnOnce() -> *mut T) -> *mut T {
    let p = slot.load(Ordering::Relaxed);
    if !p.is_null() {
        return p;
    }
    let p = make();
    slot.store(p, Ordering::Relaxed);
    p
}

/// Takes the object out of `slot` (to free it when the module unloads).
pub fn take_made<T>(slot: &AtomicPtr<T>) -> Option<*mut T> {
    let p = slot.swap(ptr::null_mut(), Ordering::Relaxed);
    (!p.is_null()).then_some(p)
}

/// The bytes of a module string, borrowed for as long as the string lives.
///
/// # Safety
/// `s` is null or a live module string that outlives the returned slice.
unsafe fn string_slice<'a>(s: *const raw::RedisModuleString) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    let mut len: usize = 0;
    match raw::RedisModule_StringPtrLen {
        Some(f) => {
            let p: *const c_char = f(s, &mut len);
            if p.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(p as *const u8, len)
            }
        }
        None => &[],
    }
}

extern "C" fn collect_pair(
    _key: *mut raw::RedisModuleKey,
    field: *mut raw::RedisModuleString,
    value: *mut raw::RedisModuleString,
    privdata: *mut c_void,
) {
    if privdata.is_null() {
        return;
    }
    // SAFETY: privdata is the Record passed by read_hash, alive during the
    // scan; field and value live until the callback returns.
    unsafe {
        let out = &mut *privdata.cast::<Record>();
        out.push(string_slice(field), string_slice(value));
    }
}

/// The answer for a key of a Redis type the command cannot use.
pub fn wrong_redis_type() -> OAuthError {
    OAuthError::wrong_type("Operation against a key holding the wrong kind of value")
}

/// Loads a record of `kind`: None when the key is missing, WRONGTYPE when it is
/// another Redis type or another kind of record.
pub fn load_record(key: &Key, kind: Kind) -> OResult<Option<Record>> {
    match key.kind() {
        KeyKind::Missing => Ok(None),
        KeyKind::Hash => {
            let rec = key.read_hash();
            rec.expect_kind(kind)?;
            Ok(Some(rec))
        }
        _ => Err(wrong_redis_type()),
    }
}

/// Whether the key's absolute expiry is at or before `now_ms`. Inside
/// MULTI/EXEC and scripts Redis checks expiry against a time frozen when the
/// transaction or script began, so a key can still be found after it expired;
/// a command consuming a single-use record treats such a key as gone, as it
/// would be outside the transaction.
pub fn expired(key: &Key, now_ms: i64) -> bool {
    key.abs_expire().is_some_and(|at| at <= now_ms)
}

/// Fails with EXISTS unless the key is absent.
pub fn require_absent(key: &Key) -> OResult<()> {
    match key.kind() {
        KeyKind::Missing => Ok(()),
        _ => Err(OAuthError::exists()),
    }
}

/// The members of a set key (through SMEMBERS; the 7.0 key API has no set reads).
pub fn set_members(ctx: &Context, key: &RedisString) -> Vec<Vec<u8>> {
    match ctx.call("SMEMBERS", &[key.as_slice()]) {
        Ok(redis_module::RedisValue::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                redis_module::RedisValue::SimpleString(s)
                | redis_module::RedisValue::BulkString(s) => Some(s.into_bytes()),
                redis_module::RedisValue::StringBuffer(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether the set at `key` lists `member` (false for a missing key or another type).
pub fn is_set_member(ctx: &Context, key: &RedisString, member: &[u8]) -> bool {
    matches!(
        ctx.call("SISMEMBER", &[key.as_slice(), member]),
        Ok(redis_module::RedisValue::Integer(1))
    )
}

/// Reads optional cutoff keys (integer ms strings): missing keys are skipped.
pub fn load_cutoffs(ctx: &Context, keys: &[&RedisString]) -> OResult<Vec<i64>> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let key = Key::open(ctx, k, false);
        match key.kind() {
            KeyKind::Missing => {}
            KeyKind::String => {
                let raw = key.read_string().unwrap_or_default();
                let v = crate::core::token::parse_cutoff(&raw).ok_or_else(|| {
                    OAuthError::wrong_type("cutoff key holds a string that is not a cutoff time")
                })?;
                out.push(v);
            }
            _ => return Err(wrong_redis_type()),
        }
    }
    Ok(out)
}

/// A module string from raw bytes. Binary-safe, unlike the crate's
/// `Context::create_string`, which panics on a NUL byte.
pub fn rstr(ctx: &Context, bytes: &[u8]) -> RedisString {
    RedisString::create_from_slice(ctx.get_raw(), bytes)
}

/// `rstr` without a context (Redis allows a NULL context), for the write
/// journal, which queues strings before it has one.
pub fn new_string(bytes: &[u8]) -> RedisString {
    RedisString::create_from_slice(ptr::null_mut(), bytes)
}

/// Another handle on the same module string: a reference count, not a copy
/// (`RedisString::clone` copies). Like every command handler, main thread only.
pub fn share(s: &RedisString) -> RedisString {
    // SAFETY: s is a live module string; the retain is released by the
    // returned RedisString's drop (RedisModule_FreeString with a NULL context).
    unsafe {
        if let Some(retain) = raw::RedisModule_RetainString {
            retain(ptr::null_mut(), s.inner);
            return RedisString::from_redis_module_string(ptr::null_mut(), s.inner);
        }
    }
    s.clone()
}
