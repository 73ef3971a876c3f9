//! The data every scenario uses (records, Lua scripts) and the command
//! templates built from it.

use std::ops::Range;

use crate::harness::*;
use crate::wire::*;

pub const CLIENT_ID: &[u8] = b"client-4f9c2a7e";
pub const REDIRECT: &[u8] = b"https://app.example.com/oauth/callback";
/// Longer than the default `hash-max-listpack-value` (64).
pub const REDIRECT_LONG: &[u8] =
    b"https://app.example.com/oauth2/callback?tenant=contoso-production&region=eu-west-1";
/// RFC 7636 appendix B: a verifier and its S256 challenge.
pub const VERIFIER: &[u8] = b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &[u8] = b"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const CODE_TTL: &[u8] = b"600";
pub const CODE_TTL_MS: &[u8] = b"600000";
pub const TOKEN_TTL: &[u8] = b"3600";
pub const TOKEN_TTL_MS: &[u8] = b"3600000";
/// Rate limits: this many counters per limit, a random one per request, and
/// limits never reached (every request is counted: the write path).
pub const RL_KEYS: u64 = 10_000;
pub const RL_LIMIT: &[u8] = b"1000000000";
pub const RL_WINDOW: &[u8] = b"60";
pub const RL_WINDOW_MS: &[u8] = b"60000";
/// The second limit of the multi-limit rows: per second.
pub const RL_WINDOW2: &[u8] = b"1";
pub const RL_WINDOW2_MS: &[u8] = b"1000";
/// GCRA: a burst of 1,000,000 refilled at 1,000,000 per second.
pub const GCRA_BURST: &[u8] = b"1000000";
pub const GCRA_COUNT: &[u8] = b"1000000";
pub const GCRA_PERIOD: &[u8] = b"1";

pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The 8 fields of an authorization code (about 270 bytes of names and values).
pub fn code_fields(redirect: &[u8]) -> Fields {
    [
        (&b"client_id"[..], CLIENT_ID),
        (b"redirect_uri", redirect),
        (b"code_challenge", CHALLENGE),
        (b"code_challenge_method", b"S256"),
        (b"scope", b"openid profile email offline_access"),
        (b"sub", b"user-8d3f5b2a6c1e4b7a"),
        (b"nonce", b"n-0S6_WzA2Mj4fQx7pLk9R"),
        (b"auth_time", b"1700000000"),
    ]
    .iter()
    .map(|(f, v)| (f.to_vec(), v.to_vec()))
    .collect()
}

/// The fields of the token issued from a code: the code's, without PKCE material.
pub fn token_fields(redirect: &[u8]) -> Fields {
    code_fields(redirect)
        .into_iter()
        .filter(|(f, _)| !f.starts_with(b"code_challenge"))
        .collect()
}

pub fn field_bytes(f: &Fields) -> usize {
    f.iter().map(|(a, b)| a.len() + b.len()).sum()
}

