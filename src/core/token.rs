//! Token lifecycle rules: refresh-token rotation with reuse detection and a
//! grace window, scope narrowing, cutoff (revoke-before) checks, and client
//! secret hashing. Pure: the shell passes records and times in.

use sha2::{Digest, Sha256};

use super::pkce::ct_eq;
use super::record::{Record, F_CREATED};
use super::validate::{parse_i64, Pair};

pub const F_ROTATED: &[u8] = b"_rotated";
pub const F_SUCCESSOR: &[u8] = b"_successor";
/// On a refresh token created by a rotation: the token it replaced. A grace
/// replay hands out a successor only when it names the presented token back.
pub const F_PREVIOUS: &[u8] = b"_previous";
pub const F_SUCCESSOR_ACCESS: &[u8] = b"_successor_access";
pub const F_GRACE_UNTIL: &[u8] = b"_grace_until";
pub const F_GRACE_LEFT: &[u8] = b"_grace_left";
pub const F_SECRET_HASH: &[u8] = b"_secret_sha256";
pub const F_SCOPE: &[u8] = b"scope";
pub const F_CLIENT_SECRET: &[u8] = b"client_secret";

/// True when every space-separated scope in `new` is in `old` (RFC 6749 §6:
/// a refresh cannot widen the grant). No stored scope allows any.
pub fn scope_within(old: Option<&[u8]>, new: &[u8]) -> bool {
    let Some(old) = old else { return true };
    let have: Vec<&[u8]> = old
        .split(|b| *b == b' ')
        .filter(|s| !s.is_empty())
        .collect();
    new.split(|b| *b == b' ')
        .filter(|s| !s.is_empty())
        .all(|s| have.contains(&s))
}

/// A token is cut off when it was created at or before a cutoff time.
pub fn is_cut_off(rec: &Record, cutoffs_ms: &[i64]) -> bool {
    let created = rec.int_field(F_CREATED, i64::MIN);
    cutoffs_ms.iter().any(|c| created <= *c)
}

/// What presenting a refresh token at `now_ms` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateDecision {
    /// Live: rotate it.
    Rotate,
    /// Rotated, within the grace window with uses left: answer the same successor.
    Replay {
        successor: Vec<u8>,
        access: Option<Vec<u8>>,
        uses_left: i64,
    },
    /// Rotated and outside grace (or out of uses): reuse, revoke the grant.
    Reuse,
}

pub fn decide_rotation(rec: &Record, now_ms: i64) -> RotateDecision {
    if rec.get(F_ROTATED).is_none() {
        return RotateDecision::Rotate;
    }
    let until = rec.int_field(F_GRACE_UNTIL, 0);
    let left = rec.int_field(F_GRACE_LEFT, 0);
    match rec.get(F_SUCCESSOR) {
        Some(succ) if now_ms < until && left > 0 => RotateDecision::Replay {
            successor: succ.to_vec(),
            access: rec.get(F_SUCCESSOR_ACCESS).map(<[u8]>::to_vec),
            uses_left: left - 1,
        },
        _ => RotateDecision::Reuse,
    }
}

/// What presenting a refresh token at `now_ms` comes to, given the record
/// and its absolute expiry (None: no such token) and the cutoffs it is
/// checked against: gone (missing, or expired on the clock, which MULTI and
/// scripts freeze), revoked by a cutoff, or a rotation decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Gone,
    CutOff,
    Decision(RotateDecision),
}

pub fn present_refresh(
    old: Option<(&Record, Option<i64>)>,
    cutoffs_ms: &[i64],
    now_ms: i64,
) -> Presented {
    match old {
        None => Presented::Gone,
        Some((_, Some(at))) if at <= now_ms => Presented::Gone,
        Some((rec, _)) if is_cut_off(rec, cutoffs_ms) => Presented::CutOff,
        Some((rec, _)) => Presented::Decision(decide_rotation(rec, now_ms)),
    }
}

/// Whether a retry within the grace window may be answered with the
/// successor `succ` again: only a successor that is still a live, unrotated
/// refresh token and names the presented token (`presented_key`) as its
/// predecessor. Anything else makes the retry a reuse.
pub fn replay_allowed(succ: Option<&Record>, presented_key: &[u8], now_ms: i64) -> bool {
    succ.is_some_and(|s| {
        decide_rotation(s, now_ms) == RotateDecision::Rotate
            && s.get(F_PREVIOUS) == Some(presented_key)
    })
}

/// The fields of a successor: the old token's caller fields, overridden by
/// the given ones. A given `scope` must not widen the old one.
pub fn successor_fields<'a>(
    old: &'a Record,
    extra: &[Pair<'a>],
) -> Result<Vec<Pair<'a>>, &'static str> {
    if let Some((_, scope)) = extra.iter().find(|(f, _)| *f == F_SCOPE) {
        if !scope_within(old.get(F_SCOPE), scope) {
            return Err("scope cannot widen on refresh");
        }
    }
    let mut out: Vec<Pair<'a>> = old
        .user_fields()
        .filter(|(f, _)| !extra.iter().any(|(e, _)| e == f))
        .collect();
    out.extend_from_slice(extra);
    Ok(out)
}

/// The tombstone fields added to a rotated refresh token.
pub fn rotated_marks(
    now_ms: i64,
    successor: &[u8],
    access: Option<&[u8]>,
    grace_ms: i64,
    grace_uses: i64,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = vec![
        (F_ROTATED.to_vec(), now_ms.to_string().into_bytes()),
        (F_SUCCESSOR.to_vec(), successor.to_vec()),
    ];
    if let Some(a) = access {
        out.push((F_SUCCESSOR_ACCESS.to_vec(), a.to_vec()));
    }
    if grace_ms > 0 && grace_uses > 0 {
        out.push((
            F_GRACE_UNTIL.to_vec(),
            now_ms.saturating_add(grace_ms).to_string().into_bytes(),
        ));
        out.push((F_GRACE_LEFT.to_vec(), grace_uses.to_string().into_bytes()));
    }
    out
}

