//! The command table: one [`CmdSpec`] per command is the single source of its
//! name, flags, arity, key specs, option grammar and docs
//! (`register` feeds it to Redis; `COMMAND INFO`, `COMMAND DOCS` and
//! `OAUTH.HELP` show it).

use std::os::raw::c_int;

use redis_module::raw;

use super::{admin, client, code, grant, help, ratelimit, refresh, state, throttle, token};
use crate::core::grammar::Grammar;

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

/// Builds the C entry point of a handler: it runs inside
/// [`dispatch`](super::dispatch::dispatch).
macro_rules! entry {
    ($handler:path) => {{
        unsafe extern "C" fn e(
            ctx: *mut raw::RedisModuleCtx,
            argv: *mut *mut raw::RedisModuleString,
            argc: c_int,
        ) -> c_int {
            $crate::commands::dispatch::dispatch(ctx, argv, argc, $handler)
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
    CmdSpec {
        name: "oauth.scan",
        entry: entry!(admin::scan),
        flags: "readonly",
        arity: -2,
        keys: &[],
        syntax: "OAUTH.SCAN cursor [MATCH pattern] [COUNT count] [KIND kind] [CLIENT client_id] [SUBJECT sub]",
        summary: "Lists records of this node by class (code, token, refresh, client, state, grant, ...), one SCAN step per call; keys the caller's ACL may not read are skipped.",
        complexity: "O(1) for every call. O(N) for a complete iteration, N being the number of keys of the node.",
        grammar: None,
    },
    CmdSpec {
        name: "oauth.purgeclient",
        entry: entry!(admin::purgeclient),
        flags: "write",
        arity: -3,
        keys: &[],
        syntax: "OAUTH.PURGECLIENT client_id cursor [MATCH pattern] [COUNT count]",
        summary: "Deletes, one SCAN step per call, a client's registration, codes, tokens, states and grants on this node; answers counts by class.",
        complexity: "O(1) for every call. O(N) for a complete iteration, N being the number of keys of the node.",
        grammar: None,
    },
];
