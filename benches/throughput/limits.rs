//! Section `limits` (issue 17): the rate limiters against INCR, the Lua scripts
//! and the floor, AOF off and everysec, one hot key and 100k random keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::report::*;
use crate::templates::*;
use crate::wire::*;

// ---------------------------------------------------------------------------
// Issue 17: the rate limiters against INCR, the Lua scripts and the floor,
// AOF off and everysec, one hot key and 100k random keys
// ---------------------------------------------------------------------------

/// Counters of the random distribution (the hot one uses one key).
pub const LIM_KEYS: u64 = 100_000;
/// Persistence settings the limits section runs under.
pub const LIM_AOF: [&str; 2] = ["no", "everysec"];

/// One row of the limits tables: name, templates of one request, reply
/// check, and whether it needs the floor module.
pub type LimRow<'a> = (&'static str, Vec<&'a Tpl>, fn(Reply) -> bool, bool);

/// The rows, in the order the targets refer to them ([`LIM_INCR`]...).
pub fn lim_rows(t: &Tpls) -> Vec<LimRow<'_>> {
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
pub const LIM_INCR: usize = 0;
pub const LIM_LUA_COUNT: usize = 1;
pub const LIM_RL: usize = 2;
pub const LIM_FLOOR: usize = 3;
pub const LIM_THROTTLE: usize = 4;
pub const LIM_SLIDING: usize = 5;
pub const LIM_LUA_SLIDING: usize = 6;
pub const LIM_ALL: usize = 7;
pub const LIM_LUA_ALL: usize = 8;

/// The refused paths, for the allocation counts only (callgrind): limits
/// that the warm-up has used up, so every counted call is refused.
pub fn lim_refused(t: &Tpls) -> Vec<LimRow<'_>> {
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
pub const REFUSED_KEYS: u64 = 200;

/// A distribution of keys: one hot key, or `LIM_KEYS` random ones.
#[derive(Clone, Copy)]
pub struct Dist {
    pub name: &'static str,
    pub keys: u64,
}
pub const LIM_DISTS: [Dist; 2] = [
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
pub struct LimTable {
    pub aof: &'static str,
    pub dist: Dist,
    pub rows: Vec<Row>,
    /// Per row: (allocator calls per call, the module's own per call), from callgrind.
    pub allocs: Vec<Option<(f64, f64)>>,
    /// The refused rows' allocations (name, all, module's own).
    pub refused: Vec<(String, f64, f64)>,
}

/// Server arguments for a persistence setting, plus the floor module.
pub fn lim_args(aof: &str, floor: Option<&Path>) -> Vec<String> {
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

pub fn floor_module() -> Option<PathBuf> {
    std::env::var("BENCH_FLOOR_MODULE")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// Requests of `tpls` on the keys of `dist` (each hole a counter of its own limit).
pub fn lim_variant<'a>(
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
pub fn dump_allocs(path: &Path) -> (f64, f64) {
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
pub type LimAllocs = (Vec<Option<(f64, f64)>>, Vec<(String, f64, f64)>);

/// Allocations per call of every row (and of the refused rows) under
/// callgrind, for one persistence setting and distribution: `n` calls per
/// row after `n` warm-up calls.
pub fn lim_allocs(
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
pub fn lim_calls(cfg: &Cfg) -> u64 {
    if cfg.quick {
        500
    } else {
        2_000
    }
}

pub fn limits(env: &Env, t: &Tpls) -> Vec<LimTable> {
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
pub fn lim_targets(tb: &LimTable) -> Vec<(String, String, bool)> {
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

pub fn print_limits(tables: &[LimTable], n: u64) {
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
