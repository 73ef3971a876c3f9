//! The project benchmark (issues 4 and 5): redis-oauth against what OAuth
//! gateways do today, every scenario side by side on one redis-server in one
//! run. Results and findings: docs/benchmarks.md.
//!
//! ```text
//! scripts/bench.sh [--quick]                  # builds the module, then runs this
//! cargo bench --bench throughput              # default run, under 3 minutes
//! cargo bench --bench throughput -- --quick   # under 30 seconds, smaller datasets
//! ```
//!
//! It starts its own redis-server (unix socket in a temporary directory,
//! `--port 0`, no persistence, killed on drop) with the module from
//! `$REDIS_OAUTH_MODULE`, or `<target>/release/libredis_oauth.so` (built with
//! `cargo build --release --lib` when the variable is unset).
//!
//! Load: `BENCH_CONNS` threads (default 50), each with its own connection,
//! each sending pipelines of `BENCH_PIPELINE` operations (default 16). The
//! client is a few hundred lines here: commands are packed from templates and
//! replies are framed and checked in place, without allocating per reply, so
//! the load generator stays cheaper than the server (every row shows the CPU
//! of both). A row with unexpected replies says so. `redis-benchmark` measures
//! the single-command rows again as a cross-check (default run).
//!
//! Noise: the variants of a scenario run interleaved, `BENCH_REPS` times each
//! (default 3, quick 1) for `BENCH_SECONDS` each (default 1, quick 0.4); a row
//! shows the median rate. The CPU of every other process on the machine during
//! the row is shown too, so a disturbed row can be seen as such.
//!
//! `BENCH_ONLY=store,redeem,flow,rate,memory,scale,wide,cross,limits` runs a subset.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The data every scenario uses
// ---------------------------------------------------------------------------

const CLIENT_ID: &[u8] = b"client-4f9c2a7e";
const REDIRECT: &[u8] = b"https://app.example.com/oauth/callback";
/// Longer than the default `hash-max-listpack-value` (64).
const REDIRECT_LONG: &[u8] =
    b"https://app.example.com/oauth2/callback?tenant=contoso-production&region=eu-west-1";
/// RFC 7636 appendix B: a verifier and its S256 challenge.
const VERIFIER: &[u8] = b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &[u8] = b"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CODE_TTL: &[u8] = b"600";
const CODE_TTL_MS: &[u8] = b"600000";
const TOKEN_TTL: &[u8] = b"3600";
const TOKEN_TTL_MS: &[u8] = b"3600000";
/// Rate limits: this many counters per limit, a random one per request, and
/// limits never reached (every request is counted: the write path).
const RL_KEYS: u64 = 10_000;
const RL_LIMIT: &[u8] = b"1000000000";
const RL_WINDOW: &[u8] = b"60";
const RL_WINDOW_MS: &[u8] = b"60000";
/// The second limit of the multi-limit rows: per second.
const RL_WINDOW2: &[u8] = b"1";
const RL_WINDOW2_MS: &[u8] = b"1000";
/// GCRA: a burst of 1,000,000 refilled at 1,000,000 per second.
const GCRA_BURST: &[u8] = b"1000000";
const GCRA_COUNT: &[u8] = b"1000000";
const GCRA_PERIOD: &[u8] = b"1";

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The 8 fields of an authorization code (about 270 bytes of names and values).
fn code_fields(redirect: &[u8]) -> Fields {
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
fn token_fields(redirect: &[u8]) -> Fields {
    code_fields(redirect)
        .into_iter()
        .filter(|(f, _)| !f.starts_with(b"code_challenge"))
        .collect()
}

fn field_bytes(f: &Fields) -> usize {
    f.iter().map(|(a, b)| a.len() + b.len()).sum()
}

/// The Lua scripts: what gateways run today instead of the module. Each is
/// loaded once (SCRIPT LOAD) and called with EVALSHA.
const SCRIPTS: &[(&str, &str)] = &[
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

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Cfg {
    quick: bool,
    conns: usize,
    depth: usize,
    secs: f64,
    reps: usize,
    scale: Vec<u64>,
    mem_flows: u64,
    only: Option<Vec<String>>,
    /// Operations per row of the callgrind section (`--instructions`).
    instr_ops: u64,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Cfg {
    fn from_env() -> Cfg {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "-h" || a == "--help") {
            println!(
                "usage: cargo bench --bench throughput [-- --quick] [-- --instructions]\n\
                 env: BENCH_CONNS (50) BENCH_PIPELINE (16) BENCH_SECONDS (1; quick 0.4)\n\
                 \x20    BENCH_REPS (3; quick 1) BENCH_INSTR_OPS (5000; quick 1000)\n\
                 \x20    BENCH_ONLY (store,redeem,flow,rate,memory,scale,wide,cross,limits,instructions)\n\
                 \x20    REDIS_OAUTH_MODULE (the module .so) REDIS_SERVER (redis-server binary)"
            );
            std::process::exit(0);
        }
        let quick = args.iter().any(|a| a == "--quick")
            || std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let instructions = args.iter().any(|a| a == "--instructions");
        Cfg {
            quick,
            conns: env_num("BENCH_CONNS").unwrap_or(50).max(1),
            depth: env_num("BENCH_PIPELINE").unwrap_or(16).max(1),
            secs: env_num("BENCH_SECONDS").unwrap_or(if quick { 0.4 } else { 1.0 }),
            reps: env_num("BENCH_REPS")
                .unwrap_or(if quick { 1 } else { 3 })
                .max(1),
            scale: if quick {
                vec![1_000, 10_000, 100_000]
            } else {
                vec![1_000, 100_000, 1_000_000]
            },
            mem_flows: if quick { 20_000 } else { 100_000 },
            only: std::env::var("BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .or(instructions.then(|| vec!["instructions".to_string()])),
            instr_ops: env_num("BENCH_INSTR_OPS").unwrap_or(if quick { 1_000 } else { 5_000 }),
        }
    }
    fn dur(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
    /// Whether a section runs: every one but `instructions` by default.
    fn wants(&self, section: &str) -> bool {
        match &self.only {
            Some(o) => o.iter().any(|s| s == section),
            None => section != "instructions",
        }
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn module_path() -> PathBuf {
    if let Ok(p) = std::env::var("REDIS_OAUTH_MODULE") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "REDIS_OAUTH_MODULE={} does not exist",
            p.display()
        );
        return p;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--lib", "--quiet"])
        .current_dir(&root)
        .status()
        .expect("could not run cargo to build the module");
    assert!(status.success(), "building the module failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let so = target.join("release/libredis_oauth.so");
    assert!(so.exists(), "module not found at {}", so.display());
    so
}

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    sock: PathBuf,
    pid: String,
}

impl Server {
    fn start(module: &Path) -> Server {
        Server::start_under(module, &[])
    }

    /// `start`, with the server run by `wrapper` (valgrind), in its directory.
    fn start_under(module: &Path, wrapper: &[&str]) -> Server {
        Server::start_full(module, wrapper, &[])
    }

    /// `start_under` with more server arguments after the defaults (which
    /// they override: `--appendonly everysec`, another `--loadmodule`).
    fn start_full(module: &Path, wrapper: &[&str], extra: &[String]) -> Server {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string());
        let dir = tempfile::Builder::new()
            .prefix("redis-oauth-bench")
            .tempdir()
            .expect("tempdir");
        let sock = dir.path().join("redis.sock");
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(&bin).current_dir(dir.path());
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&sock)
            .args(["--unixsocketperm", "700", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("redis.log"))
            .arg("--loadmodule")
            .arg(module)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {bin} {wrapper:?}: {e}"));
        let pid = child.id().to_string();
        let mut s = Server {
            child,
            dir,
            sock,
            pid,
        };
        let t0 = Instant::now();
        loop {
            if let Some(st) = s.child.try_wait().expect("wait for redis-server") {
                let log =
                    std::fs::read_to_string(s.dir.path().join("redis.log")).unwrap_or_default();
                panic!("redis-server exited ({st}):\n{log}");
            }
            if let Ok(stream) = UnixStream::connect(&s.sock) {
                let mut c = Conn::new(stream);
                if c.cmd(&[b"PING"]).get(0).text() == b"PONG" {
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn conn(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.sock).expect("connect to redis-server"))
    }

    fn cmd(&self, args: &[&str]) -> Replies {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.conn().cmd(&a)
    }

    fn flushall(&self) {
        self.cmd(&["FLUSHALL", "SYNC"]);
    }

    fn info_field(&self, section: &str, prefix: &str) -> Option<String> {
        let info = self.cmd(&["INFO", section]);
        String::from_utf8_lossy(info.get(0).text())
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    }

    fn used_memory(&self) -> i64 {
        self.info_field("memory", "used_memory:")
            .and_then(|v| v.parse().ok())
            .expect("used_memory in INFO")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// CPU accounting from /proc
// ---------------------------------------------------------------------------

/// User + system CPU ticks of a process.
fn proc_ticks(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: utime and stime are fields 14 and 15 (1-based).
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    get(11) + get(12)
}

/// Busy CPU ticks of the whole machine (all but idle and iowait).
fn machine_busy_ticks() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = v.iter().sum();
    total - v.get(3).copied().unwrap_or(0.0) - v.get(4).copied().unwrap_or(0.0)
}

fn clock_tick() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds: of the server, of this load generator, of the whole machine.
#[derive(Clone, Copy, Default)]
struct Cpu {
    srv: f64,
    cli: f64,
    busy: f64,
}

impl Cpu {
    fn now(srv: &Server, tick: f64) -> Cpu {
        Cpu {
            srv: proc_ticks(&srv.pid) / tick,
            cli: proc_ticks("self") / tick,
            busy: machine_busy_ticks() / tick,
        }
    }
    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            srv: self.srv - earlier.srv,
            cli: self.cli - earlier.cli,
            busy: self.busy - earlier.busy,
        }
    }
    fn add(&mut self, o: Cpu) {
        self.srv += o.srv;
        self.cli += o.cli;
        self.busy += o.busy;
    }
    /// Everything else on the machine.
    fn other(self) -> f64 {
        (self.busy - self.srv - self.cli).max(0.0)
    }
}

// ---------------------------------------------------------------------------
// Wire: commands packed from templates, replies framed in place (RESP2)
// ---------------------------------------------------------------------------

fn push_num(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn enc_arg(buf: &mut Vec<u8>, a: &[u8]) {
    buf.push(b'$');
    push_num(buf, a.len() as u64);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(a);
    buf.extend_from_slice(b"\r\n");
}

/// One argument of a command template: a literal, or a hole filled per call.
#[derive(Clone, Copy)]
enum A<'a> {
    L(&'a [u8]),
    H,
}

/// A command with its literal arguments packed once; the holes are keys.
struct Tpl {
    segs: Vec<Vec<u8>>,
}

impl Tpl {
    fn new(args: &[A]) -> Tpl {
        let mut first = vec![b'*'];
        push_num(&mut first, args.len() as u64);
        first.extend_from_slice(b"\r\n");
        let mut segs = vec![first];
        for a in args {
            match a {
                A::L(b) => enc_arg(segs.last_mut().expect("a segment"), b),
                A::H => segs.push(Vec::new()),
            }
        }
        Tpl { segs }
    }
    /// The arguments of `pre`, then every field name and value.
    fn with_fields(pre: &[A], fields: &Fields) -> Tpl {
        let mut args: Vec<A> = pre.to_vec();
        for (f, v) in fields {
            args.push(A::L(f));
            args.push(A::L(v));
        }
        Tpl::new(&args)
    }
    fn put(&self, buf: &mut Vec<u8>, holes: &[&[u8]]) {
        debug_assert_eq!(holes.len() + 1, self.segs.len());
        buf.extend_from_slice(&self.segs[0]);
        for (h, seg) in holes.iter().zip(&self.segs[1..]) {
            enc_arg(buf, h);
            buf.extend_from_slice(seg);
        }
    }
}

/// A connection: commands are queued, then `flush` sends them in one write
/// and reads exactly as many replies.
struct Conn {
    s: UnixStream,
    out: Vec<u8>,
    n: usize,
    inb: Vec<u8>,
}

impl Conn {
    fn new(s: UnixStream) -> Conn {
        Conn {
            s,
            out: Vec::with_capacity(16 * 1024),
            n: 0,
            inb: Vec::with_capacity(16 * 1024),
        }
    }
    fn add(&mut self, t: &Tpl, holes: &[&[u8]]) {
        t.put(&mut self.out, holes);
        self.n += 1;
    }
    fn raw(&mut self, args: &[&[u8]]) {
        self.out.push(b'*');
        push_num(&mut self.out, args.len() as u64);
        self.out.extend_from_slice(b"\r\n");
        for a in args {
            enc_arg(&mut self.out, a);
        }
        self.n += 1;
    }
    fn flush(&mut self) -> Replies {
        self.s.write_all(&self.out).expect("write to redis-server");
        self.out.clear();
        let mut ends = Vec::with_capacity(self.n);
        let mut pos = 0;
        let mut chunk = [0u8; 16 * 1024];
        while ends.len() < self.n {
            match resp_end(&self.inb, pos) {
                Some(end) => {
                    ends.push(end);
                    pos = end;
                }
                None => {
                    let got = self.s.read(&mut chunk).expect("read from redis-server");
                    assert!(got > 0, "redis-server closed the connection");
                    self.inb.extend_from_slice(&chunk[..got]);
                }
            }
        }
        self.n = 0;
        let cap = self.inb.capacity();
        Replies {
            buf: std::mem::replace(&mut self.inb, Vec::with_capacity(cap)),
            ends,
        }
    }
    fn cmd(&mut self, args: &[&[u8]]) -> Replies {
        self.raw(args);
        self.flush()
    }
}

/// Where the RESP value starting at `pos` ends, or None while `buf` does not
/// hold all of it.
fn resp_end(buf: &[u8], pos: usize) -> Option<usize> {
    let nl = pos + buf.get(pos..)?.iter().position(|&b| b == b'\n')?;
    let next = nl + 1;
    let n = || parse_int(buf.get(pos + 1..nl - 1).unwrap_or_default());
    match buf[pos] {
        b'$' if n() >= 0 => {
            let end = next + n() as usize + 2;
            (end <= buf.len()).then_some(end)
        }
        b'*' => (0..n().max(0)).try_fold(next, |p, _| resp_end(buf, p)),
        b'+' | b'-' | b':' | b'$' => Some(next),
        t => panic!("unexpected RESP type byte {:?}", t as char),
    }
}

fn parse_int(b: &[u8]) -> i64 {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let v = digits
        .iter()
        .fold(0i64, |v, d| v * 10 + i64::from(d.wrapping_sub(b'0')));
    if neg {
        -v
    } else {
        v
    }
}

/// The replies to one flush.
struct Replies {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Replies {
    fn get(&self, i: usize) -> Reply<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Reply(&self.buf[start..self.ends[i]])
    }
    fn iter(&self) -> impl Iterator<Item = Reply<'_>> {
        (0..self.ends.len()).map(|i| self.get(i))
    }
}

/// One reply, as its RESP bytes.
#[derive(Clone, Copy)]
struct Reply<'a>(&'a [u8]);

impl<'a> Reply<'a> {
    fn head(&self) -> &'a [u8] {
        let nl = self.0.iter().position(|&b| b == b'\n').unwrap_or(1);
        self.0.get(1..nl.saturating_sub(1)).unwrap_or_default()
    }
    fn is_ok(&self) -> bool {
        self.0 == b"+OK\r\n"
    }
    fn is_err(&self) -> bool {
        self.0.first() == Some(&b'-')
    }
    fn int(&self) -> Option<i64> {
        (self.0.first() == Some(&b':')).then(|| parse_int(self.head()))
    }
    /// The elements of an array (None for anything else).
    fn items(&self) -> Option<Vec<Reply<'a>>> {
        if self.0.first() != Some(&b'*') {
            return None;
        }
        let mut out = Vec::new();
        let mut p = self.head().len() + 3;
        for _ in 0..parse_int(self.head()).max(0) {
            let end = resp_end(self.0, p)?;
            out.push(Reply(&self.0[p..end]));
            p = end;
        }
        Some(out)
    }
    fn array_len(&self) -> Option<i64> {
        (self.0.first() == Some(&b'*')).then(|| parse_int(self.head()))
    }
    /// A bulk string's bytes, or a status, error or integer line.
    fn text(&self) -> &'a [u8] {
        match self.0.first() {
            Some(b'$') => {
                let h = self.head().len() + 3;
                self.0.get(h..self.0.len() - 2).unwrap_or_default()
            }
            _ => self.head(),
        }
    }
}

impl std::fmt::Debug for Reply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = String::from_utf8_lossy(&self.0[..self.0.len().min(160)]);
        write!(f, "{:?}", s.replace("\r\n", " "))
    }
}

