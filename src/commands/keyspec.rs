//! Where a call's keys are: the report Redis asks for (`getkeys-api`: Cluster
//! routing on 7.0, `COMMAND GETKEYS`), found with the command's own option
//! parser, and Redis's own reading of the key specs, which the tests compare.

use std::os::raw::c_int;

use redis_module::{raw, Context, RedisString};

use super::args::bytes;
use super::table::{Begin, CmdSpec, Find, KeyDef, SPECS};
use crate::core::grammar;

/// Answers a keys-position request (commands flagged `getkeys-api`). Redis
/// 7.0 routes Cluster requests and checks CROSSSLOT with the legacy
/// first/last/step range, which cannot describe keys after a keyword or a
/// count; such commands report their keys here: with the command's own option
/// parser ([`located_keys`]), the one its handler uses.
pub fn report_key_positions(ctx: &Context, args: &[RedisString]) {
    let a = bytes(args);
    let Some(name) = a.first() else { return };
    let Some(spec) = SPECS
        .iter()
        .find(|s| name.eq_ignore_ascii_case(s.name.as_bytes()))
    else {
        return;
    };
    for (pos, flags) in located_keys(spec, &a) {
        let (Ok(p), Ok(f)) = (i32::try_from(pos), c_int::try_from(flags)) else {
            continue;
        };
        // SAFETY: a keys-position request context; the function exists on
        // every server this module loads on (Redis 7.0+).
        match unsafe { raw::RedisModule_KeyAtPosWithFlags } {
            Some(at) => unsafe { at(ctx.get_raw(), p, f) },
            None => ctx.key_at_pos(p),
        }
    }
}

/// The keys of one call of `spec`, each with its spec's flags (what the
/// command does to it, which ACL `%R~`/`%W~` checks read): the keyword specs
/// are resolved by the command's option parser, the one its handler uses.
/// When that parser refuses the arguments (the handler then refuses them
/// too, before touching any key), Redis's own evaluation of the key specs.
pub fn located_keys(spec: &CmdSpec, a: &[&[u8]]) -> Vec<(usize, u32)> {
    if let Some(g) = spec.grammar {
        if let Ok(parsed) = grammar::parse(g, a) {
            return key_positions(spec.keys, a, |word, _| {
                parsed.keyword_at(g, word).map(|at| at + 1)
            });
        }
    }
    redis_key_positions(spec.keys, a)
}

/// The keys Redis itself finds in `a` with the key specs `keys`: a keyword is
/// searched from its start position to the end of the command.
pub fn redis_key_positions(keys: &[KeyDef], a: &[&[u8]]) -> Vec<(usize, u32)> {
    key_positions(keys, a, |word, from| {
        grammar::redis_keyword_search(a, word, usize::try_from(from).ok()?)
    })
}

