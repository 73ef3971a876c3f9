//! Section `memory`: memory per record.

use crate::harness::*;
use crate::report::*;
use crate::templates::*;
use crate::wire::*;

pub struct MemRow {
    pub what: String,
    /// (bytes, encoding) of the module's record and of the plain one.
    pub module: (i64, String),
    pub plain: Option<(i64, String)>,
}

pub struct Memory {
    pub rows: Vec<MemRow>,
    /// (state, module bytes each, plain bytes each)
    pub per_flow: Vec<(String, f64, f64)>,
    pub flows: u64,
}

impl Memory {
    pub fn ratio(&self, i: usize) -> f64 {
        let r = &self.rows[i];
        r.module.0 as f64 / r.plain.as_ref().map_or(1, |p| p.0).max(1) as f64
    }
}

/// `MEMORY USAGE key SAMPLES 0` and `OBJECT ENCODING key`.
pub fn usage(c: &mut Conn, k: &[u8]) -> (i64, String) {
    c.raw(&[b"MEMORY", b"USAGE", k, b"SAMPLES", b"0"]);
    c.raw(&[b"OBJECT", b"ENCODING", k]);
    let got = c.flush();
    let bytes = got.get(0).int().expect("MEMORY USAGE answers an integer");
    (
        bytes,
        String::from_utf8_lossy(got.get(1).text()).into_owned(),
    )
}

pub fn mem_row(c: &mut Conn, what: String, module_key: &[u8], plain_key: Option<&[u8]>) -> MemRow {
    MemRow {
        what,
        module: usage(c, module_key),
        plain: plain_key.map(|k| usage(c, k)),
    }
}

pub fn set_listpack_value(srv: &Server, v: &str) {
    srv.cmd(&["CONFIG", "SET", "hash-max-listpack-value", v]);
}

/// The settings every memory measurement runs under: (hash-max-listpack-value,
/// long redirect_uri). The default keeps a short redirect_uri compact only.
pub const MEM_CASES: [(&str, bool); 3] = [("64", false), ("64", true), ("256", true)];

