//! Section `redeem`: redeeming a code.

use crate::harness::*;
use crate::templates::*;
use crate::wire::*;

pub fn redeem_scenario(env: &Env, t: &Tpls) -> Group {
    let srv = &env.srv;
    let d = env.cfg.depth as u64;
    // Each run redeems from a fresh pool of live codes; a thread stops early
    // if its share runs out (the table then says so).
    let pool = ((env.cfg.secs * 250_000.0) as u64).max(20_000);
    let per = pool / env.cfg.conns as u64;
    let module_code = dump_of(srv, &|c, k| {
        c.add(&t.savecode, &[k]);
        assert!(c.flush().get(0).is_ok(), "SAVECODE template");
    });
    let plain_code = dump_of(srv, &|c, k| {
        c.add(&t.hset, &[k]);
        c.add(&t.pexpire_code, &[k]);
        c.flush();
    });
    let (module_code, plain_code) = (&module_code[..], &plain_code[..]);
    let fill = |dump: &[u8]| {
        srv.flushall();
        restore_fill(env, srv, b"p", 0..pool, dump, CODE_TTL_MS);
    };
    // Thread th owns the codes [th*per, (th+1)*per): `take` hands out its
    // next (up to) n codes, None once they are used up.
    let take = |th: usize, used: &mut u64, n: u64| {
        let lo = th as u64 * per + *used;
        let n = n.min(per - *used);
        *used += n;
        (n > 0).then_some(lo..lo + n)
    };
    // One command per code, pipelined: OAUTH.EXCHANGE or the Lua script.
    let one_command = |name: &str, module: bool| {
        variant(name, move || {
            let (dump, tpl) = if module {
                (module_code, &t.exchange)
            } else {
                (plain_code, &t.lua_redeem)
            };
            fill(dump);
            env.run_free(srv, &|th| {
                let (mut used, mut kb) = (0, Vec::new());
                Box::new(move |conn, st| {
                    let Some(r) = take(th, &mut used, d) else {
                        return 0;
                    };
                    for j in r.clone() {
                        conn.add(tpl, &[key(&mut kb, b"p", 0, j)]);
                    }
                    st.expect(&conn.flush(), "the code's fields", is_array);
                    r.count()
                })
            })
        })
    };
    let variants = vec![
        one_command("OAUTH.EXCHANGE", true),
        variant("HGETALL; check; DEL (racy, 2 round trips)", || {
            fill(plain_code);
            env.run_free(srv, &|th| {
                let (mut used, mut kb) = (0, Vec::new());
                Box::new(move |conn, st| {
                    let Some(r) = take(th, &mut used, d) else {
                        return 0;
                    };
                    for j in r.clone() {
                        conn.add(&t.hgetall, &[key(&mut kb, b"p", 0, j)]);
                    }
                    let got = conn.flush();
                    for (j, v) in r.clone().zip(got.iter()) {
                        if code_matches(v) {
                            conn.add(&t.del, &[key(&mut kb, b"p", 0, j)]);
                        } else {
                            st.fail(format!("code check failed: {v:?}"));
                        }
                    }
                    st.expect(&conn.flush(), "1", is_one);
                    r.count()
                })
            })
        }),
        variant("WATCH HGETALL; check; MULTI DEL EXEC", || {
            fill(plain_code);
            env.run_free(srv, &|th| {
                let (mut used, mut kb) = (0, Vec::new());
                Box::new(move |conn, st| {
                    // A transaction watches its own keys: one code per
                    // transaction, so no pipelining across codes.
                    let Some(r) = take(th, &mut used, 1) else {
                        return 0;
                    };
                    let k = key(&mut kb, b"p", 0, r.start).to_vec();
                    conn.raw(&[b"WATCH", &k]);
                    conn.add(&t.hgetall, &[&k]);
                    let got = conn.flush();
                    if !code_matches(got.get(1)) {
                        st.fail(format!("code check failed: {:?}", got.get(1)));
                        conn.cmd(&[b"UNWATCH"]);
                        return 1;
                    }
                    conn.raw(&[b"MULTI"]);
                    conn.add(&t.del, &[&k]);
                    conn.raw(&[b"EXEC"]);
                    let got = conn.flush();
                    if got.get(2).array_len() != Some(1) {
                        st.fail(format!("EXEC: {:?}", got.get(2)));
                    }
                    1
                })
            })
        }),
        one_command("Lua: HGETALL, compare, DEL", false),
    ];
    let g = Group::new(
        "2. Redeem a code with S256 PKCE",
        env.group(&variants),
        format!(
            "Every run redeems codes from a fresh pool of {pool} live codes: RESTOREd copies of \
             a code written by OAUTH.SAVECODE, or of the plain 8-field hash with TTL for the \
             others. The module hashes the verifier (SHA-256, base64url), checks client_id \
             and redirect_uri, and leaves a tombstone (reuse detection, revocation of the issued \
             token); the others compare a challenge the client hashed, and delete the code. \
             WATCH/MULTI cannot pipeline across codes on one connection (a transaction watches \
             its own keys), so it runs one code per transaction."
        ),
    );
    redeem_cmps(g)
}

/// EXCHANGE vs HGETALL;DEL, WATCH/MULTI (≥ 2x), Lua (≥ 1.5x).
pub fn redeem_cmps(g: Group) -> Group {
    g.cmp(0, 1, None).cmp(0, 2, Some(2.0)).cmp(0, 3, Some(1.5))
}
