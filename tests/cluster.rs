//! Issue 6 (Cluster): a real Redis Cluster of six nodes (three masters, three
//! replicas) on 127.0.0.1, the module loaded on every node, created with
//! `redis-cli --cluster create ... --cluster-replicas 1`, and driven through the
//! `redis` crate's cluster client:
//!
//! - thousands of grants, tokens, states and rate limits, hash-tagged per grant,
//!   spread over every master; every key has an expiry, and each replica holds
//!   exactly its master's keys, contents and absolute expiry times;
//! - `COMMAND GETKEYS` on a cluster node for every multi-key form, `CROSSSLOT` for
//!   each of them with keys in two slots, `MOVED` to the owner when sent to another
//!   master (Cluster finds the keyword and counted keys), and success with one
//!   hash tag;
//! - a replica with `READONLY` answers `OAUTH.INTROSPECT`;
//! - failover: a coordinated `CLUSTER FAILOVER`, then `kill -9` of another master
//!   until its replica is promoted. After each, no consumed code can be exchanged
//!   again, no revoked token introspects active, consumed states stay consumed,
//!   rate limits keep their counts, live data survives, and fresh writes work;
//! - the operators' commands on the promoted masters: OAUTH.SCAN lists each
//!   node's own records once, each node's census (and its replica's) equals a
//!   walk of its keys, and OAUTH.PURGECLIENT run on every master removes one
//!   client's grants everywhere, with exact counts, replicated.
//!
//! `cluster_refuses_cross_slot_and_accepts_hash_tags` checks the slot rules on
//! a single node in cluster mode holding every slot.
//!
//! The servers are `REDIS_SERVER` (default `redis-server`) and `REDIS_CLI`
//! (default `redis-cli`, 7.0 or newer for `--cluster-port`). Missing binaries fail
//! the test; it never skips.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{get_slot, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ErrorKind, RedisError, RedisResult};

/// Low, to keep the kill -9 failover fast, but with margin for a loaded machine.
const NODE_TIMEOUT_MS: u32 = 2000;
const GRANTS: usize = 3000;
const TOKENS: usize = 1000;
const STATES: usize = 600;
const LIMITS: usize = 200;
/// Fresh grants written after each failover.
const FRESH: usize = 300;

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

fn cli_binary() -> String {
    common::binary(
        "REDIS_CLI",
        "redis-cli",
        "Install it (apt-get install -y redis-tools) or set REDIS_CLI.",
    )
}

/// `n` distinct free ports, all bound at once so they differ from each other.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// One cluster node: redis-server with the module, in its own directory, killed on drop.
struct Node {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Node {
    fn spawn(server: &str, module: &str, port: u16, bus: u16) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("redis-oauth-cluster")
            .tempdir()
            .expect("tempdir");
        let p = port.to_string();
        let b = bus.to_string();
        let t = NODE_TIMEOUT_MS.to_string();
        let child = Command::new(server)
            .args(["--port", &p, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-port", &b])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &t])
            // Fail over whatever the replica's data age; keep replicas where
            // they are; start full syncs at once.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--cluster-allow-replica-migration", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("redis.log"))
            .args(["--loadmodule", module])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        Node {
            child: Some(child),
            port,
            dir,
        }
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn try_conn(&self) -> RedisResult<Connection> {
        let c =
            redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(5))?;
        c.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(c)
    }

    fn conn(&self) -> Connection {
        self.try_conn()
            .unwrap_or_else(|e| panic!("connect to node {}: {e}", self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Waits for PING; Err(log) if the process exited.
    fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited early ({status})\n{}", self.log()));
                }
            }
            if let Ok(mut c) = self.try_conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready in time\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (kill -9) and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Who owns which slots and who replicates whom, as every live node agrees.
#[derive(Clone, Debug, PartialEq)]
struct Topology {
    /// master port -> its slot ranges
    masters: BTreeMap<u16, Vec<(u16, u16)>>,
    /// replica port -> master port
    replicas: BTreeMap<u16, u16>,
}

impl Topology {
    fn owner(&self, slot: u16) -> u16 {
        *self
            .masters
            .iter()
            .find(|(_, r)| r.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .unwrap_or_else(|| panic!("no owner for slot {slot}: {self:?}"))
            .0
    }

    fn owner_of(&self, key: &str) -> u16 {
        self.owner(get_slot(key.as_bytes()))
    }

    fn replica_of(&self, master: u16) -> Option<u16> {
        self.replicas
            .iter()
            .find(|(_, m)| **m == master)
            .map(|(r, _)| *r)
    }
}

fn role(c: &mut Connection) -> RedisResult<String> {
    let v: Value = redis::cmd("ROLE").query(c)?;
    match v {
        Value::Array(items) => match items.first() {
            Some(Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            Some(Value::SimpleString(s)) => Ok(s.clone()),
            other => Ok(format!("{other:?}")),
        },
        other => Ok(format!("{other:?}")),
    }
}

struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Six nodes with the module, joined by `redis-cli --cluster create`, ready:
    /// every node `cluster_state:ok`, same view everywhere, replicas linked.
    fn start() -> Cluster {
        let server = server_binary();
        let cli = cli_binary();
        let module = module_path().display().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut nodes: Vec<Node> = Vec::new();
        let mut attempts = 0;
        while nodes.len() < 6 {
            attempts += 1;
            let want = 6 - nodes.len();
            let ports = free_ports(2 * want);
            let mut fresh: Vec<Node> = (0..want)
                .map(|i| Node::spawn(&server, &module, ports[2 * i], ports[2 * i + 1]))
                .collect();
            for mut n in fresh.drain(..) {
                match n.wait_ready(deadline) {
                    Ok(()) => nodes.push(n),
                    // Another process took a port between bind(0) and the spawn: retry.
                    Err(log) if log.contains("in use") && attempts < 5 => {}
                    Err(log) => panic!("cluster node {} failed to start: {log}", n.port),
                }
            }
        }
        // The module is there on every node.
        for n in &nodes {
            let mut c = n.conn();
            let info: Value = redis::cmd("COMMAND")
                .arg("INFO")
                .arg("oauth.exchange")
                .query(&mut c)
                .unwrap();
            assert!(
                matches!(&info, Value::Array(v) if matches!(v.first(), Some(Value::Array(_)))),
                "node {} has no oauth.exchange: {info:?}",
                n.port
            );
        }

        let out = tempfile::NamedTempFile::new().expect("temp file");
        let mut create = Command::new(&cli);
        create.args(["--cluster", "create"]);
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let mut child = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out.reopen().expect("reopen"))
            .stderr(out.reopen().expect("reopen"))
            .spawn()
            .expect("spawn redis-cli --cluster create");
        let cli_deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait redis-cli") {
                break s;
            }
            if Instant::now() > cli_deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-cli --cluster create hung:\n{}",
                    std::fs::read_to_string(out.path()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        assert!(
            status.success() && text.contains("All 16384 slots covered"),
            "redis-cli --cluster create failed ({status}):\n{text}"
        );
        let cluster = Cluster { nodes };
        let topo = cluster.wait_agreed("the new cluster", |t| {
            t.masters.len() == 3 && t.replicas.len() == 3
        });
        for m in topo.masters.keys() {
            assert!(
                topo.replica_of(*m).is_some(),
                "master {m} has no replica: {topo:?}"
            );
        }
        cluster
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn conn(&self, port: u16) -> Connection {
        self.node(port).conn()
    }

    fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.alive())
            .map(Node::url)
            .collect()
    }

    /// The topology if every live node is `cluster_state:ok` and reports the
    /// same slot owners and replica links, every owner is a live master, every
    /// dead node is flagged `fail`, and every live replica's link is up.
    fn agreed(&self) -> Result<Topology, String> {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.alive())
            .map(|n| n.port)
            .collect();
        let mut first: Option<Topology> = None;
        for n in self.nodes.iter().filter(|n| n.alive()) {
            let mut c = n.try_conn().map_err(|e| format!("{}: {e}", n.port))?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("{} is not cluster_state:ok", n.port));
            }
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            let topo = parse_nodes(&text, &live).map_err(|e| format!("{}: {e}", n.port))?;
            match &first {
                None => first = Some(topo),
                Some(f) if *f != topo => {
                    return Err(format!("views differ: {f:?} vs {} {topo:?}", n.port))
                }
                _ => {}
            }
        }
        let topo = first.ok_or("no live node")?;
        let covered: u32 = topo
            .masters
            .values()
            .flatten()
            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
            .sum();
        if covered != 16384 {
            return Err(format!("{covered} slots covered"));
        }
        for m in topo.masters.keys() {
            let mut c = self.node(*m).try_conn().map_err(|e| e.to_string())?;
            if role(&mut c).map_err(|e| e.to_string())? != "master" {
                return Err(format!("{m} owns slots but is not a master yet"));
            }
        }
        for r in topo.replicas.keys() {
            let mut c = self.node(*r).try_conn().map_err(|e| e.to_string())?;
            if role(&mut c).map_err(|e| e.to_string())? == "master" {
                return Err(format!("{r} is still a master"));
            }
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            if !info.contains("master_link_status:up") {
                return Err(format!("replica {r} is not linked"));
            }
        }
        Ok(topo)
    }

