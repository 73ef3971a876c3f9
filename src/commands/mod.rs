//! The command table: one [`CmdSpec`] per command is the single source of its
//! name, flags, arity, key specs and docs. `register` feeds it to
//! `RedisModule_CreateCommand` and `RedisModule_SetCommandInfo`; every handler
//! runs inside [`dispatch`], which catches panics and writes the reply.

use std::ffi::CString;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use redis_module::{raw, Context, RedisString};

use crate::core::{OAuthError, OResult};
use crate::info::{self, Counter};
use crate::reply::{self, Reply};

pub mod code;
pub mod help;
pub mod ratelimit;
pub mod state;
pub mod throttle;
pub mod token;

/// A command body: parse, load, decide, commit, and return the reply.
pub type Handler = fn(&Context, &[RedisString]) -> OResult<Reply>;

/// Where a key spec starts looking.
#[derive(Clone, Copy)]
pub enum Begin {
    /// At a fixed argument index (the command name is 0).
    Index(i32),
    /// After the first occurrence of a keyword at or after `startfrom`.
    Keyword(&'static str, i32),
}

/// How keys are found after the begin position.
#[derive(Clone, Copy)]
pub enum Find {
    /// Keys up to `last` relative to the begin position (-1: the last argument), step 1.
    Range(i32),
    /// The argument at `keynumidx` counts the keys; the first is at `first`, then every `step`.
    Keynum {
        keynumidx: i32,
        first: i32,
        step: i32,
    },
}

/// One key spec: where it begins, how keys are found, and what is done to them.
#[derive(Clone, Copy)]
pub struct KeyDef {
    pub begin: Begin,
    pub find: Find,
    pub flags: u32,
    pub notes: &'static str,
}

pub struct CmdSpec {
    pub name: &'static str,
    pub handler: Handler,
    pub entry: unsafe extern "C" fn(
        *mut raw::RedisModuleCtx,
        *mut *mut raw::RedisModuleString,
        c_int,
    ) -> c_int,
    pub flags: &'static str,
    pub arity: i32,
    pub keys: &'static [KeyDef],
    pub syntax: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
}

const RO: u32 = raw::REDISMODULE_CMD_KEY_RO;
const RW: u32 = raw::REDISMODULE_CMD_KEY_RW;
const OW: u32 = raw::REDISMODULE_CMD_KEY_OW;
const RM: u32 = raw::REDISMODULE_CMD_KEY_RM;
const ACCESS: u32 = raw::REDISMODULE_CMD_KEY_ACCESS;
const UPDATE: u32 = raw::REDISMODULE_CMD_KEY_UPDATE;
const INSERT: u32 = raw::REDISMODULE_CMD_KEY_INSERT;
const DELETE: u32 = raw::REDISMODULE_CMD_KEY_DELETE;

/// Builds a C entry point for a handler.
macro_rules! entry {
    ($idx:expr) => {{
        unsafe extern "C" fn e(
            ctx: *mut raw::RedisModuleCtx,
            argv: *mut *mut raw::RedisModuleString,
            argc: c_int,
        ) -> c_int {
            dispatch(ctx, argv, argc, $idx)
        }
        e
    }};
}

const fn key(pos: i32, flags: u32, notes: &'static str) -> KeyDef {
    KeyDef {
        begin: Begin::Index(pos),
        find: Find::Range(0),
        flags,
        notes,
    }
}

pub static SPECS: &[CmdSpec] = &[
    CmdSpec {
        name: "oauth.savecode",
        handler: code::savecode,
        entry: entry!(0),
        flags: "write deny-oom",
        arity: -5,
        keys: &[key(1, OW | INSERT, "the authorization code record")],
        syntax: "OAUTH.SAVECODE key ttl FIELDS numfields field value [field value ...]",
        summary: "Stores an authorization code with its PKCE challenge and expiry in one step.",
        complexity: "O(N) where N is the number of fields.",
    },
    CmdSpec {
        name: "oauth.exchange",
        handler: code::exchange,
        entry: entry!(1),
        flags: "write deny-oom",
        arity: -5,
        keys: &[
            key(1, RW | ACCESS | UPDATE, "the authorization code; consumed into a tombstone"),
            KeyDef { begin: Begin::Keyword("ISSUE", 5), find: Find::Range(0), flags: OW | INSERT, notes: "the access-token record to create" },
        ],
        syntax: "OAUTH.EXCHANGE key client_id redirect_uri code_verifier [ISSUE token_key token_ttl] [FIELDS numfields field value [field value ...]]",
        summary: "Redeems an authorization code exactly once, verifying client, redirect URI and PKCE.",
        complexity: "O(N) where N is the number of fields of the code.",
    },
    CmdSpec {
        name: "oauth.savetoken",
        handler: token::savetoken,
        entry: entry!(2),
        flags: "write deny-oom",
        arity: -5,
        keys: &[key(1, OW | INSERT, "the token record")],
        syntax: "OAUTH.SAVETOKEN key ttl FIELDS numfields field value [field value ...]",
        summary: "Stores token metadata with its expiry in one step.",
        complexity: "O(N) where N is the number of fields.",
    },
    CmdSpec {
        name: "oauth.introspect",
        handler: token::introspect,
        entry: entry!(3),
        flags: "readonly fast",
        arity: 2,
        keys: &[key(1, RO | ACCESS, "the token record")],
        syntax: "OAUTH.INTROSPECT key",
        summary: "Answers an RFC 7662 introspection map for a token record.",
        complexity: "O(N) where N is the number of fields of the token.",
    },
    CmdSpec {
        name: "oauth.revoke",
        handler: token::revoke,
        entry: entry!(4),
        flags: "write",
        arity: -2,
        keys: &[KeyDef { begin: Begin::Index(1), find: Find::Range(-1), flags: RM | DELETE, notes: "token records to remove" }],
        syntax: "OAUTH.REVOKE key [key ...]",
        summary: "Removes token records; unknown keys are not an error (RFC 7009).",
        complexity: "O(N) where N is the number of keys.",
    },
    CmdSpec {
        name: "oauth.savestate",
        handler: state::savestate,
        entry: entry!(5),
        flags: "write deny-oom",
        arity: -5,
        keys: &[key(1, OW | INSERT, "the state record")],
        syntax: "OAUTH.SAVESTATE key ttl FIELDS numfields field value [field value ...]",
        summary: "Stores a single-use CSRF state or nonce with its expiry.",
        complexity: "O(N) where N is the number of fields.",
    },
    CmdSpec {
        name: "oauth.consumestate",
        handler: state::consumestate,
        entry: entry!(6),
        flags: "write",
        arity: 2,
        keys: &[key(1, RW | ACCESS | DELETE, "the state record; deleted")],
        syntax: "OAUTH.CONSUMESTATE key",
        summary: "Returns a state record's fields and deletes it in one step.",
        complexity: "O(N) where N is the number of fields.",
    },
    CmdSpec {
        name: "oauth.ratelimit",
        handler: ratelimit::ratelimit,
        entry: entry!(7),
        flags: "write deny-oom",
        arity: -4,
        keys: &[key(1, RW | ACCESS | UPDATE, "the counter")],
        syntax: "OAUTH.RATELIMIT key limit window [COST n] [SLIDING]",
        summary: "Counts a request against a fixed or sliding window; counter and expiry set in one step.",
        complexity: "O(1)",
    },
    CmdSpec {
        name: "oauth.help",
        handler: help::help,
        entry: entry!(8),
        flags: "readonly fast",
        arity: 1,
        keys: &[],
        syntax: "OAUTH.HELP",
        summary: "Lists the module's commands.",
        complexity: "O(1)",
    },
    CmdSpec {
        name: "oauth.throttle",
        handler: throttle::throttle,
        entry: entry!(9),
        flags: "write deny-oom",
        arity: -5,
        keys: &[key(1, RW | ACCESS | UPDATE, "the GCRA state (theoretical arrival time)")],
        syntax: "OAUTH.THROTTLE key max_burst count period [COST n]",
        summary: "GCRA rate limit with the CL.THROTTLE reply; only allowed requests write.",
        complexity: "O(1)",
    },
    CmdSpec {
        name: "oauth.ratelimit.all",
        handler: ratelimit::ratelimit_all,
        entry: entry!(10),
        flags: "write deny-oom",
        arity: -5,
        keys: &[KeyDef {
            begin: Begin::Index(1),
            find: Find::Keynum { keynumidx: 0, first: 1, step: 1 },
            flags: RW | ACCESS | UPDATE,
            notes: "one counter per limit",
        }],
        syntax: "OAUTH.RATELIMIT.ALL numkeys key [key ...] limit window [limit window ...] [COST n] [SLIDING]",
        summary: "Checks several window limits at once; counts the request against all only if all allow it.",
        complexity: "O(N) where N is the number of limits.",
    },
];

/// Runs a command body with panics caught, and writes its reply.
fn dispatch(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    idx: usize,
) -> c_int {
    let context = Context::new(ctx);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let args = redis_module::decode_args(ctx, argv, argc);
        match SPECS.get(idx) {
            Some(spec) => (spec.handler)(&context, &args),
            None => Err(OAuthError::internal("unknown command slot")),
        }
    }));
    let result = result.unwrap_or_else(|_| {
        info::bump(Counter::Panics);
        Err(OAuthError::internal(
            "internal error in redis-oauth; details are in the server log",
        ))
    });
    reply::emit(&context, result);
    raw::Status::Ok as c_int
}

