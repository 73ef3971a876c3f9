//! The census: live counts of records by class, for `INFO oauth_census`.
//!
//! Exact running counters cannot be kept on Redis 7.0: a key's `expired` or
//! `del` event arrives after the key is gone, so its class is unknown then.
//! Instead, on every server tick (`hz`, 10 a second by default) the census
//! looks at up to `oauth.census-batch` keys, walking each database with the
//! module API's keyspace cursor, classifies them as `OAUTH.SCAN` does (a set
//! counts as a grant when a live record names it in `_grant`), and when a
//! pass over every database
//! ends it publishes the totals. A pass starts again at once, so the counts
//! are never older than one pass; INFO shows the pass's age and length.
//!
//! Every node runs its own census over its own keys (replicas too), from
//! what is in memory: after a restart, an AOF or RDB load, a full resync or a
//! promotion the counts are rebuilt by the first pass (a load or a flush
//! restarts the pass, so it never mixes two datasets). The census reads
//! only; it writes nothing and replicates nothing.

use std::os::raw::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use redis_module::{raw, Context, ContextFlags};

use crate::clock::now_ms;
use crate::core::inventory::{Class, Summary, Tally, DEFAULT_CENSUS_BATCH};
use crate::keys::{expired, Key, KeyKind};

/// Keys looked at per server tick (`oauth.census-batch`); 0 stops the census.
pub static BATCH: AtomicI64 = AtomicI64::new(DEFAULT_CENSUS_BATCH);

struct Pass {
    db: i32,
    tally: Tally,
    started_ms: i64,
}

impl Pass {
    fn new(now: i64) -> Pass {
        Pass {
            db: 0,
            tally: Tally::default(),
            started_ms: now,
        }
    }
}

struct Published {
    summary: Summary,
    finished_ms: i64,
    duration_ms: i64,
}

struct State {
    pass: Option<Pass>,
    last: Option<Published>,
    passes: u64,
}

static STATE: Mutex<State> = Mutex::new(State {
    pass: None,
    last: None,
    passes: 0,
});

/// Drops the pass in progress (its counts mix data that is gone); the next
/// tick starts a new one. The last published counts stay until then.
fn restart() {
    if let Ok(mut s) = STATE.lock() {
        s.pass = None;
    }
}

/// The keyspace cursor of the census: the module API's own (`RM_Scan`),
/// which, unlike SCAN through `RM_Call`, shows in neither MONITOR nor the
/// command statistics, and hands each key over without a lookup. Made once,
/// kept for the module's life.
struct Cursor(*mut raw::RedisModuleScanCursor);
// SAFETY: the cursor is only used on the main thread, under STATE's lock.
unsafe impl Send for Cursor {}

static CURSOR: Mutex<Option<Cursor>> = Mutex::new(None);

/// What one scan step passes to its callback.
struct StepData<'a> {
    tally: &'a mut Tally,
    now: i64,
    seen: i64,
}

/// Classifies one key with the handle the scan passes: no lookup by name,
/// so the census never touches a key's LRU/LFU, counts no keyspace hit or
/// miss, and never expires (deletes) a key. Expired keys are skipped.
extern "C" fn tally_key(
    _ctx: *mut raw::RedisModuleCtx,
    name: *mut raw::RedisModuleString,
    key: *mut raw::RedisModuleKey,
    privdata: *mut c_void,
) {
    if privdata.is_null() || name.is_null() || key.is_null() {
        return;
    }
    // SAFETY: privdata is the StepData passed by `tick`, alive during the
    // scan; the name and the key handle live until the callback returns and
    // are only read (the hash through the key API's own field scan). A
    // panic must not unwind into Redis's scan: it is caught here.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
        let data = &mut *privdata.cast::<StepData>();
        data.seen += 1;
        data.tally.keys = data.tally.keys.saturating_add(1);
        let key = Key::borrowed(key);
        if expired(&key, data.now) {
            return;
        }
        match key.kind() {
            KeyKind::Hash => data.tally.add_record(&key.read_hash()),
            KeyKind::Set => {
                let mut len = 0usize;
                if let Some(ptr_len) = raw::RedisModule_StringPtrLen {
                    let p = ptr_len(name, &mut len);
                    if !p.is_null() {
                        data.tally
                            .add_set(std::slice::from_raw_parts(p.cast::<u8>(), len));
                    }
                }
            }
            _ => {}
        }
    }));
}

/// Most scan steps (hash-table buckets) in one tick, so a sparse table does
/// not keep a tick going.
const MAX_STEPS_PER_TICK: i64 = 16_384;