    fn wait_agreed(&self, what: &str, want: impl Fn(&Topology) -> bool) -> Topology {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let last = match self.agreed() {
                Ok(t) if want(&t) => return t,
                Ok(t) => format!("not yet as wanted: {t:?}"),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "{what}: the cluster did not settle: {last}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of every node's log, for failure messages.
    fn logs(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            s += &format!(
                "--- node {} ({}) ---\n{}\n",
                n.port,
                if n.alive() { "alive" } else { "killed" },
                tail.join("\n")
            );
        }
        s
    }
}

/// Parses CLUSTER NODES into slot owners and replica links of live nodes.
fn parse_nodes(text: &str, live: &[u16]) -> Result<Topology, String> {
    let mut by_id: HashMap<String, u16> = HashMap::new();
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err(format!("bad CLUSTER NODES line {line:?}"));
        }
        let hostport = f[1].split(['@', ',']).next().unwrap_or("");
        let port: u16 = hostport
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("bad address in {line:?}"))?;
        by_id.insert(f[0].to_string(), port);
        rows.push((port, f.clone()));
    }
    let mut topo = Topology {
        masters: BTreeMap::new(),
        replicas: BTreeMap::new(),
    };
    for (port, f) in rows {
        let flags: Vec<&str> = f[2].split(',').collect();
        let failing = flags.iter().any(|x| *x == "fail" || *x == "fail?");
        if !live.contains(&port) {
            if !flags.contains(&"fail") {
                return Err(format!("dead node {port} is not flagged fail yet"));
            }
            continue;
        }
        if failing || flags.contains(&"handshake") || flags.contains(&"noaddr") {
            return Err(format!("live node {port} is flagged {}", f[2]));
        }
        if flags.contains(&"master") {
            let mut ranges = Vec::new();
            for s in &f[8..] {
                if s.starts_with('[') {
                    return Err(format!("slot migration in progress: {s}"));
                }
                let r = match s.split_once('-') {
                    Some((a, b)) => (a.parse(), b.parse()),
                    None => (s.parse(), s.parse()),
                };
                match r {
                    (Ok(a), Ok(b)) => ranges.push((a, b)),
                    _ => return Err(format!("bad slot range {s}")),
                }
            }
            if !ranges.is_empty() {
                ranges.sort();
                topo.masters.insert(port, ranges);
            }
        } else {
            let m = by_id
                .get(f[3])
                .copied()
                .ok_or_else(|| format!("replica {port} of unknown master {}", f[3]))?;
            topo.replicas.insert(port, m);
        }
    }
    if let Some(p) = topo.masters.keys().find(|p| !live.contains(p)) {
        return Err(format!("dead node {p} still owns slots"));
    }
    Ok(topo)
}

// ---------------------------------------------------------------------------
// The cluster client
// ---------------------------------------------------------------------------

fn cluster_conn(seeds: &[String]) -> RedisResult<ClusterConnection> {
    ClusterClient::builder(seeds.to_vec())
        .retries(5)
        .min_retry_wait(20)
        .max_retry_wait(500)
        .retry_wait_formula(50, 2)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(20))
        .build()?
        .get_connection()
}

/// Errors that say "the topology is moving": worth a slot refresh and a retry.
fn transient(e: &RedisError) -> bool {
    let s = e.to_string();
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::ClusterDown
                | ErrorKind::TryAgain
                | ErrorKind::MasterDown
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::BusyLoadingError
                | ErrorKind::Moved
                | ErrorKind::Ask
        )
        || s.contains("Slot refresh error")
        || s.contains("Missing slot coverage")
        || s.contains("failed to check startup nodes")
}

/// The application's view: a `redis::cluster` connection. The client itself
/// follows MOVED (refreshing its slot map) and waits out CLUSTERDOWN/TRYAGAIN;
/// when it gives up on a dead node, a new connection is built from the seeds.
/// Such errors come from a killed node or from a slot without a master; writes
/// are only sent once the topology has settled, so no write is repeated.
struct Cc {
    seeds: Vec<String>,
    conn: ClusterConnection,
    reconnects: usize,
}

impl Cc {
    fn new(seeds: Vec<String>) -> Cc {
        let conn = cluster_conn(&seeds).expect("cluster client");
        Cc {
            seeds,
            conn,
            reconnects: 0,
        }
    }