fn is_ok(r: Reply) -> bool {
    r.is_ok()
}
fn is_int(r: Reply) -> bool {
    r.int().is_some()
}
fn is_one(r: Reply) -> bool {
    r.int() == Some(1)
}
fn not_err(r: Reply) -> bool {
    !r.is_err()
}
/// A non-empty array: a record's fields, or a rate-limit verdict.
fn is_array(r: Reply) -> bool {
    r.array_len().is_some_and(|n| n > 0)
}
/// An allowed rate-limit verdict `[0, limit, remaining, ...]`.
fn is_allowed(r: Reply) -> bool {
    let first = r.head().len() + 3;
    r.array_len().is_some_and(|n| n >= 5) && r.0[first..].starts_with(b":0\r\n")
}

/// The key `prefix:a:b`, written into a scratch buffer.
fn key<'b>(buf: &'b mut Vec<u8>, prefix: &[u8], a: u64, b: u64) -> &'b [u8] {
    buf.clear();
    buf.extend_from_slice(prefix);
    buf.push(b':');
    push_num(buf, a);
    buf.push(b':');
    push_num(buf, b);
    buf
}

/// xorshift64: random keys without a dependency.
struct Rng(u64);
impl Rng {
    fn seeded(a: u64) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (a.wrapping_add(1).wrapping_mul(0x2545_F491_4F6C_DD1D)))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    ops: u64,
    errors: u64,
    first_err: Option<String>,
    lat_us: Vec<u32>,
}

impl Stats {
    fn fail(&mut self, msg: String) {
        self.errors += 1;
        if self.first_err.is_none() {
            self.first_err = Some(msg);
        }
    }
    /// Checks every reply of a flush.
    fn expect(&mut self, got: &Replies, what: &str, ok: fn(Reply) -> bool) {
        for r in got.iter() {
            if !ok(r) {
                self.fail(format!("expected {what}, got {r:?}"));
            }
        }
    }
    fn merge(&mut self, o: Stats) {
        self.ops += o.ops;
        self.errors += o.errors;
        if self.first_err.is_none() {
            self.first_err = o.first_err;
        }
        self.lat_us.extend(o.lat_us);
    }
    fn lap(&mut self, t0: Instant) {
        self.lat_us
            .push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
}

/// One timed run.
struct Rep {
    stats: Stats,
    secs: f64,
    cpu: Cpu,
}

/// One row of a table: the reps of one variant.
struct Row {
    name: String,
    rates: Vec<f64>,
    ops: u64,
    secs: f64,
    cpu: Cpu,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    first_err: Option<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

impl Row {
    fn from_reps(name: &str, reps: Vec<Rep>) -> Row {
        let mut all = Stats::default();
        let mut cpu = Cpu::default();
        let mut rates = Vec::new();
        let mut secs = 0.0;
        for r in reps {
            rates.push(r.stats.ops as f64 / r.secs.max(1e-9));
            secs += r.secs;
            cpu.add(r.cpu);
            all.merge(r.stats);
        }
        all.lat_us.sort_unstable();
        Row {
            name: name.to_string(),
            rates,
            ops: all.ops,
            secs,
            cpu,
            p50_ms: percentile(&all.lat_us, 0.50),
            p99_ms: percentile(&all.lat_us, 0.99),
            errors: all.errors,
            first_err: all.first_err,
        }
    }
    /// Median ops/s over the reps.
    fn rate(&self) -> f64 {
        median(&self.rates)
    }
    /// CPU seconds as a percentage of the row's wall time (100% = one core).
    fn pct(&self, x: f64) -> f64 {
        100.0 * x / self.secs.max(1e-9)
    }
    /// Server CPU microseconds per operation.
    fn srv_us(&self) -> f64 {
        self.cpu.srv * 1e6 / (self.ops.max(1) as f64)
    }
    fn log(&self) {
        eprintln!(
            "  {:<58} {:>8.0} ops/s (runs: {})  p50 {:.2} p99 {:.2} ms  cpu srv {:.0}% cli {:.0}% other {:.0}%  {:.2} µs/op{}",
            self.name,
            self.rate(),
            self.rates
                .iter()
                .map(|r| format!("{:.0}k", r / 1000.0))
                .collect::<Vec<_>>()
                .join(" "),
            self.p50_ms,
            self.p99_ms,
            self.pct(self.cpu.srv),
            self.pct(self.cpu.cli),
            self.pct(self.cpu.other()),
            self.srv_us(),
            match &self.first_err {
                Some(e) => format!("  {} ERRORS, first: {e}", self.errors),
                None => String::new(),
            }
        );
    }
}

/// What a thread does per batch: its round trips; returns the operations
/// completed, 0 when it has no more work.
type Batch<'a> = Box<dyn FnMut(&mut Conn, &mut Stats) -> usize + Send + 'a>;
type MakeBatch<'a> = dyn Fn(usize) -> Batch<'a> + Sync + 'a;

/// A variant of a scenario: prepares (fills, flushes) and runs once per rep.
struct Variant<'a> {
    name: String,
    run: Box<dyn Fn() -> Rep + 'a>,
}

fn variant<'a>(name: impl Into<String>, run: impl Fn() -> Rep + 'a) -> Variant<'a> {
    Variant {
        name: name.into(),
        run: Box::new(run),
    }
}

struct Env {
    cfg: Cfg,
    srv: Server,
    module: PathBuf,
    tick: f64,
    /// Script name -> SHA1.
    sha: HashMap<&'static str, Vec<u8>>,
}

impl Env {
    fn cpu(&self, srv: &Server) -> Cpu {
        Cpu::now(srv, self.tick)
    }

    /// `conns` threads call their batch function in a loop for the configured
    /// time, or until they run out of work.
    fn run_free(&self, srv: &Server, mk: &MakeBatch) -> Rep {
        let conns = self.cfg.conns;
        let dur = self.cfg.dur();
        let barrier = Barrier::new(conns + 1);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..conns)
                .map(|t| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        let mut conn = srv.conn();
                        let mut f = mk(t);
                        let mut st = Stats::default();
                        barrier.wait();
                        let end = Instant::now() + dur;
                        while Instant::now() < end {
                            let t0 = Instant::now();
                            let n = f(&mut conn, &mut st);
                            if n == 0 {
                                break;
                            }
                            st.lap(t0);
                            st.ops += n as u64;
                        }
                        st
                    })
                })
                .collect();
            barrier.wait();
            let t0 = Instant::now();
            let c0 = self.cpu(srv);
            let mut stats = Stats::default();
            for h in handles {
                stats.merge(h.join().expect("load thread panicked"));
            }
            Rep {
                stats,
                secs: t0.elapsed().as_secs_f64(),
                cpu: self.cpu(srv).since(c0),
            }
        })
    }

    /// Rounds: every thread runs one `timed` batch, all wait for each other,
    /// then one `untimed` batch (restoring what the timed one consumed). Only
    /// the timed phases count, measured from the first barrier to the second.
    fn run_rounds(&self, srv: &Server, timed: &MakeBatch, untimed: &MakeBatch) -> Rep {
        let conns = self.cfg.conns;
        let dur = self.cfg.dur();
        let barrier = Barrier::new(conns);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..conns)
                .map(|t| {
                    let (barrier, stop) = (&barrier, &stop);
                    s.spawn(move || {
                        let mut conn = srv.conn();
                        let (mut ft, mut fu) = (timed(t), untimed(t));
                        let mut st = Stats::default();
                        let mut junk = Stats::default();
                        let (mut secs, mut cpu) = (0.0, Cpu::default());
                        let wall = Instant::now();
                        loop {
                            barrier.wait();
                            let t0 = Instant::now();
                            let c0 = if t == 0 {
                                self.cpu(srv)
                            } else {
                                Cpu::default()
                            };
                            let n = ft(&mut conn, &mut st);
                            st.lap(t0);
                            st.ops += n as u64;
                            barrier.wait();
                            if t == 0 {
                                secs += t0.elapsed().as_secs_f64();
                                cpu.add(self.cpu(srv).since(c0));
                            }
                            fu(&mut conn, &mut junk);
                            if t == 0 {
                                stop.store(wall.elapsed() >= dur, Ordering::Relaxed);
                            }
                            barrier.wait();
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        if let Some(e) = junk.first_err {
                            st.fail(format!("untimed phase: {e}"));
                        }
                        (st, secs, cpu)
                    })
                })
                .collect();
            let mut stats = Stats::default();
            let (mut secs, mut cpu) = (0.0, Cpu::default());
            for (i, h) in handles.into_iter().enumerate() {
                let (st, s, c) = h.join().expect("load thread panicked");
                stats.merge(st);
                if i == 0 {
                    (secs, cpu) = (s, c);
                }
            }
            Rep { stats, secs, cpu }
        })
    }

    /// Runs the variants interleaved, `reps` times each, and returns a row each.
    fn group(&self, variants: &[Variant]) -> Vec<Row> {
        let mut reps: Vec<Vec<Rep>> = variants.iter().map(|_| Vec::new()).collect();
        for _ in 0..self.cfg.reps {
            for (v, out) in variants.iter().zip(reps.iter_mut()) {
                out.push((v.run)());
            }
        }
        let rows: Vec<Row> = variants
            .iter()
            .zip(reps)
            .map(|(v, r)| Row::from_reps(&v.name, r))
            .collect();
        for r in &rows {
            r.log();
        }
        rows
    }

    /// Sends `one(conn, i)` for every i in `0..n`, pipelined 256 deep, over 4
    /// connections each taking a contiguous range.
    fn fill(&self, srv: &Server, n: u64, one: &(dyn Fn(&mut Conn, u64) + Sync)) {
        let threads = 4u64;
        let per = n.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for t in 0..threads {
                let r = (t * per).min(n)..((t + 1) * per).min(n);
                s.spawn(move || {
                    let mut c = srv.conn();
                    for lo in r.clone().step_by(256) {
                        for i in lo..(lo + 256).min(r.end) {
                            one(&mut c, i);
                        }
                        for v in c.flush().iter() {
                            assert!(!v.is_err(), "fill failed: {v:?}");
                        }
                    }
                });
            }
        });
    }

    /// `EVALSHA <script> numkeys` as the first literals of a template.
    fn evalsha(&self, script: &str, numkeys: &'static [u8]) -> [A<'_>; 3] {
        [A::L(b"EVALSHA"), A::L(&self.sha[script]), A::L(numkeys)]
    }
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

