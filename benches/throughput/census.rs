//! Section `census`: what the background census behind `INFO oauth_census`
//! costs the server, by `census-batch`, on a keyspace of token records, with
//! no client load (the other sections run with the census off: under
//! callgrind, or beside a saturating load, its fixed cost per second would be
//! charged to whatever runs at the time).

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::report::thousands;

pub struct CensusRow {
    pub batch: i64,
    /// Server CPU, milliseconds per second of wall time.
    pub ms_per_s: f64,
}

pub struct CensusCost {
    pub records: u64,
    pub rows: Vec<CensusRow>,
}

pub fn census(env: &Env) -> CensusCost {
    let srv = &env.srv;
    srv.flushall();
    let records: u64 = if env.cfg.quick { 20_000 } else { 200_000 };
    env.fill(srv, records, &|c, i| {
        let key = format!("oauth:{{g{i}}}:at").into_bytes();
        let sub = format!("u{}", i % 5000).into_bytes();
        c.raw(&[
            b"OAUTH.SAVETOKEN",
            &key,
            b"3600",
            b"FIELDS",
            b"2",
            b"client_id",
            b"app1",
            b"sub",
            &sub,
        ]);
    });
    let secs = if env.cfg.quick { 1.5 } else { 4.0 };
    let mut rows = Vec::new();
    for batch in [0i64, 100, 1000, 10_000] {
        srv.cmd(&["CONFIG", "SET", "oauth.census-batch", &batch.to_string()]);
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let c0 = proc_ticks(&srv.pid);
        std::thread::sleep(Duration::from_secs_f64(secs));
        let cpu = (proc_ticks(&srv.pid) - c0) / env.tick;
        let wall = t0.elapsed().as_secs_f64();
        rows.push(CensusRow {
            batch,
            ms_per_s: cpu * 1000.0 / wall,
        });
    }
    srv.cmd(&["CONFIG", "SET", "oauth.census-batch", "0"]);
    srv.flushall();
    CensusCost { records, rows }
}

pub fn print_census(c: &CensusCost) {
    println!("\n### 10. The census (INFO oauth_census)\n");
    println!(
        "Server CPU with no client load, {} token records, by `census-batch` (keys looked at \
         per server tick; 10 ticks a second): milliseconds of CPU per second of wall time, \
         the extra cost per key over batch 0 (the idle server), and how long a pass over \
         these records takes. /proc counts in 10 ms ticks, so small values are coarse.\n",
        thousands(c.records as f64)
    );
    println!("| census-batch | keys/s | server CPU ms/s | µs per key | one pass |");
    println!("|---:|---:|---:|---:|---:|");
    let idle = c.rows.first().map_or(0.0, |r| r.ms_per_s);
    for r in &c.rows {
        let keys_per_s = r.batch as f64 * 10.0;
        let (per_key, pass) = if r.batch > 0 {
            (
                format!("{:.1}", (r.ms_per_s - idle).max(0.0) * 1000.0 / keys_per_s),
                format!("{:.0} s", c.records as f64 / keys_per_s),
            )
        } else {
            ("—".to_string(), "stopped".to_string())
        };
        println!(
            "| {} | {} | {:.1} | {per_key} | {pass} |",
            r.batch,
            thousands(keys_per_s),
            r.ms_per_s
        );
    }
}
