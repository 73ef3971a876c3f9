//! The option grammar of the commands whose keys follow keywords (`ISSUE`,
//! `REFRESH`, `GRANT`, `CUTOFF`): one parser that both the command handler and
//! the key report (`COMMAND GETKEYS`, ACL, Cluster) use, so the keys Redis
//! checks are the keys the command touches.
//!
//! Redis evaluates a keyword key spec by searching for the first argument equal
//! to the keyword (case-insensitively) from a start position to the end of the
//! command. A key, a field or a value spelled like the keyword would be found
//! instead of the option, and the spec would name another argument than the one
//! the handler uses. So a key-locating keyword may appear only as its option:
//! [`parse`] refuses any other argument, anywhere from the first option on, that
//! is spelled like one. Then every keyword search, Redis's, a cluster client's
//! or this parser's, lands on the option itself, and the key specs are complete.

use super::validate::{is_keyword, parse_bounded};
use super::{OAuthError, OResult};

/// One argument of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    Key,
    Value,
}

/// What follows an option's keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A fixed list of arguments.
    Args(&'static [Arg]),
    /// `numkeys key [key ...]`, numkeys from 1 to [`MAX_KEY_LIST`].
    KeyList,
    /// `numfields field value ...`: the rest of the command (checked by
    /// `validate::parse_fields`).
    Fields,
}

/// The most keys a `CUTOFF` list may name.
pub const MAX_KEY_LIST: i64 = 64;

#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub word: &'static str,
    pub shape: Shape,
    /// What follows the keyword, for the error when it is missing
    /// ("token_key and token_ttl").
    pub needs: &'static str,
}

impl Opt {
    /// Whether a key follows this keyword (its spelling is then reserved).
    pub fn locates_keys(&self) -> bool {
        match self.shape {
            Shape::Args(args) => args.contains(&Arg::Key),
            Shape::KeyList => true,
            Shape::Fields => false,
        }
    }
}

/// `ISSUE token_key token_ttl` (EXCHANGE, ROTATE).
pub const ISSUE: Opt = Opt {
    word: "ISSUE",
    shape: Shape::Args(&[Arg::Key, Arg::Value]),
    needs: "token_key and token_ttl",
};

/// `REFRESH refresh_key refresh_ttl` (EXCHANGE).
pub const REFRESH: Opt = Opt {
    word: "REFRESH",
    shape: Shape::Args(&[Arg::Key, Arg::Value]),
    needs: "refresh_key and refresh_ttl",
};

/// `GRANT grant_key` (EXCHANGE, SAVETOKEN).
pub const GRANT: Opt = Opt {
    word: "GRANT",
    shape: Shape::Args(&[Arg::Key]),
    needs: "grant_key",
};

/// `GRACE seconds` (ROTATE).
pub const GRACE: Opt = Opt {
    word: "GRACE",
    shape: Shape::Args(&[Arg::Value]),
    needs: "seconds",
};

/// `CUTOFF numkeys cutoff_key [cutoff_key ...]` (ROTATE, INTROSPECT).
pub const CUTOFF: Opt = Opt {
    word: "CUTOFF",
    shape: Shape::KeyList,
    needs: "numkeys and cutoff keys",
};

/// `FIELDS numfields field value [field value ...]`, always last.
pub const FIELDS: Opt = Opt {
    word: "FIELDS",
    shape: Shape::Fields,
    needs: "numfields field value ...",
};

/// A command's options: they start at argument `from` (the command name is
/// argument 0), come in any order, each at most once; `FIELDS` is last.
#[derive(Debug)]
pub struct Grammar {
    pub from: usize,
    pub options: &'static [Opt],
}

/// The most options a grammar has.
const MAX_OPTIONS: usize = 4;

/// Where each option of a grammar was found: the index of its keyword.
#[derive(Debug, Clone, Copy)]
pub struct Parsed {
    at: [Option<usize>; MAX_OPTIONS],
}

