"""RATELIMIT (fixed and sliding), RATELIMITALL and THROTTLE, with their HTTP headers."""

from __future__ import annotations

from redis_oauth import RateLimit


async def test_fixed_window(target):
    store, key = target.store, f"rl:{target.tag()}"
    first = await store.rate_limit(key, 3, 60)
    assert first == RateLimit(False, 3, 2, -1, 60)
    assert first.headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "60",
    }
    assert await store.rate_limit(key, 3, 60, cost=2) == RateLimit(False, 3, 0, -1, 60)

    refused = await store.rate_limit(key, 3, 60)
    assert refused.limited is True and refused.remaining == 0
    assert 59 <= refused.retry_after <= 60 and 59 <= refused.reset_after <= 60
    assert refused.headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(refused.reset_after),
        "Retry-After": str(refused.retry_after),
    }
    assert target.raw.get(key) == "3"  # the refused request was not counted
    peek = await store.rate_limit(key, 3, 60, cost=0)
    assert (peek.limited, peek.remaining, peek.retry_after) == (False, 0, -1)
    never = await store.rate_limit(key, 3, 60, cost=4)
    assert (never.limited, never.retry_after) == (True, -1)
    assert "Retry-After" not in never.headers()  # waiting will not help


async def test_sliding_window(target):
    store, key = target.store, f"rl:{target.tag()}"
    first = await store.rate_limit(key, 3, 60, sliding=True)
    assert (first.limited, first.limit, first.remaining, first.retry_after) == (False, 3, 2, -1)
    assert 60 <= first.reset_after <= 120
    await store.rate_limit(key, 3, 60, cost=2, sliding=True)
    refused = await store.rate_limit(key, 3, 60, sliding=True)
    assert refused.limited and refused.remaining == 0 and refused.retry_after >= 1
    assert refused.headers()["Retry-After"] == str(refused.retry_after)
    assert set(target.raw.hgetall(key)) == {"window_start", "current", "previous"}


async def test_all_or_nothing(target):
    store, tag = target.store, target.tag()
    per_ip, per_user = f"rl:{{{tag}}}:ip:10.0.0.7", f"rl:{{{tag}}}:user"
    limits = [(per_ip, 5, 60), (per_user, 3, 3600)]
    allowed = await store.rate_limit_all(limits)
    assert allowed == RateLimit(False, 3, 2, -1, 3600, deciding=1)
    await store.rate_limit_all(limits, cost=2)
    refused = await store.rate_limit_all(limits)
    assert (refused.limited, refused.limit, refused.remaining, refused.deciding) == (True, 3, 0, 1)
    assert 3599 <= refused.retry_after <= 3600
    assert refused.headers()["Retry-After"] == str(refused.retry_after)
    assert target.raw.get(per_ip) == "3"  # the refused request counted against neither

    sliding = [(f"rl:{{{tag}}}:s", 10, 1), (f"rl:{{{tag}}}:m", 100, 60)]
    second = await store.rate_limit_all(sliding, sliding=True)
    assert (second.limited, second.limit, second.remaining, second.deciding) == (False, 10, 9, 0)


async def test_throttle(target):
    store, key = target.store, f"rl:{target.tag()}"
    assert await store.throttle(key, 4, 30, 60) == RateLimit(False, 5, 4, -1, 2)
    assert await store.throttle(key, 4, 30, 60, cost=3) == RateLimit(False, 5, 1, -1, 8)
    assert await store.throttle(key, 4, 30, 60) == RateLimit(False, 5, 0, -1, 10)
    refused = await store.throttle(key, 4, 30, 60)
    assert (
        refused.limited,
        refused.limit,
        refused.remaining,
        refused.retry_after,
        refused.reset_after,
    ) == (True, 5, 0, 2, 10)
    assert refused.headers() == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "10",
        "Retry-After": "2",
    }
    assert (await store.throttle(key, 4, 30, 60, cost=0)).limited is False
    too_big = await store.throttle(key, 4, 30, 60, cost=6)
    assert (too_big.limited, too_big.retry_after) == (True, -1)
    assert "Retry-After" not in too_big.headers()
