//! Section `rate`: the rate limiters against counters and Lua.

use crate::harness::*;
use crate::templates::*;
use crate::wire::*;

/// Every request: the templates in `tpls` against random counters (each hole
/// of a template is a counter of its own limit), pipelined together.
pub fn counters<'a>(
    env: &'a Env,
    name: &str,
    tpls: Vec<&'a Tpl>,
    ok: fn(Reply) -> bool,
) -> Variant<'a> {
    let (srv, d) = (&env.srv, env.cfg.depth);
    variant(name, move || {
        srv.flushall();
        env.run_free(srv, &|th| {
            let mut rng = Rng::seeded(th as u64);
            let (mut k1, mut k2) = (Vec::new(), Vec::new());
            let tpls = tpls.clone();
            Box::new(move |conn, st| {
                for _ in 0..d {
                    let a = key(&mut k1, b"rl", 1, rng.next() % RL_KEYS);
                    let b = key(&mut k2, b"rl", 2, rng.next() % RL_KEYS);
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

/// The rate-limit rows: (name, templates per request, reply check). The
/// module's limiters come first in each pair, then what they are compared with.
/// A row of table 4: its name, the templates of one request, the reply check.
pub type RateRow<'a> = (&'static str, Vec<&'a Tpl>, fn(Reply) -> bool);

pub fn rate_rows(t: &Tpls) -> Vec<RateRow<'_>> {
    vec![
        ("OAUTH.RATELIMIT", vec![&t.ratelimit], is_allowed),
        (
            "INCR + EXPIRE NX (pipelined)",
            vec![&t.incr, &t.expire_nx],
            is_int,
        ),
        ("Lua: INCR (count only)", vec![&t.lua_incr], is_int),
        ("Lua: fixed window", vec![&t.lua_fixed], is_allowed),
        ("OAUTH.THROTTLE (GCRA)", vec![&t.throttle], is_allowed),
        ("Lua: GCRA", vec![&t.lua_gcra], is_allowed),
        ("OAUTH.RATELIMIT SLIDING", vec![&t.sliding], is_allowed),
        ("Lua: sliding window", vec![&t.lua_sliding], is_allowed),
        ("OAUTH.RATELIMITALL (2 limits)", vec![&t.all], is_allowed),
        (
            "Lua: 2 fixed windows, all or nothing",
            vec![&t.lua_all],
            is_allowed,
        ),
        ("bare INCR (no window)", vec![&t.incr], is_int),
    ]
}

/// Module limiter vs its Lua equivalent (≥ 1.5x) and vs bare INCR (≥ 0.7x).
pub fn rate_cmps(mut g: Group) -> Group {
    for (m, l) in [(0, 3), (4, 5), (6, 7), (8, 9)] {
        g = g.cmp(m, l, Some(1.5)).cmp(m, 10, Some(0.7));
    }
    g.cmp(0, 2, None).cmp(0, 1, None)
}

pub fn rate_scenario(env: &Env, t: &Tpls) -> Group {
    let variants: Vec<Variant> = rate_rows(t)
        .into_iter()
        .map(|(name, tpls, ok)| counters(env, name, tpls, ok))
        .collect();
    let g = Group::new(
        format!("4. Rate limits ({RL_KEYS} counters per limit, a random one per request)"),
        env.group(&variants),
        "Every limiter answers `[limited, limit, remaining, retry_after, reset_after]` \
         (RATELIMITALL and its script add the deciding limit) and does not count a refused \
         request; the limits are never reached, so every request writes. `INCR + EXPIRE NX`: \
         both commands per request, pipelined. `Lua: INCR (count only)`: INCR, then PEXPIRE on \
         the first hit, answering the count only: the script most gateways run. `Lua: fixed \
         window`: GET, PTTL, INCRBY, PEXPIRE, answering like OAUTH.RATELIMIT. `Lua: GCRA`: \
         TIME, GET, SET PX, in floating-point milliseconds (Lua numbers are doubles; the module \
         works in integer nanoseconds). `Lua: sliding window`: TIME, HMGET, HSET, PEXPIREAT on \
         the module's hash with its estimate (retry_after approximated; the module computes it \
         exactly). `OAUTH.RATELIMITALL (2 limits)`: a per-minute and a per-second counter, \
         counted only if both allow, against `Lua: 2 fixed windows` doing the same; they update \
         two counters per request, bare INCR one.",
    );
    rate_cmps(g)
}