impl Parsed {
    /// The index of `word`'s keyword, if the option was given.
    pub fn keyword_at(&self, g: &Grammar, word: &str) -> Option<usize> {
        let i = g.options.iter().position(|o| o.word == word)?;
        self.at.get(i).copied().flatten()
    }

    /// The arguments after `word`'s keyword (for `FIELDS`: the keyword and the
    /// rest of the command, as `parse_fields` takes them).
    pub fn args<'a, 'b>(
        &self,
        g: &Grammar,
        word: &str,
        a: &'b [&'a [u8]],
    ) -> Option<&'b [&'a [u8]]> {
        let at = self.keyword_at(g, word)?;
        let o = g.options.iter().find(|o| o.word == word)?;
        match o.shape {
            Shape::Args(args) => a.get(at + 1..at + 1 + args.len()),
            Shape::KeyList => {
                let n = a.get(at + 1).and_then(|n| super::validate::parse_i64(n))?;
                a.get(at + 2..at + 2 + usize::try_from(n).ok()?)
            }
            Shape::Fields => a.get(at..),
        }
    }

    /// Every key the options name, by argument index, in argument order.
    pub fn keys(&self, g: &Grammar, a: &[&[u8]]) -> Vec<usize> {
        let mut out = Vec::new();
        for (o, at) in g.options.iter().zip(self.at) {
            let Some(at) = at else { continue };
            match o.shape {
                Shape::Args(args) => out.extend(
                    args.iter()
                        .enumerate()
                        .filter(|(_, k)| **k == Arg::Key)
                        .map(|(j, _)| at + 1 + j),
                ),
                Shape::KeyList => {
                    let n = a
                        .get(at + 1)
                        .and_then(|n| super::validate::parse_i64(n))
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0);
                    out.extend(at + 2..at + 2 + n);
                }
                Shape::Fields => {}
            }
        }
        out.sort_unstable();
        out
    }
}

/// Finds each option in `a` from `g.from` on. Refuses an unknown or repeated
/// option, an option without its arguments, a `CUTOFF` count out of range, and
/// any argument other than the option itself spelled like a key-locating
/// keyword (see the module comment). Values are not checked here: the handler
/// parses them.
pub fn parse(g: &Grammar, a: &[&[u8]]) -> OResult<Parsed> {
    let mut p = Parsed {
        at: [None; MAX_OPTIONS],
    };
    let mut i = g.from;
    while let Some(word) = a.get(i) {
        let Some(n) = g.options.iter().position(|o| is_keyword(word, o.word)) else {
            return Err(unknown(g));
        };
        let (Some(o), Some(slot)) = (g.options.get(n), p.at.get_mut(n)) else {
            return Err(unknown(g));
        };
        if slot.is_some() {
            return Err(OAuthError::invalid_request(format!(
                "{} is given twice",
                o.word
            )));
        }
        *slot = Some(i);
        i = match o.shape {
            Shape::Args(args) => {
                if a.len() <= i + args.len() {
                    return Err(OAuthError::invalid_request(format!(
                        "{} needs {}",
                        o.word, o.needs
                    )));
                }
                i + 1 + args.len()
            }
            Shape::KeyList => {
                let count = a.get(i + 1).ok_or_else(|| {
                    OAuthError::invalid_request(format!("{} needs {}", o.word, o.needs))
                })?;
                let what = format!("{} numkeys", o.word);
                let n = parse_bounded(count, &what, 1, MAX_KEY_LIST)? as usize;
                if a.len() < i + 2 + n {
                    return Err(OAuthError::invalid_request(format!(
                        "{} numkeys is larger than the keys that follow",
                        o.word
                    )));
                }
                i + 2 + n
            }
            Shape::Fields => a.len(),
        };
    }
    for (o, at) in g.options.iter().zip(p.at) {
        if !o.locates_keys() {
            continue;
        }
        let stray = a
            .iter()
            .enumerate()
            .skip(g.from)
            .any(|(j, w)| is_keyword(w, o.word) && Some(j) != at);
        if stray {
            return Err(OAuthError::invalid_request(format!(
                "'{w}' may appear only as the {w} option: Redis Cluster and ACL take the argument after the first '{w}' (in any case) for a key, so no key, field name or value may be spelled '{w}'",
                w = o.word
            )));
        }
    }
    Ok(p)
}

