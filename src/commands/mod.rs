//! The command table: one [`CmdSpec`] per command is the single source of its
//! name, flags, arity, key specs and docs. `register` feeds it to
//! `RedisModule_CreateCommand` and `RedisModule_SetCommandInfo`; every handler
//! runs inside [`dispatch`], which catches panics and writes the reply.

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use redis_module::{raw, Context, RedisString};
use smallvec::SmallVec;

use crate::core::grammar::{self, Grammar};
use crate::core::record::{self, Kind};
use crate::core::validate::Pair;
use crate::core::{OAuthError, OResult};
use crate::effects::{self, Effects};
use crate::info::{self, Counter};
use crate::keys::{new_string, share};
use crate::keys::{require_absent, Key};
use crate::reply::{self, Reply};

pub mod client;
pub mod code;
pub mod grant;
pub mod help;
pub mod ratelimit;
pub mod refresh;
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
    /// The options' grammar, for a command whose keys follow keywords: the
    /// one parser that locates them for the handler and the key report.
    pub grammar: Option<&'static Grammar>,
}

const RO: u32 = raw::REDISMODULE_CMD_KEY_RO;
const RW: u32 = raw::REDISMODULE_CMD_KEY_RW;
const OW: u32 = raw::REDISMODULE_CMD_KEY_OW;
const RM: u32 = raw::REDISMODULE_CMD_KEY_RM;
const ACCESS: u32 = raw::REDISMODULE_CMD_KEY_ACCESS;
const UPDATE: u32 = raw::REDISMODULE_CMD_KEY_UPDATE;
const INSERT: u32 = raw::REDISMODULE_CMD_KEY_INSERT;
const DELETE: u32 = raw::REDISMODULE_CMD_KEY_DELETE;

