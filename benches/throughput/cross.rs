//! Section `cross`: the rate-limit rows measured again by redis-benchmark.

use std::process::{Command, Stdio};

use crate::harness::*;
use crate::report::*;
use crate::templates::*;

/// (ops/s, p50 ms, p99 ms) from `redis-benchmark --csv`.
pub fn redis_benchmark(env: &Env, n: u64, args: &[Vec<u8>]) -> Option<(f64, f64, f64)> {
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

pub struct Cross {
    /// The row of the rate-limit table it measures again.
    pub row: usize,
    pub name: String,
    pub ours: f64,
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
}

/// The single-command rows of the rate-limit table, measured again by
/// redis-benchmark (random keys among RL_KEYS).
pub fn cross_check(env: &Env, rate: &Group) -> Vec<Cross> {
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

pub fn print_cross(cross: &[Cross], rate: &Group) {
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