struct Tpls {
    savecode: Tpl,
    savecode_long: Tpl,
    hset: Tpl,
    hset_long: Tpl,
    expire_code: Tpl,
    pexpire_code: Tpl,
    lua_store: Tpl,
    exchange: Tpl,
    exchange_long: Tpl,
    exchange_issue: Tpl,
    exchange_issue_long: Tpl,
    introspect: Tpl,
    hgetall: Tpl,
    del: Tpl,
    lua_redeem: Tpl,
    lua_redeem_issue: Tpl,
    lua_redeem_issue_long: Tpl,
    savetoken: Tpl,
    savetoken_long: Tpl,
    hset_token: Tpl,
    pexpire_token: Tpl,
    ratelimit: Tpl,
    incr: Tpl,
    expire_nx: Tpl,
    lua_incr: Tpl,
    lua_fixed: Tpl,
    throttle: Tpl,
    lua_gcra: Tpl,
    sliding: Tpl,
    lua_sliding: Tpl,
    all: Tpl,
    lua_all: Tpl,
    floor: Tpl,
    throttle_live: Tpl,
    ratelimit_refused: Tpl,
    throttle_refused: Tpl,
    multi: Tpl,
    exec: Tpl,
    watch: Tpl,
}

impl Tpls {
    fn new(env: &Env) -> Tpls {
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
fn code_matches(r: Reply) -> bool {
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
fn dump_of(srv: &Server, make: &dyn Fn(&mut Conn, &[u8])) -> Vec<u8> {
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
fn restore_fill(
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

fn restore_tpl(dump: &[u8], ttl: &[u8]) -> Tpl {
    Tpl::new(&[
        A::L(b"RESTORE"),
        A::H,
        A::L(ttl),
        A::L(dump),
        A::L(b"REPLACE"),
    ])
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// A comparison of two rows of a group: `a` (the module) ÷ `b`, with the
/// issue's target for the ops/s ratio, if it sets one.
struct Cmp {
    a: usize,
    b: usize,
    min: Option<f64>,
}

struct Group {
    title: String,
    rows: Vec<Row>,
    cmps: Vec<Cmp>,
    note: String,
}

impl Group {
    fn new(title: impl Into<String>, rows: Vec<Row>, note: impl Into<String>) -> Group {
        Group {
            title: title.into(),
            rows,
            cmps: Vec::new(),
            note: note.into(),
        }
    }
    fn cmp(mut self, a: usize, b: usize, min: Option<f64>) -> Group {
        self.cmps.push(Cmp { a, b, min });
        self
    }
    /// (ops/s ratio, server CPU per op ratio): above 1 means `a` is faster.
    fn ratios(&self, c: &Cmp) -> (f64, f64) {
        let (a, b) = (&self.rows[c.a], &self.rows[c.b]);
        (
            a.rate() / b.rate().max(1e-9),
            b.srv_us() / a.srv_us().max(1e-9),
        )
    }
}

/// Writes fresh keys `prefix:thread:seq` after a FLUSHALL: every operation
/// is the templates in `tpls`, each sent for the whole batch and its replies
/// checked with `ok` before the next template (one round trip per template).
fn fresh_keys<'a>(
    env: &'a Env,
    name: &str,
    tpls: Vec<&'a Tpl>,
    ok: fn(Reply) -> bool,
) -> Variant<'a> {
    let (srv, d) = (&env.srv, env.cfg.depth as u64);
    variant(name, move || {
        srv.flushall();
        env.run_free(srv, &|th| {
            let mut seq = 0u64;
            let mut kb = Vec::new();
            let tpls = tpls.clone();
            Box::new(move |conn, st| {
                for tpl in &tpls {
                    for j in 0..d {
                        conn.add(tpl, &[key(&mut kb, b"s", th as u64, seq + j)]);
                    }
                    st.expect(&conn.flush(), "a success reply", ok);
                }
                seq += d;
                d as usize
            })
        })
    })
}

fn store_scenario(env: &Env, t: &Tpls) -> Group {
    let (srv, d) = (&env.srv, env.cfg.depth as u64);
    let variants = vec![
        fresh_keys(env, "OAUTH.SAVECODE", vec![&t.savecode], is_ok),
        fresh_keys(
            env,
            "HSET; EXPIRE (2 round trips)",
            vec![&t.hset, &t.expire_code],
            is_int,
        ),
        variant("MULTI HSET PEXPIRE EXEC", || {
            srv.flushall();
            env.run_free(srv, &|th| {
                let mut seq = 0u64;
                let mut kb = Vec::new();
                Box::new(move |conn, st| {
                    for _ in 0..d {
                        let k = key(&mut kb, b"s", th as u64, seq);
                        seq += 1;
                        conn.raw(&[b"MULTI"]);
                        conn.add(&t.hset, &[k]);
                        conn.add(&t.pexpire_code, &[k]);
                        conn.raw(&[b"EXEC"]);
                    }
                    let got = conn.flush();
                    for (i, r) in got.iter().enumerate() {
                        if i % 4 == 3 && r.array_len() != Some(2) || r.is_err() {
                            st.fail(format!("MULTI/EXEC: {r:?}"));
                        }
                    }
                    d as usize
                })
            })
        }),
        fresh_keys(env, "Lua: HSET, PEXPIRE", vec![&t.lua_store], is_int),
        fresh_keys(env, "bare HSET (no TTL)", vec![&t.hset], is_int),
    ];
    let f = code_fields(REDIRECT);
    let g = Group::new(
        format!(
            "1. Store a code ({} fields, {} bytes of names and values, TTL)",
            f.len(),
            field_bytes(&f)
        ),
        env.group(&variants),
        "Every operation writes a new key. `HSET; EXPIRE`: the two commands in two round \
         trips (the TTL lands a round trip later). `MULTI HSET PEXPIRE EXEC`: a transaction per \
         code, pipelined. `Lua`: EVALSHA of a script doing HSET and PEXPIRE. The module also \
         refuses to overwrite an existing key, validates the fields (client_id, PKCE challenge \
         syntax and method) and adds `_kind`; the others write blindly.",
    );
    store_cmps(g)
}

/// SAVECODE vs HSET;EXPIRE, MULTI/EXEC (≥ 2x), Lua (≥ 1.5x), bare HSET (≥ 0.8x).
fn store_cmps(g: Group) -> Group {
    g.cmp(0, 1, None)
        .cmp(0, 2, Some(2.0))
        .cmp(0, 3, Some(1.5))
        .cmp(0, 4, Some(0.8))
}

fn redeem_scenario(env: &Env, t: &Tpls) -> Group {
    let srv = &env.srv;
    let d = env.cfg.depth as u64;
    // Each run redeems from a fresh pool of live codes; a thread stops early
    // if its share runs out (the table then says so).
    let pool = ((env.cfg.secs * 250_000.0) as u64).max(20_000);
    let per = pool / env.cfg.conns as u64;
    let module_code = dump_of(srv, &|c, k| {
        c.add(&t.savecode, &[k]);
        assert!(c.flush().get(0).is_ok(), "SAVECODE template");
    });
    let plain_code = dump_of(srv, &|c, k| {
        c.add(&t.hset, &[k]);
        c.add(&t.pexpire_code, &[k]);
        c.flush();
    });
    let (module_code, plain_code) = (&module_code[..], &plain_code[..]);
    let fill = |dump: &[u8]| {
        srv.flushall();
        restore_fill(env, srv, b"p", 0..pool, dump, CODE_TTL_MS);
    };
    // Thread th owns the codes [th*per, (th+1)*per): `take` hands out its
    // next (up to) n codes, None once they are used up.
    let take = |th: usize, used: &mut u64, n: u64| {
        let lo = th as u64 * per + *used;
        let n = n.min(per - *used);
        *used += n;
        (n > 0).then_some(lo..lo + n)
    };
    // One command per code, pipelined: OAUTH.EXCHANGE or the Lua script.
    let one_command = |name: &str, module: bool| {
        variant(name, move || {
            let (dump, tpl) = if module {
                (module_code, &t.exchange)
            } else {
                (plain_code, &t.lua_redeem)
            };
            fill(dump);
            env.run_free(srv, &|th| {
                let (mut used, mut kb) = (0, Vec::new());
                Box::new(move |conn, st| {
                    let Some(r) = take(th, &mut used, d) else {
                        return 0;
                    };
                    for j in r.clone() {
                        conn.add(tpl, &[key(&mut kb, b"p", 0, j)]);
                    }
                    st.expect(&conn.flush(), "the code's fields", is_array);
                    r.count()
                })
            })
        })
    };
    let variants = vec![
        one_command("OAUTH.EXCHANGE", true),
        variant("HGETALL; check; DEL (racy, 2 round trips)", || {
            fill(plain_code);
            env.run_free(srv, &|th| {
                let (mut used, mut kb) = (0, Vec::new());
                Box::new(move |conn, st| {
                    let Some(r) = take(th, &mut used, d) else {
                        return 0;
                    };
                    for j in r.clone() {
                        conn.add(&t.hgetall, &[key(&mut kb, b"p", 0, j)]);
                    }
                    let got = conn.flush();
                    for (j, v) in r.clone().zip(got.iter()) {
                        if code_matches(v) {
                            conn.add(&t.del, &[key(&mut kb, b"p", 0, j)]);
                        } else {
                            st.fail(format!("code check failed: {v:?}"));
                        }
                    }
                    st.expect(&conn.flush(), "1", is_one);
                    r.count()
                })
            })
        }),
        variant("WATCH HGETALL; check; MULTI DEL EXEC", || {
            fill(plain_code);
            env.run_free(srv, &|th| {
                let (mut used, mut kb) = (0, Vec::new());
                Box::new(move |conn, st| {
                    // A transaction watches its own keys: one code per
                    // transaction, so no pipelining across codes.
                    let Some(r) = take(th, &mut used, 1) else {
                        return 0;
                    };
                    let k = key(&mut kb, b"p", 0, r.start).to_vec();
                    conn.raw(&[b"WATCH", &k]);
                    conn.add(&t.hgetall, &[&k]);
                    let got = conn.flush();
                    if !code_matches(got.get(1)) {
                        st.fail(format!("code check failed: {:?}", got.get(1)));
                        conn.cmd(&[b"UNWATCH"]);
                        return 1;
                    }
                    conn.raw(&[b"MULTI"]);
                    conn.add(&t.del, &[&k]);
                    conn.raw(&[b"EXEC"]);
                    let got = conn.flush();
                    if got.get(2).array_len() != Some(1) {
                        st.fail(format!("EXEC: {:?}", got.get(2)));
                    }
                    1
                })
            })
        }),
        one_command("Lua: HGETALL, compare, DEL", false),
    ];
    let g = Group::new(
        "2. Redeem a code with S256 PKCE",
        env.group(&variants),
        format!(
            "Every run redeems codes from a fresh pool of {pool} live codes: RESTOREd copies of \
             a code written by OAUTH.SAVECODE, or of the plain 8-field hash with TTL for the \
             others. The module hashes the verifier (SHA-256, base64url), checks client_id \
             and redirect_uri, and leaves a tombstone (reuse detection, revocation of the issued \
             token); the others compare a challenge the client hashed, and delete the code. \
             WATCH/MULTI cannot pipeline across codes on one connection (a transaction watches \
             its own keys), so it runs one code per transaction."
        ),
    );
    redeem_cmps(g)
}

/// EXCHANGE vs HGETALL;DEL, WATCH/MULTI (≥ 2x), Lua (≥ 1.5x).
fn redeem_cmps(g: Group) -> Group {
    g.cmp(0, 1, None).cmp(0, 2, Some(2.0)).cmp(0, 3, Some(1.5))
}

/// A whole flow per operation: save code `fc:..`, redeem it into token `ft:..`, read the token.
fn flow_run<'a>(
    env: &'a Env,
    save: &'a Tpl,
    redeem: &'a Tpl,
    read: &'a Tpl,
) -> impl Fn() -> Rep + 'a {
    let (srv, d) = (&env.srv, env.cfg.depth as u64);
    move || {
        srv.flushall();
        env.run_free(srv, &|th| {
            let (mut seq, th) = (0u64, th as u64);
            let (mut kb, mut tb) = (Vec::new(), Vec::new());
            Box::new(move |conn, st| {
                for j in seq..seq + d {
                    conn.add(save, &[key(&mut kb, b"fc", th, j)]);
                }
                st.expect(&conn.flush(), "no error", not_err);
                for j in seq..seq + d {
                    conn.add(
                        redeem,
                        &[key(&mut kb, b"fc", th, j), key(&mut tb, b"ft", th, j)],
                    );
                }
                st.expect(&conn.flush(), "the token's fields", is_array);
                for j in seq..seq + d {
                    conn.add(read, &[key(&mut tb, b"ft", th, j)]);
                }
                st.expect(&conn.flush(), "the token", is_array);
                seq += d;
                d as usize
            })
        })
    }
}

fn flow_scenario(env: &Env, t: &Tpls) -> Group {
    let variants = vec![
        variant(
            "module: SAVECODE; EXCHANGE ISSUE; INTROSPECT",
            flow_run(env, &t.savecode, &t.exchange_issue, &t.introspect),
        ),
        variant(
            "Lua store; Lua redeem + issue; HGETALL",
            flow_run(env, &t.lua_store, &t.lua_redeem_issue, &t.hgetall),
        ),
    ];
    Group::new(
        "3. Full flow: save a code, exchange it with ISSUE, introspect the token",
        env.group(&variants),
        "One operation is a whole flow: three commands in three round trips per batch. \
         The plain introspection is a bare HGETALL (no expiry, no kind check).",
    )
    .cmp(0, 1, None)
}

/// Every request: the templates in `tpls` against random counters (each hole
/// of a template is a counter of its own limit), pipelined together.
fn counters<'a>(
    env: &'a Env,
    name: &str,
    tpls: Vec<&'a Tpl>,
    ok: fn(Reply) -> bool,
) -> Variant<'a> {
    let (srv, d) = (&env.srv, env.cfg.depth);
    variant(name, move || {
        srv.flushall();
        env.run_free(srv, &|th| {
            let mut rng = Rng::seeded(th as u64);
            let (mut k1, mut k2) = (Vec::new(), Vec::new());
            let tpls = tpls.clone();
            Box::new(move |conn, st| {
                for _ in 0..d {
                    let a = key(&mut k1, b"rl", 1, rng.next() % RL_KEYS);
                    let b = key(&mut k2, b"rl", 2, rng.next() % RL_KEYS);
                    for tpl in &tpls {
                        conn.add(tpl, &[a, b][..tpl.segs.len() - 1]);
                    }
                }
                st.expect(&conn.flush(), "an allowed request", ok);
                d
            })
        })
    })
}