/// Builds the C entry point of a handler: it runs inside [`dispatch`].
macro_rules! entry {
    ($handler:path) => {{
        unsafe extern "C" fn e(
            ctx: *mut raw::RedisModuleCtx,
            argv: *mut *mut raw::RedisModuleString,
            argc: c_int,
        ) -> c_int {
            dispatch(ctx, argv, argc, $handler)
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
        entry: entry!(code::savecode),
        flags: "write deny-oom",
        arity: -5,
        keys: &[key(1, OW | INSERT, "the authorization code record")],
        syntax: "OAUTH.SAVECODE key ttl FIELDS numfields field value [field value ...]",
        summary: "Stores an authorization code with its PKCE challenge and expiry in one step.",
        complexity: "O(N) where N is the number of fields.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.exchange",
        entry: entry!(code::exchange),
        flags: "write deny-oom no-monitor no-slowlog",
        arity: -5,
        keys: &[
            key(1, RW | ACCESS | UPDATE, "the authorization code; consumed into a tombstone"),
            KeyDef { begin: Begin::Keyword("ISSUE", 5), find: Find::Range(0), flags: OW | INSERT, notes: "the access-token record to create" },
            KeyDef { begin: Begin::Keyword("REFRESH", 5), find: Find::Range(0), flags: OW | INSERT, notes: "the refresh-token record to create" },
            KeyDef { begin: Begin::Keyword("GRANT", 5), find: Find::Range(0), flags: RW | INSERT, notes: "the grant index (a set)" },
        ],
        syntax: "OAUTH.EXCHANGE key client_id redirect_uri code_verifier [ISSUE token_key token_ttl] [REFRESH refresh_key refresh_ttl] [GRANT grant_key] [FIELDS numfields field value [field value ...]]",
        summary: "Redeems an authorization code exactly once, verifying client, redirect URI and PKCE.",
        complexity: "O(N) where N is the number of fields of the code.",
        grammar: Some(&code::GRAMMAR),
    },
    CmdSpec {
        name: "oauth.savetoken",
        entry: entry!(token::savetoken),
        flags: "write deny-oom",
        arity: -5,
        keys: &[
            key(1, OW | INSERT, "the token record"),
            KeyDef { begin: Begin::Keyword("GRANT", 3), find: Find::Range(0), flags: RW | INSERT, notes: "the grant index (a set)" },
        ],
        syntax: "OAUTH.SAVETOKEN key ttl [GRANT grant_key] FIELDS numfields field value [field value ...]",
        summary: "Stores token metadata with its expiry in one step.",
        complexity: "O(N) where N is the number of fields.",
        grammar: Some(&token::SAVETOKEN_GRAMMAR),
    },
    CmdSpec {
        name: "oauth.introspect",
        entry: entry!(token::introspect),
        flags: "readonly fast",
        arity: -2,
        keys: &[
            key(1, RO | ACCESS, "the token record"),
            KeyDef { begin: Begin::Keyword("CUTOFF", 2), find: Find::Keynum { keynumidx: 0, first: 1, step: 1 }, flags: RO | ACCESS, notes: "revoke-before cutoff keys" },
        ],
        syntax: "OAUTH.INTROSPECT key [CUTOFF numkeys cutoff_key [cutoff_key ...]]",
        summary: "Answers an RFC 7662 introspection map for a token record.",
        complexity: "O(N) where N is the number of fields of the token.",
        grammar: Some(&token::INTROSPECT_GRAMMAR),
    },
    CmdSpec {
        name: "oauth.revoke",
        entry: entry!(token::revoke),
        flags: "write",
        arity: -2,
        keys: &[KeyDef { begin: Begin::Index(1), find: Find::Range(-1), flags: RM | DELETE, notes: "token records to remove" }],
        syntax: "OAUTH.REVOKE key [key ...]",
        summary: "Removes access/refresh-token records (a refresh token takes its grant's access tokens along); unknown keys are not an error (RFC 7009).",
        complexity: "O(N) where N is the number of keys.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.savestate",
        entry: entry!(state::savestate),
        flags: "write deny-oom",
        arity: -5,
        keys: &[key(1, OW | INSERT, "the state record")],
        syntax: "OAUTH.SAVESTATE key ttl FIELDS numfields field value [field value ...]",
        summary: "Stores a single-use CSRF state or nonce with its expiry.",
        complexity: "O(N) where N is the number of fields.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.consumestate",
        entry: entry!(state::consumestate),
        flags: "write",
        arity: 2,
        keys: &[key(1, RW | ACCESS | DELETE, "the state record; deleted")],
        syntax: "OAUTH.CONSUMESTATE key",
        summary: "Returns a state record's fields and deletes it in one step.",
        complexity: "O(N) where N is the number of fields.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.ratelimit",
        entry: entry!(ratelimit::ratelimit),
        flags: "write deny-oom",
        arity: -4,
        keys: &[key(1, RW | ACCESS | UPDATE, "the counter")],
        syntax: "OAUTH.RATELIMIT key limit window [COST n] [SLIDING]",
        summary: "Counts a request against a fixed or sliding window; counter and expiry set in one step.",
        complexity: "O(1)",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.help",
        entry: entry!(help::help),
        flags: "readonly fast",
        arity: 1,
        keys: &[],
        syntax: "OAUTH.HELP",
        summary: "Lists the module's commands.",
        complexity: "O(1)",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.rotate",
        entry: entry!(refresh::rotate),
        flags: "write deny-oom",
        arity: -4,
        keys: &[
            key(1, RW | ACCESS | UPDATE, "the refresh token presented; becomes a rotated tombstone"),
            key(2, OW | INSERT, "the successor refresh token"),
            KeyDef { begin: Begin::Keyword("ISSUE", 4), find: Find::Range(0), flags: OW | INSERT, notes: "the access token to create" },
            KeyDef { begin: Begin::Keyword("CUTOFF", 4), find: Find::Keynum { keynumidx: 0, first: 1, step: 1 }, flags: RO | ACCESS, notes: "revoke-before cutoff keys" },
        ],
        syntax: "OAUTH.ROTATE old_key new_key refresh_ttl [ISSUE token_key token_ttl] [GRACE seconds] [CUTOFF numkeys cutoff_key ...] [FIELDS numfields field value ...]",
        summary: "Rotates a refresh token once; a reused token revokes its grant, except for bounded retries within GRACE.",
        complexity: "O(N) where N is the number of fields, plus the grant's size on reuse.",
        grammar: Some(&refresh::GRAMMAR),
    },
    CmdSpec {
        name: "oauth.revokegrant",
        entry: entry!(grant::revokegrant),
        flags: "write",
        arity: 2,
        keys: &[key(1, RW | ACCESS | DELETE, "the grant index; its members are deleted too")],
        syntax: "OAUTH.REVOKEGRANT grant_key",
        summary: "Deletes every code tombstone, access and refresh token of a grant, and the grant index.",
        complexity: "O(N) where N is the number of members.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.revokebefore",
        entry: entry!(refresh::revokebefore),
        flags: "write deny-oom",
        arity: 2,
        keys: &[key(1, RW | ACCESS | UPDATE, "the cutoff key (Unix ms); the reply reveals it")],
        syntax: "OAUTH.REVOKEBEFORE cutoff_key",
        summary: "O(1) revocation of every token created until now that is checked against this cutoff key (per subject or client).",
        complexity: "O(1)",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.saveclient",
        entry: entry!(client::save),
        flags: "write deny-oom no-monitor no-slowlog",
        arity: -4,
        keys: &[key(1, OW | UPDATE, "the client registration")],
        syntax: "OAUTH.SAVECLIENT key [TTL seconds] FIELDS numfields field value [field value ...]",
        summary: "Creates or replaces a client registration; a client_secret is stored only as its SHA-256.",
        complexity: "O(N) where N is the number of fields.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.verifyclient",
        entry: entry!(client::verify),
        flags: "readonly fast no-monitor no-slowlog",
        arity: 3,
        keys: &[key(1, RO | ACCESS, "the client registration")],
        syntax: "OAUTH.VERIFYCLIENT key secret",
        summary: "Checks a client secret in constant time: 1 or 0.",
        complexity: "O(N) where N is the number of fields.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.getclient",
        entry: entry!(client::get),
        flags: "readonly fast",
        arity: 2,
        keys: &[key(1, RO | ACCESS, "the client registration")],
        syntax: "OAUTH.GETCLIENT key",
        summary: "Returns a client registration without secret material.",
        complexity: "O(N) where N is the number of fields.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.deleteclient",
        entry: entry!(client::delete),
        flags: "write",
        arity: 2,
        keys: &[key(1, RM | DELETE, "the client registration")],
        syntax: "OAUTH.DELETECLIENT key",
        summary: "Removes a client registration: 1 if removed, 0 if absent.",
        complexity: "O(N) where N is the number of fields.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.throttle",
        entry: entry!(throttle::throttle),
        flags: "write deny-oom",
        arity: -5,
        keys: &[key(1, RW | ACCESS | UPDATE, "the GCRA state (theoretical arrival time)")],
        syntax: "OAUTH.THROTTLE key max_burst count period [COST n]",
        summary: "GCRA rate limit with the CL.THROTTLE reply; only allowed requests write.",
        complexity: "O(1)",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.ratelimitall",
        entry: entry!(ratelimit::ratelimit_all),
        flags: "write deny-oom",
        arity: -5,
        keys: &[KeyDef {
            begin: Begin::Index(1),
            find: Find::Keynum { keynumidx: 0, first: 1, step: 1 },
            flags: RW | ACCESS | UPDATE,
            notes: "one counter per limit",
        }],
        syntax: "OAUTH.RATELIMITALL numkeys key [key ...] limit window [limit window ...] [COST n] [SLIDING]",
        summary: "Checks several window limits at once; counts the request against all only if all allow it.",
        complexity: "O(N) where N is the number of limits.",
        grammar: None,
    },
];

/// Runs a command body with panics caught, and writes its reply.
fn dispatch(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    handler: Handler,
) -> c_int {
    let context = Context::new(ctx);
    let keys_request = context.is_keys_position_request();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let held = BorrowedArgs::new(ctx, argv, argc);
        let args = held.as_strings();
        if keys_request {
            report_key_positions(&context, args);
            return Ok(Reply::Ok);
        }
        handler(&context, args)
    }));
    if keys_request {
        return raw::Status::Ok as c_int;
    }
    let result = result.unwrap_or_else(|_| {
        info::bump(Counter::Panics);
        Err(OAuthError::internal(
            "internal error in redis-oauth; details are in the server log",
        ))
    });
    reply::emit(&context, result);
    raw::Status::Ok as c_int
}

