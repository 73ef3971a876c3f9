//! Test harness: a real redis-server with the freshly built module, on a unix
//! socket in a temporary directory (`--port 0` unless a replica needs TCP),
//! killed on drop. A missing redis-server fails the test loudly.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use redis::{Connection, Value};

mod lookup;
#[allow(unused_imports)] // `binary` is used by some test files only
pub use lookup::{binary, module_path, server_binary};

#[derive(Default, Clone)]
pub struct Opts {
    /// Extra `name value` module arguments.
    pub module_args: Vec<String>,
    /// Extra server arguments, e.g. `["--appendonly", "yes"]`.
    pub server_args: Vec<String>,
    /// Listen on a TCP port on 127.0.0.1 (needed by a master that has replicas).
    pub tcp: bool,
    /// Make this server a replica of the given port.
    pub replica_of: Option<u16>,
    /// Reuse this directory (to restart on the same AOF/RDB files).
    pub dir: Option<PathBuf>,
}

pub struct Server {
    child: Child,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub socket: PathBuf,
    pub port: u16,
    pub opts: Opts,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Opts::default())
    }

    pub fn with_module_args(args: &[&str]) -> Server {
        Server::start_with(Opts {
            module_args: args.iter().map(|s| s.to_string()).collect(),
            ..Opts::default()
        })
    }

    pub fn start_with(opts: Opts) -> Server {
        let (tmp, dir) = match &opts.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("redis-oauth-test")
                    .tempdir()
                    .expect("tempdir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let socket = dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let port = if opts.tcp || opts.replica_of.is_some() {
            free_port()
        } else {
            0
        };
        let mut cmd = Command::new(server_binary());
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(&dir)
            .arg("--save")
            .arg("")
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .arg("--daemonize")
            .arg("no");
        let mut load = vec![module_path().display().to_string()];
        load.extend(opts.module_args.iter().cloned());
        cmd.arg("--loadmodule").args(&load);
        if let Some(p) = opts.replica_of {
            cmd.arg("--replicaof").arg("127.0.0.1").arg(p.to_string());
        }
        cmd.args(&opts.server_args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn redis-server");
        let mut server = Server {
            child,
            dir,
            _tmp: tmp,
            socket,
            port,
            opts,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "redis-server exited early ({status}): {err}\n--- log ---\n{}",
                    self.log()
                );
            }
            if self.socket.exists() {
                if let Ok(mut c) = self.try_conn() {
                    let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut c);
                    if pong.is_ok() {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server not ready in time\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn try_conn(&self) -> redis::RedisResult<Connection> {
        redis::Client::open(format!("redis+unix://{}", self.socket.display()))?.get_connection()
    }

    /// A RESP2 connection.
    pub fn conn(&self) -> Connection {
        self.try_conn().expect("connect")
    }

    /// A RESP3 connection.
    pub fn conn3(&self) -> Connection {
        redis::Client::open(format!(
            "redis+unix://{}?protocol=resp3",
            self.socket.display()
        ))
        .expect("client")
        .get_connection()
        .expect("connect resp3")
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Stops the server (SIGKILL unless `graceful`) and waits for it.
    pub fn stop(&mut self, graceful: bool) {
        if graceful {
            if let Ok(mut c) = self.try_conn() {
                let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut c);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Restarts on the same directory and options (AOF/RDB reload), keeping the temp dir alive.
    pub fn restart(mut self) -> Server {
        self.stop(true);
        let tmp = self._tmp.take();
        let mut opts = self.opts.clone();
        opts.dir = Some(self.dir.clone());
        let mut s = Server::start_with(opts);
        s._tmp = tmp;
        s
    }

    /// Waits until `replica` has applied everything this master has
    /// written so far. (`WAIT` on a fresh connection returns at once: it
    /// waits for the connection's own last write, and a new connection has
    /// none, so it cannot serve here.)
    pub fn wait_replica(&self, replica: &Server) {
        wait_applied(&mut self.conn(), &mut replica.conn());
    }
}

/// A master on a TCP port (`opts` plus `tcp`) and a replica of it, synced.
pub fn master_and_replica(opts: Opts) -> (Server, Server) {
    let master = Server::start_with(Opts { tcp: true, ..opts });
    let replica = replica_of(&master);
    (master, replica)
}

/// A new replica of `master`, synced.
pub fn replica_of(master: &Server) -> Server {
    let replica = Server::start_with(Opts {
        replica_of: Some(master.port),
        ..Opts::default()
    });
    wait_link_up(&replica);
    replica
}

/// Every keyspace event (`__keyevent@0__:*`) a subscriber receives before the
/// one on `marker`, as (event, key).
pub fn keyevents_until(ps: &mut redis::PubSub, marker: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    loop {
        let msg = ps.get_message().expect("a keyspace event in time");
        let event = msg
            .get_channel_name()
            .strip_prefix("__keyevent@0__:")
            .expect("a keyevent channel")
            .to_string();
        let key: String = msg.get_payload().expect("key name");
        if key == marker {
            return seen;
        }
        seen.push((event, key));
    }
}

/// Waits (up to 30 s) until a replica's link to its master is up (its
/// initial sync done).
pub fn wait_link_up(replica: &Server) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.conn())
            .expect("INFO replication");
        if info.contains("master_link_status:up") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "replica never synced");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits (up to 30 s) until the replica behind `replica` has applied the
/// master's whole replication stream as of now: its `master_repl_offset`,
/// which a replica advances as it applies what it receives, reaches the
/// master's.
pub fn wait_applied(master: &mut Connection, replica: &mut Connection) {
    let offset = |c: &mut Connection| -> i64 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(c)
            .expect("INFO replication");
        info.lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("master_repl_offset in INFO replication")
    };
    let target = offset(master);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let applied = offset(replica);
        if applied >= target {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica applied up to offset {applied} of {target}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command that must fail with exactly `expected` and leave the data
/// untouched.
pub fn refused_unchanged(c: &mut Connection, args: &[&str], expected: &str) {
    let before = snapshot(c);
    assert_eq!(err(c, args), expected, "{args:?}");
    assert_eq!(snapshot(c), before, "{args:?} changed the data");
}

/// Runs a command and returns the raw reply (errors as Err with the full text).
pub fn run(c: &mut Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

/// The full error text of a failing command, e.g. "INVALID_GRANT authorization code already used".
pub fn err(c: &mut Connection, args: &[&str]) -> String {
    match run(c, args) {
        Ok(v) => panic!("expected an error from {args:?}, got {v:?}"),
        Err(e) => error_text(&e),
    }
}

pub fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// A reply as a list of (field, value) strings, from a RESP2 flat array or a RESP3 map.
pub fn pairs(v: &Value) -> Vec<(String, String)> {
    fn s(v: &Value) -> String {
        match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => format!("{other:?}"),
        }
    }
    match v {
        Value::Array(items) => items.chunks(2).map(|c| (s(&c[0]), s(&c[1]))).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (s(k), s(v))).collect(),
        other => panic!("not a map reply: {other:?}"),
    }
}

/// Field `name` of a map reply.
pub fn field(v: &Value, name: &str) -> Option<String> {
    pairs(v)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Saves a standard S256 code for client `app1` and redirect `https://app/cb`.
pub fn save_code(c: &mut Connection, key: &str) {
    let r = run(
        c,
        &[
            "OAUTH.SAVECODE",
            key,
            "600",
            "FIELDS",
            "5",
            "client_id",
            "app1",
            "redirect_uri",
            "https://app/cb",
            "code_challenge",
            CHALLENGE,
            "code_challenge_method",
            "S256",
            "user_id",
            "u42",
        ],
    );
    assert_eq!(r.expect("savecode"), Value::Okay);
}

/// Every key with its type, fields/value and PEXPIRETIME, sorted: for comparing servers.
/// (key, type, sorted content, PEXPIRETIME)
pub type KeyState = (String, String, Vec<(String, String)>, i64);

pub fn snapshot(c: &mut Connection) -> Vec<KeyState> {
    // Binary-safe: keys, fields and values are shown with non-printable bytes escaped.
    let esc = |b: &[u8]| b.escape_ascii().to_string();
    let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(c).expect("KEYS");
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query(c).expect("TYPE");
        let content: Vec<(String, String)> = match t.as_str() {
            "hash" => {
                let v: Vec<(Vec<u8>, Vec<u8>)> =
                    redis::cmd("HGETALL").arg(&k).query(c).expect("HGETALL");
                let mut v: Vec<(String, String)> =
                    v.iter().map(|(f, x)| (esc(f), esc(x))).collect();
                v.sort();
                v
            }
            "string" => {
                let v: Vec<u8> = redis::cmd("GET").arg(&k).query(c).expect("GET");
                vec![(String::new(), esc(&v))]
            }
            "set" => {
                let v: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&k).query(c).expect("SMEMBERS");
                let mut v: Vec<(String, String)> =
                    v.iter().map(|m| (esc(m), String::new())).collect();
                v.sort();
                v
            }
            _ => vec![],
        };
        let exp: i64 = redis::cmd("PEXPIRETIME")
            .arg(&k)
            .query(c)
            .expect("PEXPIRETIME");
        out.push((esc(&k), t, content, exp));
    }
    out
}

// ---------------------------------------------------------------------------
// Small helpers shared by the command tests.
// ---------------------------------------------------------------------------

/// Runs a command that must answer `OK`.
pub fn ok(c: &mut Connection, args: &[&str]) {
    match run(c, args) {
        Ok(Value::Okay) => {}
        other => panic!("expected OK from {args:?}, got {other:?}"),
    }
}

/// HGETALL of a key, sorted by field name.
pub fn hgetall(c: &mut Connection, key: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = redis::cmd("HGETALL").arg(key).query(c).expect("HGETALL");
    v.sort();
    v
}

/// PEXPIRETIME of a key (-2 missing, -1 no expiry).
pub fn pexpiretime(c: &mut Connection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query(c)
        .expect("PEXPIRETIME")
}

pub fn exists(c: &mut Connection, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS").arg(key).query(c).expect("EXISTS");
    n == 1
}

/// The server clock in Unix milliseconds (TIME).
pub fn server_ms(c: &mut Connection) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query(c).expect("TIME");
    s * 1000 + us / 1000
}

/// Owned, sorted (field, value) pairs from string slices.
pub fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

/// A map reply's pairs, sorted by field name.
pub fn sorted_pairs(v: &Value) -> Vec<(String, String)> {
    let mut p = pairs(v);
    p.sort();
    p
}

/// One `oauth_<name>` counter from `INFO oauth`.
pub fn info_counter(c: &mut Connection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("oauth")
        .query(c)
        .expect("INFO oauth");
    let prefix = format!("oauth_{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("INFO oauth has no {prefix}\n{info}"))
        .trim()
        .parse()
        .expect("counter value")
}

// ---------------------------------------------------------------------------
// Replies and helpers that several behaviour files share.
// ---------------------------------------------------------------------------

pub const CB: &str = "https://app/cb";
pub const RESERVED: &str = "INVALID_REQUEST field names beginning with '_' and the names active, exp and iat are reserved for the module";
pub const EXISTS: &str = "EXISTS key already exists";
pub const WRONG_REDIS_TYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Saves and exchanges a code in grant `g`, returning (access, refresh, grant) keys.
pub fn authorize(c: &mut Connection, g: &str) -> (String, String, String) {
    let code = format!("c:{{{g}}}");
    let (at, rt, grant) = (
        format!("at:{{{g}}}:0"),
        format!("rt:{{{g}}}:0"),
        format!("g:{{{g}}}"),
    );
    run(
        c,
        &[
            "OAUTH.SAVECODE",
            &code,
            "600",
            "FIELDS",
            "5",
            "client_id",
            "app1",
            "redirect_uri",
            CB,
            "code_challenge",
            CHALLENGE,
            "code_challenge_method",
            "S256",
            "scope",
            "read write",
        ],
    )
    .unwrap();
    run(
        c,
        &[
            "OAUTH.EXCHANGE",
            &code,
            "app1",
            CB,
            VERIFIER,
            "ISSUE",
            &at,
            "600",
            "REFRESH",
            &rt,
            "3600",
            "GRANT",
            &grant,
            "FIELDS",
            "1",
            "sub",
            "u1",
        ],
    )
    .unwrap();
    (at, rt, grant)
}

pub fn rotate(
    c: &mut Connection,
    old: &str,
    new: &str,
    extra: &[&str],
) -> redis::RedisResult<Value> {
    let mut args = vec!["OAUTH.ROTATE", old, new, "3600"];
    args.extend_from_slice(extra);
    run(c, &args)
}

pub fn members(c: &mut Connection, g: &str) -> HashSet<String> {
    redis::cmd("SMEMBERS").arg(g).query(c).unwrap()
}

pub fn active(c: &mut Connection, k: &str) -> bool {
    field(&run(c, &["OAUTH.INTROSPECT", k]).unwrap(), "active").as_deref() == Some("1")
}

pub fn save_token(c: &mut Connection, key: &str, ttl: &str) {
    ok(
        c,
        &[
            "OAUTH.SAVETOKEN",
            key,
            ttl,
            "FIELDS",
            "3",
            "sub",
            "u42",
            "client_id",
            "app1",
            "scope",
            "mcp:read",
        ],
    );
}

pub fn ints(c: &mut Connection, args: &[&str]) -> Vec<i64> {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn pttl(c: &mut Connection, k: &str) -> i64 {
    redis::cmd("PTTL").arg(k).query(c).unwrap()
}

pub fn refs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// The `oauth_census` INFO section, without the `oauth_` prefix.
pub fn census(c: &mut Connection) -> std::collections::BTreeMap<String, i64> {
    let info: String = redis::cmd("INFO")
        .arg("oauth_census")
        .query(c)
        .expect("INFO oauth_census");
    info.lines()
        .filter_map(|l| l.strip_prefix("oauth_"))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().parse().expect("integer")))
        .collect()
}

/// The census once a pass that began after this call has finished (two
/// more passes than now).
pub fn fresh_census(c: &mut Connection) -> std::collections::BTreeMap<String, i64> {
    let start = census(c)["census_passes"];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = census(c);
        if now["census_passes"] >= start + 2 {
            return now;
        }
        assert!(Instant::now() < deadline, "no census pass in 30 s: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