/// The rate-limit rows: (name, templates per request, reply check). The
/// module's limiters come first in each pair, then what they are compared with.
/// A row of table 4: its name, the templates of one request, the reply check.
type RateRow<'a> = (&'static str, Vec<&'a Tpl>, fn(Reply) -> bool);

fn rate_rows(t: &Tpls) -> Vec<RateRow<'_>> {
    vec![
        ("OAUTH.RATELIMIT", vec![&t.ratelimit], is_allowed),
        (
            "INCR + EXPIRE NX (pipelined)",
            vec![&t.incr, &t.expire_nx],
            is_int,
        ),
        ("Lua: INCR (count only)", vec![&t.lua_incr], is_int),
        ("Lua: fixed window", vec![&t.lua_fixed], is_allowed),
        ("OAUTH.THROTTLE (GCRA)", vec![&t.throttle], is_allowed),
        ("Lua: GCRA", vec![&t.lua_gcra], is_allowed),
        ("OAUTH.RATELIMIT SLIDING", vec![&t.sliding], is_allowed),
        ("Lua: sliding window", vec![&t.lua_sliding], is_allowed),
        ("OAUTH.RATELIMITALL (2 limits)", vec![&t.all], is_allowed),
        (
            "Lua: 2 fixed windows, all or nothing",
            vec![&t.lua_all],
            is_allowed,
        ),
        ("bare INCR (no window)", vec![&t.incr], is_int),
    ]
}

/// Module limiter vs its Lua equivalent (≥ 1.5x) and vs bare INCR (≥ 0.7x).
fn rate_cmps(mut g: Group) -> Group {
    for (m, l) in [(0, 3), (4, 5), (6, 7), (8, 9)] {
        g = g.cmp(m, l, Some(1.5)).cmp(m, 10, Some(0.7));
    }
    g.cmp(0, 2, None).cmp(0, 1, None)
}

fn rate_scenario(env: &Env, t: &Tpls) -> Group {
    let variants: Vec<Variant> = rate_rows(t)
        .into_iter()
        .map(|(name, tpls, ok)| counters(env, name, tpls, ok))
        .collect();
    let g = Group::new(
        format!("4. Rate limits ({RL_KEYS} counters per limit, a random one per request)"),
        env.group(&variants),
        "Every limiter answers `[limited, limit, remaining, retry_after, reset_after]` \
         (RATELIMITALL and its script add the deciding limit) and does not count a refused \
         request; the limits are never reached, so every request writes. `INCR + EXPIRE NX`: \
         both commands per request, pipelined. `Lua: INCR (count only)`: INCR, then PEXPIRE on \
         the first hit, answering the count only: the script most gateways run. `Lua: fixed \
         window`: GET, PTTL, INCRBY, PEXPIRE, answering like OAUTH.RATELIMIT. `Lua: GCRA`: \
         TIME, GET, SET PX, in floating-point milliseconds (Lua numbers are doubles; the module \
         works in integer nanoseconds). `Lua: sliding window`: TIME, HMGET, HSET, PEXPIREAT on \
         the module's hash with its estimate (retry_after approximated; the module computes it \
         exactly). `OAUTH.RATELIMITALL (2 limits)`: a per-minute and a per-second counter, \
         counted only if both allow, against `Lua: 2 fixed windows` doing the same; they update \
         two counters per request, bare INCR one.",
    );
    rate_cmps(g)
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

struct MemRow {
    what: String,
    /// (bytes, encoding) of the module's record and of the plain one.
    module: (i64, String),
    plain: Option<(i64, String)>,
}

struct Memory {
    rows: Vec<MemRow>,
    /// (state, module bytes each, plain bytes each)
    per_flow: Vec<(String, f64, f64)>,
    flows: u64,
}

impl Memory {
    fn ratio(&self, i: usize) -> f64 {
        let r = &self.rows[i];
        r.module.0 as f64 / r.plain.as_ref().map_or(1, |p| p.0).max(1) as f64
    }
}

/// `MEMORY USAGE key SAMPLES 0` and `OBJECT ENCODING key`.
fn usage(c: &mut Conn, k: &[u8]) -> (i64, String) {
    c.raw(&[b"MEMORY", b"USAGE", k, b"SAMPLES", b"0"]);
    c.raw(&[b"OBJECT", b"ENCODING", k]);
    let got = c.flush();
    let bytes = got.get(0).int().expect("MEMORY USAGE answers an integer");
    (
        bytes,
        String::from_utf8_lossy(got.get(1).text()).into_owned(),
    )
}

fn mem_row(c: &mut Conn, what: String, module_key: &[u8], plain_key: Option<&[u8]>) -> MemRow {
    MemRow {
        what,
        module: usage(c, module_key),
        plain: plain_key.map(|k| usage(c, k)),
    }
}

fn set_listpack_value(srv: &Server, v: &str) {
    srv.cmd(&["CONFIG", "SET", "hash-max-listpack-value", v]);
}

/// The settings every memory measurement runs under: (hash-max-listpack-value,
/// long redirect_uri). The default keeps a short redirect_uri compact only.
const MEM_CASES: [(&str, bool); 3] = [("64", false), ("64", true), ("256", true)];

fn memory(env: &Env, t: &Tpls) -> Memory {
    let srv = &env.srv;
    srv.flushall();
    let mut c = srv.conn();
    let mut rows = Vec::new();
    for (setting, long) in MEM_CASES {
        set_listpack_value(srv, setting);
        let tag = format!("{setting}{long}");
        let mk = format!("m:code:{tag}").into_bytes();
        let pk = format!("p:code:{tag}").into_bytes();
        c.add(if long { &t.savecode_long } else { &t.savecode }, &[&mk]);
        c.add(if long { &t.hset_long } else { &t.hset }, &[&pk]);
        c.add(&t.pexpire_code, &[&pk]);
        let got = c.flush();
        assert!(got.get(0).is_ok(), "SAVECODE: {:?}", got.get(0));
        let redirect = if long { REDIRECT_LONG } else { REDIRECT };
        rows.push(mem_row(
            &mut c,
            format!(
                "code record, {}-byte redirect_uri, hash-max-listpack-value {setting}{}",
                redirect.len(),
                if setting == "64" { " (default)" } else { "" }
            ),
            &mk,
            Some(&pk),
        ));
    }
    set_listpack_value(srv, "64");

    // A tombstone and a token from a real exchange with ISSUE.
    c.add(&t.savecode, &[b"m:code:x"]);
    c.add(&t.exchange_issue, &[b"m:code:x", b"m:tok:x"]);
    c.add(&t.hset_token, &[b"p:tok:x"]);
    c.add(&t.pexpire_token, &[b"p:tok:x"]);
    let got = c.flush();
    assert!(is_array(got.get(1)), "EXCHANGE ISSUE: {:?}", got.get(1));
    rows.push(mem_row(
        &mut c,
        "tombstone of an exchanged code (plain: the code is deleted)".into(),
        b"m:code:x",
        None,
    ));
    let tf = token_fields(REDIRECT);
    rows.push(mem_row(
        &mut c,
        format!(
            "token record ({} fields, {} bytes)",
            tf.len(),
            field_bytes(&tf)
        ),
        b"m:tok:x",
        Some(b"p:tok:x"),
    ));
    for _ in 0..2 {
        c.add(&t.ratelimit, &[b"m:rl"]);
        c.add(&t.incr, &[b"p:rl"]);
        c.add(&t.expire_nx, &[b"p:rl"]);
    }
    c.flush();
    rows.push(mem_row(
        &mut c,
        "fixed-window counter (plain: INCR + EXPIRE)".into(),
        b"m:rl",
        Some(b"p:rl"),
    ));
    drop(c);

    // Bytes per live authorization: used_memory before and after n flows.
    let n = env.cfg.mem_flows;
    let mut per_flow = Vec::new();
    for (setting, long) in MEM_CASES {
        set_listpack_value(srv, setting);
        let label = format!(
            "{}-byte redirect_uri, hash-max-listpack-value {setting}",
            if long { REDIRECT_LONG } else { REDIRECT }.len()
        );
        let (save, exchange, hset, redeem) = if long {
            (
                &t.savecode_long,
                &t.exchange_issue_long,
                &t.hset_long,
                &t.lua_redeem_issue_long,
            )
        } else {
            (&t.savecode, &t.exchange_issue, &t.hset, &t.lua_redeem_issue)
        };
        let measure = |save_one: &(dyn Fn(&mut Conn, u64) + Sync),
                       redeem_one: &(dyn Fn(&mut Conn, u64) + Sync)| {
            srv.flushall();
            let m0 = srv.used_memory();
            env.fill(srv, n, save_one);
            let m1 = srv.used_memory();
            env.fill(srv, n, redeem_one);
            let m2 = srv.used_memory();
            srv.flushall();
            ((m1 - m0) as f64 / n as f64, (m2 - m0) as f64 / n as f64)
        };
        let (m_code, m_flow) = measure(
            &|c, j| c.add(save, &[key(&mut Vec::new(), b"mc", 0, j)]),
            &|c, j| {
                let (mut kb, mut tb) = (Vec::new(), Vec::new());
                c.add(
                    exchange,
                    &[key(&mut kb, b"mc", 0, j), key(&mut tb, b"mt", 0, j)],
                );
            },
        );
        let (p_code, p_flow) = measure(
            &|c, j| {
                let k = key(&mut Vec::new(), b"pc", 0, j).to_vec();
                c.add(hset, &[&k]);
                c.add(&t.pexpire_code, &[&k]);
            },
            &|c, j| {
                let (mut kb, mut tb) = (Vec::new(), Vec::new());
                c.add(
                    redeem,
                    &[key(&mut kb, b"pc", 0, j), key(&mut tb, b"pt", 0, j)],
                );
            },
        );
        per_flow.push((format!("pending code, {label}"), m_code, p_code));
        per_flow.push((
            format!("redeemed (module: tombstone + token; plain: token), {label}"),
            m_flow,
            p_flow,
        ));
    }
    set_listpack_value(srv, "64");
    Memory {
        rows,
        per_flow,
        flows: n,
    }
}

// ---------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------

struct ScaleRow {
    n: u64,
    /// EXCHANGE, INTROSPECT, HGETALL.
    rows: [Row; 3],
}

/// One server per dataset size, all filled first; then the sizes run
/// interleaved, so a disturbance hits every size alike.
fn scale(env: &Env, t: &Tpls) -> Vec<ScaleRow> {
    let (c, d) = (env.cfg.conns as u64, env.cfg.depth as u64);
    let code = dump_of(&env.srv, &|conn, k| {
        conn.add(&t.savecode, &[k]);
        assert!(conn.flush().get(0).is_ok());
    });
    let token = dump_of(&env.srv, &|conn, k| {
        conn.add(&t.savetoken, &[k]);
        assert!(conn.flush().get(0).is_ok());
    });
    let restore_code = restore_tpl(&code, CODE_TTL_MS);
    let servers: Vec<(u64, Server)> = env
        .cfg
        .scale
        .iter()
        .map(|&n| {
            let t0 = Instant::now();
            let srv = Server::start(&env.module);
            restore_fill(env, &srv, b"sc", 0..n, &code, CODE_TTL_MS);
            restore_fill(env, &srv, b"st", 0..n, &token, TOKEN_TTL_MS);
            eprintln!(
                "  {n} codes + {n} tokens loaded in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            (n, srv)
        })
        .collect();
    let mut variants = Vec::new();
    for (n, srv) in &servers {
        let n = *n;
        // Round r: thread th exchanges codes (r*c*d + th*d + j) mod n, then
        // restores them; every round touches c*d distinct codes (n >= c*d).
        let start = Rng::seeded(n).next() % n;
        let round = move |tpl, ok| move |th: usize| round_batch(tpl, ok, th, start, n, c, d);
        let restore_code = &restore_code;
        variants.push(variant(format!("OAUTH.EXCHANGE, {n} live"), move || {
            env.run_rounds(
                srv,
                &round(&t.exchange, is_array),
                &round(restore_code, is_ok),
            )
        }));
        variants.push(random_reads(env, "OAUTH.INTROSPECT", n, srv, &t.introspect));
        variants.push(random_reads(
            env,
            "HGETALL of a token (Redis baseline)",
            n,
            srv,
            &t.hgetall,
        ));
    }
    let mut rows = env.group(&variants).into_iter();
    let mut next = || rows.next().expect("a row per size and command");
    servers
        .iter()
        .map(|(n, _)| ScaleRow {
            n: *n,
            rows: [next(), next(), next()],
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Wide calls: one command naming N keys
// ---------------------------------------------------------------------------

/// One call naming `n` keys: wall time and the server's CPU time, in ms, the
/// median of the configured repetitions.
struct WideRow {
    n: u64,
    /// OAUTH.REVOKE of n tokens, DEL of n strings, OAUTH.RATELIMITALL of n
    /// limits, and a Lua loop of INCR + PEXPIRE on n keys.
    cells: [(f64, f64); 4],
}

/// What one call holds the server for: every other client waits that long.
fn wide(env: &Env) -> Vec<WideRow> {
    let sizes: &[u64] = if env.cfg.quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 40_000]
    };
    let srv = &env.srv;
    let mut c = srv.conn();
    let lua = b"for _, k in ipairs(KEYS) do redis.call('INCR', k) redis.call('PEXPIRE', k, 60000) end return 1";
    sizes
        .iter()
        .map(|&n| {
            let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("{{w}}:{i}").into_bytes()).collect();
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let count = n.to_string();
            let mut cells = [(0.0, 0.0); 4];
            for (i, cell) in cells.iter_mut().enumerate() {
                let mut wall = Vec::new();
                let mut cpu = Vec::new();
                for _ in 0..env.cfg.reps {
                    srv.flushall();
                    let mut args: Vec<&[u8]> = Vec::with_capacity(2 + 3 * keys.len());
                    match i {
                        0 => {
                            for k in &keys {
                                c.raw(&[b"OAUTH.SAVETOKEN", k, b"600", b"FIELDS", b"0"]);
                            }
                            c.flush();
                            args.push(b"OAUTH.REVOKE");
                            args.extend(&keys);
                        }
                        1 => {
                            for k in &keys {
                                c.raw(&[b"SET", k, b"1"]);
                            }
                            c.flush();
                            args.push(b"DEL");
                            args.extend(&keys);
                        }
                        2 => {
                            args.push(b"OAUTH.RATELIMITALL");
                            args.push(count.as_bytes());
                            args.extend(&keys);
                            for _ in 0..n {
                                args.extend([&b"100"[..], b"60"]);
                            }
                        }
                        _ => {
                            args.push(b"EVAL");
                            args.push(lua);
                            args.push(count.as_bytes());
                            args.extend(&keys);
                        }
                    }
                    let before = env.cpu(srv);
                    let t0 = Instant::now();
                    let r = c.cmd(&args);
                    wall.push(t0.elapsed().as_secs_f64() * 1e3);
                    cpu.push(env.cpu(srv).since(before).srv * 1e3);
                    assert!(
                        !r.get(0).text().starts_with(b"ERR"),
                        "wide call {i} refused"
                    );
                }
                *cell = (median(&wall), median(&cpu));
            }
            WideRow { n, cells }
        })
        .collect()
}

fn print_wide(rows: &[WideRow]) {
    println!("\n### 7. Wide calls\n");
    println!(
        "One command naming N keys, on the empty server of the other scenarios: wall time of \
         the call as the client sees it, and the server's CPU time for it (ms; the median of \
         the repetitions; /proc counts in clock ticks, 10 ms here, so small CPU values are \
         coarse). Other clients wait for as long as the call runs. REVOKE reads every token \
         and replicates a DEL for each; DEL is Redis's own deletion of as many keys. \
         RATELIMITALL counts one request against N limits; the Lua loop does INCR + PEXPIRE \
         on each key, as a script would.\n"
    );
    println!("| N keys | REVOKE ms (CPU) | DEL ms (CPU) | REVOKE / DEL | RATELIMITALL ms (CPU) | Lua INCR+PEXPIRE ms (CPU) | RATELIMITALL / Lua |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let [(rv, rvc), (dl, dlc), (ra, rac), (lu, luc)] = r.cells;
        println!(
            "| {} | {rv:.1} ({rvc:.0}) | {dl:.1} ({dlc:.0}) | {:.1}x | {ra:.1} ({rac:.0}) | {lu:.1} ({luc:.0}) | {:.1}x |",
            thousands(r.n as f64),
            rv / dl.max(1e-9),
            ra / lu.max(1e-9)
        );
    }
}

/// Batches of `tpl` on the codes of round r, r = start, start + 1, ...: thread
/// th takes codes (r*c*d + th*d + j) mod n for j < d (c threads, d per batch).
fn round_batch<'a>(
    tpl: &'a Tpl,
    ok: fn(Reply) -> bool,
    th: usize,
    start: u64,
    n: u64,
    c: u64,
    d: u64,
) -> Batch<'a> {
    let (mut r, mut kb) = (start, Vec::new());
    Box::new(move |conn, st| {
        for j in 0..d {
            let i = (r * c * d + th as u64 * d + j) % n;
            conn.add(tpl, &[key(&mut kb, b"sc", 0, i)]);
        }
        r += 1;
        st.expect(&conn.flush(), "success", ok);
        d as usize
    })
}

