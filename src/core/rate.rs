//! Rate-limit arithmetic with the clock passed in. Integer milliseconds and
//! checked math throughout; nothing here touches Redis.

use super::error::{OAuthError, OResult};

/// Longest accepted window or period: one year of 366 days, in seconds.
pub const MAX_WINDOW_SECONDS: i64 = 366 * 24 * 3600;
/// Largest accepted limit or burst.
pub const MAX_LIMIT: i64 = 1 << 62;

/// The five-integer reply shared with `CL.THROTTLE` and the `GCRA` command proposed for Redis (held out of 8.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateReply {
    pub limited: bool,
    pub limit: i64,
    pub remaining: i64,
    /// Seconds until the request would be allowed, rounded up; -1 when allowed.
    pub retry_after: i64,
    /// Seconds until the limit is fully available again, rounded up.
    pub reset_after: i64,
}

impl RateReply {
    pub fn to_array(self) -> [i64; 5] {
        [
            i64::from(self.limited),
            self.limit,
            self.remaining,
            self.retry_after,
            self.reset_after,
        ]
    }
}

/// A counter as found in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterState {
    pub count: i64,
    /// Absolute expiry in ms, or None when the key has none (left by a plain INCR).
    pub expire_at_ms: Option<i64>,
}

/// What to write back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterWrite {
    /// `SET key count PXAT at`.
    Set { count: i64, expire_at_ms: i64 },
    /// Only give an expiry to a counter that had none: `PEXPIREAT key at`.
    Expire { expire_at_ms: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub reply: RateReply,
    pub write: Option<CounterWrite>,
}

/// Validated fixed-window parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    pub limit: i64,
    pub window_ms: i64,
    pub cost: i64,
}

impl FixedWindow {
    pub fn new(limit: i64, window_s: i64, cost: i64) -> OResult<Self> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(OAuthError::invalid_request(format!(
                "limit must be an integer from 1 to {MAX_LIMIT}"
            )));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&window_s) {
            return Err(OAuthError::invalid_request(format!(
                "window must be an integer number of seconds from 1 to {MAX_WINDOW_SECONDS}"
            )));
        }
        if cost < 0 {
            return Err(OAuthError::invalid_request(
                "COST must be a non-negative integer",
            ));
        }
        let window_ms = window_s
            .checked_mul(1000)
            .ok_or_else(|| OAuthError::invalid_request("window is too large"))?;
        Ok(FixedWindow {
            limit,
            window_ms,
            cost,
        })
    }
}

/// Milliseconds to whole seconds, rounded up; never negative.
pub fn ceil_seconds(ms: i64) -> i64 {
    if ms <= 0 {
        0
    } else {
        ms / 1000 + i64::from(ms % 1000 != 0)
    }
}

/// One fixed-window request. A denied request is not counted; a cost of 0 is a
/// pure peek that never writes; a counter without expiry is given one.
pub fn fixed_window(p: FixedWindow, state: Option<CounterState>, now_ms: i64) -> Decision {
    let fresh_expiry = now_ms.saturating_add(p.window_ms);
    let (count, expire_at, had_expiry) = match state {
        None => (0, None, true),
        Some(s) => (s.count.max(0), s.expire_at_ms, s.expire_at_ms.is_some()),
    };
    let allowed = count.checked_add(p.cost).is_some_and(|n| n <= p.limit);
    let peek = p.cost == 0;
    let reset_ms = |at: Option<i64>| at.map_or(0, |at| at.saturating_sub(now_ms));

    if allowed {
        let new_count = count + p.cost; // cannot overflow: checked above
        let (write, at) = if peek {
            // A peek counts nothing, but an immortal counter still gets its expiry.
            let repair = match state {
                Some(CounterState {
                    expire_at_ms: None, ..
                }) => Some(CounterWrite::Expire {
                    expire_at_ms: fresh_expiry,
                }),
                _ => None,
            };
            (repair, expire_at.or(repair.map(|_| fresh_expiry)))
        } else {
            let at = expire_at.unwrap_or(fresh_expiry);
            (
                Some(CounterWrite::Set {
                    count: new_count,
                    expire_at_ms: at,
                }),
                Some(at),
            )
        };
        // A counter without expiry keeps its window open-ended until a write gives it one.
        let reset = if state.is_none() && peek {
            0
        } else {
            ceil_seconds(reset_ms(at.or(Some(fresh_expiry))))
        };
        Decision {
            reply: RateReply {
                limited: false,
                limit: p.limit,
                remaining: p.limit - new_count,
                retry_after: -1,
                reset_after: reset,
            },
            write,
        }
    } else {
        let at = expire_at.unwrap_or(fresh_expiry);
        let wait = if state.is_none() {
            0
        } else {
            ceil_seconds(reset_ms(Some(at))).max(1)
        };
        // A cost above the limit can never be allowed: say so with -1, as CL.THROTTLE does.
        let retry = if p.cost > p.limit { -1 } else { wait };
        let write = if had_expiry {
            None
        } else {
            Some(CounterWrite::Expire { expire_at_ms: at })
        };
        Decision {
            reply: RateReply {
                limited: true,
                limit: p.limit,
                remaining: p.limit.saturating_sub(count).max(0),
                retry_after: retry,
                reset_after: wait,
            },
            write,
        }
    }
}