/// The keys described by `keys` in `a`, a keyword spec beginning where
/// `keyword(word, startfrom)` says its keys begin.
fn key_positions(
    keys: &[KeyDef],
    a: &[&[u8]],
    keyword: impl Fn(&str, i32) -> Option<usize>,
) -> Vec<(usize, u32)> {
    let mut out: Vec<(usize, u32)> = Vec::new();
    for k in keys {
        let start = match k.begin {
            Begin::Index(p) => usize::try_from(p).ok(),
            Begin::Keyword(word, from) => keyword(word, from),
        };
        let Some(start) = start else { continue };
        match k.find {
            Find::Range(last) if last >= 0 => {
                let end = start + last as usize;
                out.extend((start..=end).filter(|i| *i < a.len()).map(|i| (i, k.flags)));
            }
            Find::Range(_) => out.extend((start..a.len()).map(|i| (i, k.flags))),
            Find::Keynum {
                keynumidx,
                first,
                step,
            } => {
                let n = a
                    .get(start + keynumidx.max(0) as usize)
                    .and_then(|v| crate::core::validate::parse_i64(v))
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0);
                let first = start + first.max(0) as usize;
                let step = step.max(1) as usize;
                out.extend(
                    (0..n)
                        .map(|i| first + i * step)
                        .take_while(|i| *i < a.len())
                        .map(|i| (i, k.flags)),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Words the generated arguments are drawn from: every option keyword in
    /// both cases, key-like names, numbers.
    const WORDS: &[&str] = &[
        "ISSUE",
        "issue",
        "REFRESH",
        "Refresh",
        "GRANT",
        "grant",
        "CUTOFF",
        "cutoff",
        "GRACE",
        "FIELDS",
        "fields",
        "k1",
        "{a}:x",
        "{b}:victim",
        "1",
        "2",
        "600",
        "0",
        "note",
    ];

    fn spec(name: &str) -> &'static CmdSpec {
        SPECS.iter().find(|s| s.name == name).expect("spec")
    }

    /// The arguments of one call: the command name, `fixed` fixed arguments,
    /// then words that mostly form the command's options.
    fn call(name: &'static str, fixed: usize) -> impl Strategy<Value = Vec<String>> {
        let word = prop::sample::select(WORDS).prop_map(str::to_string);
        let opt = prop_oneof![
            (
                prop::sample::select(&["ISSUE", "REFRESH", "issue"][..]),
                word.clone()
            )
                .prop_map(|(w, k)| vec![w.to_string(), k, "600".to_string()]),
            word.clone().prop_map(|k| vec!["GRANT".to_string(), k]),
            Just(vec!["GRACE".to_string(), "5".to_string()]),
            prop::collection::vec(word.clone(), 1..3).prop_map(|keys| {
                let mut v = vec!["CUTOFF".to_string(), keys.len().to_string()];
                v.extend(keys);
                v
            }),
            prop::collection::vec(word.clone(), 1..3).prop_map(|w| w),
        ];
        let fields = prop::option::of(prop::collection::vec((word.clone(), word.clone()), 0..3));
        (
            prop::collection::vec(word.clone(), fixed),
            prop::collection::vec(opt, 0..4),
            fields,
        )
            .prop_map(move |(fixed, opts, fields)| {
                let mut a = vec![name.to_string()];
                a.extend(fixed);
                a.extend(opts.into_iter().flatten());
                if let Some(f) = fields {
                    a.push("FIELDS".to_string());
                    a.push(f.len().to_string());
                    a.extend(f.into_iter().flat_map(|(n, v)| [n, v]));
                }
                a
            })
    }

    fn check(name: &str, a: &[String]) -> Result<bool, TestCaseError> {
        let s = spec(name);
        let g = s.grammar.expect("grammar");
        let a: Vec<&[u8]> = a.iter().map(String::as_bytes).collect();
        let Ok(parsed) = grammar::parse(g, &a) else {
            return Ok(false);
        };
        // What the handler uses: the fixed keys and the keys its options name.
        let mut handler: Vec<usize> = s
            .keys
            .iter()
            .filter_map(|k| match k.begin {
                Begin::Index(p) => usize::try_from(p).ok(),
                Begin::Keyword(..) => None,
            })
            .collect();
        handler.extend(parsed.keys(g, &a));
        handler.sort_unstable();
        let mut reported: Vec<usize> = located_keys(s, &a).iter().map(|(i, _)| *i).collect();
        reported.sort_unstable();
        let redis = redis_key_positions(s.keys, &a);
        prop_assert_eq!(&handler, &reported, "handler vs key report: {:?}", a);
        prop_assert_eq!(
            located_keys(s, &a),
            redis,
            "key report vs Redis's key specs: {:?}",
            a
        );
        Ok(true)
    }

    /// For every argument list the option parser accepts, the keys the
    /// handler uses, the keys the module reports (COMMAND GETKEYS, ACL,
    /// Cluster on 7.0) and the keys Redis finds from the key specs alone
    /// (ACL and cluster clients that read COMMAND INFO) are the same.
    /// Random calls of every command with keyword-located keys; a good share
    /// of them must be accepted for the comparison to mean something.
    #[test]
    fn reported_keys_are_the_keys_the_handler_uses() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for (name, fixed) in [
            ("oauth.exchange", 4),
            ("oauth.rotate", 3),
            ("oauth.savetoken", 2),
            ("oauth.introspect", 1),
        ] {
            let strategy = call(name, fixed);
            let mut accepted = 0;
            for _ in 0..4000 {
                let a = strategy.new_tree(&mut runner).expect("tree").current();
                if check(name, &a).expect("consistent") {
                    accepted += 1;
                }
            }
            assert!(
                accepted > 400,
                "{name}: only {accepted} of 4000 calls accepted"
            );
        }
    }

    /// The generator reaches accepted calls with keys after keywords, and the
    /// issue's repros are refused.
    #[test]
    fn accepted_and_refused_examples() {
        let ok = |name: &str, s: &str| {
            let a: Vec<String> = s.split(' ').map(str::to_string).collect();
            check(name, &a).expect("consistent")
        };
        assert!(ok(
            "oauth.exchange",
            "oauth.exchange c a u v GRANT g ISSUE t 600 FIELDS 1 x y"
        ));
        assert!(ok(
            "oauth.rotate",
            "oauth.rotate r r2 600 CUTOFF 2 c1 c2 ISSUE t 60"
        ));
        assert!(ok("oauth.introspect", "oauth.introspect t CUTOFF 1 c"));
        assert!(ok(
            "oauth.savetoken",
            "oauth.savetoken t 60 GRANT g FIELDS 0"
        ));
        // A key named FIELDS is still a key; the ISSUE after it is the option,
        // and its key is reported (ACL refuses it when outside the patterns).
        assert!(ok("oauth.exchange", "oauth.exchange oauth:{a}:code app1 https://app/cb v GRANT FIELDS ISSUE oauth:{b}:x 600"));
        for (name, s) in [
            ("oauth.exchange", "oauth.exchange oauth:{a}:code app1 https://app/cb v GRANT ISSUE ISSUE oauth:{b}:victim 600"),
            ("oauth.rotate", "oauth.rotate r r2 600 CUTOFF 1 ISSUE ISSUE victim 600"),
            ("oauth.savetoken", "oauth.savetoken t 60 FIELDS 2 kind grant x y"),
        ] {
            assert!(!ok(name, s), "{s}");
        }
    }

    /// Each keyword key spec starts searching where the grammar's options start.
    #[test]
    fn keyword_specs_start_at_the_options() {
        for s in SPECS {
            for k in s.keys {
                if let Begin::Keyword(word, from) = k.begin {
                    let g = s.grammar.expect("a keyword spec needs a grammar");
                    assert_eq!(
                        usize::try_from(from).ok(),
                        Some(g.from),
                        "{} {word}",
                        s.name
                    );
                    assert!(g.options.iter().any(|o| o.word == word && o.locates_keys()));
                }
            }
        }
    }
}
