//! The shared harness: settings, the redis-server the benchmark starts, CPU
//! accounting from /proc, and measurement (rows, repetitions, groups).

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::lookup::server_binary;
use crate::wire::*;

#[derive(Clone)]
pub struct Cfg {
    pub quick: bool,
    pub conns: usize,
    pub depth: usize,
    pub secs: f64,
    pub reps: usize,
    pub scale: Vec<u64>,
    pub mem_flows: u64,
    pub only: Option<Vec<String>>,
    /// Operations per row of the callgrind section (`--instructions`).
    pub instr_ops: u64,
}

pub fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Cfg {
    pub fn from_env() -> Cfg {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "-h" || a == "--help") {
            println!(
                "usage: cargo bench --bench throughput [-- --quick] [-- --instructions]\n\
                 env: BENCH_CONNS (50) BENCH_PIPELINE (16) BENCH_SECONDS (1; quick 0.4)\n\
                 \x20    BENCH_REPS (3; quick 1) BENCH_INSTR_OPS (5000; quick 1000)\n\
                 \x20    BENCH_ONLY (store,redeem,flow,rate,memory,scale,wide,census,cross,limits,instructions)\n\
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
    pub fn dur(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
    /// Whether a section runs: every one but `instructions` by default.
    pub fn wants(&self, section: &str) -> bool {
        match &self.only {
            Some(o) => o.iter().any(|s| s == section),
            None => section != "instructions",
        }
    }
}

pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub pid: String,
}

impl Server {
    pub fn start(module: &Path) -> Server {
        Server::start_under(module, &[])
    }

    /// `start`, with the server run by `wrapper` (valgrind), in its directory.
    pub fn start_under(module: &Path, wrapper: &[&str]) -> Server {
        Server::start_full(module, wrapper, &[])
    }

    /// `start_under` with more server arguments after the defaults (which
    /// they override: `--appendonly everysec`, another `--loadmodule`).
    pub fn start_full(module: &Path, wrapper: &[&str], extra: &[String]) -> Server {
        let bin = server_binary();
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
            // The census off: a cost per second, not per operation (the
            // `census` section measures it and turns it on itself).
            .args(["census-batch", "0"])
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

    pub fn conn(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.sock).expect("connect to redis-server"))
    }

    pub fn cmd(&self, args: &[&str]) -> Replies {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.conn().cmd(&a)
    }

    pub fn flushall(&self) {
        self.cmd(&["FLUSHALL", "SYNC"]);
    }

    pub fn info_field(&self, section: &str, prefix: &str) -> Option<String> {
        let info = self.cmd(&["INFO", section]);
        String::from_utf8_lossy(info.get(0).text())
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    }

    pub fn used_memory(&self) -> i64 {
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

/// User + system CPU ticks of a process.
pub fn proc_ticks(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: utime and stime are fields 14 and 15 (1-based).
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    get(11) + get(12)
}

/// Busy CPU ticks of the whole machine (all but idle and iowait).
pub fn machine_busy_ticks() -> f64 {
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

pub fn clock_tick() -> f64 {
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
pub struct Cpu {
    pub srv: f64,
    pub cli: f64,
    pub busy: f64,
}

impl Cpu {
    pub fn now(srv: &Server, tick: f64) -> Cpu {
        Cpu {
            srv: proc_ticks(&srv.pid) / tick,
            cli: proc_ticks("self") / tick,
            busy: machine_busy_ticks() / tick,
        }
    }
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            srv: self.srv - earlier.srv,
            cli: self.cli - earlier.cli,
            busy: self.busy - earlier.busy,
        }
    }
    pub fn add(&mut self, o: Cpu) {
        self.srv += o.srv;
        self.cli += o.cli;
        self.busy += o.busy;
    }
    /// Everything else on the machine.
    pub fn other(self) -> f64 {
        (self.busy - self.srv - self.cli).max(0.0)
    }
}

#[derive(Default)]
pub struct Stats {
    pub ops: u64,
    pub errors: u64,
    pub first_err: Option<String>,
    pub lat_us: Vec<u32>,
}

impl Stats {
    pub fn fail(&mut self, msg: String) {
        self.errors += 1;
        if self.first_err.is_none() {
            self.first_err = Some(msg);
        }
    }
    /// Checks every reply of a flush.
    pub fn expect(&mut self, got: &Replies, what: &str, ok: fn(Reply) -> bool) {
        for r in got.iter() {
            if !ok(r) {
                self.fail(format!("expected {what}, got {r:?}"));
            }
        }
    }
    pub fn merge(&mut self, o: Stats) {
        self.ops += o.ops;
        self.errors += o.errors;
        if self.first_err.is_none() {
            self.first_err = o.first_err;
        }
        self.lat_us.extend(o.lat_us);
    }
    pub fn lap(&mut self, t0: Instant) {
        self.lat_us
            .push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
}

/// One timed run.
pub struct Rep {
    pub stats: Stats,
    pub secs: f64,
    pub cpu: Cpu,
}

/// One row of a table: the reps of one variant.
pub struct Row {
    pub name: String,
    pub rates: Vec<f64>,
    pub ops: u64,
    pub secs: f64,
    pub cpu: Cpu,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub first_err: Option<String>,
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

impl Row {
    pub fn from_reps(name: &str, reps: Vec<Rep>) -> Row {
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
    pub fn rate(&self) -> f64 {
        median(&self.rates)
    }
    /// CPU seconds as a percentage of the row's wall time (100% = one core).
    pub fn pct(&self, x: f64) -> f64 {
        100.0 * x / self.secs.max(1e-9)
    }
    /// Server CPU microseconds per operation.
    pub fn srv_us(&self) -> f64 {
        self.cpu.srv * 1e6 / (self.ops.max(1) as f64)
    }
    pub fn log(&self) {
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
pub type Batch<'a> = Box<dyn FnMut(&mut Conn, &mut Stats) -> usize + Send + 'a>;
pub type MakeBatch<'a> = dyn Fn(usize) -> Batch<'a> + Sync + 'a;

/// A variant of a scenario: prepares (fills, flushes) and runs once per rep.
pub struct Variant<'a> {
    pub name: String,
    pub run: Box<dyn Fn() -> Rep + 'a>,
}

pub fn variant<'a>(name: impl Into<String>, run: impl Fn() -> Rep + 'a) -> Variant<'a> {
    Variant {
        name: name.into(),
        run: Box::new(run),
    }
}

pub struct Env {
    pub cfg: Cfg,
    pub srv: Server,
    pub module: PathBuf,
    pub tick: f64,
    /// Script name -> SHA1.
    pub sha: HashMap<&'static str, Vec<u8>>,
}

impl Env {
    pub fn cpu(&self, srv: &Server) -> Cpu {
        Cpu::now(srv, self.tick)
    }

    /// `conns` threads call their batch function in a loop for the configured
    /// time, or until they run out of work.
    pub fn run_free(&self, srv: &Server, mk: &MakeBatch) -> Rep {
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
    pub fn run_rounds(&self, srv: &Server, timed: &MakeBatch, untimed: &MakeBatch) -> Rep {
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
    pub fn group(&self, variants: &[Variant]) -> Vec<Row> {
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
    pub fn fill(&self, srv: &Server, n: u64, one: &(dyn Fn(&mut Conn, u64) + Sync)) {
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
    pub fn evalsha(&self, script: &str, numkeys: &'static [u8]) -> [A<'_>; 3] {
        [A::L(b"EVALSHA"), A::L(&self.sha[script]), A::L(numkeys)]
    }
}

/// A comparison of two rows of a group: `a` (the module) ÷ `b`, with the
/// issue's target for the ops/s ratio, if it sets one.
pub struct Cmp {
    pub a: usize,
    pub b: usize,
    pub min: Option<f64>,
}

pub struct Group {
    pub title: String,
    pub rows: Vec<Row>,
    pub cmps: Vec<Cmp>,
    pub note: String,
}

impl Group {
    pub fn new(title: impl Into<String>, rows: Vec<Row>, note: impl Into<String>) -> Group {
        Group {
            title: title.into(),
            rows,
            cmps: Vec::new(),
            note: note.into(),
        }
    }
    pub fn cmp(mut self, a: usize, b: usize, min: Option<f64>) -> Group {
        self.cmps.push(Cmp { a, b, min });
        self
    }
    /// (ops/s ratio, server CPU per op ratio): above 1 means `a` is faster.
    pub fn ratios(&self, c: &Cmp) -> (f64, f64) {
        let (a, b) = (&self.rows[c.a], &self.rows[c.b]);
        (
            a.rate() / b.rate().max(1e-9),
            b.srv_us() / a.srv_us().max(1e-9),
        )
    }
}