/// Creates every command and sets its command info (arity, key specs, docs).
pub fn register(ctx: &Context) -> Result<(), String> {
    for spec in SPECS {
        let name = CString::new(spec.name).map_err(|e| e.to_string())?;
        let flags = CString::new(spec.flags).map_err(|e| e.to_string())?;
        let (first, last, step) = legacy_range(spec.keys);
        // SAFETY: called from OnLoad with the module context; strings outlive the calls.
        unsafe {
            let create =
                raw::RedisModule_CreateCommand.ok_or("RedisModule_CreateCommand missing")?;
            if create(
                ctx.get_raw(),
                name.as_ptr(),
                Some(spec.entry),
                flags.as_ptr(),
                first,
                last,
                step,
            ) == raw::Status::Err as c_int
            {
                return Err(format!("could not create command {}", spec.name));
            }
            let get = raw::RedisModule_GetCommand.ok_or("RedisModule_GetCommand missing")?;
            let cmd = get(ctx.get_raw(), name.as_ptr());
            if cmd.is_null() {
                return Err(format!("could not find command {}", spec.name));
            }
            set_info(cmd, spec)?;
        }
    }
    Ok(())
}

fn legacy_range(keys: &[KeyDef]) -> (c_int, c_int, c_int) {
    match keys.first() {
        Some(KeyDef {
            begin: Begin::Index(p),
            find: Find::Range(0),
            ..
        }) => (*p, *p, 1),
        Some(KeyDef {
            begin: Begin::Index(p),
            find: Find::Range(last),
            ..
        }) if *last < 0 => (*p, *last, 1),
        _ => (0, 0, 0),
    }
}

