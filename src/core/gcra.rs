//! GCRA (generic cell rate algorithm), as `CL.THROTTLE` and the `GCRA` command proposed for Redis (held out of 8.8):
//! `max_burst + 1` requests at once, refilled at `count` per `period`.
//!
//! State is one integer: the theoretical arrival time (TAT) in Unix
//! nanoseconds. Arithmetic runs in i128 on a scaled clock where one unit is
//! `1/count` ns, so the emission interval `period / count` is exact for any
//! count (no float, no rounding to zero at high rates) and every product of
//! parameters within bounds fits: |values| < 2^124.

use super::error::{OAuthError, OResult};
use super::rate::{RateReply, MAX_LIMIT, MAX_WINDOW_SECONDS};

const NS_PER_S: i128 = 1_000_000_000;
const NS_PER_MS: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub max_burst: i64,
    pub count: i64,
    pub period_s: i64,
    pub cost: i64,
}

impl Gcra {
    pub fn new(max_burst: i64, count: i64, period_s: i64, cost: i64) -> OResult<Self> {
        if !(0..MAX_LIMIT).contains(&max_burst) {
            return Err(OAuthError::invalid_request(format!(
                "max_burst must be an integer from 0 to {}",
                MAX_LIMIT - 1
            )));
        }
        if !(1..=MAX_LIMIT).contains(&count) {
            return Err(OAuthError::invalid_request(format!(
                "count must be an integer from 1 to {MAX_LIMIT}"
            )));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&period_s) {
            return Err(OAuthError::invalid_request(format!(
                "period must be an integer number of seconds from 1 to {MAX_WINDOW_SECONDS}"
            )));
        }
        if !(0..=MAX_LIMIT).contains(&cost) {
            return Err(OAuthError::invalid_request(format!(
                "COST must be an integer from 0 to {MAX_LIMIT}"
            )));
        }
        Ok(Gcra {
            max_burst,
            count,
            period_s,
            cost,
        })
    }

    pub fn limit(&self) -> i64 {
        self.max_burst + 1
    }
}

/// What to store after an allowed request: `SET key tat_ns PXAT expire_at_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TatWrite {
    pub tat_ns: i64,
    pub expire_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraDecision {
    pub reply: RateReply,
    pub write: Option<TatWrite>,
}

fn div_ceil(a: i128, b: i128) -> i128 {
    // b > 0 always here.
    if a <= 0 {
        -((-a) / b)
    } else {
        (a + b - 1) / b
    }
}