/// Random reads of the n live tokens `st:0:i`.
fn random_reads<'a>(
    env: &'a Env,
    name: &str,
    n: u64,
    srv: &'a Server,
    tpl: &'a Tpl,
) -> Variant<'a> {
    let d = env.cfg.depth;
    variant(format!("{name}, {n} live"), move || {
        env.run_free(srv, &|th| {
            let mut rng = Rng::seeded(th as u64 + 1000);
            let mut kb = Vec::new();
            Box::new(move |conn, st| {
                for _ in 0..d {
                    conn.add(tpl, &[key(&mut kb, b"st", 0, rng.next() % n)]);
                }
                st.expect(&conn.flush(), "a token", is_array);
                d
            })
        })
    })
}

// ---------------------------------------------------------------------------
// redis-benchmark cross-check
// ---------------------------------------------------------------------------

/// (ops/s, p50 ms, p99 ms) from `redis-benchmark --csv`.
fn redis_benchmark(env: &Env, n: u64, args: &[Vec<u8>]) -> Option<(f64, f64, f64)> {
    let out = Command::new("redis-benchmark")
        .arg("-s")
        .arg(&env.srv.sock)
        .args(["-c", &env.cfg.conns.to_string()])
        .args(["-P", &env.cfg.depth.to_string()])
        .args(["-n", &n.to_string(), "-r", &RL_KEYS.to_string(), "--csv"])
        .args(args.iter().map(|a| String::from_utf8_lossy(a).into_owned()))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cols: Vec<f64> = text
        .lines()
        .nth(1)?
        .split("\",\"")
        .skip(1)
        .map(|s| s.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    // rps, avg, min, p50, p95, p99, max
    Some((*cols.first()?, *cols.get(3)?, *cols.get(5)?))
}

struct Cross {
    /// The row of the rate-limit table it measures again.
    row: usize,
    name: String,
    ours: f64,
    rps: f64,
    p50: f64,
    p99: f64,
}

/// The single-command rows of the rate-limit table, measured again by
/// redis-benchmark (random keys among RL_KEYS).
fn cross_check(env: &Env, rate: &Group) -> Vec<Cross> {
    let sha = |s: &str| env.sha[s].clone();
    let v = |a: &[&[u8]]| a.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
    let (k1, k2): (&[u8], &[u8]) = (b"rb:1:__rand_int__", b"rb:2:__rand_int__");
    let checks: Vec<(usize, Vec<Vec<u8>>)> = vec![
        (0, v(&[b"OAUTH.RATELIMIT", k1, RL_LIMIT, RL_WINDOW])),
        (2, v(&[b"EVALSHA", &sha("incr"), b"1", k1, RL_WINDOW_MS])),
        (
            3,
            v(&[
                b"EVALSHA",
                &sha("fixed"),
                b"1",
                k1,
                RL_LIMIT,
                RL_WINDOW_MS,
                b"1",
            ]),
        ),
        (
            4,
            v(&[b"OAUTH.THROTTLE", k1, GCRA_BURST, GCRA_COUNT, GCRA_PERIOD]),
        ),
        (
            5,
            v(&[
                b"EVALSHA",
                &sha("gcra"),
                b"1",
                k1,
                GCRA_BURST,
                GCRA_COUNT,
                GCRA_PERIOD,
                b"1",
            ]),
        ),
        (
            6,
            v(&[b"OAUTH.RATELIMIT", k1, RL_LIMIT, RL_WINDOW, b"SLIDING"]),
        ),
        (
            7,
            v(&[
                b"EVALSHA",
                &sha("sliding"),
                b"1",
                k1,
                RL_LIMIT,
                RL_WINDOW_MS,
                b"1",
            ]),
        ),
        (
            8,
            v(&[
                b"OAUTH.RATELIMITALL",
                b"2",
                k1,
                k2,
                RL_LIMIT,
                RL_WINDOW,
                RL_LIMIT,
                RL_WINDOW2,
            ]),
        ),
        (
            9,
            v(&[
                b"EVALSHA",
                &sha("fixed_all"),
                b"2",
                k1,
                k2,
                RL_LIMIT,
                RL_WINDOW_MS,
                RL_LIMIT,
                RL_WINDOW2_MS,
                b"1",
            ]),
        ),
        (10, v(&[b"INCR", k1])),
    ];
    let mut out = Vec::new();
    for (row, args) in checks {
        let ours = rate.rows[row].rate();
        let n = ((ours * 0.8 * env.cfg.secs) as u64).clamp(20_000, 2_000_000);
        env.srv.flushall();
        let Some((rps, p50, p99)) = redis_benchmark(env, n, &args) else {
            eprintln!("  redis-benchmark is not available: cross-check skipped");
            break;
        };
        let name = rate.rows[row].name.clone();
        eprintln!("  {name:<58} redis-benchmark {rps:>9.0} ops/s, load generator {ours:>9.0}");
        out.push(Cross {
            row,
            name,
            ours,
            rps,
            p50,
            p99,
        });
    }
    env.srv.flushall();
    out
}

// ---------------------------------------------------------------------------
// Instructions per operation (callgrind): the comparison that noise cannot move
// ---------------------------------------------------------------------------

/// The key a template hole takes: `prefix:0:i` for the i-th operation, or a
/// random counter of the first or second limit.
#[derive(Clone, Copy)]
enum K {
    Seq(&'static [u8]),
    Rand1,
    Rand2,
}

/// An operation: its commands, each a template and the keys of its holes.
type Op<'a> = Vec<(&'a Tpl, Vec<K>)>;

struct Work<'a> {
    name: &'static str,
    /// Sent for every i before counting starts (the records an operation consumes).
    setup: Op<'a>,
    op: Op<'a>,
    /// hash-max-listpack-value during the row.
    listpack: &'static str,
}

fn work<'a>(name: &'static str, setup: Op<'a>, op: Op<'a>) -> Work<'a> {
    Work {
        name,
        setup,
        op,
        listpack: "64",
    }
}

/// The rows of the throughput tables 1, 2 and 4 (and the token half of 3),
/// as operations, with the same comparisons.
/// A table of the callgrind section: title, operations, comparisons.
type WorkGroup<'a> = (&'static str, Vec<Work<'a>>, fn(Group) -> Group);