/// # Safety
/// `cmd` must be a command of this module, during OnLoad.
unsafe fn set_info(cmd: *mut raw::RedisModuleCommand, spec: &CmdSpec) -> Result<(), String> {
    let set = raw::RedisModule_SetCommandInfo.ok_or("RedisModule_SetCommandInfo missing")?;
    // Strings referenced by the raw specs; kept alive until SetCommandInfo copied them.
    let mut keep: Vec<CString> = Vec::new();
    let mut cstr = |s: &str| -> Result<*const std::os::raw::c_char, String> {
        let c = CString::new(s).map_err(|e| e.to_string())?;
        let p = c.as_ptr();
        keep.push(c);
        Ok(p)
    };
    let mut specs: Vec<raw::RedisModuleCommandKeySpec> = Vec::with_capacity(spec.keys.len() + 1);
    for k in spec.keys {
        // SAFETY: an all-zero key spec is the documented terminator and a valid start.
        let mut ks: raw::RedisModuleCommandKeySpec = std::mem::zeroed();
        ks.notes = cstr(k.notes)?;
        ks.flags = u64::from(k.flags);
        match k.begin {
            Begin::Index(pos) => {
                ks.begin_search_type =
                    raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
                ks.bs.index.pos = pos;
            }
            Begin::Keyword(word, startfrom) => {
                ks.begin_search_type =
                    raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD;
                ks.bs.keyword.keyword = cstr(word)?;
                ks.bs.keyword.startfrom = startfrom;
            }
        }
        match k.find {
            Find::Range(last) => {
                ks.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
                ks.fk.range.lastkey = last;
                ks.fk.range.keystep = 1;
                ks.fk.range.limit = 0;
            }
            Find::Keynum {
                keynumidx,
                first,
                step,
            } => {
                ks.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_KEYNUM;
                ks.fk.keynum.keynumidx = keynumidx;
                ks.fk.keynum.firstkey = first;
                ks.fk.keynum.keystep = step;
            }
        }
        specs.push(ks);
    }
    specs.push(std::mem::zeroed());
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: cstr(spec.summary)?,
        complexity: cstr(spec.complexity)?,
        since: cstr("0.1.0")?,
        history: ptr::null_mut(),
        tips: ptr::null(),
        arity: spec.arity,
        key_specs: if spec.keys.is_empty() {
            ptr::null_mut()
        } else {
            specs.as_mut_ptr()
        },
        args: ptr::null_mut(),
    };
    if set(cmd, &info) == raw::Status::Err as c_int {
        return Err(format!("could not set command info for {}", spec.name));
    }
    drop(keep);
    Ok(())
}

// ---------------------------------------------------------------------------
// Helpers shared by the handlers
// ---------------------------------------------------------------------------

/// The raw bytes of every argument.
pub fn bytes(args: &[RedisString]) -> Vec<&[u8]> {
    args.iter().map(RedisString::as_slice).collect()
}

/// Argument `i`, or an error naming the command's syntax.
pub fn arg<'a>(a: &[&'a [u8]], i: usize) -> OResult<&'a [u8]> {
    a.get(i)
        .copied()
        .ok_or_else(|| OAuthError::invalid_request("wrong number of arguments"))
}

/// Absolute expiry `ttl` seconds from now, checked.
pub fn expiry_at(now_ms: i64, ttl_s: i64) -> OResult<i64> {
    ttl_s
        .checked_mul(1000)
        .and_then(|ms| now_ms.checked_add(ms))
        .ok_or_else(|| OAuthError::invalid_request("ttl is too large"))
}
