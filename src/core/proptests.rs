//! Property tests: the rate limiters driven through long random request
//! sequences on a simulated clock, against simple reference models.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::gcra::{gcra, Gcra};
use super::rate::{fixed_window, CounterState, CounterWrite, FixedWindow};
use super::sliding::{sliding_window, SlidingState};

/// A simulated Redis string key with an absolute expiry in ms.
#[derive(Default)]
struct SimKey {
    value: Option<(i64, Option<i64>)>,
}

impl SimKey {
    fn get(&mut self, now_ms: i64) -> Option<(i64, Option<i64>)> {
        if let Some((_, Some(at))) = self.value {
            if at <= now_ms {
                self.value = None;
            }
        }
        self.value
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// GCRA is a token bucket of burst+1 tokens refilled at count/period:
    /// compared with exact integer token arithmetic (period divisible by count).
    #[test]
    fn gcra_matches_token_bucket(
        burst in 0i64..20,
        count_idx in 0usize..8,
        period_s in 1i64..120,
        steps in prop::collection::vec((0i64..3_000_000_000, 0i64..4), 1..150),
    ) {
        let count = [1i64, 2, 4, 5, 8, 10, 16, 25][count_idx];
        let period_ns = i128::from(period_s) * 1_000_000_000;
        let limit = i128::from(burst + 1);
        // Tokens scaled by period_ns; refill `count` per ns.
        let cap = limit * period_ns;
        let mut tokens = cap;
        let mut last: i128 = 0;
        let mut now: i64 = 1_700_000_000_000_000_000;
        let start = i128::from(now);
        let mut tat: Option<i64> = None;
        for (dt, cost) in steps {
            now += dt;
            let t = i128::from(now) - start;
            tokens = (tokens + (t - last) * i128::from(count)).min(cap);
            last = t;
            let need = i128::from(cost) * period_ns;
            let model_allowed = tokens >= need;
            if model_allowed {
                tokens -= need;
            }
            let p = Gcra::new(burst, count, period_s, cost).unwrap();
            let d = gcra(p, tat, now);
            prop_assert_eq!(!d.reply.limited, model_allowed);
            prop_assert_eq!(i128::from(d.reply.remaining), tokens / period_ns);
            if let Some(w) = d.write {
                prop_assert!(w.expire_at_ms > now / 1_000_000 - 1);
                tat = Some(w.tat_ns);
            }
            if d.reply.limited && d.reply.retry_after >= 0 {
                // Waiting retry_after seconds is enough.
                let later = now + d.reply.retry_after * 1_000_000_000;
                prop_assert!(!gcra(p, tat, later).reply.limited);
            }
        }
    }

    /// Fixed window: no window ever admits more than the limit, a request is
    /// refused only when it would exceed it, and every write carries an expiry.
    #[test]
    fn fixed_window_never_exceeds_limit(
        limit in 1i64..20,
        window_s in 1i64..30,
        steps in prop::collection::vec((0i64..5_000, 0i64..4), 1..200),
    ) {
        let mut key = SimKey::default();
        let mut now: i64 = 1_000_000;
        // Reference: the window that opened with the first counted request.
        let mut ref_open: Option<(i64, i64)> = None; // (expires_at, count)
        for (dt, cost) in steps {
            now += dt;
            if matches!(ref_open, Some((at, _)) if at <= now) {
                ref_open = None;
            }
            let state = key.get(now).map(|(count, at)| CounterState { count, expire_at_ms: at });
            let p = FixedWindow::new(limit, window_s, cost).unwrap();
            let d = fixed_window(p, state, now);
            let ref_count = ref_open.map_or(0, |(_, c)| c);
            let should_allow = ref_count + cost <= limit;
            prop_assert_eq!(!d.reply.limited, should_allow);
            match d.write {
                Some(CounterWrite::Set { count, expire_at_ms }) => {
                    prop_assert!(count <= limit);
                    prop_assert!(expire_at_ms > now && expire_at_ms <= now + window_s * 1000);
                    key.value = Some((count, Some(expire_at_ms)));
                    ref_open = Some((expire_at_ms, count));
                }
                Some(CounterWrite::Expire { .. }) => prop_assert!(false, "no immortal counters here"),
                None => prop_assert!(cost == 0 || d.reply.limited),
            }
            prop_assert_eq!(d.reply.remaining, limit - key.get(now).map_or(0, |(c, _)| c));
        }
    }

    /// Sliding window: the three-field state behaves like a full history of
    /// per-window totals.
    #[test]
    fn sliding_window_matches_history(
        limit in 1i64..30,
        window_s in 1i64..20,
        steps in prop::collection::vec((0i64..8_000, 0i64..4), 1..200),
    ) {
        let w = window_s * 1000;
        let mut history: BTreeMap<i64, i64> = BTreeMap::new();
        let mut state: Option<(SlidingState, i64)> = None;
        let mut now: i64 = 1_000_000;
        for (dt, cost) in steps {
            now += dt;
            if matches!(state, Some((_, at)) if at <= now) {
                state = None;
            }
            let idx = now.div_euclid(w);
            let cur = history.get(&idx).copied().unwrap_or(0);
            let prev = history.get(&(idx - 1)).copied().unwrap_or(0);
            let elapsed = now - idx * w;
            let weighted = (i128::from(prev) * i128::from(w - elapsed) + i128::from(w) - 1) / i128::from(w);
            let est = weighted + i128::from(cur);
            let should_allow = est + i128::from(cost) <= i128::from(limit);
            let d = sliding_window(limit, w, cost, state.map(|(s, _)| s), now);
            prop_assert_eq!(!d.reply.limited, should_allow);
            if let Some(wr) = d.write {
                prop_assert!(wr.expire_at_ms > now);
                state = Some((wr.state, wr.expire_at_ms));
                *history.entry(idx).or_insert(0) += cost;
            }
        }
    }
}