/// One tick: continue the pass by up to `BATCH` keys.
fn tick(ctx: &Context) {
    let batch = BATCH.load(Ordering::Relaxed);
    if batch <= 0 || ctx.get_flags().contains(ContextFlags::LOADING) {
        return;
    }
    let (Ok(mut state), Ok(mut cursor_slot)) = (STATE.try_lock(), CURSOR.try_lock()) else {
        return;
    };
    // SAFETY: these functions exist in every supported server (checked for
    // Some); the tick's context is ours for the duration of the callback.
    let api = unsafe {
        (
            raw::RedisModule_GetSelectedDb,
            raw::RedisModule_SelectDb,
            raw::RedisModule_Scan,
            raw::RedisModule_ScanCursorCreate,
            raw::RedisModule_ScanCursorRestart,
        )
    };
    let (Some(get_db), Some(select_db), Some(scan), Some(create), Some(restart_cursor)) = api
    else {
        return;
    };
    let cursor = match cursor_slot.as_ref() {
        Some(c) => c.0,
        None => {
            // SAFETY: only allocates.
            let c = unsafe { create() };
            if c.is_null() {
                return;
            }
            *cursor_slot = Some(Cursor(c));
            c
        }
    };
    let c = ctx.get_raw();
    let now = now_ms();
    let mut pass = match state.pass.take() {
        Some(p) => p,
        None => {
            // SAFETY: a live cursor, not in use.
            unsafe { restart_cursor(cursor) };
            Pass::new(now)
        }
    };
    // SAFETY: reading and (below) restoring the context's database.
    let original_db = unsafe { get_db(c) };
    let mut left = batch;
    let mut steps = 0;
    let mut finished = false;
    while left > 0 && steps < MAX_STEPS_PER_TICK {
        // SAFETY: an id past the last database is refused.
        if unsafe { select_db(c, pass.db) } != raw::REDISMODULE_OK as i32 {
            finished = true;
            break;
        }
        let mut data = StepData {
            tally: &mut pass.tally,
            now,
            seen: 0,
        };
        // SAFETY: the callback only reads the keys it is handed and writes
        // into `data`, which outlives the call.
        let more = unsafe {
            scan(
                c,
                cursor,
                Some(tally_key),
                (&mut data as *mut StepData).cast::<c_void>(),
            )
        };
        steps += 1;
        left = left.saturating_sub(data.seen);
        if more == 0 {
            pass.db = pass.db.saturating_add(1);
            // SAFETY: a live cursor; the next database starts from the top.
            unsafe { restart_cursor(cursor) };
        }
    }
    // SAFETY: see above.
    unsafe {
        select_db(c, original_db);
    }
    if finished {
        state.last = Some(Published {
            summary: pass.tally.summary(),
            finished_ms: now,
            duration_ms: now.saturating_sub(pass.started_ms),
        });
        state.passes = state.passes.saturating_add(1);
    } else {
        state.pass = Some(pass);
    }
}

/// Frees the census cursor (from `OnUnload`).
pub fn stop() {
    if let Ok(mut slot) = CURSOR.lock() {
        if let Some(c) = slot.take() {
            // SAFETY: made by ScanCursorCreate, no scan running.
            unsafe {
                if let Some(f) = raw::RedisModule_ScanCursorDestroy {
                    f(c.0);
                }
            }
        }
    }
}

/// The `oauth_census` INFO fields.
pub fn info_fields() -> Vec<(&'static str, i64)> {
    let to_i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let Ok(state) = STATE.try_lock() else {
        return vec![("census_busy", 1)];
    };
    let summary = state.last.as_ref().map(|p| p.summary).unwrap_or_default();
    let mut fields = vec![
        ("census_batch", BATCH.load(Ordering::Relaxed)),
        ("census_passes", to_i(state.passes)),
        (
            "census_age_ms",
            state
                .last
                .as_ref()
                .map_or(-1, |p| now_ms().saturating_sub(p.finished_ms)),
        ),
        (
            "census_duration_ms",
            state.last.as_ref().map_or(-1, |p| p.duration_ms),
        ),
        ("census_keys", to_i(summary.keys)),
    ];
    fields.extend(
        Class::ALL
            .iter()
            .map(|c| (c.info_field(), to_i(summary.count(*c)))),
    );
    fields.push(("subjects", to_i(summary.subjects)));
    fields
}

extern "C" fn on_cron(
    ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    _sub: u64,
    _data: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| tick(&Context::new(ctx))));
}

extern "C" fn on_reset(
    _ctx: *mut raw::RedisModuleCtx,
    _eid: raw::RedisModuleEvent,
    _sub: u64,
    _data: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(restart));
}

/// Subscribes the census to the server's tick, to loads (restart, AOF
/// rewrite load, full resync) and to flushes. Called once from `OnLoad`.
pub fn start(ctx: &Context) -> Result<(), &'static str> {
    let events: [(u64, raw::RedisModuleEventCallback); 3] = [
        (raw::REDISMODULE_EVENT_CRON_LOOP, Some(on_cron)),
        (raw::REDISMODULE_EVENT_LOADING, Some(on_reset)),
        (raw::REDISMODULE_EVENT_FLUSHDB, Some(on_reset)),
    ];
    for (id, callback) in events {
        // SAFETY: SubscribeToServerEvent exists from Redis 6.0; called from OnLoad.
        let ok = unsafe {
            raw::RedisModule_SubscribeToServerEvent.is_some_and(|f| {
                f(
                    ctx.get_raw(),
                    raw::RedisModuleEvent { id, dataver: 1 },
                    callback,
                ) == raw::REDISMODULE_OK as i32
            })
        };
        if !ok {
            return Err("could not subscribe the census to server events");
        }
    }
    Ok(())
}