/// Arguments held on the stack; a longer command's go to the heap.
const STACK_ARGS: usize = 32;

/// The command's arguments as `RedisString`s that borrow Redis's argument
/// vector instead of taking a reference each (`decode_args` retains every
/// argument and frees it again, about 40 instructions per argument on every
/// call, and allocates the vector). `ManuallyDrop` keeps them from being
/// freed: Redis owns them and they outlive the handler. A handler that keeps
/// one beyond its call takes its own reference with `keys::share`.
struct BorrowedArgs {
    /// The arguments of a command of up to `STACK_ARGS` of them.
    stack: [ManuallyDrop<RedisString>; STACK_ARGS],
    /// A longer command's arguments (empty, so unallocated, otherwise).
    heap: Vec<ManuallyDrop<RedisString>>,
    len: usize,
}

impl BorrowedArgs {
    fn new(
        ctx: *mut raw::RedisModuleCtx,
        argv: *mut *mut raw::RedisModuleString,
        argc: c_int,
    ) -> BorrowedArgs {
        let n = usize::try_from(argc).unwrap_or(0);
        let raw_args: &[*mut raw::RedisModuleString] = if argv.is_null() || n == 0 {
            &[]
        } else {
            // SAFETY: Redis passes argc valid argument pointers in argv,
            // alive for the whole command call.
            unsafe { std::slice::from_raw_parts(argv, n) }
        };
        let borrow = |s: &*mut raw::RedisModuleString| {
            ManuallyDrop::new(RedisString::from_redis_module_string(ctx, *s))
        };
        let mut held = BorrowedArgs {
            stack: [const {
                ManuallyDrop::new(RedisString::from_redis_module_string(
                    ptr::null_mut(),
                    ptr::null_mut(),
                ))
            }; STACK_ARGS],
            heap: Vec::new(),
            len: raw_args.len(),
        };
        if raw_args.len() > STACK_ARGS {
            held.heap = raw_args.iter().map(borrow).collect();
        } else {
            for (slot, s) in held.stack.iter_mut().zip(raw_args) {
                *slot = borrow(s);
            }
        }
        held
    }