    fn once(&mut self, args: &[&str]) -> RedisResult<Value> {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        // The client routes unknown commands by their first argument; the keys of
        // RATELIMITALL start after numkeys.
        if args[0].eq_ignore_ascii_case("OAUTH.RATELIMITALL") && args.len() > 2 {
            let slot = get_slot(args[2].as_bytes());
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            )));
            return self.conn.route_command(&cmd, route);
        }
        cmd.query(&mut self.conn)
    }

    fn q(&mut self, args: &[&str]) -> RedisResult<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.once(args) {
                Err(e) if transient(&e) && Instant::now() < deadline => {
                    self.reconnects += 1;
                    std::thread::sleep(Duration::from_millis(100));
                    if let Ok(c) = cluster_conn(&self.seeds) {
                        self.conn = c;
                    }
                }
                other => return other,
            }
        }
    }

    fn v(&mut self, args: &[&str]) -> Value {
        self.q(args)
            .unwrap_or_else(|e| panic!("{args:?}: {}", error_text(&e)))
    }

    fn ok(&mut self, args: &[&str]) {
        assert_eq!(self.v(args), Value::Okay, "{args:?}");
    }

    fn int(&mut self, args: &[&str]) -> i64 {
        match self.v(args) {
            Value::Int(i) => i,
            other => panic!("{args:?}: expected an integer, got {other:?}"),
        }
    }

    fn ints(&mut self, args: &[&str]) -> Vec<i64> {
        match self.v(args) {
            Value::Array(items) => items
                .iter()
                .map(|x| match x {
                    Value::Int(i) => *i,
                    other => panic!("{args:?}: not an integer: {other:?}"),
                })
                .collect(),
            other => panic!("{args:?}: expected integers, got {other:?}"),
        }
    }

    fn err(&mut self, args: &[&str]) -> String {
        match self.q(args) {
            Ok(v) => panic!("expected an error from {args:?}, got {v:?}"),
            Err(e) => error_text(&e),
        }
    }

    fn active(&mut self, args: &[&str]) -> bool {
        let mut full = vec!["OAUTH.INTROSPECT"];
        full.extend_from_slice(args);
        let v = self.v(&full);
        match field(&v, "active").as_deref() {
            Some("1") | Some("true") => true,
            Some("0") | Some("false") => false,
            other => panic!("{full:?}: active is {other:?} in {v:?}"),
        }
    }

    fn exists(&mut self, key: &str) -> bool {
        self.int(&["EXISTS", key]) == 1
    }
}

// ---------------------------------------------------------------------------
// The data set
// ---------------------------------------------------------------------------

/// What was done to grant `i` before the failovers.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cat {
    /// Exchanged with ISSUE, REFRESH and GRANT; nothing revoked.
    Live,
    /// Exchanged; the access token revoked.
    RevokedAccess,
    /// Exchanged; the refresh token revoked (its grant's access token goes too).
    RevokedRefresh,
    /// Exchanged; the whole grant revoked (tombstone included).
    RevokedGrant,
    /// Exchanged; the refresh token rotated once, with a new access token.
    Rotated,
    /// Exchanged with ISSUE only: the tombstone outlives every replay.
    IssueOnly,
    /// Saved, not exchanged: redeemed after a failover.
    Pending,
}

fn cat(i: usize) -> Cat {
    match i % 10 {
        3 => Cat::RevokedAccess,
        4 => Cat::Pending,
        5 => Cat::RevokedRefresh,
        6 => Cat::RevokedGrant,
        7 => Cat::Rotated,
        9 => Cat::IssueOnly,
        _ => Cat::Live,
    }
}

/// Grants with phase 0 are checked after the first failover, phase 1 after the second.
fn phase(i: usize) -> usize {
    (i / 10) % 2
}

// ---------------------------------------------------------------------------
// Operators' commands, on every master
// ---------------------------------------------------------------------------

fn flat_pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(a) => a.chunks(2).map(|c| (text_of(&c[0]), &c[1])).collect(),
        other => panic!("not a flat map: {other:?}"),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn parts(v: &Value) -> (String, &Value) {
    match v {
        Value::Array(a) if a.len() == 2 => (text_of(&a[0]), &a[1]),
        other => panic!("not [cursor, items]: {other:?}"),
    }
}

