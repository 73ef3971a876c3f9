//! Section `scale`: speed with 1k to 1M live records.

use std::time::Instant;

use crate::harness::*;
use crate::report::*;
use crate::templates::*;
use crate::wire::*;

pub struct ScaleRow {
    pub n: u64,
    /// EXCHANGE, INTROSPECT, HGETALL.
    pub rows: [Row; 3],
}

/// One server per dataset size, all filled first; then the sizes run
/// interleaved, so a disturbance hits every size alike.
pub fn scale(env: &Env, t: &Tpls) -> Vec<ScaleRow> {
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

/// Batches of `tpl` on the codes of round r, r = start, start + 1, ...: thread
/// th takes codes (r*c*d + th*d + j) mod n for j < d (c threads, d per batch).
pub fn round_batch<'a>(
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
pub fn random_reads<'a>(
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

pub fn print_scale(sc: &[ScaleRow], cfg: &Cfg) {
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
