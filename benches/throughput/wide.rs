//! Section `wide`: one command naming N keys.

use std::time::Instant;

use crate::harness::*;
use crate::report::*;

/// One call naming `n` keys: wall time and the server's CPU time, in ms, the
/// median of the configured repetitions.
pub struct WideRow {
    pub n: u64,
    /// OAUTH.REVOKE of n tokens, DEL of n strings, OAUTH.RATELIMITALL of n
    /// limits, and a Lua loop of INCR + PEXPIRE on n keys.
    pub cells: [(f64, f64); 4],
}

/// What one call holds the server for: every other client waits that long.
pub fn wide(env: &Env) -> Vec<WideRow> {
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

pub fn print_wide(rows: &[WideRow]) {
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