/// (key, kind) of every record `OAUTH.SCAN` lists on one node, cursor to 0.
fn scan_node(c: &mut Connection, filters: &[&str]) -> Vec<(String, String)> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    loop {
        let mut args = vec!["OAUTH.SCAN", cursor.as_str(), "COUNT", "500"];
        args.extend_from_slice(filters);
        let r = run(c, &args).unwrap_or_else(|e| panic!("{args:?}: {}", error_text(&e)));
        let (next, items) = parts(&r);
        let Value::Array(items) = items else {
            panic!("items: {items:?}")
        };
        for item in items {
            let f = flat_pairs(item);
            let get = |n: &str| text_of(f.iter().find(|(k, _)| k == n).expect(n).1);
            out.push((get("key"), get("kind")));
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    out
}

/// The `records_<kind>` fields of a node's census, once it has finished two
/// passes after this call.
fn fresh_node_census(c: &mut Connection) -> BTreeMap<String, i64> {
    fresh_census(c)
        .into_iter()
        .filter(|(k, _)| k.starts_with("records_"))
        .collect()
}

fn check_admin(cluster: &Cluster, topo: &Topology, cc: &mut Cc) {
    // One client's grants, spread over every master by their hash tags.
    const N: usize = 90;
    let grants: Vec<G> = (0..N).map(|i| g(&format!("purge{i}"))).collect();
    for k in &grants {
        save_code_of(cc, "appP", &k.code, "uP");
        exchange_full_of(cc, "appP", k, "uP");
    }
    let masters: Vec<u16> = topo.masters.keys().copied().collect();
    for m in &masters {
        assert!(
            grants.iter().any(|k| topo.owner_of(&k.at) == *m),
            "master {m} holds some of the client's grants"
        );
    }

    // Each master lists its own tokens of the client, and only those.
    let mut listed = Vec::new();
    for m in &masters {
        let own = scan_node(&mut cluster.conn(*m), &["KIND", "token", "CLIENT", "appP"]);
        for (key, _) in &own {
            assert_eq!(topo.owner_of(key), *m, "{key} listed by {m}");
        }
        listed.extend(own.into_iter().map(|(k, _)| k));
    }
    listed.sort();
    let mut expected: Vec<String> = grants.iter().map(|k| k.at.clone()).collect();
    expected.sort();
    assert_eq!(listed, expected);

    // Each node's census equals a walk of its records; a replica's equals its master's.
    wait_replicas(cluster, topo);
    for m in &masters {
        let mut agreed = false;
        for _ in 0..5 {
            let mut c = cluster.conn(*m);
            let census = fresh_node_census(&mut c);
            let mut walked: BTreeMap<String, i64> = census.keys().map(|k| (k.clone(), 0)).collect();
            for (_, kind) in scan_node(&mut c, &[]) {
                *walked.entry(format!("records_{kind}")).or_insert(0) += 1;
            }
            let replica = topo
                .replica_of(*m)
                .map(|r| fresh_node_census(&mut cluster.conn(r)));
            // A key may expire between the census and the walk: try again.
            if census == walked && replica.as_ref().is_none_or(|r| *r == census) {
                agreed = true;
                break;
            }
            eprintln!("census of {m} {census:?} vs walk {walked:?} vs replica {replica:?}");
        }
        assert!(agreed, "the census of {m} matches a walk of its keys");
    }

    // Purge the client on every master, to cursor 0, in small steps.
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for m in &masters {
        let mut c = cluster.conn(*m);
        let mut cursor = "0".to_string();
        loop {
            let r = run(
                &mut c,
                &["OAUTH.PURGECLIENT", "appP", &cursor, "COUNT", "200"],
            )
            .unwrap_or_else(|e| panic!("PURGECLIENT on {m}: {}", error_text(&e)));
            let (next, counts) = parts(&r);
            for (kind, n) in flat_pairs(counts) {
                let Value::Int(n) = n else {
                    panic!("{kind}: {n:?}")
                };
                *totals.entry(kind).or_insert(0) += n;
            }
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
    }
    let n = N as i64;
    let want: BTreeMap<String, i64> = [
        ("code", 0),
        ("redeemed_code", n),
        ("token", n),
        ("refresh", n),
        ("rotated_refresh", 0),
        ("client", 0),
        ("state", 0),
        ("grant", n),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(totals, want);
    for k in &grants {
        for key in [&k.code, &k.at, &k.rt, &k.grant] {
            assert_eq!(cc.v(&["EXISTS", key]), Value::Int(0), "{key}");
        }
    }
    for m in &masters {
        assert!(scan_node(&mut cluster.conn(*m), &["CLIENT", "appP"]).is_empty());
    }
}

struct G {
    code: String,
    at: String,
    rt: String,
    grant: String,
    rt2: String,
    at2: String,
}

fn g(tag: &str) -> G {
    let k = |s: &str| format!("oauth:{{{tag}}}:{s}");
    G {
        code: k("code"),
        at: k("at"),
        rt: k("rt"),
        grant: k("grant"),
        rt2: k("rt2"),
        at2: k("at2"),
    }
}

fn save_code_for(cc: &mut Cc, code: &str, user: &str) {
    save_code_of(cc, "app1", code, user);
}

fn save_code_of(cc: &mut Cc, client: &str, code: &str, user: &str) {
    cc.ok(&[
        "OAUTH.SAVECODE",
        code,
        "600",
        "FIELDS",
        "6",
        "client_id",
        client,
        "redirect_uri",
        CB,
        "code_challenge",
        CHALLENGE,
        "code_challenge_method",
        "S256",
        "user_id",
        user,
        "scope",
        "read write",
    ]);
}

/// Exchanges with ISSUE, REFRESH and GRANT and checks the reply.
fn exchange_full(cc: &mut Cc, k: &G, user: &str) {
    exchange_full_of(cc, "app1", k, user);
}

fn exchange_full_of(cc: &mut Cc, client: &str, k: &G, user: &str) {
    let v = cc.v(&[
        "OAUTH.EXCHANGE",
        &k.code,
        client,
        CB,
        VERIFIER,
        "ISSUE",
        &k.at,
        "600",
        "REFRESH",
        &k.rt,
        "3600",
        "GRANT",
        &k.grant,
        "FIELDS",
        "1",
        "jti",
        user,
    ]);
    assert_eq!(field(&v, "user_id").as_deref(), Some(user), "{v:?}");
}

fn replay(cc: &mut Cc, code: &str) -> String {
    cc.err(&["OAUTH.EXCHANGE", code, "app1", CB, VERIFIER])
}

const USED: &str = "INVALID_GRANT authorization code already used";
const GONE: &str = "INVALID_GRANT authorization code not found or expired";
const REUSED: &str = "INVALID_GRANT refresh token reused; its grant is revoked";

fn load_grants(cc: &mut Cc) {
    for i in 0..GRANTS {
        let k = g(&format!("g{i}"));
        let user = format!("u{i}");
        save_code_for(cc, &k.code, &user);
        match cat(i) {
            Cat::Pending => {}
            Cat::IssueOnly => {
                let v = cc.v(&[
                    "OAUTH.EXCHANGE",
                    &k.code,
                    "app1",
                    CB,
                    VERIFIER,
                    "ISSUE",
                    &k.at,
                    "600",
                ]);
                assert_eq!(field(&v, "user_id").as_deref(), Some(user.as_str()));
            }
            c => {
                exchange_full(cc, &k, &user);
                match c {
                    Cat::RevokedAccess => assert_eq!(cc.int(&["OAUTH.REVOKE", &k.at]), 1),
                    Cat::RevokedRefresh => assert_eq!(cc.int(&["OAUTH.REVOKE", &k.rt]), 2),
                    Cat::RevokedGrant => {
                        assert_eq!(cc.int(&["OAUTH.REVOKEGRANT", &k.grant]), 3)
                    }
                    Cat::Rotated => {
                        let v = cc.v(&[
                            "OAUTH.ROTATE",
                            &k.rt,
                            &k.rt2,
                            "3600",
                            "ISSUE",
                            &k.at2,
                            "600",
                        ]);
                        assert_eq!(field(&v, "_refresh_key").as_deref(), Some(k.rt2.as_str()));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// After a failover: the grants of `ph` are what they were, no consumed code can
/// be exchanged again, and pending codes are redeemed exactly once.
fn check_grants(cc: &mut Cc, ph: usize) {
    for i in (0..GRANTS).filter(|i| phase(*i) == ph) {
        let k = g(&format!("g{i}"));
        let user = format!("u{i}");
        let ctx = format!("grant {i} ({:?})", cat(i));
        match cat(i) {
            Cat::Live => {
                assert!(cc.active(&[&k.at]), "{ctx}: live access token lost");
                assert!(cc.exists(&k.rt), "{ctx}: refresh token lost");
                assert_eq!(replay(cc, &k.code), USED, "{ctx}");
                assert!(!cc.active(&[&k.at]), "{ctx}: replay must revoke");
                assert!(!cc.exists(&k.rt) && !cc.exists(&k.grant), "{ctx}");
            }
            Cat::RevokedAccess => {
                assert!(!cc.active(&[&k.at]), "{ctx}: revoked token is active");
                assert!(cc.exists(&k.rt), "{ctx}: refresh token lost");
                assert_eq!(replay(cc, &k.code), USED, "{ctx}");
                assert!(!cc.exists(&k.rt), "{ctx}");
            }
            Cat::RevokedRefresh => {
                assert!(!cc.active(&[&k.at]), "{ctx}: revoked token is active");
                assert!(!cc.exists(&k.rt), "{ctx}: revoked refresh token is back");
                assert_eq!(replay(cc, &k.code), USED, "{ctx}");
            }
            Cat::RevokedGrant => {
                assert!(!cc.active(&[&k.at]), "{ctx}: revoked token is active");
                assert!(!cc.exists(&k.rt) && !cc.exists(&k.code), "{ctx}");
                assert_eq!(replay(cc, &k.code), GONE, "{ctx}");
            }
            Cat::Rotated => {
                assert!(cc.active(&[&k.at2]), "{ctx}: rotated access token lost");
                assert!(cc.exists(&k.rt2), "{ctx}: successor refresh token lost");
                let e = cc.err(&["OAUTH.ROTATE", &k.rt, &format!("{}x", k.rt2), "3600"]);
                assert_eq!(
                    e, REUSED,
                    "{ctx}: a rotated refresh token was accepted again"
                );
                assert!(!cc.active(&[&k.at2]) && !cc.exists(&k.rt2), "{ctx}");
                // The grant revocation took the code's tombstone along.
                assert_eq!(replay(cc, &k.code), GONE, "{ctx}");
            }
            Cat::IssueOnly => {
                assert!(cc.active(&[&k.at]), "{ctx}: issued token lost");
                assert_eq!(replay(cc, &k.code), USED, "{ctx}");
                assert!(!cc.active(&[&k.at]), "{ctx}: replay must revoke");
                assert_eq!(replay(cc, &k.code), USED, "{ctx}");
            }
            Cat::Pending => {
                // Live code survived; redeemed once on the new topology. Replayed
                // only after the next failover (phase 0) or right away (phase 1).
                exchange_full(cc, &k, &user);
                assert!(cc.active(&[&k.at]), "{ctx}");
                if ph == 1 {
                    assert_eq!(replay(cc, &k.code), USED, "{ctx}");
                }
            }
        }
    }
}

/// After the second failover: every phase-0 code, consumed before or after the
/// first failover, still refuses a second exchange.
fn recheck_phase0(cc: &mut Cc) {
    for i in (0..GRANTS).filter(|i| phase(*i) == 0) {
        let k = g(&format!("g{i}"));
        let e = replay(cc, &k.code);
        match cat(i) {
            Cat::Pending => {
                assert_eq!(e, USED, "grant {i}: redeemed after failover 1, then lost");
                assert!(!cc.active(&[&k.at]), "grant {i}");
            }
            Cat::IssueOnly => assert_eq!(e, USED, "grant {i}"),
            _ => assert_eq!(e, GONE, "grant {i}"),
        }
    }
}

/// New grants, tokens, states and limits on the current topology.
fn fresh_writes(cc: &mut Cc, stage: &str) {
    for i in 0..FRESH {
        let k = g(&format!("f{stage}{i}"));
        let user = format!("f{i}");
        save_code_for(cc, &k.code, &user);
        exchange_full(cc, &k, &user);
        assert!(cc.active(&[&k.at]));
        assert_eq!(replay(cc, &k.code), USED);
        assert!(!cc.active(&[&k.at]));
        let st = format!("oauth:{{f{stage}{i}}}:state");
        cc.ok(&["OAUTH.SAVESTATE", &st, "300", "FIELDS", "1", "nonce", &user]);
        let v = cc.v(&["OAUTH.CONSUMESTATE", &st]);
        assert_eq!(field(&v, "nonce").as_deref(), Some(user.as_str()));
        assert_eq!(cc.v(&["OAUTH.CONSUMESTATE", &st]), Value::Nil);
        let rl = format!("rl:{{f{stage}{i}}}:fixed");
        assert_eq!(cc.ints(&["OAUTH.RATELIMIT", &rl, "1", "600"])[0], 0);
        assert_eq!(cc.ints(&["OAUTH.RATELIMIT", &rl, "1", "600"])[0], 1);
    }
}

fn tok(i: usize) -> String {
    format!("oauth:{{t{i}}}:tok")
}

fn load_tokens(cc: &mut Cc) {
    for i in 0..TOKENS {
        let t = tok(i);
        let sub = format!("u{i}");
        let fields = ["FIELDS", "2", "sub", sub.as_str(), "scope", "read"];
        match i % 4 {
            0 => {
                let mut a = vec!["OAUTH.SAVETOKEN", &t, "600"];
                a.extend_from_slice(&fields);
                cc.ok(&a);
                assert_eq!(cc.int(&["OAUTH.REVOKE", &t]), 1);
            }
            1 => {
                let t2 = format!("{t}:b");
                for k in [&t, &t2] {
                    let mut a = vec!["OAUTH.SAVETOKEN", k.as_str(), "600"];
                    a.extend_from_slice(&fields);
                    cc.ok(&a);
                }
                let none = format!("oauth:{{t{i}}}:none");
                assert_eq!(cc.int(&["OAUTH.REVOKE", &t, &t2, &none]), 2);
            }
            2 => {
                let grant = format!("oauth:{{t{i}}}:grant");
                let mut a = vec!["OAUTH.SAVETOKEN", &t, "600", "GRANT", &grant];
                a.extend_from_slice(&fields);
                cc.ok(&a);
            }
            _ => {
                let mut a = vec!["OAUTH.SAVETOKEN", &t, "600"];
                a.extend_from_slice(&fields);
                cc.ok(&a);
                let cut = format!("oauth:{{t{i}}}:cut");
                cc.int(&["OAUTH.REVOKEBEFORE", &cut]);
            }
        }
    }
}

/// Read-only: revoked tokens are inactive, live ones active with their fields.
fn check_tokens(cc: &mut Cc) {
    for i in 0..TOKENS {
        let t = tok(i);
        let cut = format!("oauth:{{t{i}}}:cut");
        match i % 4 {
            0 => assert!(!cc.active(&[&t]), "revoked token {t} is active"),
            1 => {
                assert!(!cc.active(&[&t]), "revoked token {t} is active");
                assert!(
                    !cc.active(&[&format!("{t}:b")]),
                    "revoked token {t}:b is active"
                );
            }
            2 => {
                let v = cc.v(&["OAUTH.INTROSPECT", &t]);
                assert_eq!(field(&v, "active").as_deref(), Some("1"), "{t}: {v:?}");
                assert_eq!(field(&v, "sub"), Some(format!("u{i}")), "{t}: {v:?}");
            }
            _ => {
                assert!(
                    !cc.active(&[&t, "CUTOFF", "1", &cut]),
                    "{t} is active despite its revoke-before cutoff"
                );
                assert!(cc.active(&[&t]), "{t} without CUTOFF");
            }
        }
    }
}

fn st(i: usize) -> String {
    format!("oauth:{{s{i}}}:state")
}

fn load_states(cc: &mut Cc) {
    for i in 0..STATES {
        let n = format!("n{i}");
        cc.ok(&["OAUTH.SAVESTATE", &st(i), "300", "FIELDS", "1", "nonce", &n]);
        if i % 2 == 0 {
            let v = cc.v(&["OAUTH.CONSUMESTATE", &st(i)]);
            assert_eq!(field(&v, "nonce").as_deref(), Some(n.as_str()));
        }
    }
}

/// Consumed states stay consumed; unconsumed ones of phase `ph` are consumed once.
fn check_states(cc: &mut Cc, ph: usize) {
    for i in 0..STATES {
        if i % 2 == 0 {
            assert_eq!(
                cc.v(&["OAUTH.CONSUMESTATE", &st(i)]),
                Value::Nil,
                "state {i} consumed twice"
            );
        } else if (i / 2) % 2 == ph {
            let v = cc.v(&["OAUTH.CONSUMESTATE", &st(i)]);
            assert_eq!(field(&v, "nonce"), Some(format!("n{i}")), "state {i} lost");
            assert_eq!(cc.v(&["OAUTH.CONSUMESTATE", &st(i)]), Value::Nil);
        }
    }
}

struct Rl {
    fixed: String,
    sliding: String,
    gcra: String,
    ip: String,
    user: String,
}

fn rl(i: usize) -> Rl {
    let k = |s: &str| format!("rl:{{r{i}}}:{s}");
    Rl {
        fixed: k("fixed"),
        sliding: k("sliding"),
        gcra: k("gcra"),
        ip: k("ip"),
        user: k("user"),
    }
}

fn all_args(r: &Rl) -> [&str; 8] {
    [
        "OAUTH.RATELIMITALL",
        "2",
        &r.ip,
        &r.user,
        "5",
        "600",
        "2",
        "600",
    ]
}

/// Long windows, so no window turns over during the test.
fn load_limits(cc: &mut Cc) {
    for i in 0..LIMITS {
        let r = rl(i);
        for n in 0..3 {
            let v = cc.ints(&["OAUTH.RATELIMIT", &r.fixed, "3", "600"]);
            assert_eq!(v[..3], [0, 3, 2 - n], "{}", r.fixed);
        }
        for _ in 0..2 {
            assert_eq!(
                cc.ints(&["OAUTH.RATELIMIT", &r.sliding, "2", "3600", "SLIDING"])[0],
                0
            );
        }
        // GCRA: max_burst 1 allows two requests at once, then one per hour.
        for _ in 0..2 {
            assert_eq!(
                cc.ints(&["OAUTH.THROTTLE", &r.gcra, "1", "1", "3600"])[0],
                0
            );
        }
        for _ in 0..2 {
            assert_eq!(cc.ints(&all_args(&r))[0], 0);
        }
        check_limit(cc, i);
    }
}

/// Every limit is exhausted; a denied request writes nothing.
fn check_limit(cc: &mut Cc, i: usize) {
    let r = rl(i);
    assert_eq!(
        cc.ints(&["OAUTH.RATELIMIT", &r.fixed, "3", "600"])[..3],
        [1, 3, 0],
        "{}",
        r.fixed
    );
    assert_eq!(
        cc.ints(&["OAUTH.RATELIMIT", &r.sliding, "2", "3600", "SLIDING"])[0],
        1,
        "{}",
        r.sliding
    );
    assert_eq!(
        cc.ints(&["OAUTH.THROTTLE", &r.gcra, "1", "1", "3600"])[0],
        1,
        "{}",
        r.gcra
    );
    assert_eq!(cc.ints(&all_args(&r))[0], 1, "{}", r.ip);
    let counts: Vec<i64> = match cc.v(&["MGET", &r.ip, &r.user, &r.fixed]) {
        Value::Array(v) => v
            .iter()
            .map(|x| match x {
                Value::BulkString(b) => String::from_utf8_lossy(b).parse().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(counts, [2, 2, 3], "rate-limit counters of r{i}");
}

// ---------------------------------------------------------------------------
// Per-node checks
// ---------------------------------------------------------------------------

/// key -> (type, content, PEXPIRETIME), for comparing a master and its replica.
type Snap = BTreeMap<String, (String, Vec<String>, i64)>;

fn snapshot_node(c: &mut Connection) -> Snap {
    // Cluster replicas redirect keyed reads unless READONLY.
    let _: () = redis::cmd("READONLY").query(c).expect("READONLY");
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).expect("KEYS");
    keys.sort();
    let mut p = redis::pipe();
    for k in &keys {
        p.cmd("TYPE").arg(k).cmd("PEXPIRETIME").arg(k);
    }
    let meta: Vec<Value> = p.query(c).expect("TYPE/PEXPIRETIME");
    let mut p = redis::pipe();
    let mut types = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let t = match &meta[2 * i] {
            Value::SimpleString(s) => s.clone(),
            Value::Okay => "ok".into(),
            other => format!("{other:?}"),
        };
        match t.as_str() {
            "hash" => p.cmd("HGETALL").arg(k),
            "set" => p.cmd("SMEMBERS").arg(k),
            "string" => p.cmd("GET").arg(k),
            _ => p.cmd("TYPE").arg(k),
        };
        types.push(t);
    }
    let contents: Vec<Value> = p.query(c).expect("contents");
    let flat = |v: &Value| -> Vec<String> {
        let s = |x: &Value| match x {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        };
        match v {
            Value::Array(items) => items.iter().map(s).collect(),
            other => vec![s(other)],
        }
    };
    let mut out = Snap::new();
    for (i, k) in keys.into_iter().enumerate() {
        let mut content = flat(&contents[i]);
        if types[i] == "hash" {
            let mut pairs: Vec<String> = content.chunks(2).map(|c| c.join("=")).collect();
            pairs.sort();
            content = pairs;
        } else {
            content.sort();
        }
        let exp = match meta[2 * i + 1] {
            Value::Int(e) => e,
            ref other => panic!("PEXPIRETIME {k}: {other:?}"),
        };
        out.insert(k, (types[i].clone(), content, exp));
    }
    out
}

/// Each shard: the master's keys all expire, its replica (after WAIT) holds the
/// same keys, contents and absolute expiry times. Answers the masters' key counts.
fn check_shards(cluster: &Cluster, topo: &Topology, what: &str) -> BTreeMap<u16, usize> {
    let mut sizes = BTreeMap::new();
    for m in topo.masters.keys() {
        let mut mc = cluster.conn(*m);
        let snap = snapshot_node(&mut mc);
        let no_ttl: Vec<&String> = snap
            .iter()
            .filter(|(_, (_, _, e))| *e == -1)
            .map(|(k, _)| k)
            .take(5)
            .collect();
        assert!(
            no_ttl.is_empty(),
            "{what}: keys without expiry on master {m}: {no_ttl:?}"
        );
        // Every key is in a slot this master owns.
        let ranges = &topo.masters[m];
        for k in snap.keys() {
            let s = get_slot(k.as_bytes());
            assert!(
                ranges.iter().any(|(a, b)| (*a..=*b).contains(&s)),
                "{what}: {k} (slot {s}) stored on {m}, which owns {ranges:?}"
            );
        }
        let dbsize: usize = redis::cmd("DBSIZE").query(&mut mc).unwrap();
        assert_eq!(dbsize, snap.len());
        sizes.insert(*m, snap.len());
        if let Some(r) = topo.replica_of(*m) {
            wait_applied(&mut mc, &mut cluster.conn(r));
            let rsnap = snapshot_node(&mut cluster.conn(r));
            if rsnap != snap {
                let diff: Vec<_> = snap
                    .iter()
                    .filter(|(k, v)| rsnap.get(*k) != Some(v))
                    .map(|(k, v)| (k, v, rsnap.get(k)))
                    .take(5)
                    .collect();
                panic!(
                    "{what}: replica {r} differs from master {m} ({} vs {} keys): {diff:?}",
                    rsnap.len(),
                    snap.len()
                );
            }
        }
    }
    sizes
}

/// Waits until the replica of every master that has one holds all its writes.
fn wait_replicas(cluster: &Cluster, topo: &Topology) {
    for m in topo.masters.keys() {
        if let Some(r) = topo.replica_of(*m) {
            wait_applied(&mut cluster.conn(*m), &mut cluster.conn(r));
        }
    }
}

fn getkeys(c: &mut Connection, args: &[&str]) -> Vec<String> {
    redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg(args)
        .query(c)
        .unwrap_or_else(|e| panic!("COMMAND GETKEYS {args:?}: {e}"))
}

/// The multi-key forms, written with `{a}` for the first tag and `{b}` for the
/// second: (command, the keys COMMAND GETKEYS must find). They are never run with
/// all keys in one slot on the owner, so placeholder values do.
fn multi_key_forms() -> Vec<(Vec<&'static str>, Vec<&'static str>)> {
    let w = |s: &'static str| s.split(' ').collect::<Vec<&str>>();
    [
        ("OAUTH.EXCHANGE c:{a} app1 cb v ISSUE at:{b} 60", "c:{a} at:{b}"),
        ("OAUTH.EXCHANGE c:{a} app1 cb v REFRESH rt:{b} 60 GRANT g:{a}", "c:{a} rt:{b} g:{a}"),
        (
            "OAUTH.EXCHANGE c:{a} app1 cb v ISSUE at:{a} 60 REFRESH rt:{a} 60 GRANT g:{b} FIELDS 1 GRANT x",
            "c:{a} at:{a} rt:{a} g:{b}",
        ),
        ("OAUTH.ROTATE rt:{a} rt2:{b} 60", "rt:{a} rt2:{b}"),
        ("OAUTH.ROTATE rt:{a} rt2:{a} 60 ISSUE at:{b} 60", "rt:{a} rt2:{a} at:{b}"),
        (
            "OAUTH.ROTATE rt:{a} rt2:{a} 60 GRACE 5 ISSUE at:{a} 60 CUTOFF 2 cut:{a} cut:{b}",
            "rt:{a} rt2:{a} at:{a} cut:{a} cut:{b}",
        ),
        ("OAUTH.INTROSPECT t:{a} CUTOFF 2 cut:{a} cut:{b}", "t:{a} cut:{a} cut:{b}"),
        (
            "OAUTH.RATELIMITALL 3 rl:{a}:1 rl:{a}:2 rl:{b} 1 60 1 60 1 60 COST 1",
            "rl:{a}:1 rl:{a}:2 rl:{b}",
        ),
        ("OAUTH.SAVETOKEN t:{a} 60 GRANT g:{b} FIELDS 0", "t:{a} g:{b}"),
        ("OAUTH.REVOKE t:{a} t:{a}:2 t:{b}", "t:{a} t:{a}:2 t:{b}"),
    ]
    .into_iter()
    .map(|(c, k)| (w(c), w(k)))
    .collect()
}

/// COMMAND GETKEYS on a cluster node, CROSSSLOT through the cluster client, MOVED
/// from a master that does not own the slot, and success with one hash tag.
fn check_key_routing(cluster: &Cluster, topo: &Topology, cc: &mut Cc) {
    let any = *topo.masters.keys().next().unwrap();
    let mut c = cluster.conn(any);
    // Single-key forms too, for completeness.
    assert_eq!(getkeys(&mut c, &["OAUTH.REVOKEGRANT", "g:{a}"]), ["g:{a}"]);
    assert_eq!(
        getkeys(&mut c, &["OAUTH.REVOKEBEFORE", "cut:{a}"]),
        ["cut:{a}"]
    );
    assert_eq!(
        getkeys(&mut c, &["OAUTH.EXCHANGE", "c:{a}", "app1", CB, VERIFIER]),
        ["c:{a}"]
    );
    // Two tags in different slots, owned by different masters.
    let (ta, tb) = {
        let mut found = None;
        'o: for x in 0..1000 {
            for y in 0..1000 {
                let (a, b) = (format!("x{x}"), format!("y{y}"));
                if topo.owner_of(&a) != topo.owner_of(&b) {
                    found = Some((a, b));
                    break 'o;
                }
            }
        }
        found.unwrap()
    };
    for (args, keys) in multi_key_forms() {
        assert_eq!(getkeys(&mut c, &args), keys, "COMMAND GETKEYS {args:?}");
        let cross: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{a}", &format!("{{{ta}}}"))
                    .replace("{b}", &format!("{{{tb}}}"))
            })
            .collect();
        let cross: Vec<&str> = cross.iter().map(String::as_str).collect();
        let e = cc.err(&cross);
        assert!(e.starts_with("CROSSSLOT"), "{cross:?}: {e}");
        // Same slot, sent to a master that does not own it: MOVED to the owner,
        // so Cluster found every key, wherever it is in the arguments.
        let same: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{a}", &format!("{{{ta}}}"))
                    .replace("{b}", &format!("{{{ta}}}"))
            })
            .collect();
        let same: Vec<&str> = same.iter().map(String::as_str).collect();
        let owner = topo.owner_of(&ta);
        let other = *topo.masters.keys().find(|m| **m != owner).unwrap();
        let e = error_text(&run(&mut cluster.conn(other), &same).unwrap_err());
        assert_eq!(
            e,
            format!("MOVED {} 127.0.0.1:{owner}", get_slot(ta.as_bytes())),
            "{same:?}"
        );
    }

    // A key named like a keyword cannot make a node write a key of a slot it
    // does not serve: the call is refused before any key is touched.
    save_code_for(cc, "{ISSUE}:code", "uissue");
    let mut node = cluster.conn(topo.owner_of("ISSUE"));
    let smuggle = [
        "OAUTH.EXCHANGE",
        "{ISSUE}:code",
        "app1",
        CB,
        VERIFIER,
        "GRANT",
        "ISSUE",
        "ISSUE",
        "oauth:{b}:victim",
        "600",
    ];
    let e = error_text(&run(&mut node, &smuggle).unwrap_err());
    assert!(
        e.starts_with("INVALID_REQUEST") || e.starts_with("CROSSSLOT"),
        "{e}"
    );
    assert!(!cc.exists("oauth:{b}:victim"));
    assert!(!cc.exists("ISSUE"));
    // Not consumed by the refused call: it redeems now, once.
    cc.v(&["OAUTH.EXCHANGE", "{ISSUE}:code", "app1", CB, VERIFIER]);
    assert_eq!(replay(cc, "{ISSUE}:code"), USED);

    // One hash tag: every multi-key form works through the cluster client.
    let k = g("mk");
    save_code_for(cc, &k.code, "umk");
    exchange_full(cc, &k, "umk");
    let cut = "oauth:{mk}:cut";
    assert!(cc.active(&[&k.at, "CUTOFF", "1", cut]));
    let v = cc.v(&[
        "OAUTH.ROTATE",
        &k.rt,
        &k.rt2,
        "3600",
        "GRACE",
        "5",
        "ISSUE",
        &k.at2,
        "600",
        "CUTOFF",
        "1",
        cut,
    ]);
    assert_eq!(field(&v, "_access_key").as_deref(), Some(k.at2.as_str()));
    cc.ok(&[
        "OAUTH.SAVETOKEN",
        "oauth:{mk}:tok",
        "600",
        "GRANT",
        &k.grant,
        "FIELDS",
        "1",
        "sub",
        "umk",
    ]);
    assert_eq!(
        cc.int(&["OAUTH.REVOKE", "oauth:{mk}:tok", &k.at2, "oauth:{mk}:none"]),
        2
    );
    assert_eq!(
        cc.ints(&[
            "OAUTH.RATELIMITALL",
            "2",
            "rl:{mk}:ip",
            "rl:{mk}:user",
            "1",
            "600",
            "1",
            "600",
        ])[0],
        0
    );
    cc.int(&["OAUTH.REVOKEBEFORE", cut]);
    assert!(!cc.active(&[&k.at, "CUTOFF", "1", cut]));
    assert!(cc.int(&["OAUTH.REVOKEGRANT", &k.grant]) >= 2);
    assert!(!cc.exists(&k.at) && !cc.exists(&k.rt2) && !cc.exists(&k.code));
}

/// A replica with READONLY answers INTROSPECT (a read-only command) from its copy.
fn check_replica_reads(cluster: &Cluster, topo: &Topology) {
    for (r, m) in &topo.replicas {
        let mut c = cluster.conn(*r);
        let _: () = redis::cmd("READONLY").query(&mut c).unwrap();
        let mut seen = (false, false);
        for i in 0..TOKENS {
            let t = tok(i);
            if topo.owner_of(&t) != *m || !matches!(i % 4, 0 | 2) {
                continue;
            }
            let v = run(&mut c, &["OAUTH.INTROSPECT", &t]).unwrap();
            let want = if i % 4 == 2 { "1" } else { "0" };
            assert_eq!(
                field(&v, "active").as_deref(),
                Some(want),
                "{t} on replica {r}"
            );
            if i % 4 == 2 {
                seen.0 = true;
            } else {
                seen.1 = true;
            }
        }
        assert!(
            seen.0 && seen.1,
            "replica {r} had no live and revoked token to read"
        );
        // Writes still go to the master.
        let e = error_text(
            &run(
                &mut c,
                &[
                    "OAUTH.SAVESTATE",
                    &st(1_000_000 + *r as usize),
                    "60",
                    "FIELDS",
                    "0",
                ],
            )
            .unwrap_err(),
        );
        assert!(e.starts_with("MOVED"), "write on replica {r}: {e}");
    }
}

fn panics(cluster: &Cluster) {
    for n in cluster.nodes.iter().filter(|n| n.alive()) {
        assert_eq!(info_counter(&mut n.conn(), "panics"), 0, "node {}", n.port);
    }
}

#[test]
fn cluster_flows_keys_and_failover() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start();
    let topo = cluster.agreed().expect("started cluster");
    eprintln!("cluster up in {:?}: {topo:?}", t0.elapsed());

    let mut cc = Cc::new(cluster.seeds());
    check_key_routing(&cluster, &topo, &mut cc);

    let t = Instant::now();
    load_grants(&mut cc);
    load_tokens(&mut cc);
    load_states(&mut cc);
    load_limits(&mut cc);
    eprintln!("data loaded in {:?}", t.elapsed());

    // Every master holds keys; every key expires; replicas are exact copies.
    let sizes = check_shards(&cluster, &topo, "after loading");
    let total: usize = sizes.values().sum();
    for (m, n) in &sizes {
        assert!(
            *n > total / 6,
            "master {m} holds only {n} of {total} keys: {sizes:?}"
        );
    }
    eprintln!("keys per master: {sizes:?}");
    check_replica_reads(&cluster, &topo);
    check_tokens(&mut cc);

    // (a) Coordinated failover: a replica takes over its master.
    let t = Instant::now();
    let (old_a, new_a) = {
        let m = *topo.masters.keys().next().unwrap();
        (m, topo.replica_of(m).unwrap())
    };
    wait_replicas(&cluster, &topo);
    let r: Value = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut cluster.conn(new_a))
        .expect("CLUSTER FAILOVER");
    assert_eq!(r, Value::Okay);
    let topo = cluster.wait_agreed("CLUSTER FAILOVER", |t| {
        t.masters.contains_key(&new_a) && t.replicas.get(&old_a) == Some(&new_a)
    });
    eprintln!("CLUSTER FAILOVER {old_a} -> {new_a} in {:?}", t.elapsed());

    // The long-lived client follows the MOVED redirections.
    let t = Instant::now();
    check_grants(&mut cc, 0);
    check_tokens(&mut cc);
    check_states(&mut cc, 0);
    for i in 0..LIMITS {
        check_limit(&mut cc, i);
    }
    fresh_writes(&mut cc, "a");
    eprintln!(
        "checks after failover (a) in {:?} ({} client reconnects: MOVED is followed by the client)",
        t.elapsed(),
        cc.reconnects
    );
    wait_replicas(&cluster, &topo);

    // (b) kill -9 of another master; its replica is promoted.
    let old_b = *topo
        .masters
        .keys()
        .find(|m| **m != new_a)
        .expect("another master");
    let new_b = topo.replica_of(old_b).expect("its replica");
    let probe = (0..TOKENS)
        .map(tok)
        .enumerate()
        .find(|(i, t)| i % 4 == 2 && topo.owner_of(t) == old_b)
        .map(|(_, t)| t)
        .expect("a live token on the master to kill");
    let t = Instant::now();
    cluster.node_mut(old_b).kill();
    // The client keeps asking (IO errors, CLUSTERDOWN) until the replica serves the slot.
    assert!(cc.active(&[&probe]), "{probe} lost in the failover");
    let recovered = t.elapsed();
    let topo = cluster.wait_agreed("kill -9", |t| {
        t.masters.contains_key(&new_b) && !t.replicas.contains_key(&new_b)
    });
    eprintln!(
        "kill -9 {old_b}: client served again after {recovered:?}, cluster settled after {:?} ({} client reconnects)",
        t.elapsed(),
        cc.reconnects
    );

    let t = Instant::now();
    check_grants(&mut cc, 1);
    recheck_phase0(&mut cc);
    check_tokens(&mut cc);
    check_states(&mut cc, 1);
    for i in 0..STATES {
        assert_eq!(
            cc.v(&["OAUTH.CONSUMESTATE", &st(i)]),
            Value::Nil,
            "state {i}"
        );
    }
    for i in 0..LIMITS {
        check_limit(&mut cc, i);
    }
    fresh_writes(&mut cc, "b");
    eprintln!("checks after failover (b) in {:?}", t.elapsed());

    let t = Instant::now();
    check_admin(&cluster, &topo, &mut cc);
    eprintln!("operators' commands on every master in {:?}", t.elapsed());

    // The new masters: every key expires, replicas are copies, nothing panicked.
    let sizes = check_shards(&cluster, &topo, "after both failovers");
    eprintln!("keys per master at the end: {sizes:?}");
    panics(&cluster);
    eprintln!("total {:?}", t0.elapsed());
}

#[test]
fn cluster_refuses_cross_slot_and_accepts_hash_tags() {
    let s = Server::start_with(Opts {
        server_args: vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-config-file".into(),
            "nodes.conf".into(),
            // With --port 0 the bus would bind the fixed port 10000 and
            // collide with any other cluster test; take a free one.
            "--cluster-port".into(),
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port for the cluster bus")
                .port()
                .to_string(),
        ],
        ..Opts::default()
    });
    let mut c = s.conn();
    run(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(
        &redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<Vec<u8>>(&mut c)
            .unwrap(),
    )
    .contains("cluster_state:ok")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "cluster never became ok"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    save_code(&mut c, "code:{x}");
    for args in [
        vec![
            "OAUTH.EXCHANGE",
            "code:{x}",
            "app1",
            CB,
            VERIFIER,
            "ISSUE",
            "tok:{y}",
            "60",
        ],
        vec![
            "OAUTH.EXCHANGE",
            "code:{x}",
            "app1",
            CB,
            VERIFIER,
            "REFRESH",
            "rt:{x}",
            "60",
            "GRANT",
            "g:{y}",
        ],
        vec![
            "OAUTH.RATELIMITALL",
            "2",
            "rl:{a}",
            "rl:{b}",
            "1",
            "1",
            "1",
            "1",
        ],
        vec!["OAUTH.REVOKE", "t:{a}", "t:{b}"],
        vec!["OAUTH.INTROSPECT", "t:{a}", "CUTOFF", "1", "cut:{b}"],
        vec!["OAUTH.ROTATE", "rt:{a}", "rt:{b}", "60"],
        vec![
            "OAUTH.SAVETOKEN",
            "t:{a}",
            "60",
            "GRANT",
            "g:{b}",
            "FIELDS",
            "0",
        ],
    ] {
        let e = err(&mut c, &args);
        assert!(e.starts_with("CROSSSLOT"), "{args:?}: {e}");
    }
    let v = run(
        &mut c,
        &[
            "OAUTH.EXCHANGE",
            "code:{x}",
            "app1",
            CB,
            VERIFIER,
            "ISSUE",
            "tok:{x}",
            "60",
            "REFRESH",
            "rt:{x}",
            "60",
            "GRANT",
            "g:{x}",
        ],
    )
    .unwrap();
    assert_eq!(field(&v, "client_id").as_deref(), Some("app1"));
    run(
        &mut c,
        &[
            "OAUTH.RATELIMITALL",
            "2",
            "rl:{u}:ip",
            "rl:{u}:user",
            "5",
            "60",
            "5",
            "60",
        ],
    )
    .unwrap();
}
