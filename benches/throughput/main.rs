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
//! `BENCH_ONLY=store,redeem,flow,rate,memory,scale,wide,census,cross,limits` runs a subset.
//!
//! Every server runs with the census off (`census-batch 0`): its cost is a fixed
//! amount per second, measured on its own by the `census` section.
//!
//! Layout: one module per section (`store`, `redeem`, `flow`, `rate`, `memory`,
//! `scale`, `wide`, `census`, `cross`, `limits`, `instructions`) on a shared harness:
//! `harness` (settings, the server, CPU accounting, measurement), `wire` (the
//! client), `templates` (the data and command templates) and `report` (the
//! Markdown output and the targets).

mod census;
mod cross;
mod flow;
mod harness;
mod instructions;
mod limits;
#[path = "../../tests/common/lookup.rs"]
mod lookup;
mod memory;
mod rate;
mod redeem;
mod report;
mod scale;
mod store;
mod templates;
mod wide;
mod wire;

use std::time::Instant;

use census::*;
use cross::*;
use flow::*;
use harness::*;
use instructions::*;
use limits::*;
use lookup::module_path;
use memory::*;
use rate::*;
use redeem::*;
use report::*;
use scale::*;
use store::*;
use templates::*;
use wide::*;

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
    let census_cost = section("census", "the census's cost").then(|| census(&env));
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
    if let Some(c) = &census_cost {
        print_census(c);
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
