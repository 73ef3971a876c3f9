//! The report: Markdown tables on stdout, and the issues' targets.

use crate::harness::*;
use crate::memory::*;
use crate::scale::*;

pub fn thousands(r: f64) -> String {
    let s = (r.round() as u64).to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub fn print_group(g: &Group, cfg: &Cfg) {
    println!("\n### {}\n", g.title);
    println!("| variant | ops/s | p50 ms | p99 ms | server CPU | server µs/op | load gen CPU | other CPU |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let planned = cfg.secs * cfg.reps as f64;
    for r in &g.rows {
        let early = if r.secs < planned * 0.9 {
            format!(" (ran {:.1} s of {planned:.1}: pool used up)", r.secs)
        } else {
            String::new()
        };
        let errs = match &r.first_err {
            Some(e) => format!(" — **{} unexpected replies**, first: {e}", r.errors),
            None => String::new(),
        };
        let mark = if r.pct(r.cpu.srv) < 90.0 { " †" } else { "" };
        println!(
            "| {}{early}{errs} | {}{mark} | {:.2} | {:.2} | {:.0}% | {:.2} | {:.0}% | {:.0}% |",
            r.name,
            thousands(r.rate()),
            r.p50_ms,
            r.p99_ms,
            r.pct(r.cpu.srv),
            r.srv_us(),
            r.pct(r.cpu.cli),
            r.pct(r.cpu.other()),
        );
    }
    if g.rows.iter().any(|r| r.pct(r.cpu.srv) < 90.0) {
        println!(
            "\n† the server was busy less than 90% of the time: this row was limited by round \
             trips, by the load generator or by other processes (see the CPU columns)."
        );
    }
    println!("\n| comparison | ops/s ratio | server CPU/op ratio | target (ops/s) |");
    println!("|---|---:|---:|---|");
    for c in &g.cmps {
        let (ops, cpu) = g.ratios(c);
        let target = match c.min {
            Some(m) if ops >= m => format!("≥ {m}x: met"),
            Some(m) => format!("≥ {m}x: **missed**"),
            None => "—".into(),
        };
        println!(
            "| {} ÷ {} | **{ops:.2}x** | {cpu:.2}x | {target} |",
            g.rows[c.a].name, g.rows[c.b].name
        );
    }
    if !g.note.is_empty() {
        println!("\n{}", g.note);
    }
}

pub fn print_method(cfg: &Cfg) {
    println!(
        "\nThroughput: unix socket; {} connections (one thread each) x pipeline {}; every \
         variant ran {} x {:.1} s, interleaved with the other variants of its scenario.\n\n\
         - ops/s: median over the runs. Latency: per pipeline batch (up to {} operations), from \
         sending it to having every reply, over all the round trips the variant needs.\n\
         - server CPU, load gen CPU, other CPU: user+system time of redis-server, of this load \
         generator, and of everything else on the machine, over the wall time (100% = one \
         core). redis-server runs commands on one thread: near 100% means the server is the \
         bottleneck; a large `other` means the row was disturbed.\n\
         - server µs/op: redis-server CPU time per operation, parsing and replies included. \
         Its ratio is the cost comparison least sensitive to the load generator and to noise.",
        cfg.conns, cfg.depth, cfg.reps, cfg.secs, cfg.depth,
    );
}

pub struct Target {
    pub what: String,
    pub value: String,
    pub met: bool,
}

/// The issues' targets. A throughput ratio comes with the server-CPU ratio
/// and, after `--instructions`, the instructions ratio of the same rows.
pub fn targets(
    groups: &[(&str, &Group)],
    instr: &[(Group, Vec<f64>)],
    mem: Option<&Memory>,
    sc: Option<&[ScaleRow]>,
) -> Vec<Target> {
    let mut out = Vec::new();
    for (label, g) in groups {
        let irs = instr
            .iter()
            .find(|(ig, _)| ig.title.get(..2) == g.title.get(..2))
            .map(|(_, irs)| irs);
        for c in &g.cmps {
            let Some(min) = c.min else { continue };
            let (ops, cpu) = g.ratios(c);
            let ir = irs.map_or(String::new(), |irs| {
                format!("; instructions: {:.2}x", irs[c.b] / irs[c.a].max(1.0))
            });
            out.push(Target {
                what: format!(
                    "{label}: {} ÷ {} ≥ {min}x",
                    g.rows[c.a].name, g.rows[c.b].name
                ),
                value: format!("{ops:.2}x (server CPU/op: {cpu:.2}x{ir})"),
                met: ops >= min,
            });
        }
    }
    if let Some(mem) = mem {
        for (i, what) in [
            (0, "code record ≤ 1.10x the plain hash (38-byte redirect_uri, default settings)"),
            (2, "code record ≤ 1.10x the plain hash (82-byte redirect_uri, hash-max-listpack-value 256)"),
        ] {
            out.push(Target {
                what: format!("memory: {what}"),
                value: format!("{:.2}x", mem.ratio(i)),
                met: mem.ratio(i) <= 1.10,
            });
        }
        let stone = mem.rows[3].module.0;
        out.push(Target {
            what: "memory: tombstone < 150 bytes".into(),
            value: format!("{stone} B"),
            met: stone < 150,
        });
    }
    if let Some(sc) = sc {
        if let (Some(first), Some(last)) = (sc.first(), sc.last()) {
            for (i, what) in [(0, "EXCHANGE"), (1, "INTROSPECT")] {
                let rel = |row: &ScaleRow, i: usize| row.rows[i].rate();
                let r = rel(last, i) / rel(first, i).max(1e-9);
                let base = rel(last, 2) / rel(first, 2).max(1e-9);
                out.push(Target {
                    what: format!(
                        "scale: {what} ops/s at {} live ≥ 0.9x of {} live",
                        thousands(last.n as f64),
                        thousands(first.n as f64)
                    ),
                    value: format!("{r:.2}x (HGETALL baseline: {base:.2}x)"),
                    met: r >= 0.9,
                });
            }
        }
    }
    out
}