/// Combines the replies of several limits checked together (all-or-nothing).
/// The result keeps the five-integer shape: `limit` and `remaining` are those of
/// the deciding limit (the first that refused, else the one with the least
/// remaining), `retry_after` is the longest of the refusals and `reset_after`
/// the longest of all. Also returns the 1-based index of the deciding limit.
pub fn combine(replies: &[RateReply]) -> Option<(RateReply, usize)> {
    let refused = replies.iter().position(|r| r.limited);
    let deciding = match refused {
        Some(i) => i,
        None => replies
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| r.remaining)
            .map(|(i, _)| i)?,
    };
    let d = replies.get(deciding)?;
    let retry_after = if refused.is_some() {
        // -1 from a refusal means "never": that dominates any finite wait.
        if replies.iter().any(|r| r.limited && r.retry_after < 0) {
            -1
        } else {
            replies
                .iter()
                .filter(|r| r.limited)
                .map(|r| r.retry_after)
                .max()
                .unwrap_or(-1)
        }
    } else {
        -1
    };
    let reset_after = replies.iter().map(|r| r.reset_after).max().unwrap_or(0);
    Some((
        RateReply {
            limited: refused.is_some(),
            limit: d.limit,
            remaining: d.remaining,
            retry_after,
            reset_after,
        },
        deciding + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(limit: i64, window: i64, cost: i64) -> FixedWindow {
        FixedWindow::new(limit, window, cost).unwrap()
    }

    /// Drives a window like redis-cell's tables: each row has its own "now".
    #[test]
    fn fixed_window_table() {
        let p = fw(2, 60, 1);
        let mut state: Option<CounterState> = None;
        let rows: &[(i64, [i64; 5])] = &[
            (0, [0, 2, 1, -1, 60]),
            (1_500, [0, 2, 0, -1, 59]),
            (2_000, [1, 2, 0, 58, 58]),
            (59_999, [1, 2, 0, 1, 1]),
        ];
        for (now, want) in rows {
            let d = fixed_window(p, state, *now);
            assert_eq!(d.reply.to_array(), *want, "at {now}");
            if let Some(CounterWrite::Set {
                count,
                expire_at_ms,
            }) = d.write
            {
                state = Some(CounterState {
                    count,
                    expire_at_ms: Some(expire_at_ms),
                });
            }
        }
        // The window expires (Redis removes the key): counting starts again.
        let d = fixed_window(p, None, 60_000);
        assert_eq!(d.reply.to_array(), [0, 2, 1, -1, 60]);
        assert_eq!(
            d.write,
            Some(CounterWrite::Set {
                count: 1,
                expire_at_ms: 120_000
            })
        );
    }

    #[test]
    fn denied_requests_are_not_counted() {
        let p = fw(1, 10, 1);
        let s = Some(CounterState {
            count: 1,
            expire_at_ms: Some(10_000),
        });
        let d = fixed_window(p, s, 5_000);
        assert!(d.reply.limited);
        assert_eq!(d.write, None);
    }

    #[test]
    fn immortal_counter_gets_expiry_even_when_denied() {
        let p = fw(5, 10, 1);
        let d = fixed_window(
            p,
            Some(CounterState {
                count: 9,
                expire_at_ms: None,
            }),
            1_000,
        );
        assert!(d.reply.limited);
        assert_eq!(d.reply.remaining, 0);
        assert_eq!(
            d.write,
            Some(CounterWrite::Expire {
                expire_at_ms: 11_000
            })
        );
        let d = fixed_window(
            p,
            Some(CounterState {
                count: 1,
                expire_at_ms: None,
            }),
            1_000,
        );
        assert_eq!(
            d.write,
            Some(CounterWrite::Set {
                count: 2,
                expire_at_ms: 11_000
            })
        );
    }

    #[test]
    fn peek_writes_nothing_but_repairs() {
        let p = fw(3, 10, 0);
        let d = fixed_window(p, None, 0);
        assert_eq!(d.reply.to_array(), [0, 3, 3, -1, 0]);
        assert_eq!(d.write, None);
        let d = fixed_window(
            p,
            Some(CounterState {
                count: 3,
                expire_at_ms: Some(4_001),
            }),
            0,
        );
        assert_eq!(d.reply.to_array(), [0, 3, 0, -1, 5]);
        assert_eq!(d.write, None);
        let d = fixed_window(
            p,
            Some(CounterState {
                count: 7,
                expire_at_ms: None,
            }),
            0,
        );
        assert!(d.reply.limited);
        // A peek counts nothing, but an immortal counter still gets its expiry.
        assert_eq!(
            d.write,
            Some(CounterWrite::Expire {
                expire_at_ms: 10_000
            })
        );
        let d = fixed_window(
            p,
            Some(CounterState {
                count: 1,
                expire_at_ms: None,
            }),
            0,
        );
        assert_eq!(d.reply.to_array(), [0, 3, 2, -1, 10]);
        assert_eq!(
            d.write,
            Some(CounterWrite::Expire {
                expire_at_ms: 10_000
            })
        );
    }

    #[test]
    fn costs_and_bounds() {
        let refused = |r: OResult<FixedWindow>, starts: &str| {
            let e = r.expect_err(starts);
            assert_eq!(e.code, crate::core::ErrorCode::InvalidRequest, "{e}");
            assert!(e.message.starts_with(starts), "{e}");
        };
        refused(
            FixedWindow::new(0, 10, 1),
            "limit must be an integer from 1 to ",
        );
        refused(
            FixedWindow::new(10, 0, 1),
            "window must be an integer number of seconds",
        );
        refused(
            FixedWindow::new(10, MAX_WINDOW_SECONDS + 1, 1),
            "window must be an integer number of seconds",
        );
        refused(
            FixedWindow::new(10, 10, -1),
            "COST must be a non-negative integer",
        );
        let never = fixed_window(fw(10, 10, 11), None, 0);
        assert_eq!(never.reply.to_array(), [1, 10, 10, -1, 0]);
        assert_eq!(never.write, None);
        refused(
            FixedWindow::new(MAX_LIMIT + 1, 10, 1),
            "limit must be an integer from 1 to ",
        );
        let p = fw(MAX_LIMIT, MAX_WINDOW_SECONDS, MAX_LIMIT);
        let d = fixed_window(
            p,
            Some(CounterState {
                count: i64::MAX,
                expire_at_ms: Some(1),
            }),
            0,
        );
        assert!(d.reply.limited);
        let d = fixed_window(p, None, i64::MAX - 5);
        assert!(!d.reply.limited);
        let p = fw(10, 10, 4);
        let d = fixed_window(
            p,
            Some(CounterState {
                count: 7,
                expire_at_ms: Some(10_000),
            }),
            0,
        );
        assert!(d.reply.limited);
        assert_eq!(d.reply.remaining, 3);
    }

    #[test]
    fn combine_picks_the_deciding_limit() {
        let r = |limited, limit, remaining, retry_after, reset_after| RateReply {
            limited,
            limit,
            remaining,
            retry_after,
            reset_after,
        };
        let (c, i) = combine(&[r(false, 10, 5, -1, 60), r(false, 100, 2, -1, 3600)]).unwrap();
        assert_eq!((c.to_array(), i), ([0, 100, 2, -1, 3600], 2));
        let (c, i) = combine(&[
            r(false, 10, 5, -1, 60),
            r(true, 100, 0, 30, 3600),
            r(true, 5, 0, 90, 90),
        ])
        .unwrap();
        assert_eq!((c.to_array(), i), ([1, 100, 0, 90, 3600], 2));
        let (c, _) = combine(&[r(true, 1, 0, -1, 0), r(true, 5, 0, 90, 90)]).unwrap();
        assert_eq!(c.retry_after, -1);
        assert!(combine(&[]).is_none());
    }

    #[test]
    fn rounding_is_up() {
        assert_eq!(ceil_seconds(0), 0);
        assert_eq!(ceil_seconds(1), 1);
        assert_eq!(ceil_seconds(1000), 1);
        assert_eq!(ceil_seconds(1001), 2);
        assert_eq!(ceil_seconds(-5), 0);
    }
}