fn instruction_groups(t: &Tpls) -> Vec<WorkGroup<'_>> {
    let (c, tk) = (K::Seq(b"c"), K::Seq(b"t"));
    let plain = || vec![(&t.hset, vec![c]), (&t.pexpire_code, vec![c])];
    let module = || vec![(&t.savecode, vec![c])];
    let store = vec![
        work("OAUTH.SAVECODE", vec![], vec![(&t.savecode, vec![c])]),
        work(
            "HSET; EXPIRE",
            vec![],
            vec![(&t.hset, vec![c]), (&t.expire_code, vec![c])],
        ),
        work(
            "MULTI HSET PEXPIRE EXEC",
            vec![],
            vec![
                (&t.multi, vec![]),
                (&t.hset, vec![c]),
                (&t.pexpire_code, vec![c]),
                (&t.exec, vec![]),
            ],
        ),
        work("Lua: HSET, PEXPIRE", vec![], vec![(&t.lua_store, vec![c])]),
        work("bare HSET (no TTL)", vec![], vec![(&t.hset, vec![c])]),
    ];
    let redeem = vec![
        work("OAUTH.EXCHANGE", module(), vec![(&t.exchange, vec![c])]),
        work(
            "HGETALL; DEL",
            plain(),
            vec![(&t.hgetall, vec![c]), (&t.del, vec![c])],
        ),
        work(
            "WATCH HGETALL; MULTI DEL EXEC",
            plain(),
            vec![
                (&t.watch, vec![c]),
                (&t.hgetall, vec![c]),
                (&t.multi, vec![]),
                (&t.del, vec![c]),
                (&t.exec, vec![]),
            ],
        ),
        work(
            "Lua: HGETALL, compare, DEL",
            plain(),
            vec![(&t.lua_redeem, vec![c])],
        ),
    ];
    let tokens = vec![
        work(
            "OAUTH.EXCHANGE ... ISSUE",
            module(),
            vec![(&t.exchange_issue, vec![c, tk])],
        ),
        work(
            "Lua: redeem + issue",
            plain(),
            vec![(&t.lua_redeem_issue, vec![c, tk])],
        ),
        work(
            "OAUTH.INTROSPECT",
            vec![(&t.savetoken, vec![tk])],
            vec![(&t.introspect, vec![tk])],
        ),
        work(
            "HGETALL of a token",
            vec![(&t.hset_token, vec![tk]), (&t.pexpire_token, vec![tk])],
            vec![(&t.hgetall, vec![tk])],
        ),
    ];
    // Counters are warmed up by the same requests first: the steady state.
    let mut rate: Vec<Work> = rate_rows(t)
        .into_iter()
        .map(|(name, tpls, _)| {
            let op: Op = tpls
                .into_iter()
                .map(|tpl| (tpl, [K::Rand1, K::Rand2][..tpl.segs.len() - 1].to_vec()))
                .collect();
            work(name, op.clone(), op)
        })
        .collect();
    // The floor of a fixed window (issue 17), after the rows the comparisons name.
    if floor_module().is_some() {
        let op: Op = vec![(&t.floor, vec![K::Rand1])];
        rate.push(work("floor: FLOOR.FIXED (bench module, C)", op.clone(), op));
    }
    // The same reads and writes on records with an 82-byte redirect_uri:
    // hashtables under the default hash-max-listpack-value, listpacks at 256.
    let long = |name, listpack, setup, op| Work {
        listpack,
        ..work(name, setup, op)
    };
    let encoding = vec![
        long(
            "OAUTH.INTROSPECT, hashtable (64)",
            "64",
            vec![(&t.savetoken_long, vec![tk])],
            vec![(&t.introspect, vec![tk])],
        ),
        long(
            "OAUTH.INTROSPECT, listpack (256)",
            "256",
            vec![(&t.savetoken_long, vec![tk])],
            vec![(&t.introspect, vec![tk])],
        ),
        long(
            "OAUTH.EXCHANGE, hashtable (64)",
            "64",
            vec![(&t.savecode_long, vec![c])],
            vec![(&t.exchange_long, vec![c])],
        ),
        long(
            "OAUTH.EXCHANGE, listpack (256)",
            "256",
            vec![(&t.savecode_long, vec![c])],
            vec![(&t.exchange_long, vec![c])],
        ),
    ];
    fn tokens_cmps(g: Group) -> Group {
        g.cmp(0, 1, None).cmp(2, 3, None)
    }
    fn encoding_cmps(g: Group) -> Group {
        g.cmp(1, 0, None).cmp(3, 2, None)
    }
    vec![
        ("1. Store a code", store, store_cmps),
        ("2. Redeem a code with S256 PKCE", redeem, redeem_cmps),
        ("3. Issue a token; introspect it", tokens, tokens_cmps),
        ("4. Rate limits", rate, rate_cmps),
        (
            "5. Records with an 82-byte redirect_uri (hash-max-listpack-value)",
            encoding,
            encoding_cmps,
        ),
    ]
}

/// Sends `op` for i in `range`, 64 operations per round trip; counts errors.
fn send_ops(c: &mut Conn, op: &Op, range: Range<u64>) -> u64 {
    let (mut kb, mut rng) = ([Vec::new(), Vec::new(), Vec::new()], Rng::seeded(7));
    let mut errors = 0;
    for lo in range.clone().step_by(64) {
        for i in lo..(lo + 64).min(range.end) {
            let (r1, r2) = (rng.next() % RL_KEYS, rng.next() % RL_KEYS);
            for (tpl, holes) in op {
                for (b, h) in kb.iter_mut().zip(holes) {
                    match h {
                        K::Seq(p) => key(b, p, 0, i),
                        K::Rand1 => key(b, b"rl", 1, r1),
                        K::Rand2 => key(b, b"rl", 2, r2),
                    };
                }
                let holes: Vec<&[u8]> = kb.iter().take(holes.len()).map(Vec::as_slice).collect();
                c.add(tpl, &holes);
            }
        }
        errors += c.flush().iter().filter(|r| r.is_err()).count() as u64;
    }
    errors
}

/// Instructions per operation, counted by callgrind in a redis-server of its
/// own: the counters are zeroed after the setup and dumped after `n`
/// operations (event loop, parsing and replies included).
fn instructions(env: &Env, t: &Tpls, n: u64) -> Vec<(Group, Vec<f64>)> {
    let have = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !have("valgrind") || !have("callgrind_control") {
        eprintln!("  valgrind is not installed (apt-get install valgrind): section skipped");
        return Vec::new();
    }
    let srv = Server::start_full(
        &env.module,
        &[
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=cg.out",
        ],
        &lim_args("no", floor_module().as_deref()),
    );
    for (_, body) in SCRIPTS {
        srv.cmd(&["SCRIPT", "LOAD", body]);
    }
    let control = |flag: &str| {
        let ok = Command::new("callgrind_control")
            .args([flag, &srv.pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "callgrind_control {flag} failed");
    };
    let mut dumps = 0;
    let mut out = Vec::new();
    for (title, works, cmps) in instruction_groups(t) {
        let mut irs = Vec::new();
        for w in &works {
            srv.flushall();
            srv.cmd(&["CONFIG", "SET", "hash-max-listpack-value", w.listpack]);
            let mut c = srv.conn();
            let mut errors = send_ops(&mut c, &w.setup, 0..n);
            control("-z");
            errors += send_ops(&mut c, &w.op, 0..n);
            control("-d");
            dumps += 1;
            let dump = srv.dir.path().join(format!("cg.out.{dumps}"));
            let ir: f64 = std::fs::read_to_string(&dump)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("summary:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no callgrind summary in {}", dump.display()));
            let per_op = ir / n as f64;
            eprintln!(
                "  {:<40} {per_op:>9.0} instructions/op{}",
                w.name,
                if errors > 0 {
                    format!("  ({errors} error replies)")
                } else {
                    String::new()
                }
            );
            irs.push(per_op);
        }
        let names: Vec<Row> = works
            .iter()
            .map(|w| Row::from_reps(w.name, Vec::new()))
            .collect();
        out.push((cmps(Group::new(title, names, "")), irs));
    }
    out
}

fn print_instructions(groups: &[(Group, Vec<f64>)], n: u64) {
    println!("\n### Instructions per operation (callgrind)\n");
    println!(
        "Counted by callgrind in a redis-server of its own, {} operations per row sent 64 to a \
         round trip over one connection, after a setup that is not counted (the records an \
         operation consumes, or {} warm counters): everything the server executes, event loop, \
         parsing and replies included. Deterministic: other processes cannot move these \
         numbers, so they are the cleanest ratios of this benchmark. They count server work \
         only: round trips cost nothing here (WATCH/MULTI, limited by its round trips in table \
         2, is pipelined here as if it were not).\n",
        thousands(n as f64),
        thousands(RL_KEYS as f64)
    );
    for (g, irs) in groups {
        println!("| {} | instructions/op |", g.title);
        println!("|---|---:|");
        for (r, ir) in g.rows.iter().zip(irs) {
            println!("| {} | {} |", r.name, thousands(*ir));
        }
        println!();
    }
    println!("| comparison | instructions ratio (higher: the module is cheaper) | target |");
    println!("|---|---:|---|");
    for (g, irs) in groups {
        for c in &g.cmps {
            let ratio = irs[c.b] / irs[c.a].max(1.0);
            let target = match c.min {
                Some(m) if ratio >= m => format!("≥ {m}x: met"),
                Some(m) => format!("≥ {m}x: **missed**"),
                None => "—".into(),
            };
            println!(
                "| {} ÷ {} | {ratio:.2}x | {target} |",
                g.rows[c.a].name, g.rows[c.b].name
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Issue 17: the rate limiters against INCR, the Lua scripts and the floor,
// AOF off and everysec, one hot key and 100k random keys
// ---------------------------------------------------------------------------

/// Counters of the random distribution (the hot one uses one key).
const LIM_KEYS: u64 = 100_000;
/// Persistence settings the limits section runs under.
const LIM_AOF: [&str; 2] = ["no", "everysec"];

/// One row of the limits tables: name, templates of one request, reply
/// check, and whether it needs the floor module.
type LimRow<'a> = (&'static str, Vec<&'a Tpl>, fn(Reply) -> bool, bool);

/// The rows, in the order the targets refer to them ([`LIM_INCR`]...).
fn lim_rows(t: &Tpls) -> Vec<LimRow<'_>> {
    vec![
        ("INCR", vec![&t.incr], is_int, false),
        ("Lua: INCR (count only)", vec![&t.lua_incr], is_int, false),
        ("OAUTH.RATELIMIT", vec![&t.ratelimit], is_allowed, false),
        (
            "floor: FLOOR.FIXED (bench module, C)",
            vec![&t.floor],
            is_allowed,
            true,
        ),
        (
            "OAUTH.THROTTLE (GCRA)",
            vec![&t.throttle_live],
            is_allowed,
            false,
        ),
        (
            "OAUTH.RATELIMIT SLIDING",
            vec![&t.sliding],
            is_allowed,
            false,
        ),
        (
            "Lua: sliding window",
            vec![&t.lua_sliding],
            is_allowed,
            false,
        ),
        (
            "OAUTH.RATELIMITALL (2 limits)",
            vec![&t.all],
            is_allowed,
            false,
        ),
        (
            "Lua: 2 fixed windows, all or nothing",
            vec![&t.lua_all],
            is_allowed,
            false,
        ),
    ]
}
const LIM_INCR: usize = 0;
const LIM_LUA_COUNT: usize = 1;
const LIM_RL: usize = 2;
const LIM_FLOOR: usize = 3;
const LIM_THROTTLE: usize = 4;
const LIM_SLIDING: usize = 5;
const LIM_LUA_SLIDING: usize = 6;
const LIM_ALL: usize = 7;
const LIM_LUA_ALL: usize = 8;

/// The refused paths, for the allocation counts only (callgrind): limits
/// that the warm-up has used up, so every counted call is refused.
fn lim_refused(t: &Tpls) -> Vec<LimRow<'_>> {
    vec![
        (
            "OAUTH.RATELIMIT, refused",
            vec![&t.ratelimit_refused],
            is_array,
            false,
        ),
        (
            "OAUTH.THROTTLE, refused",
            vec![&t.throttle_refused],
            is_array,
            false,
        ),
    ]
}

/// Keys of the refused rows of the allocation counts.
const REFUSED_KEYS: u64 = 200;

/// A distribution of keys: one hot key, or `LIM_KEYS` random ones.
#[derive(Clone, Copy)]
struct Dist {
    name: &'static str,
    keys: u64,
}
const LIM_DISTS: [Dist; 2] = [
    Dist {
        name: "one hot key",
        keys: 1,
    },
    Dist {
        name: "100k random keys",
        keys: LIM_KEYS,
    },
];

/// One table of the limits section: a persistence setting and a distribution.
struct LimTable {
    aof: &'static str,
    dist: Dist,
    rows: Vec<Row>,
    /// Per row: (allocator calls per call, the module's own per call), from callgrind.
    allocs: Vec<Option<(f64, f64)>>,
    /// The refused rows' allocations (name, all, module's own).
    refused: Vec<(String, f64, f64)>,
}

/// Server arguments for a persistence setting, plus the floor module.
fn lim_args(aof: &str, floor: Option<&Path>) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if aof != "no" {
        a.extend(["--appendonly", "yes", "--appendfsync", aof].map(String::from));
    }
    if let Some(f) = floor {
        a.push("--loadmodule".into());
        a.push(f.display().to_string());
    }
    a
}

fn floor_module() -> Option<PathBuf> {
    std::env::var("BENCH_FLOOR_MODULE")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// Requests of `tpls` on the keys of `dist` (each hole a counter of its own limit).
fn lim_variant<'a>(
    env: &'a Env,
    srv: &'a Server,
    name: &str,
    tpls: Vec<&'a Tpl>,
    ok: fn(Reply) -> bool,
    dist: Dist,
) -> Variant<'a> {
    let d = env.cfg.depth;
    variant(name, move || {
        srv.flushall();
        env.run_free(srv, &|th| {
            let mut rng = Rng::seeded(th as u64 + 77);
            let (mut k1, mut k2) = (Vec::new(), Vec::new());
            let tpls = tpls.clone();
            Box::new(move |conn, st| {
                for _ in 0..d {
                    let r = rng.next() % dist.keys;
                    let a = key(&mut k1, b"rl", 1, r);
                    let b = key(&mut k2, b"rl", 2, r);
                    for tpl in &tpls {
                        conn.add(tpl, &[a, b][..tpl.segs.len() - 1]);
                    }
                }
                st.expect(&conn.flush(), "an allowed request", ok);
                d
            })
        })
    })
}

