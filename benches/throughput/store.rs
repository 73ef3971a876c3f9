//! Section `store`: storing a code.

use crate::harness::*;
use crate::templates::*;
use crate::wire::*;

/// Writes fresh keys `prefix:thread:seq` after a FLUSHALL: every operation
/// is the templates in `tpls`, each sent for the whole batch and its replies
/// checked with `ok` before the next template (one round trip per template).
pub fn fresh_keys<'a>(
    env: &'a Env,
    name: &str,
    tpls: Vec<&'a Tpl>,
    ok: fn(Reply) -> bool,
) -> Variant<'a> {
    let (srv, d) = (&env.srv, env.cfg.depth as u64);
    variant(name, move || {
        srv.flushall();
        env.run_free(srv, &|th| {
            let mut seq = 0u64;
            let mut kb = Vec::new();
            let tpls = tpls.clone();
            Box::new(move |conn, st| {
                for tpl in &tpls {
                    for j in 0..d {
                        conn.add(tpl, &[key(&mut kb, b"s", th as u64, seq + j)]);
                    }
                    st.expect(&conn.flush(), "a success reply", ok);
                }
                seq += d;
                d as usize
            })
        })
    })
}

pub fn store_scenario(env: &Env, t: &Tpls) -> Group {
    let (srv, d) = (&env.srv, env.cfg.depth as u64);
    let variants = vec![
        fresh_keys(env, "OAUTH.SAVECODE", vec![&t.savecode], is_ok),
        fresh_keys(
            env,
            "HSET; EXPIRE (2 round trips)",
            vec![&t.hset, &t.expire_code],
            is_int,
        ),
        variant("MULTI HSET PEXPIRE EXEC", || {
            srv.flushall();
            env.run_free(srv, &|th| {
                let mut seq = 0u64;
                let mut kb = Vec::new();
                Box::new(move |conn, st| {
                    for _ in 0..d {
                        let k = key(&mut kb, b"s", th as u64, seq);
                        seq += 1;
                        conn.raw(&[b"MULTI"]);
                        conn.add(&t.hset, &[k]);
                        conn.add(&t.pexpire_code, &[k]);
                        conn.raw(&[b"EXEC"]);
                    }
                    let got = conn.flush();
                    for (i, r) in got.iter().enumerate() {
                        if i % 4 == 3 && r.array_len() != Some(2) || r.is_err() {
                            st.fail(format!("MULTI/EXEC: {r:?}"));
                        }
                    }
                    d as usize
                })
            })
        }),
        fresh_keys(env, "Lua: HSET, PEXPIRE", vec![&t.lua_store], is_int),
        fresh_keys(env, "bare HSET (no TTL)", vec![&t.hset], is_int),
    ];
    let f = code_fields(REDIRECT);
    let g = Group::new(
        format!(
            "1. Store a code ({} fields, {} bytes of names and values, TTL)",
            f.len(),
            field_bytes(&f)
        ),
        env.group(&variants),
        "Every operation writes a new key. `HSET; EXPIRE`: the two commands in two round \
         trips (the TTL lands a round trip later). `MULTI HSET PEXPIRE EXEC`: a transaction per \
         code, pipelined. `Lua`: EVALSHA of a script doing HSET and PEXPIRE. The module also \
         refuses to overwrite an existing key, validates the fields (client_id, PKCE challenge \
         syntax and method) and adds `_kind`; the others write blindly.",
    );
    store_cmps(g)
}

/// SAVECODE vs HSET;EXPIRE, MULTI/EXEC (≥ 2x), Lua (≥ 1.5x), bare HSET (≥ 0.8x).
pub fn store_cmps(g: Group) -> Group {
    g.cmp(0, 1, None)
        .cmp(0, 2, Some(2.0))
        .cmp(0, 3, Some(1.5))
        .cmp(0, 4, Some(0.8))
}