fn unknown(g: &Grammar) -> OAuthError {
    let words: Vec<&str> = g.options.iter().map(|o| o.word).collect();
    let list = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => String::new(),
    };
    OAuthError::invalid_request(format!("unknown option; expected {list}"))
}

/// Redis's own evaluation of a keyword key spec (`begin_search` keyword with a
/// positive `startfrom`): the index after the first argument equal to `word`,
/// searching from `startfrom` up to, not including, the last argument.
pub fn redis_keyword_search(a: &[&[u8]], word: &str, startfrom: usize) -> Option<usize> {
    let end = a.len().checked_sub(1)?;
    (startfrom..end)
        .find(|j| a.get(*j).is_some_and(|w| is_keyword(w, word)))
        .map(|j| j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ErrorCode;

    static G: Grammar = Grammar {
        from: 5,
        options: &[ISSUE, GRANT, GRACE, FIELDS],
    };

    fn args(s: &str) -> Vec<&[u8]> {
        s.split(' ').map(str::as_bytes).collect()
    }

    fn refusal(s: &str) -> String {
        let a = args(s);
        let e = parse(&G, &a).expect_err(s);
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{s}");
        e.to_string()
    }

    #[test]
    fn options_in_any_order_and_their_keys() {
        let a = args("X k c u v GRANT g issue t 60 FIELDS 1 a b");
        let p = parse(&G, &a).unwrap();
        assert_eq!(p.keyword_at(&G, "ISSUE"), Some(7));
        assert_eq!(p.keyword_at(&G, "GRANT"), Some(5));
        assert_eq!(p.keys(&G, &a), vec![6, 8]);
        assert_eq!(p.args(&G, "ISSUE", &a).unwrap(), &args("t 60")[..]);
        assert_eq!(p.args(&G, "FIELDS", &a).unwrap(), &args("FIELDS 1 a b")[..]);
        assert!(p.args(&G, "GRACE", &a).is_none());
    }

    #[test]
    fn a_keyword_spelled_key_field_or_value_is_refused() {
        for s in [
            "X k c u v GRANT ISSUE ISSUE victim 600",
            "X k c u v ISSUE grant 60",
            "X k c u v FIELDS 1 note grant",
            "X k c u v FIELDS 2 note Grant x y",
            "X k c u v GRANT g FIELDS 1 issue x",
        ] {
            let m = refusal(s);
            assert!(m.contains("may appear only as the"), "{s}: {m}");
        }
        // GRACE and FIELDS name no key: their spelling is free elsewhere.
        assert!(parse(&G, &args("X k c u v ISSUE fields 60 FIELDS 1 grace FIELDS")).is_ok());
        // Arguments before `from` are not searched by Redis either.
        assert!(parse(&G, &args("X ISSUE grant issue v")).is_ok());
    }

    #[test]
    fn malformed_options_are_refused_with_their_reason() {
        assert!(refusal("X k c u v ISSUE t").contains("ISSUE needs token_key and token_ttl"));
        assert!(refusal("X k c u v GRANT").contains("GRANT needs grant_key"));
        assert!(refusal("X k c u v GRANT a GRANT b").contains("GRANT is given twice"));
        assert!(refusal("X k c u v NOPE").contains("expected ISSUE, GRANT, GRACE or FIELDS"));
    }

    #[test]
    fn redis_search_stops_before_the_last_argument() {
        let a = args("X k ISSUE a ISSUE");
        assert_eq!(redis_keyword_search(&a, "issue", 1), Some(3));
        assert_eq!(redis_keyword_search(&args("X k a ISSUE"), "ISSUE", 1), None);
    }
}
