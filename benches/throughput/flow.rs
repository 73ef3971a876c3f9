//! Section `flow`: the full authorization-code flow.

use crate::harness::*;
use crate::templates::*;
use crate::wire::*;

/// A whole flow per operation: save code `fc:..`, redeem it into token `ft:..`, read the token.
pub fn flow_run<'a>(
    env: &'a Env,
    save: &'a Tpl,
    redeem: &'a Tpl,
    read: &'a Tpl,
) -> impl Fn() -> Rep + 'a {
    let (srv, d) = (&env.srv, env.cfg.depth as u64);
    move || {
        srv.flushall();
        env.run_free(srv, &|th| {
            let (mut seq, th) = (0u64, th as u64);
            let (mut kb, mut tb) = (Vec::new(), Vec::new());
            Box::new(move |conn, st| {
                for j in seq..seq + d {
                    conn.add(save, &[key(&mut kb, b"fc", th, j)]);
                }
                st.expect(&conn.flush(), "no error", not_err);
                for j in seq..seq + d {
                    conn.add(
                        redeem,
                        &[key(&mut kb, b"fc", th, j), key(&mut tb, b"ft", th, j)],
                    );
                }
                st.expect(&conn.flush(), "the token's fields", is_array);
                for j in seq..seq + d {
                    conn.add(read, &[key(&mut tb, b"ft", th, j)]);
                }
                st.expect(&conn.flush(), "the token", is_array);
                seq += d;
                d as usize
            })
        })
    }
}

pub fn flow_scenario(env: &Env, t: &Tpls) -> Group {
    let variants = vec![
        variant(
            "module: SAVECODE; EXCHANGE ISSUE; INTROSPECT",
            flow_run(env, &t.savecode, &t.exchange_issue, &t.introspect),
        ),
        variant(
            "Lua store; Lua redeem + issue; HGETALL",
            flow_run(env, &t.lua_store, &t.lua_redeem_issue, &t.hgetall),
        ),
    ];
    Group::new(
        "3. Full flow: save a code, exchange it with ISSUE, introspect the token",
        env.group(&variants),
        "One operation is a whole flow: three commands in three round trips per batch. \
         The plain introspection is a bare HGETALL (no expiry, no kind check).",
    )
    .cmp(0, 1, None)
}