    /// The arguments seen as plain `RedisString`s.
    fn as_strings(&self) -> &[RedisString] {
        let held: &[ManuallyDrop<RedisString>] = if self.len > STACK_ARGS {
            &self.heap
        } else {
            self.stack.get(..self.len).unwrap_or_default()
        };
        // SAFETY: ManuallyDrop<T> is #[repr(transparent)] over T, so a slice
        // of one has the layout of a slice of the other; the borrow keeps
        // `self` (which never drops its strings) alive as long as the view.
        unsafe { std::slice::from_raw_parts(held.as_ptr().cast::<RedisString>(), held.len()) }
    }
}

/// Answers a keys-position request (commands flagged `getkeys-api`). Redis
/// 7.0 routes Cluster requests and checks CROSSSLOT with the legacy
/// first/last/step range, which cannot describe keys after a keyword or a
/// count; such commands report their keys here: with the command's own option
/// parser ([`located_keys`]), the one its handler uses.
fn report_key_positions(ctx: &Context, args: &[RedisString]) {
    let a = bytes(args);
    let Some(name) = a.first() else { return };
    let Some(spec) = SPECS
        .iter()
        .find(|s| name.eq_ignore_ascii_case(s.name.as_bytes()))
    else {
        return;
    };
    for (pos, flags) in located_keys(spec, &a) {
        let (Ok(p), Ok(f)) = (i32::try_from(pos), c_int::try_from(flags)) else {
            continue;
        };
        // SAFETY: a keys-position request context; the function exists on
        // every server this module loads on (Redis 7.0+).
        match unsafe { raw::RedisModule_KeyAtPosWithFlags } {
            Some(at) => unsafe { at(ctx.get_raw(), p, f) },
            None => ctx.key_at_pos(p),
        }
    }
}