/// SHA-256 of a client secret, hex. Client secrets are high-entropy random
/// strings issued by the server (RFC 6819 §5.1.4.1.3), so an unsalted fast
/// hash suffices and keeps VERIFY O(1).
pub fn secret_hash(secret: &[u8]) -> String {
    Sha256::digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn verify_secret(stored_hash: &[u8], secret: &[u8]) -> bool {
    ct_eq(secret_hash(secret).as_bytes(), stored_hash)
}

/// Parses a cutoff value as stored by OAUTH.REVOKEBEFORE.
pub fn parse_cutoff(raw: &[u8]) -> Option<i64> {
    parse_i64(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Record {
        Record::new(
            pairs
                .iter()
                .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn scopes_cannot_widen() {
        assert!(scope_within(Some(b"a b c"), b"a c"));
        assert!(scope_within(Some(b"a b"), b""));
        assert!(!scope_within(Some(b"a b"), b"a d"));
        assert!(!scope_within(Some(b""), b"a"));
        assert!(scope_within(None, b"anything"));
        let old = rec(&[("_kind", "refresh"), ("scope", "read write"), ("sub", "u1")]);
        let f = successor_fields(&old, &[(b"scope", b"read")]).unwrap();
        assert_eq!(f, vec![(&b"sub"[..], &b"u1"[..]), (b"scope", b"read")]);
        assert_eq!(
            successor_fields(&old, &[(b"scope", b"admin")]),
            Err("scope cannot widen on refresh")
        );
    }

    #[test]
    fn rotation_decisions() {
        let live = rec(&[("_kind", "refresh"), ("_created", "10")]);
        assert_eq!(decide_rotation(&live, 100), RotateDecision::Rotate);
        let mut marks = live.clone();
        marks.extend(rotated_marks(100, b"r2", Some(b"a2"), 1_000, 2));
        assert_eq!(
            decide_rotation(&marks, 500),
            RotateDecision::Replay {
                successor: b"r2".to_vec(),
                access: Some(b"a2".to_vec()),
                uses_left: 1
            }
        );
        assert_eq!(decide_rotation(&marks, 1_100), RotateDecision::Reuse);
        let mut no_grace = live.clone();
        no_grace.extend(rotated_marks(100, b"r2", None, 0, 2));
        assert_eq!(decide_rotation(&no_grace, 100), RotateDecision::Reuse);
        let mut used = live;
        used.extend(rotated_marks(100, b"r2", None, 1_000, 0));
        assert_eq!(decide_rotation(&used, 200), RotateDecision::Reuse);
    }

    #[test]
    fn cutoffs() {
        let t = rec(&[("_created", "1000")]);
        assert!(is_cut_off(&t, &[1000]));
        assert!(is_cut_off(&t, &[5, 2000]));
        assert!(!is_cut_off(&t, &[999]));
        assert!(!is_cut_off(&t, &[]));
        assert!(
            is_cut_off(&rec(&[]), &[0]),
            "a token without creation time is treated as old"
        );
    }

    #[test]
    fn secrets() {
        let h = secret_hash(b"s3cret");
        assert_eq!(h.len(), 64);
        assert!(verify_secret(h.as_bytes(), b"s3cret"));
        assert!(!verify_secret(h.as_bytes(), b"s3cret!"));
        assert_eq!(
            secret_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn presenting_a_refresh_token_rule_by_rule() {
        let now = 1_000_000;
        let live = rec(&[("_kind", "refresh"), ("_created", "500"), ("sub", "u1")]);
        type Case<'a> = (
            &'a str,
            Option<(&'a Record, Option<i64>)>,
            &'a [i64],
            Presented,
        );
        let cases: Vec<Case> = vec![
            ("missing", None, &[], Presented::Gone),
            (
                "expired on the clock",
                Some((&live, Some(now))),
                &[],
                Presented::Gone,
            ),
            (
                "no expiry, live",
                Some((&live, None)),
                &[],
                Presented::Decision(RotateDecision::Rotate),
            ),
            (
                "created before a cutoff",
                Some((&live, Some(now + 1))),
                &[500],
                Presented::CutOff,
            ),
            (
                "created after the cutoff",
                Some((&live, Some(now + 1))),
                &[499],
                Presented::Decision(RotateDecision::Rotate),
            ),
        ];
        for (what, old, cutoffs, expected) in cases {
            assert_eq!(present_refresh(old, cutoffs, now), expected, "{what}");
        }
    }

    #[test]
    fn a_replay_hands_out_only_a_live_unrotated_successor_of_this_token() {
        let now = 1_000_000;
        let succ = rec(&[("_kind", "refresh"), ("_previous", "rt:1")]);
        assert!(replay_allowed(Some(&succ), b"rt:1", now));
        assert!(
            !replay_allowed(Some(&succ), b"rt:other", now),
            "names another token"
        );
        assert!(!replay_allowed(None, b"rt:1", now), "gone");
        let rotated = rec(&[
            ("_kind", "refresh"),
            ("_previous", "rt:1"),
            ("_rotated", "1"),
        ]);
        assert!(
            !replay_allowed(Some(&rotated), b"rt:1", now),
            "rotated itself"
        );
    }
}