/// The Lua scripts: what gateways run today instead of the module. Each is
/// loaded once (SCRIPT LOAD) and called with EVALSHA.
pub const SCRIPTS: &[(&str, &str)] = &[
    // Store with TTL: HSET + PEXPIRE.
    (
        "store",
        "redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1",
    ),
    // Redeem: the client already hashed the verifier; the script compares.
    (
        "redeem",
        "local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
local f = {}
for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
if f['client_id'] ~= ARGV[1] or f['redirect_uri'] ~= ARGV[2] or f['code_challenge'] ~= ARGV[3] then
  return redis.error_reply('invalid_grant')
end
redis.call('DEL', KEYS[1])
return h",
    ),
    // Redeem and issue the token (the full flow without the module).
    (
        "redeem_issue",
        "local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
local f = {}
local keep = {}
for i = 1, #h, 2 do
  f[h[i]] = h[i + 1]
  if h[i] ~= 'code_challenge' and h[i] ~= 'code_challenge_method' then
    keep[#keep + 1] = h[i]
    keep[#keep + 1] = h[i + 1]
  end
end
if f['client_id'] ~= ARGV[1] or f['redirect_uri'] ~= ARGV[2] or f['code_challenge'] ~= ARGV[3] then
  return redis.error_reply('invalid_grant')
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], unpack(keep))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return keep",
    ),
    // The common fixed-window script: count, start the window on the first hit.
    (
        "incr",
        "local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n",
    ),
    // Fixed window with the module's reply: refuse without counting;
    // [limited, limit, remaining, retry_after, reset_after].
    // ARGV: limit, window_ms, cost.
    (
        "fixed",
        "local limit, cost = tonumber(ARGV[1]), tonumber(ARGV[3])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if n + cost > limit then
  local s = math.max(math.ceil(ttl / 1000), 1)
  return {1, limit, math.max(limit - n, 0), s, s}
end
n = redis.call('INCRBY', KEYS[1], cost)
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {0, limit, limit - n, -1, math.ceil(ttl / 1000)}",
    ),
    // All-or-nothing fixed windows over N keys, with the reply of
    // OAUTH.RATELIMITALL. ARGV: limit window_ms per key, then cost.
    (
        "fixed_all",
        "local n = #KEYS
local cost = tonumber(ARGV[2 * n + 1])
local ttls = {}
local deciding, best = 1, nil
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  local ttl = redis.call('PTTL', KEYS[i])
  ttls[i] = ttl
  if c + cost > limit then
    local s = math.max(math.ceil(ttl / 1000), 1)
    return {1, limit, math.max(limit - c, 0), s, s, i}
  end
  if best == nil or limit - c - cost < best then best, deciding = limit - c - cost, i end
end
local reset = 0
for i = 1, n do
  redis.call('INCRBY', KEYS[i], cost)
  if ttls[i] < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
    ttls[i] = tonumber(ARGV[2 * i])
  end
  reset = math.max(reset, math.ceil(ttls[i] / 1000))
end
return {0, tonumber(ARGV[2 * deciding - 1]), best, -1, reset, deciding}",
    ),
    // GCRA as CL.THROTTLE / OAUTH.THROTTLE, in milliseconds (Lua numbers are
    // doubles). ARGV: max_burst, count, period_s, cost.
    (
        "gcra",
        "local burst, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local period, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local emission = period * 1000 / count
local increment = emission * cost
local dvt = emission * (burst + 1)
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + increment
local diff = now - (new_tat - dvt)
if diff < 0 then
  local retry = -1
  if increment <= dvt then retry = math.ceil(-diff / 1000) end
  local ttl = tat - now
  return {1, burst + 1, math.max(0, math.floor((dvt - ttl) / emission)), retry, math.ceil(ttl / 1000)}
end
local ttl = new_tat - now
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil(ttl))
return {0, burst + 1, math.floor((dvt - ttl) / emission), -1, math.ceil(ttl / 1000)}",
    ),
    // Sliding window as OAUTH.RATELIMIT ... SLIDING: the same hash and the
    // same estimate (retry_after approximated). ARGV: limit, window_ms, cost.
    (
        "sliding",
        "local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local start = now - now % window
local h = redis.call('HMGET', KEYS[1], 'window_start', 'current', 'previous')
local ws, cur, prev = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
if ws == start - window then prev, cur = cur, 0 elseif ws ~= start then prev, cur = 0, 0 end
local elapsed = now - start
local est = math.ceil(prev * (window - elapsed) / window) + cur
local reset = math.ceil((start + 2 * window - now) / 1000)
if est + cost > limit then
  return {1, limit, math.max(limit - est, 0), math.ceil((window - elapsed) / 1000), reset}
end
redis.call('HSET', KEYS[1], 'window_start', start, 'current', cur + cost, 'previous', prev)
redis.call('PEXPIREAT', KEYS[1], start + 2 * window)
return {0, limit, limit - est - cost, -1, reset}",
    ),
];

pub struct Tpls {
    pub savecode: Tpl,
    pub savecode_long: Tpl,
    pub hset: Tpl,
    pub hset_long: Tpl,
    pub expire_code: Tpl,
    pub pexpire_code: Tpl,
    pub lua_store: Tpl,
    pub exchange: Tpl,
    pub exchange_long: Tpl,
    pub exchange_issue: Tpl,
    pub exchange_issue_long: Tpl,
    pub introspect: Tpl,
    pub hgetall: Tpl,
    pub del: Tpl,
    pub lua_redeem: Tpl,
    pub lua_redeem_issue: Tpl,
    pub lua_redeem_issue_long: Tpl,
    pub savetoken: Tpl,
    pub savetoken_long: Tpl,
    pub hset_token: Tpl,
    pub pexpire_token: Tpl,
    pub ratelimit: Tpl,
    pub incr: Tpl,
    pub expire_nx: Tpl,
    pub lua_incr: Tpl,
    pub lua_fixed: Tpl,
    pub throttle: Tpl,
    pub lua_gcra: Tpl,
    pub sliding: Tpl,
    pub lua_sliding: Tpl,
    pub all: Tpl,
    pub lua_all: Tpl,
    pub floor: Tpl,
    pub throttle_live: Tpl,
    pub ratelimit_refused: Tpl,
    pub throttle_refused: Tpl,
    pub multi: Tpl,
    pub exec: Tpl,
    pub watch: Tpl,
}