pub fn memory(env: &Env, t: &Tpls) -> Memory {
    let srv = &env.srv;
    srv.flushall();
    let mut c = srv.conn();
    let mut rows = Vec::new();
    for (setting, long) in MEM_CASES {
        set_listpack_value(srv, setting);
        let tag = format!("{setting}{long}");
        let mk = format!("m:code:{tag}").into_bytes();
        let pk = format!("p:code:{tag}").into_bytes();
        c.add(if long { &t.savecode_long } else { &t.savecode }, &[&mk]);
        c.add(if long { &t.hset_long } else { &t.hset }, &[&pk]);
        c.add(&t.pexpire_code, &[&pk]);
        let got = c.flush();
        assert!(got.get(0).is_ok(), "SAVECODE: {:?}", got.get(0));
        let redirect = if long { REDIRECT_LONG } else { REDIRECT };
        rows.push(mem_row(
            &mut c,
            format!(
                "code record, {}-byte redirect_uri, hash-max-listpack-value {setting}{}",
                redirect.len(),
                if setting == "64" { " (default)" } else { "" }
            ),
            &mk,
            Some(&pk),
        ));
    }
    set_listpack_value(srv, "64");

    // A tombstone and a token from a real exchange with ISSUE.
    c.add(&t.savecode, &[b"m:code:x"]);
    c.add(&t.exchange_issue, &[b"m:code:x", b"m:tok:x"]);
    c.add(&t.hset_token, &[b"p:tok:x"]);
    c.add(&t.pexpire_token, &[b"p:tok:x"]);
    let got = c.flush();
    assert!(is_array(got.get(1)), "EXCHANGE ISSUE: {:?}", got.get(1));
    rows.push(mem_row(
        &mut c,
        "tombstone of an exchanged code (plain: the code is deleted)".into(),
        b"m:code:x",
        None,
    ));
    let tf = token_fields(REDIRECT);
    rows.push(mem_row(
        &mut c,
        format!(
            "token record ({} fields, {} bytes)",
            tf.len(),
            field_bytes(&tf)
        ),
        b"m:tok:x",
        Some(b"p:tok:x"),
    ));
    for _ in 0..2 {
        c.add(&t.ratelimit, &[b"m:rl"]);
        c.add(&t.incr, &[b"p:rl"]);
        c.add(&t.expire_nx, &[b"p:rl"]);
    }
    c.flush();
    rows.push(mem_row(
        &mut c,
        "fixed-window counter (plain: INCR + EXPIRE)".into(),
        b"m:rl",
        Some(b"p:rl"),
    ));
    drop(c);

    // Bytes per live authorization: used_memory before and after n flows.
    let n = env.cfg.mem_flows;
    let mut per_flow = Vec::new();
    for (setting, long) in MEM_CASES {
        set_listpack_value(srv, setting);
        let label = format!(
            "{}-byte redirect_uri, hash-max-listpack-value {setting}",
            if long { REDIRECT_LONG } else { REDIRECT }.len()
        );
        let (save, exchange, hset, redeem) = if long {
            (
                &t.savecode_long,
                &t.exchange_issue_long,
                &t.hset_long,
                &t.lua_redeem_issue_long,
            )
        } else {
            (&t.savecode, &t.exchange_issue, &t.hset, &t.lua_redeem_issue)
        };
        let measure = |save_one: &(dyn Fn(&mut Conn, u64) + Sync),
                       redeem_one: &(dyn Fn(&mut Conn, u64) + Sync)| {
            srv.flushall();
            let m0 = srv.used_memory();
            env.fill(srv, n, save_one);
            let m1 = srv.used_memory();
            env.fill(srv, n, redeem_one);
            let m2 = srv.used_memory();
            srv.flushall();
            ((m1 - m0) as f64 / n as f64, (m2 - m0) as f64 / n as f64)
        };
        let (m_code, m_flow) = measure(
            &|c, j| c.add(save, &[key(&mut Vec::new(), b"mc", 0, j)]),
            &|c, j| {
                let (mut kb, mut tb) = (Vec::new(), Vec::new());
                c.add(
                    exchange,
                    &[key(&mut kb, b"mc", 0, j), key(&mut tb, b"mt", 0, j)],
                );
            },
        );
        let (p_code, p_flow) = measure(
            &|c, j| {
                let k = key(&mut Vec::new(), b"pc", 0, j).to_vec();
                c.add(hset, &[&k]);
                c.add(&t.pexpire_code, &[&k]);
            },
            &|c, j| {
                let (mut kb, mut tb) = (Vec::new(), Vec::new());
                c.add(
                    redeem,
                    &[key(&mut kb, b"pc", 0, j), key(&mut tb, b"pt", 0, j)],
                );
            },
        );
        per_flow.push((format!("pending code, {label}"), m_code, p_code));
        per_flow.push((
            format!("redeemed (module: tombstone + token; plain: token), {label}"),
            m_flow,
            p_flow,
        ));
    }
    set_listpack_value(srv, "64");
    Memory {
        rows,
        per_flow,
        flows: n,
    }
}

pub fn print_memory(mem: &Memory) {
    println!("\n### 5. Memory\n");
    println!("`MEMORY USAGE key SAMPLES 0` (value, key name and dict entry; the expiry entry is not counted):\n");
    println!("| record | module bytes (encoding) | plain bytes (encoding) | module ÷ plain |");
    println!("|---|---:|---:|---:|");
    for r in &mem.rows {
        let (p, ratio) = match &r.plain {
            Some((p, enc)) => (
                format!("{p} ({enc})"),
                format!("{:.2}", r.module.0 as f64 / *p as f64),
            ),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {} | {} ({}) | {p} | {ratio} |",
            r.what, r.module.0, r.module.1
        );
    }
    println!(
        "\nBytes per live authorization: `used_memory` from `INFO memory` after minus before \
         {} codes (saved with the module, or HSET + PEXPIRE), then after all of them were \
         redeemed into tokens (OAUTH.EXCHANGE ... ISSUE, or the Lua redeem+issue script), \
         divided by {}:\n",
        thousands(mem.flows as f64),
        thousands(mem.flows as f64)
    );
    println!("| state | module B each | plain B each | module ÷ plain |");
    println!("|---|---:|---:|---:|");
    for (what, m, p) in &mem.per_flow {
        println!("| {what} | {m:.0} | {p:.0} | {:.2} |", m / p.max(1.0));
    }
}
