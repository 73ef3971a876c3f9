//! Sliding-window rate limit: the weighted sum of the previous and the current
//! fixed window (windows aligned to multiples of the window length since the
//! Unix epoch). The estimate is `previous * (window - elapsed) / window +
//! current`, rounded up, so it never lets more through than the limit allows.
//!
//! State is a small hash `{window_start, current, previous}`; it expires when
//! the previous window can no longer weigh in (two windows after its start).

use super::rate::{ceil_seconds, RateReply};

/// Field names of the sliding-window hash.
pub const F_START: &[u8] = b"window_start";
pub const F_CURRENT: &[u8] = b"current";
pub const F_PREVIOUS: &[u8] = b"previous";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingState {
    pub window_start_ms: i64,
    pub current: i64,
    pub previous: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWrite {
    pub state: SlidingState,
    pub expire_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingDecision {
    pub reply: RateReply,
    pub write: Option<SlidingWrite>,
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if a <= 0 {
        -((-a) / b)
    } else {
        (a + b - 1) / b
    }
}

/// Weighted count at `elapsed` ms into the current window.
fn estimate(previous: i64, current: i64, window_ms: i64, elapsed: i64) -> i128 {
    let w = i128::from(window_ms);
    let rest = i128::from((window_ms - elapsed).max(0));
    ceil_div(i128::from(previous) * rest, w) + i128::from(current)
}

/// Milliseconds from `elapsed` until the estimate drops to `target` or below,
/// with the current window's counts fixed (None if it never does in this window).
fn wait_in_window(
    previous: i64,
    current: i64,
    window_ms: i64,
    elapsed: i64,
    target: i128,
) -> Option<i64> {
    let cur = i128::from(current);
    if cur > target {
        return None;
    }
    if previous == 0 {
        return Some(0);
    }
    // previous * (w - e) / w <= target - cur  <=>  e >= w - (target - cur) * w / previous
    let w = i128::from(window_ms);
    let need = w - ((target - cur) * w) / i128::from(previous);
    let e = need.max(i128::from(elapsed));
    // Rounding: step forward until the rounded-up estimate fits.
    let mut e = i64::try_from(e).unwrap_or(window_ms).min(window_ms);
    while e < window_ms && estimate(previous, current, window_ms, e) > target {
        e += 1;
    }
    // At the window's end the previous count weighs nothing and `cur <= target`.
    Some(e - elapsed)
}

pub fn sliding_window(
    limit: i64,
    window_ms: i64,
    cost: i64,
    stored: Option<SlidingState>,
    now_ms: i64,
) -> SlidingDecision {
    let start = now_ms - now_ms.rem_euclid(window_ms);
    let (previous, current) = match stored {
        Some(s) if s.window_start_ms == start => (s.previous.max(0), s.current.max(0)),
        Some(s) if s.window_start_ms == start - window_ms => (s.current.max(0), 0),
        _ => (0, 0),
    };
    let elapsed = now_ms - start;
    let est = estimate(previous, current, window_ms, elapsed);
    let limit_w = i128::from(limit);
    let allowed = est + i128::from(cost) <= limit_w;

    // Until both windows have decayed: the current counts weigh until the end of the next window.
    let reset_ms = if current > 0 || (allowed && cost > 0) {
        start + 2 * window_ms - now_ms
    } else if previous > 0 {
        start + window_ms - now_ms
    } else {
        0
    };

    if allowed {
        let new_current = current + cost;
        let write = (cost > 0).then_some(SlidingWrite {
            state: SlidingState {
                window_start_ms: start,
                current: new_current,
                previous,
            },
            expire_at_ms: start + 2 * window_ms,
        });
        let used = est + i128::from(cost);
        SlidingDecision {
            reply: RateReply {
                limited: false,
                limit,
                remaining: i64::try_from((limit_w - used).max(0)).unwrap_or(0),
                retry_after: -1,
                reset_after: ceil_seconds(reset_ms),
            },
            write,
        }
    } else {
        let retry = if cost > limit {
            -1
        } else {
            let target = limit_w - i128::from(cost);
            match wait_in_window(previous, current, window_ms, elapsed, target) {
                Some(ms) => ceil_seconds(ms).max(1),
                None => {
                    // Next window: the current count becomes the weighted previous one.
                    let to_next = window_ms - elapsed;
                    let later =
                        wait_in_window(current, 0, window_ms, 0, target).unwrap_or(window_ms);
                    ceil_seconds(to_next + later).max(1)
                }
            }
        };
        SlidingDecision {
            reply: RateReply {
                limited: true,
                limit,
                remaining: i64::try_from((limit_w - est).max(0)).unwrap_or(0),
                retry_after: retry,
                reset_after: ceil_seconds(reset_ms),
            },
            write: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(limit: i64, w: i64, cost: i64, st: &mut Option<SlidingState>, now: i64) -> [i64; 5] {
        let d = sliding_window(limit, w, cost, *st, now);
        if let Some(wr) = d.write {
            *st = Some(wr.state);
        }
        d.reply.to_array()
    }

    #[test]
    fn weights_the_previous_window() {
        let mut st = None;
        // 10 per 10 s; fill the window starting at 0.
        for _ in 0..10 {
            assert_eq!(step(10, 10_000, 1, &mut st, 1_000)[0], 0);
        }
        assert_eq!(step(10, 10_000, 1, &mut st, 9_000)[0], 1);
        // At 12.5 s the previous window (10) weighs 75%: 7.5 -> 8 used, 2 left.
        assert_eq!(step(10, 10_000, 1, &mut st, 12_500), [0, 10, 1, -1, 18]);
        assert_eq!(step(10, 10_000, 1, &mut st, 12_500), [0, 10, 0, -1, 18]);
        let r = step(10, 10_000, 1, &mut st, 12_500);
        assert_eq!(r[0], 1);
        // Allowed again once the weight has dropped by one request (1 s later).
        assert_eq!(r[3], 1);
        assert_eq!(step(10, 10_000, 1, &mut st, 13_500)[0], 0);
    }

    #[test]
    fn old_state_is_forgotten() {
        let st = Some(SlidingState {
            window_start_ms: 0,
            current: 100,
            previous: 100,
        });
        let d = sliding_window(5, 1_000, 1, st, 5_500);
        assert!(!d.reply.limited);
        assert_eq!(
            d.write.unwrap().state,
            SlidingState {
                window_start_ms: 5_000,
                current: 1,
                previous: 0
            }
        );
        assert_eq!(d.write.unwrap().expire_at_ms, 7_000);
    }

    #[test]
    fn peek_and_never() {
        let d = sliding_window(5, 1_000, 0, None, 10);
        assert_eq!(d.write, None);
        assert_eq!(d.reply.to_array(), [0, 5, 5, -1, 0]);
        let d = sliding_window(5, 1_000, 6, None, 10);
        assert_eq!(d.reply.to_array(), [1, 5, 5, -1, 0]);
    }

    #[test]
    fn retry_crosses_into_next_window() {
        let st = Some(SlidingState {
            window_start_ms: 0,
            current: 10,
            previous: 0,
        });
        let d = sliding_window(10, 10_000, 1, st, 9_000);
        assert!(d.reply.limited);
        // Next window starts in 1 s; there the previous 10 must decay to 9: 1 s more.
        assert_eq!(d.reply.retry_after, 2);
    }
}