impl Tpls {
    pub fn new(env: &Env) -> Tpls {
        use A::{H, L};
        let fields = code_fields(REDIRECT);
        let long = code_fields(REDIRECT_LONG);
        let tok = token_fields(REDIRECT);
        let n8 = fields.len().to_string();
        let n6 = tok.len().to_string();
        let save = [
            L(b"OAUTH.SAVECODE"),
            H,
            L(CODE_TTL),
            L(b"FIELDS"),
            L(n8.as_bytes()),
        ];
        let exchange = |redirect| {
            Tpl::new(&[
                L(b"OAUTH.EXCHANGE"),
                H,
                L(CLIENT_ID),
                L(redirect),
                L(VERIFIER),
            ])
        };
        let savetoken = [
            L(b"OAUTH.SAVETOKEN"),
            H,
            L(TOKEN_TTL),
            L(b"FIELDS"),
            L(n6.as_bytes()),
        ];
        let exchange_issue = |redirect| {
            Tpl::new(&[
                L(b"OAUTH.EXCHANGE"),
                H,
                L(CLIENT_ID),
                L(redirect),
                L(VERIFIER),
                L(b"ISSUE"),
                H,
                L(TOKEN_TTL),
            ])
        };
        let redeem_issue = |redirect| {
            let mut a = env.evalsha("redeem_issue", b"2").to_vec();
            a.extend([
                H,
                H,
                L(CLIENT_ID),
                L(redirect),
                L(CHALLENGE),
                L(TOKEN_TTL_MS),
            ]);
            Tpl::new(&a)
        };
        let lua = |script: &str, numkeys: &'static [u8], rest: &[A]| {
            let mut a = env.evalsha(script, numkeys).to_vec();
            a.extend_from_slice(rest);
            Tpl::new(&a)
        };
        let mut lua_store = env.evalsha("store", b"1").to_vec();
        lua_store.extend([H, L(CODE_TTL_MS)]);
        let mut lua_redeem = env.evalsha("redeem", b"1").to_vec();
        lua_redeem.extend([H, L(CLIENT_ID), L(REDIRECT), L(CHALLENGE)]);
        Tpls {
            savecode: Tpl::with_fields(&save, &fields),
            savecode_long: Tpl::with_fields(&save, &long),
            hset: Tpl::with_fields(&[L(b"HSET"), H], &fields),
            hset_long: Tpl::with_fields(&[L(b"HSET"), H], &long),
            expire_code: Tpl::new(&[L(b"EXPIRE"), H, L(CODE_TTL)]),
            pexpire_code: Tpl::new(&[L(b"PEXPIRE"), H, L(CODE_TTL_MS)]),
            lua_store: Tpl::with_fields(&lua_store, &fields),
            exchange: exchange(REDIRECT),
            exchange_long: exchange(REDIRECT_LONG),
            exchange_issue: exchange_issue(REDIRECT),
            exchange_issue_long: exchange_issue(REDIRECT_LONG),
            introspect: Tpl::new(&[L(b"OAUTH.INTROSPECT"), H]),
            hgetall: Tpl::new(&[L(b"HGETALL"), H]),
            del: Tpl::new(&[L(b"DEL"), H]),
            lua_redeem: Tpl::new(&lua_redeem),
            lua_redeem_issue: redeem_issue(REDIRECT),
            lua_redeem_issue_long: redeem_issue(REDIRECT_LONG),
            savetoken: Tpl::with_fields(&savetoken, &tok),
            savetoken_long: Tpl::with_fields(&savetoken, &token_fields(REDIRECT_LONG)),
            hset_token: Tpl::with_fields(&[L(b"HSET"), H], &tok),
            pexpire_token: Tpl::new(&[L(b"PEXPIRE"), H, L(TOKEN_TTL_MS)]),
            ratelimit: Tpl::new(&[L(b"OAUTH.RATELIMIT"), H, L(RL_LIMIT), L(RL_WINDOW)]),
            incr: Tpl::new(&[L(b"INCR"), H]),
            expire_nx: Tpl::new(&[L(b"EXPIRE"), H, L(RL_WINDOW), L(b"NX")]),
            lua_incr: lua("incr", b"1", &[H, L(RL_WINDOW_MS)]),
            lua_fixed: lua("fixed", b"1", &[H, L(RL_LIMIT), L(RL_WINDOW_MS), L(b"1")]),
            throttle: Tpl::new(&[
                L(b"OAUTH.THROTTLE"),
                H,
                L(GCRA_BURST),
                L(GCRA_COUNT),
                L(GCRA_PERIOD),
            ]),
            lua_gcra: lua(
                "gcra",
                b"1",
                &[H, L(GCRA_BURST), L(GCRA_COUNT), L(GCRA_PERIOD), L(b"1")],
            ),
            sliding: Tpl::new(&[
                L(b"OAUTH.RATELIMIT"),
                H,
                L(RL_LIMIT),
                L(RL_WINDOW),
                L(b"SLIDING"),
            ]),
            lua_sliding: lua("sliding", b"1", &[H, L(RL_LIMIT), L(RL_WINDOW_MS), L(b"1")]),
            all: Tpl::new(&[
                L(b"OAUTH.RATELIMITALL"),
                L(b"2"),
                H,
                H,
                L(RL_LIMIT),
                L(RL_WINDOW),
                L(RL_LIMIT),
                L(RL_WINDOW2),
            ]),
            lua_all: lua(
                "fixed_all",
                b"2",
                &[
                    H,
                    H,
                    L(RL_LIMIT),
                    L(RL_WINDOW_MS),
                    L(RL_LIMIT),
                    L(RL_WINDOW2_MS),
                    L(b"1"),
                ],
            ),
            floor: Tpl::new(&[L(b"FLOOR.FIXED"), H, L(RL_LIMIT), L(RL_WINDOW)]),
            throttle_live: Tpl::new(&[
                L(b"OAUTH.THROTTLE"),
                H,
                L(b"1000000000"),
                L(b"1"),
                L(b"60"),
            ]),
            ratelimit_refused: Tpl::new(&[L(b"OAUTH.RATELIMIT"), H, L(b"1"), L(b"3600")]),
            throttle_refused: Tpl::new(&[L(b"OAUTH.THROTTLE"), H, L(b"0"), L(b"1"), L(b"3600")]),
            multi: Tpl::new(&[L(b"MULTI")]),
            exec: Tpl::new(&[L(b"EXEC")]),
            watch: Tpl::new(&[L(b"WATCH"), H]),
        }
    }
}