/// Allocator calls in a callgrind dump: (malloc + calloc + realloc calls,
/// the module's own: calls of the module API's allocation and string-making
/// functions, which the module's Rust allocator also goes through).
fn dump_allocs(path: &Path) -> (f64, f64) {
    const ALL: [&str; 3] = ["malloc", "calloc", "realloc"];
    const OWN: [&str; 9] = [
        "RM_Alloc",
        "RM_Calloc",
        "RM_Realloc",
        "RM_TryAlloc",
        "RM_CreateString",
        "RM_CreateStringFromLongLong",
        "RM_CreateStringFromString",
        "RM_CreateStringPrintf",
        "RM_HoldString",
    ];
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut names: HashMap<String, String> = HashMap::new();
    let (mut all, mut own) = (0.0, 0.0);
    let mut callee = String::new();
    for line in text.lines() {
        let named = |rest: &str, names: &mut HashMap<String, String>| -> String {
            // "(id) name" defines an id; "(id)" refers to one.
            let rest = rest.trim();
            match rest.split_once(") ") {
                Some((id, name)) => {
                    names.insert(id.to_string(), name.to_string());
                    name.to_string()
                }
                None => names
                    .get(rest.trim_end_matches(')'))
                    .cloned()
                    .unwrap_or_default(),
            }
        };
        if let Some(rest) = line.strip_prefix("cfn=") {
            callee = named(rest, &mut names);
        } else if let Some(rest) = line.strip_prefix("fn=") {
            named(rest, &mut names);
        } else if let Some(rest) = line.strip_prefix("calls=") {
            let n: f64 = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if ALL.contains(&callee.as_str()) {
                all += n;
            }
            if OWN.contains(&callee.as_str()) {
                own += n;
            }
        }
    }
    (all, own)
}

/// Per row: (all, module's own) allocations per call, None when not run;
/// then the refused rows': (name, all, module's own).
type LimAllocs = (Vec<Option<(f64, f64)>>, Vec<(String, f64, f64)>);