/// The keys of one call of `spec`, each with its spec's flags (what the
/// command does to it, which ACL `%R~`/`%W~` checks read): the keyword specs
/// are resolved by the command's option parser, the one its handler uses.
/// When that parser refuses the arguments (the handler then refuses them
/// too, before touching any key), Redis's own evaluation of the key specs.
pub fn located_keys(spec: &CmdSpec, a: &[&[u8]]) -> Vec<(usize, u32)> {
    if let Some(g) = spec.grammar {
        if let Ok(parsed) = grammar::parse(g, a) {
            return key_positions(spec.keys, a, |word, _| {
                parsed.keyword_at(g, word).map(|at| at + 1)
            });
        }
    }
    redis_key_positions(spec.keys, a)
}

/// The keys Redis itself finds in `a` with the key specs `keys`: a keyword is
/// searched from its start position to the end of the command.
pub fn redis_key_positions(keys: &[KeyDef], a: &[&[u8]]) -> Vec<(usize, u32)> {
    key_positions(keys, a, |word, from| {
        grammar::redis_keyword_search(a, word, usize::try_from(from).ok()?)
    })
}

/// The keys described by `keys` in `a`, a keyword spec beginning where
/// `keyword(word, startfrom)` says its keys begin.
fn key_positions(
    keys: &[KeyDef],
    a: &[&[u8]],
    keyword: impl Fn(&str, i32) -> Option<usize>,
) -> Vec<(usize, u32)> {
    let mut out: Vec<(usize, u32)> = Vec::new();
    for k in keys {
        let start = match k.begin {
            Begin::Index(p) => usize::try_from(p).ok(),
            Begin::Keyword(word, from) => keyword(word, from),
        };
        let Some(start) = start else { continue };
        match k.find {
            Find::Range(last) if last >= 0 => {
                let end = start + last as usize;
                out.extend((start..=end).filter(|i| *i < a.len()).map(|i| (i, k.flags)));
            }
            Find::Range(_) => out.extend((start..a.len()).map(|i| (i, k.flags))),
            Find::Keynum {
                keynumidx,
                first,
                step,
            } => {
                let n = a
                    .get(start + keynumidx.max(0) as usize)
                    .and_then(|v| crate::core::validate::parse_i64(v))
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0);
                let first = start + first.max(0) as usize;
                let step = step.max(1) as usize;
                out.extend(
                    (0..n)
                        .map(|i| first + i * step)
                        .take_while(|i| *i < a.len())
                        .map(|i| (i, k.flags)),
                );
            }
        }
    }
    out
}

/// Whether a command needs the keys-position API (its keys are not one range).
fn needs_getkeys_api(keys: &[KeyDef]) -> bool {
    keys.iter().skip(1).any(|_| true)
        || keys
            .iter()
            .any(|k| matches!(k.begin, Begin::Keyword(..)) || matches!(k.find, Find::Keynum { .. }))
}

/// Creates every command and sets its command info (arity, key specs, docs).
pub fn register(ctx: &Context) -> Result<(), String> {
    for spec in SPECS {
        let name = CString::new(spec.name).map_err(|e| e.to_string())?;
        let flags = if needs_getkeys_api(spec.keys) {
            format!("{} getkeys-api", spec.flags)
        } else {
            spec.flags.to_string()
        };
        let flags = CString::new(flags).map_err(|e| e.to_string())?;
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
    if needs_getkeys_api(keys) {
        return (0, 0, 0);
    }
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
pub fn bytes(args: &[RedisString]) -> SmallVec<[&[u8]; STACK_ARGS]> {
    args.iter().map(RedisString::as_slice).collect()
}

/// Argument `i`, or an error naming the command's syntax.
pub fn arg<'a>(a: &[&'a [u8]], i: usize) -> OResult<&'a [u8]> {
    a.get(i)
        .copied()
        .ok_or_else(|| OAuthError::invalid_request("wrong number of arguments"))
}

pub use crate::core::validate::expiry_at;