/// The client-side check of a code read with HGETALL (before DEL).
pub fn code_matches(r: Reply) -> bool {
    let Some(items) = r.items() else {
        return false;
    };
    let mut ok = 0;
    for pair in items.chunks_exact(2) {
        let want: &[u8] = match pair[0].text() {
            b"client_id" => CLIENT_ID,
            b"redirect_uri" => REDIRECT,
            b"code_challenge" => CHALLENGE,
            _ => continue,
        };
        if pair[1].text() != want {
            return false;
        }
        ok += 1;
    }
    ok == 3
}

/// DUMP of a record created by `make` (then deleted).
pub fn dump_of(srv: &Server, make: &dyn Fn(&mut Conn, &[u8])) -> Vec<u8> {
    let mut c = srv.conn();
    let k = b"bench:template";
    c.cmd(&[b"DEL", k]);
    make(&mut c, k);
    let got = c.cmd(&[b"DUMP", k]);
    let payload = got.get(0).text().to_vec();
    assert!(!payload.is_empty(), "DUMP failed: {:?}", got.get(0));
    c.cmd(&[b"DEL", k]);
    payload
}

/// Keys `prefix:0:i` for i in `range`, RESTOREd from a DUMP payload.
pub fn restore_fill(
    env: &Env,
    srv: &Server,
    prefix: &[u8],
    range: Range<u64>,
    dump: &[u8],
    ttl: &[u8],
) {
    let tpl = restore_tpl(dump, ttl);
    let start = range.start;
    env.fill(srv, range.end - range.start, &|c, i| {
        c.add(&tpl, &[key(&mut Vec::new(), prefix, 0, start + i)]);
    });
}

pub fn restore_tpl(dump: &[u8], ttl: &[u8]) -> Tpl {
    Tpl::new(&[
        A::L(b"RESTORE"),
        A::H,
        A::L(ttl),
        A::L(dump),
        A::L(b"REPLACE"),
    ])
}