/// One request at `now_ns` against the stored TAT (None: no key, a full bucket).
/// Only an allowed request with a positive cost writes.
pub fn gcra(p: Gcra, stored_tat_ns: Option<i64>, now_ns: i64) -> GcraDecision {
    let c = i128::from(p.count);
    let t = i128::from(p.period_s) * NS_PER_S; // emission interval, scaled
    let limit = i128::from(p.limit());
    let dvt = t * limit; // delay variation tolerance, scaled
    let increment = t * i128::from(p.cost);
    let now = i128::from(now_ns) * c;
    let tat = stored_tat_ns.map_or(now, |v| i128::from(v) * c);

    let new_tat = tat.max(now) + increment;
    let allow_at = new_tat - dvt;
    let diff = now - allow_at;
    let scale_s = c * NS_PER_S; // scaled units per second

    let (limited, ttl, retry_after, write) = if diff < 0 {
        let retry = if increment <= dvt {
            div_ceil(-diff, scale_s)
        } else {
            -1
        };
        (true, (tat - now).max(0), retry, None)
    } else {
        let ttl = new_tat - now;
        let write = if p.cost > 0 {
            let tat_ns = div_ceil(new_tat, c);
            let tat_ns = i64::try_from(tat_ns).unwrap_or(i64::MAX);
            let expire_ms = tat_ns / NS_PER_MS + i64::from(tat_ns % NS_PER_MS != 0);
            Some(TatWrite {
                tat_ns,
                expire_at_ms: expire_ms,
            })
        } else {
            None
        };
        (false, ttl, -1, write)
    };
    let next = dvt - ttl;
    let remaining = if next > 0 { next / t } else { 0 };
    let to_i64 = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    GcraDecision {
        reply: RateReply {
            limited,
            limit: p.limit(),
            remaining: to_i64(remaining.min(limit)),
            retry_after: to_i64(retry_after),
            reset_after: to_i64(div_ceil(ttl, scale_s).max(0)),
        },
        write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn run(p: Gcra, tat: &mut Option<i64>, now: i64) -> [i64; 5] {
        let d = gcra(p, *tat, now);
        if let Some(w) = d.write {
            *tat = Some(w.tat_ns);
        }
        d.reply.to_array()
    }

    /// CL.THROTTLE's README example: burst 15, 30 per 60 s, one request.
    #[test]
    fn cl_throttle_example() {
        let p = Gcra::new(15, 30, 60, 1).unwrap();
        let mut tat = None;
        let now = 1_700_000_000 * S;
        assert_eq!(run(p, &mut tat, now), [0, 16, 15, -1, 2]);
        for _ in 0..15 {
            run(p, &mut tat, now);
        }
        // The 17th at once is refused; one emission interval (2 s) later, allowed.
        assert_eq!(run(p, &mut tat, now), [1, 16, 0, 2, 32]);
        assert_eq!(run(p, &mut tat, now + 2 * S)[0], 0);
    }

    #[test]
    fn retry_after_rounds_up() {
        let p = Gcra::new(0, 3, 1, 1).unwrap(); // one every 333.33 ms
        let mut tat = None;
        assert_eq!(run(p, &mut tat, 0)[0], 0);
        let r = run(p, &mut tat, S / 10);
        assert_eq!(r[0], 1);
        assert_eq!(r[3], 1, "0.233 s rounds up to 1");
    }

    #[test]
    fn peek_does_not_write() {
        let p = Gcra::new(1, 1, 1, 0).unwrap();
        let d = gcra(p, None, 5 * S);
        assert_eq!(d.write, None);
        assert_eq!(d.reply.to_array(), [0, 2, 2, -1, 0]);
    }

    #[test]
    fn cost_above_burst_is_never_allowed() {
        let p = Gcra::new(4, 1, 1, 6).unwrap();
        let d = gcra(p, None, 0);
        assert_eq!(d.reply.to_array(), [1, 5, 5, -1, 0]);
        assert_eq!(d.write, None);
        // A cost equal to the limit is allowed on a full bucket.
        let p = Gcra::new(4, 1, 1, 5).unwrap();
        assert!(!gcra(p, None, 0).reply.limited);
    }

    #[test]
    fn extreme_parameters_do_not_overflow() {
        let now = i64::MAX / 2;
        for (b, c, per, cost) in [
            (MAX_LIMIT - 1, MAX_LIMIT, MAX_WINDOW_SECONDS, MAX_LIMIT),
            (0, MAX_LIMIT, 1, 1),
            (MAX_LIMIT - 1, 1, MAX_WINDOW_SECONDS, 1),
            (0, 1, MAX_WINDOW_SECONDS, MAX_LIMIT),
        ] {
            let p = Gcra::new(b, c, per, cost).unwrap();
            let d = gcra(p, Some(i64::MAX), now);
            assert!(d.reply.remaining >= 0);
            let d = gcra(p, None, now);
            assert!(d.reply.reset_after >= 0);
        }
        let refused = |r: OResult<Gcra>, starts: &str| {
            let e = r.expect_err(starts);
            assert_eq!(e.code, crate::core::ErrorCode::InvalidRequest, "{e}");
            assert!(e.message.starts_with(starts), "{e}");
        };
        refused(
            Gcra::new(-1, 1, 1, 1),
            "max_burst must be an integer from 0 to ",
        );
        refused(Gcra::new(0, 0, 1, 1), "count must be an integer from 1 to ");
        refused(
            Gcra::new(0, 1, 0, 1),
            "period must be an integer number of seconds",
        );
        refused(
            Gcra::new(0, 1, MAX_WINDOW_SECONDS + 1, 1),
            "period must be an integer number of seconds",
        );
        refused(Gcra::new(0, 1, 1, -1), "COST must be an integer from 0 to ");
    }

    #[test]
    fn very_high_rates_keep_precision() {
        // 10^12 per second: the emission interval is a thousandth of a nanosecond.
        let p = Gcra::new(0, 1_000_000_000_000, 1, 1).unwrap();
        let mut tat = None;
        let now = 1_000 * S;
        assert_eq!(run(p, &mut tat, now)[0], 0);
        assert_eq!(run(p, &mut tat, now + 1)[0], 0);
    }
}