/// Writes a new record on `key`, which must be absent (`EXISTS` otherwise):
/// the header of `kind`, then the caller's `fields`, which `parse_fields`
/// found to be the last `2 * fields.len()` arguments, expiring `ttl_s`
/// seconds from `now_ms`. At once as one `RESTORE` when the record is a
/// listpack under the server's settings; otherwise through the journal,
/// field by field. The reply is `+OK` (`RESTORE`'s own, passed on, when
/// that wrote the record).
pub fn create_record(
    ctx: &Context,
    args: &[RedisString],
    key: &RedisString,
    kind: Kind,
    fields: &[Pair<'_>],
    now_ms: i64,
    ttl_s: i64,
) -> OResult<Reply> {
    let k = Key::open(ctx, key, true);
    require_absent(&k)?;
    let at = expiry_at(now_ms, ttl_s)?;
    let created = record::created_value(kind, now_ms);
    let mut pairs: SmallVec<[Pair<'_>; 18]> = SmallVec::with_capacity(2 + fields.len());
    pairs.extend(record::header_pairs(kind, created.as_deref()));
    pairs.extend_from_slice(fields);
    match effects::create_at_once(ctx, key, k, &pairs, at) {
        Some(reply) => Ok(reply.into_reply()),
        None => {
            let mut fx = Effects::new();
            fx.create_hash_strings(key, record_strings(kind, now_ms, args, fields.len()), at);
            fx.commit(ctx);
            Ok(Reply::Ok)
        }
    }
}

/// A new record as module strings, names and values alternating: the header,
/// then the caller's `FIELDS` pairs, which `parse_fields` found to be the last
/// `2 * n` arguments. Those are shared with the command's arguments, not copied.
pub fn record_strings(kind: Kind, now_ms: i64, args: &[RedisString], n: usize) -> Vec<RedisString> {
    let header = crate::core::record::header(kind, now_ms);
    let pairs = args
        .get(args.len().saturating_sub(2 * n)..)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(2 * header.len() + pairs.len());
    for (f, v) in &header {
        out.push(new_string(f));
        out.push(new_string(v));
    }
    out.extend(pairs.iter().map(share));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Words the generated arguments are drawn from: every option keyword in
    /// both cases, key-like names, numbers.
    const WORDS: &[&str] = &[
        "ISSUE",
        "issue",
        "REFRESH",
        "Refresh",
        "GRANT",
        "grant",
        "CUTOFF",
        "cutoff",
        "GRACE",
        "FIELDS",
        "fields",
        "k1",
        "{a}:x",
        "{b}:victim",
        "1",
        "2",
        "600",
        "0",
        "note",
    ];

    fn spec(name: &str) -> &'static CmdSpec {
        SPECS.iter().find(|s| s.name == name).expect("spec")
    }

    /// The arguments of one call: the command name, `fixed` fixed arguments,
    /// then words that mostly form the command's options.
    fn call(name: &'static str, fixed: usize) -> impl Strategy<Value = Vec<String>> {
        let word = prop::sample::select(WORDS).prop_map(str::to_string);
        let opt = prop_oneof![
            (
                prop::sample::select(&["ISSUE", "REFRESH", "issue"][..]),
                word.clone()
            )
                .prop_map(|(w, k)| vec![w.to_string(), k, "600".to_string()]),
            word.clone().prop_map(|k| vec!["GRANT".to_string(), k]),
            Just(vec!["GRACE".to_string(), "5".to_string()]),
            prop::collection::vec(word.clone(), 1..3).prop_map(|keys| {
                let mut v = vec!["CUTOFF".to_string(), keys.len().to_string()];
                v.extend(keys);
                v
            }),
            prop::collection::vec(word.clone(), 1..3).prop_map(|w| w),
        ];
        let fields = prop::option::of(prop::collection::vec((word.clone(), word.clone()), 0..3));
        (
            prop::collection::vec(word.clone(), fixed),
            prop::collection::vec(opt, 0..4),
            fields,
        )
            .prop_map(move |(fixed, opts, fields)| {
                let mut a = vec![name.to_string()];
                a.extend(fixed);
                a.extend(opts.into_iter().flatten());
                if let Some(f) = fields {
                    a.push("FIELDS".to_string());
                    a.push(f.len().to_string());
                    a.extend(f.into_iter().flat_map(|(n, v)| [n, v]));
                }
                a
            })
    }

    fn check(name: &str, a: &[String]) -> Result<bool, TestCaseError> {
        let s = spec(name);
        let g = s.grammar.expect("grammar");
        let a: Vec<&[u8]> = a.iter().map(String::as_bytes).collect();
        let Ok(parsed) = grammar::parse(g, &a) else {
            return Ok(false);
        };
        // What the handler uses: the fixed keys and the keys its options name.
        let mut handler: Vec<usize> = s
            .keys
            .iter()
            .filter_map(|k| match k.begin {
                Begin::Index(p) => usize::try_from(p).ok(),
                Begin::Keyword(..) => None,
            })
            .collect();
        handler.extend(parsed.keys(g, &a));
        handler.sort_unstable();
        let mut reported: Vec<usize> = located_keys(s, &a).iter().map(|(i, _)| *i).collect();
        reported.sort_unstable();
        let redis = redis_key_positions(s.keys, &a);
        prop_assert_eq!(&handler, &reported, "handler vs key report: {:?}", a);
        prop_assert_eq!(
            located_keys(s, &a),
            redis,
            "key report vs Redis's key specs: {:?}",
            a
        );
        Ok(true)
    }

    /// For every argument list the option parser accepts, the keys the
    /// handler uses, the keys the module reports (COMMAND GETKEYS, ACL,
    /// Cluster on 7.0) and the keys Redis finds from the key specs alone
    /// (ACL and cluster clients that read COMMAND INFO) are the same.
    /// Random calls of every command with keyword-located keys; a good share
    /// of them must be accepted for the comparison to mean something.
    #[test]
    fn reported_keys_are_the_keys_the_handler_uses() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for (name, fixed) in [
            ("oauth.exchange", 4),
            ("oauth.rotate", 3),
            ("oauth.savetoken", 2),
            ("oauth.introspect", 1),
        ] {
            let strategy = call(name, fixed);
            let mut accepted = 0;
            for _ in 0..4000 {
                let a = strategy.new_tree(&mut runner).expect("tree").current();
                if check(name, &a).expect("consistent") {
                    accepted += 1;
                }
            }
            assert!(
                accepted > 400,
                "{name}: only {accepted} of 4000 calls accepted"
            );
        }
    }

    /// The generator reaches accepted calls with keys after keywords, and the
    /// issue's repros are refused.
    #[test]
    fn accepted_and_refused_examples() {
        let ok = |name: &str, s: &str| {
            let a: Vec<String> = s.split(' ').map(str::to_string).collect();
            check(name, &a).expect("consistent")
        };
        assert!(ok(
            "oauth.exchange",
            "oauth.exchange c a u v GRANT g ISSUE t 600 FIELDS 1 x y"
        ));
        assert!(ok(
            "oauth.rotate",
            "oauth.rotate r r2 600 CUTOFF 2 c1 c2 ISSUE t 60"
        ));
        assert!(ok("oauth.introspect", "oauth.introspect t CUTOFF 1 c"));
        assert!(ok(
            "oauth.savetoken",
            "oauth.savetoken t 60 GRANT g FIELDS 0"
        ));
        // A key named FIELDS is still a key; the ISSUE after it is the option,
        // and its key is reported (ACL refuses it when outside the patterns).
        assert!(ok("oauth.exchange", "oauth.exchange oauth:{a}:code app1 https://app/cb v GRANT FIELDS ISSUE oauth:{b}:x 600"));
        for (name, s) in [
            ("oauth.exchange", "oauth.exchange oauth:{a}:code app1 https://app/cb v GRANT ISSUE ISSUE oauth:{b}:victim 600"),
            ("oauth.rotate", "oauth.rotate r r2 600 CUTOFF 1 ISSUE ISSUE victim 600"),
            ("oauth.savetoken", "oauth.savetoken t 60 FIELDS 2 kind grant x y"),
        ] {
            assert!(!ok(name, s), "{s}");
        }
    }

    /// Each keyword key spec starts searching where the grammar's options start.
    #[test]
    fn keyword_specs_start_at_the_options() {
        for s in SPECS {
            for k in s.keys {
                if let Begin::Keyword(word, from) = k.begin {
                    let g = s.grammar.expect("a keyword spec needs a grammar");
                    assert_eq!(
                        usize::try_from(from).ok(),
                        Some(g.from),
                        "{} {word}",
                        s.name
                    );
                    assert!(g.options.iter().any(|o| o.word == word && o.locates_keys()));
                }
            }
        }
    }
}
