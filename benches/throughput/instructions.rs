//! Section `instructions`: instructions per operation under callgrind, the
//! comparison that noise cannot move.

use std::ops::Range;
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::limits::*;
use crate::rate::*;
use crate::redeem::*;
use crate::report::*;
use crate::store::*;
use crate::templates::*;
use crate::wire::*;

/// The key a template hole takes: `prefix:0:i` for the i-th operation, or a
/// random counter of the first or second limit.
#[derive(Clone, Copy)]
pub enum K {
    Seq(&'static [u8]),
    Rand1,
    Rand2,
}

/// An operation: its commands, each a template and the keys of its holes.
pub type Op<'a> = Vec<(&'a Tpl, Vec<K>)>;

pub struct Work<'a> {
    pub name: &'static str,
    /// Sent for every i before counting starts (the records an operation consumes).
    pub setup: Op<'a>,
    pub op: Op<'a>,
    /// hash-max-listpack-value during the row.
    pub listpack: &'static str,
}

pub fn work<'a>(name: &'static str, setup: Op<'a>, op: Op<'a>) -> Work<'a> {
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
pub type WorkGroup<'a> = (&'static str, Vec<Work<'a>>, fn(Group) -> Group);

pub fn instruction_groups(t: &Tpls) -> Vec<WorkGroup<'_>> {
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
pub fn send_ops(c: &mut Conn, op: &Op, range: Range<u64>) -> u64 {
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
pub fn instructions(env: &Env, t: &Tpls, n: u64) -> Vec<(Group, Vec<f64>)> {
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

pub fn print_instructions(groups: &[(Group, Vec<f64>)], n: u64) {
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