/// Allocations per call of every row (and of the refused rows) under
/// callgrind, for one persistence setting and distribution: `n` calls per
/// row after `n` warm-up calls.
fn lim_allocs(
    env: &Env,
    t: &Tpls,
    aof: &str,
    dist: Dist,
    floor: Option<&Path>,
    n: u64,
) -> Option<LimAllocs> {
    let have = Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        return None;
    }
    let srv = Server::start_full(
        &env.module,
        &[
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=cg.out",
        ],
        &lim_args(aof, floor),
    );
    for (_, body) in SCRIPTS {
        srv.cmd(&["SCRIPT", "LOAD", body]);
    }
    let control = |flag: &str| {
        Command::new("callgrind_control")
            .args([flag, &srv.pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut dumps = 0;
    let mut count = |tpls: &[&Tpl], keys: u64| -> Option<(f64, f64)> {
        srv.flushall();
        let mut c = srv.conn();
        let mut rng = Rng::seeded(3);
        let (mut k1, mut k2) = (Vec::new(), Vec::new());
        let mut send = |c: &mut Conn| {
            for lo in (0..n).step_by(64) {
                for _ in lo..(lo + 64).min(n) {
                    let r = rng.next() % keys;
                    let a = key(&mut k1, b"rl", 1, r);
                    let b = key(&mut k2, b"rl", 2, r);
                    for tpl in tpls {
                        c.add(tpl, &[a, b][..tpl.segs.len() - 1]);
                    }
                }
                c.flush();
            }
        };
        send(&mut c);
        if !control("-z") {
            return None;
        }
        send(&mut c);
        if !control("-d") {
            return None;
        }
        dumps += 1;
        let (all, own) = dump_allocs(&srv.dir.path().join(format!("cg.out.{dumps}")));
        Some((all / n as f64, own / n as f64))
    };
    let rows = lim_rows(t)
        .iter()
        .map(|(_, tpls, _, needs_floor)| {
            if *needs_floor && floor.is_none() {
                None
            } else {
                count(tpls, dist.keys)
            }
        })
        .collect();
    // The refused rows on at most REFUSED_KEYS keys, which the warm-up uses up.
    let refused = lim_refused(t)
        .iter()
        .filter_map(|(name, tpls, _, _)| {
            count(tpls, dist.keys.min(REFUSED_KEYS)).map(|(a, o)| (name.to_string(), a, o))
        })
        .collect();
    Some((rows, refused))
}

/// Calls per row of the allocation counts.
fn lim_calls(cfg: &Cfg) -> u64 {
    if cfg.quick {
        500
    } else {
        2_000
    }
}

fn limits(env: &Env, t: &Tpls) -> Vec<LimTable> {
    let floor = floor_module();
    if floor.is_none() {
        eprintln!("  BENCH_FLOOR_MODULE is not set: the floor row is skipped (scripts/bench.sh builds it)");
    }
    let mut out = Vec::new();
    for aof in LIM_AOF {
        let srv = Server::start_full(&env.module, &[], &lim_args(aof, floor.as_deref()));
        for (_, body) in SCRIPTS {
            srv.cmd(&["SCRIPT", "LOAD", body]);
        }
        for dist in LIM_DISTS {
            eprintln!("  appendonly {aof}, {}:", dist.name);
            let variants: Vec<Variant> = lim_rows(t)
                .into_iter()
                .filter(|(_, _, _, needs_floor)| floor.is_some() || !needs_floor)
                .map(|(name, tpls, ok, _)| lim_variant(env, &srv, name, tpls, ok, dist))
                .collect();
            let mut rows = env.group(&variants);
            if floor.is_none() {
                rows.insert(LIM_FLOOR, Row::from_reps("floor (not built)", Vec::new()));
            }
            out.push(LimTable {
                aof,
                dist,
                rows,
                allocs: Vec::new(),
                refused: Vec::new(),
            });
        }
    }
    let n = lim_calls(&env.cfg);
    for tb in &mut out {
        eprintln!(
            "  allocations (callgrind), appendonly {}, {}",
            tb.aof, tb.dist.name
        );
        if let Some((rows, refused)) = lim_allocs(env, t, tb.aof, tb.dist, floor.as_deref(), n) {
            tb.allocs = rows;
            tb.refused = refused;
        }
    }
    out
}

/// The issue-17 targets of one table: (what, ratio, met).
fn lim_targets(tb: &LimTable) -> Vec<(String, String, bool)> {
    let us = |i: usize| tb.rows.get(i).map_or(0.0, Row::srv_us);
    // Higher is cheaper for the first row: b's CPU per op over a's.
    let ratio = |a: usize, b: usize| us(b) / us(a).max(1e-9);
    let mut out = vec![
        {
            let r = ratio(LIM_RL, LIM_INCR);
            (
                "OAUTH.RATELIMIT ≥ 0.5x INCR".to_string(),
                format!("{r:.2}x"),
                r >= 0.5,
            )
        },
        {
            let r = ratio(LIM_RL, LIM_LUA_COUNT);
            (
                "OAUTH.RATELIMIT ≥ 1.3x Lua count-only".to_string(),
                format!("{r:.2}x"),
                r >= 1.3,
            )
        },
        {
            let r = ratio(LIM_THROTTLE, LIM_INCR);
            (
                "OAUTH.THROTTLE ≥ 0.46x INCR".to_string(),
                format!("{r:.2}x"),
                r >= 0.46,
            )
        },
        {
            let r = ratio(LIM_SLIDING, LIM_LUA_SLIDING);
            (
                "SLIDING ≥ 2x its Lua".to_string(),
                format!("{r:.2}x"),
                r >= 2.0,
            )
        },
        {
            let r = us(LIM_SLIDING) / us(LIM_RL).max(1e-9);
            (
                "SLIDING ≤ 2 fixed windows (CPU/op ÷ RATELIMIT's)".to_string(),
                format!("{r:.2}"),
                r <= 2.0,
            )
        },
        {
            let r = ratio(LIM_ALL, LIM_LUA_ALL);
            (
                "RATELIMITALL ≥ 2x its Lua".to_string(),
                format!("{r:.2}x"),
                r >= 2.0,
            )
        },
        {
            let r = us(LIM_ALL) / us(LIM_RL).max(1e-9);
            (
                "RATELIMITALL (2 limits) ≤ 2 fixed windows (CPU/op ÷ RATELIMIT's)".to_string(),
                format!("{r:.2}"),
                r <= 2.0,
            )
        },
    ];
    if us(LIM_FLOOR) > 0.0 {
        let r = us(LIM_RL) / us(LIM_FLOOR);
        out.push((
            "OAUTH.RATELIMIT within 10% of the floor (CPU/op ÷ floor's)".to_string(),
            format!("{r:.2}"),
            r <= 1.10,
        ));
    }
    for (i, name) in [
        (LIM_RL, "OAUTH.RATELIMIT"),
        (LIM_THROTTLE, "OAUTH.THROTTLE"),
    ] {
        if let Some(Some((_, own))) = tb.allocs.get(i) {
            out.push((
                format!("{name}: no allocation of the module's own, allowed"),
                format!("{own:.2}"),
                *own < 0.005,
            ));
        }
    }
    for (name, _, own) in &tb.refused {
        out.push((
            format!("{name}: no allocation of the module's own"),
            format!("{own:.2}"),
            *own < 0.005,
        ));
    }
    out
}

fn print_limits(tables: &[LimTable], n: u64) {
    println!("\n### Rate limiters at the floor (issue 17)\n");
    println!(
        "Server CPU per operation (µs, from /proc: the server's CPU time over all the interleaved runs of a row, divided by its operations) \
         and allocations per call (callgrind, {} calls after as many to warm up, in a \
         redis-server of its own with the same settings): `all` counts every malloc, calloc \
         and realloc of the server during the call (parsing the command, the key API, \
         replication, the reply); `module's own` counts the allocations the module makes \
         itself (its Rust heap, which goes through RedisModule_Alloc, and every module string \
         it creates). `floor` is FLOOR.FIXED of benches/floor/floor.c, a minimal C module \
         command doing only open, read, write in place with the expiry, replicate \
         `SET key n PXAT t`, the two events and the 5-integer reply. Limits are never \
         reached: every request is allowed and writes (THROTTLE: burst 10^9, one per 60 s, so \
         that its state lives across calls as a window's counter does; table 4's parameters \
         make it expire a millisecond after each call). The refused rows (allocations only) \
         use limits the warm-up has used up, on at most {REFUSED_KEYS} keys.\n",
        thousands(n as f64)
    );
    for tb in tables {
        println!("#### appendonly {}, {}\n", tb.aof, tb.dist.name);
        println!("| variant | ops/s | server CPU | server µs/op | ÷ INCR (CPU) | allocations/call: all | module's own |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let incr = tb.rows.get(LIM_INCR).map_or(0.0, Row::srv_us);
        for (i, r) in tb.rows.iter().enumerate() {
            let (all, own) = match tb.allocs.get(i).copied().flatten() {
                Some((a, o)) => (format!("{a:.2}"), format!("{o:.2}")),
                None => ("—".into(), "—".into()),
            };
            println!(
                "| {} | {} | {:.0}% | {:.2} | {:.2}x | {all} | {own} |",
                r.name,
                thousands(r.rate()),
                r.pct(r.cpu.srv),
                r.srv_us(),
                incr / r.srv_us().max(1e-9),
            );
        }
        for (name, a, o) in &tb.refused {
            println!("| {name} | | | | | {a:.2} | {o:.2} |");
        }
        println!();
        println!("| target | measured | |");
        println!("|---|---:|---|");
        for (what, v, met) in lim_targets(tb) {
            println!(
                "| {what} | {v} | {} |",
                if met { "met" } else { "**missed**" }
            );
        }
        println!();
    }
}

// ---------------------------------------------------------------------------
// Report (Markdown on stdout)
// ---------------------------------------------------------------------------

fn thousands(r: f64) -> String {
    let s = (r.round() as u64).to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn print_group(g: &Group, cfg: &Cfg) {
    println!("\n### {}\n", g.title);
    println!("| variant | ops/s | p50 ms | p99 ms | server CPU | server µs/op | load gen CPU | other CPU |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let planned = cfg.secs * cfg.reps as f64;
    for r in &g.rows {
        let early = if r.secs < planned * 0.9 {
            format!(" (ran {:.1} s of {planned:.1}: pool used up)", r.secs)
        } else {
            String::new()
        };
        let errs = match &r.first_err {
            Some(e) => format!(" — **{} unexpected replies**, first: {e}", r.errors),
            None => String::new(),
        };
        let mark = if r.pct(r.cpu.srv) < 90.0 { " †" } else { "" };
        println!(
            "| {}{early}{errs} | {}{mark} | {:.2} | {:.2} | {:.0}% | {:.2} | {:.0}% | {:.0}% |",
            r.name,
            thousands(r.rate()),
            r.p50_ms,
            r.p99_ms,
            r.pct(r.cpu.srv),
            r.srv_us(),
            r.pct(r.cpu.cli),
            r.pct(r.cpu.other()),
        );
    }
    if g.rows.iter().any(|r| r.pct(r.cpu.srv) < 90.0) {
        println!(
            "\n† the server was busy less than 90% of the time: this row was limited by round \
             trips, by the load generator or by other processes (see the CPU columns)."
        );
    }
    println!("\n| comparison | ops/s ratio | server CPU/op ratio | target (ops/s) |");
    println!("|---|---:|---:|---|");
    for c in &g.cmps {
        let (ops, cpu) = g.ratios(c);
        let target = match c.min {
            Some(m) if ops >= m => format!("≥ {m}x: met"),
            Some(m) => format!("≥ {m}x: **missed**"),
            None => "—".into(),
        };
        println!(
            "| {} ÷ {} | **{ops:.2}x** | {cpu:.2}x | {target} |",
            g.rows[c.a].name, g.rows[c.b].name
        );
    }
    if !g.note.is_empty() {
        println!("\n{}", g.note);
    }
}

fn print_method(cfg: &Cfg) {
    println!(
        "\nThroughput: unix socket; {} connections (one thread each) x pipeline {}; every \
         variant ran {} x {:.1} s, interleaved with the other variants of its scenario.\n\n\
         - ops/s: median over the runs. Latency: per pipeline batch (up to {} operations), from \
         sending it to having every reply, over all the round trips the variant needs.\n\
         - server CPU, load gen CPU, other CPU: user+system time of redis-server, of this load \
         generator, and of everything else on the machine, over the wall time (100% = one \
         core). redis-server runs commands on one thread: near 100% means the server is the \
         bottleneck; a large `other` means the row was disturbed.\n\
         - server µs/op: redis-server CPU time per operation, parsing and replies included. \
         Its ratio is the cost comparison least sensitive to the load generator and to noise.",
        cfg.conns, cfg.depth, cfg.reps, cfg.secs, cfg.depth,
    );
}

fn print_memory(mem: &Memory) {
    println!("\n### 5. Memory\n");
    println!("`MEMORY USAGE key SAMPLES 0` (value, key name and dict entry; the expiry entry is not counted):\n");
    println!("| record | module bytes (encoding) | plain bytes (encoding) | module ÷ plain |");
    println!("|---|---:|---:|---:|");
    for r in &mem.rows {
        let (p, ratio) = match &r.plain {
            Some((p, enc)) => (
                format!("{p} ({enc})"),
                format!("{:.2}", r.module.0 as f64 / *p as f64),
            ),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {} | {} ({}) | {p} | {ratio} |",
            r.what, r.module.0, r.module.1
        );
    }
    println!(
        "\nBytes per live authorization: `used_memory` from `INFO memory` after minus before \
         {} codes (saved with the module, or HSET + PEXPIRE), then after all of them were \
         redeemed into tokens (OAUTH.EXCHANGE ... ISSUE, or the Lua redeem+issue script), \
         divided by {}:\n",
        thousands(mem.flows as f64),
        thousands(mem.flows as f64)
    );
    println!("| state | module B each | plain B each | module ÷ plain |");
    println!("|---|---:|---:|---:|");
    for (what, m, p) in &mem.per_flow {
        println!("| {what} | {m:.0} | {p:.0} | {:.2} |", m / p.max(1.0));
    }
}

fn print_scale(sc: &[ScaleRow], cfg: &Cfg) {
    println!("\n### 6. Scale\n");
    println!(
        "One redis-server per size holding N live codes and N live tokens (RESTOREd copies of \
         records written by the module); the sizes run interleaved. INTROSPECT reads random \
         tokens; HGETALL reads the same random tokens, as the Redis baseline for what a bigger \
         keyspace costs any command. EXCHANGE runs in rounds so that N stays constant: every \
         thread exchanges {} codes at once (timed; {} per round), then restores them (not \
         timed); the barrier between rounds makes these ops/s lower than in scenario 2. In \
         parentheses: ops/s relative to the smallest size. µs/op: server CPU per operation.\n",
        cfg.depth,
        cfg.conns * cfg.depth
    );
    println!("| live records | EXCHANGE ops/s | p50 / p99 ms | µs/op | INTROSPECT ops/s | p50 / p99 ms | µs/op | HGETALL (baseline) ops/s | p50 / p99 ms | µs/op |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in sc {
        let mut line = format!("| {} ", thousands(s.n as f64));
        for (i, r) in s.rows.iter().enumerate() {
            let rel = r.rate() / sc[0].rows[i].rate().max(1e-9);
            line += &format!(
                "| {} ({rel:.2}x) | {:.2} / {:.2} | {:.2} ",
                thousands(r.rate()),
                r.p50_ms,
                r.p99_ms,
                r.srv_us()
            );
        }
        println!("{line}|");
    }
}

fn print_cross(cross: &[Cross], rate: &Group) {
    println!("\n### Load-generator cross-check (rate limits)\n");
    println!(
        "The single-command rows of table 4 measured again by `redis-benchmark` (C, one event \
         loop), same connections and pipeline, random keys among {RL_KEYS}:\n"
    );
    println!("| command | this load generator ops/s | redis-benchmark ops/s | redis-benchmark p50 / p99 ms |");
    println!("|---|---:|---:|---:|");
    for x in cross {
        println!(
            "| {} | {} | {} | {:.2} / {:.2} |",
            x.name,
            thousands(x.ours),
            thousands(x.rps),
            x.p50,
            x.p99
        );
    }
    let rps = |row: usize| cross.iter().find(|x| x.row == row).map(|x| x.rps);
    println!("\nThe same comparisons with redis-benchmark's numbers:\n");
    println!("| comparison | redis-benchmark ops/s ratio | this load generator |");
    println!("|---|---:|---:|");
    for c in &rate.cmps {
        if let (Some(a), Some(b)) = (rps(c.a), rps(c.b)) {
            println!(
                "| {} ÷ {} | {:.2}x | {:.2}x |",
                rate.rows[c.a].name,
                rate.rows[c.b].name,
                a / b.max(1e-9),
                rate.ratios(c).0
            );
        }
    }
}

struct Target {
    what: String,
    value: String,
    met: bool,
}

/// The issues' targets. A throughput ratio comes with the server-CPU ratio
/// and, after `--instructions`, the instructions ratio of the same rows.
fn targets(
    groups: &[(&str, &Group)],
    instr: &[(Group, Vec<f64>)],
    mem: Option<&Memory>,
    sc: Option<&[ScaleRow]>,
) -> Vec<Target> {
    let mut out = Vec::new();
    for (label, g) in groups {
        let irs = instr
            .iter()
            .find(|(ig, _)| ig.title.get(..2) == g.title.get(..2))
            .map(|(_, irs)| irs);
        for c in &g.cmps {
            let Some(min) = c.min else { continue };
            let (ops, cpu) = g.ratios(c);
            let ir = irs.map_or(String::new(), |irs| {
                format!("; instructions: {:.2}x", irs[c.b] / irs[c.a].max(1.0))
            });
            out.push(Target {
                what: format!(
                    "{label}: {} ÷ {} ≥ {min}x",
                    g.rows[c.a].name, g.rows[c.b].name
                ),
                value: format!("{ops:.2}x (server CPU/op: {cpu:.2}x{ir})"),
                met: ops >= min,
            });
        }
    }
    if let Some(mem) = mem {
        for (i, what) in [
            (0, "code record ≤ 1.10x the plain hash (38-byte redirect_uri, default settings)"),
            (2, "code record ≤ 1.10x the plain hash (82-byte redirect_uri, hash-max-listpack-value 256)"),
        ] {
            out.push(Target {
                what: format!("memory: {what}"),
                value: format!("{:.2}x", mem.ratio(i)),
                met: mem.ratio(i) <= 1.10,
            });
        }
        let stone = mem.rows[3].module.0;
        out.push(Target {
            what: "memory: tombstone < 150 bytes".into(),
            value: format!("{stone} B"),
            met: stone < 150,
        });
    }
    if let Some(sc) = sc {
        if let (Some(first), Some(last)) = (sc.first(), sc.last()) {
            for (i, what) in [(0, "EXCHANGE"), (1, "INTROSPECT")] {
                let rel = |row: &ScaleRow, i: usize| row.rows[i].rate();
                let r = rel(last, i) / rel(first, i).max(1e-9);
                let base = rel(last, 2) / rel(first, 2).max(1e-9);
                out.push(Target {
                    what: format!(
                        "scale: {what} ops/s at {} live ≥ 0.9x of {} live",
                        thousands(last.n as f64),
                        thousands(first.n as f64)
                    ),
                    value: format!("{r:.2}x (HGETALL baseline: {base:.2}x)"),
                    met: r >= 0.9,
                });
            }
        }
    }
    out
}

fn main() {
    let cfg = Cfg::from_env();
    let module = module_path();
    let started = Instant::now();
    let srv = Server::start(&module);
    let sha = SCRIPTS
        .iter()
        .map(|(name, body)| {
            let got = srv.cmd(&["SCRIPT", "LOAD", body]);
            (*name, got.get(0).text().to_vec())
        })
        .collect();
    let version = srv
        .info_field("server", "redis_version:")
        .unwrap_or_else(|| "?".into());
    let env = Env {
        cfg: cfg.clone(),
        srv,
        module: module.clone(),
        tick: clock_tick(),
        sha,
    };
    let t = Tpls::new(&env);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mode = if cfg.quick { "quick" } else { "default" };
    eprintln!(
        "redis-oauth benchmark ({mode} run): Redis {version}, {cores} cores, {} connections x pipeline {}, {} x {:.1} s per row; load average before: {}",
        cfg.conns,
        cfg.depth,
        cfg.reps,
        cfg.secs,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    eprintln!("module: {}", module.display());

    let section = |name: &str, label: &str| {
        let on = cfg.wants(name);
        if on {
            eprintln!("[{name}] {label}");
        }
        on
    };
    let store = section("store", "store a code").then(|| store_scenario(&env, &t));
    let redeem = section("redeem", "redeem a code").then(|| redeem_scenario(&env, &t));
    let flow = section("flow", "full flow").then(|| flow_scenario(&env, &t));
    let rate = section("rate", "rate limits").then(|| rate_scenario(&env, &t));
    let mem = section("memory", "memory").then(|| memory(&env, &t));
    let sc = section("scale", "scale").then(|| scale(&env, &t));
    let wide_rows = section("wide", "wide calls").then(|| wide(&env));
    let lim = section("limits", "rate limiters at the floor (issue 17)").then(|| limits(&env, &t));
    let instr = section("instructions", "instructions per operation (callgrind)")
        .then(|| instructions(&env, &t, cfg.instr_ops));
    let cross = match &rate {
        Some(r) if !cfg.quick && section("cross", "redis-benchmark cross-check") => {
            cross_check(&env, r)
        }
        _ => Vec::new(),
    };
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "## Results ({mode} run)\n\n\
         Redis {version}, {cores} cores ({cpu_model}); the whole run took {elapsed:.0} s."
    );
    let timed = [&store, &redeem, &flow, &rate].iter().any(|g| g.is_some());
    if timed {
        print_method(&cfg);
    }

    for g in [&store, &redeem, &flow, &rate].into_iter().flatten() {
        print_group(g, &cfg);
    }
    if let Some(mem) = &mem {
        print_memory(mem);
    }
    if let Some(sc) = &sc {
        if cfg.quick {
            println!(
                "\nQuick run: {} live records instead of 1k / 100k / 1M.",
                cfg.scale
                    .iter()
                    .map(|n| thousands(*n as f64))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
        print_scale(sc, &cfg);
    }
    if let Some(w) = &wide_rows {
        print_wide(w);
    }
    if let (false, Some(rate)) = (cross.is_empty(), &rate) {
        print_cross(&cross, rate);
    }
    if let Some(lim) = &lim {
        print_limits(lim, lim_calls(&cfg));
    }
    if let Some(instr) = &instr {
        print_instructions(instr, cfg.instr_ops);
    }

    let groups: Vec<(&str, &Group)> = [
        ("store", &store),
        ("redeem", &redeem),
        ("rate limit", &rate),
    ]
    .into_iter()
    .filter_map(|(l, g)| g.as_ref().map(|g| (l, g)))
    .collect();
    let targets = targets(
        &groups,
        instr.as_deref().unwrap_or_default(),
        mem.as_ref(),
        sc.as_deref(),
    );
    if !targets.is_empty() {
        println!("\n### Targets (issues 4 and 5)\n");
        println!("| target | measured | |");
        println!("|---|---:|---|");
        for t in targets {
            let verdict = if t.met { "met" } else { "**missed**" };
            println!("| {} | {} | {verdict} |", t.what, t.value);
        }
    }
    let errors: u64 = [&store, &redeem, &flow, &rate]
        .into_iter()
        .flatten()
        .flat_map(|g| g.rows.iter())
        .map(|r| r.errors)
        .sum();
    if errors > 0 {
        println!("\n**{errors} unexpected replies during the run: see the rows above.**");
    }
    eprintln!("done in {elapsed:.0} s");
}
