"""Error classes, the key prefix, and PKCE refusals before anything is saved."""

from __future__ import annotations

import pytest
from test_tokens import VERIFIER, code_fields

from redis_oauth import (
    CrossSlot,
    Exists,
    InvalidRequest,
    OAuthStore,
    WrongType,
    create_pair,
    s256_challenge,
)

AUTHLIB_DEFAULT_VERIFIER = "Qs1bGdkKx7m2FvYh0pWn3RtLc8ZuJ4"  # 30 characters


async def test_error_classes(target):
    store, tag = target.store, target.tag()
    code = f"oauth:{{{tag}}}:code"
    await store.save_code(code, 600, code_fields())
    with pytest.raises(Exists) as exists:
        await store.save_code(code, 600, code_fields())
    assert (exists.value.code, exists.value.description) == ("EXISTS", "key already exists")
    assert (exists.value.error, exists.value.status) == ("server_error", 500)
    assert exists.value.to_dict() == {"error": "server_error"}

    with pytest.raises(InvalidRequest, match="ttl must be an integer from 1 to 600") as bad:
        await store.save_code(f"oauth:{{{tag}}}:code:2", 3600, code_fields())
    assert (bad.value.error, bad.value.status) == ("invalid_request", 400)

    with pytest.raises(WrongType, match="does not hold a token record"):
        await store.revoke(code)
    await store.save_token(f"oauth:{{{tag}}}:at", 60)
    with pytest.raises(WrongType, match="does not hold a refresh-token record"):
        await store.rotate(f"oauth:{{{tag}}}:at", f"oauth:{{{tag}}}:rt", 60)


async def test_cross_slot(target):
    """Keys of one call in two slots: CROSSSLOT in Cluster (a standalone server does not check)."""
    store, tag = target.store, target.tag()
    first, second = f"oauth:{{a}}:{tag}", f"oauth:{{b}}:{tag}"
    if target.kind == "standalone":
        assert await store.revoke(first, second) == 0
        return
    with pytest.raises(CrossSlot, match="don't hash to the same slot") as crossed:
        await store.revoke(first, second)
    assert (crossed.value.code, crossed.value.status) == ("CROSSSLOT", 500)
    with pytest.raises(CrossSlot):
        await store.rate_limit_all([(first, 5, 60), (second, 5, 60)])
    with pytest.raises(CrossSlot):
        await store.introspect(first, cutoffs=[second])


async def test_prefix_applies_to_every_key(target):
    prefix = "tenant1:"
    store, raw, plain = target.make_store(prefix), target.raw, target.store
    tag = target.tag()
    k = lambda name: f"oauth:{{{tag}}}:{name}"  # noqa: E731
    p = lambda name: prefix + k(name)  # noqa: E731

    await store.save_code(k("code"), 600, code_fields())
    assert raw.exists(p("code")) == 1 and raw.exists(k("code")) == 0
    await store.exchange(
        k("code"),
        client_id="app1",
        redirect_uri="https://app/cb",
        code_verifier=VERIFIER,
        issue=(k("at:0"), 600),
        refresh=(k("rt:0"), 3600),
        grant=k("grant"),
    )
    assert raw.smembers(p("grant")) == {p("code"), p("at:0"), p("rt:0")}
    rotated = await store.rotate(
        k("rt:0"), k("rt:1"), 3600, issue=(k("at:1"), 600), cutoffs=[k("cutoff")]
    )
    assert (rotated.refresh_key, rotated.access_key) == (k("rt:1"), k("at:1"))
    assert raw.exists(p("rt:1"), p("at:1")) == 2
    await store.save_token(k("at:2"), 600, {"sub": "u1"}, grant=k("grant"))
    assert p("at:2") in raw.smembers(p("grant"))
    assert (await store.introspect(k("at:2"))).active
    assert not (await plain.introspect(k("at:2"))).active  # the unprefixed key is not it
    assert await store.revoke_before(k("cutoff")) == int(raw.get(p("cutoff")))
    assert not (await store.introspect(k("at:2"), cutoffs=[k("cutoff")])).active
    assert await store.revoke(k("at:2"), k("never")) == 1
    assert await store.revoke_grant(k("grant")) == 5
    assert raw.exists(p("code"), p("at:0"), p("rt:0"), p("rt:1"), p("at:1"), p("grant")) == 0

    await store.save_client(k("client"), {"client_id": "app1", "client_secret": "0123456789abcdef"})
    assert raw.exists(p("client")) == 1
    assert await store.verify_client(k("client"), "0123456789abcdef") is True
    assert (await store.get_client(k("client"))).fields == {"client_id": "app1"}
    assert await store.delete_client(k("client")) is True

    await store.save_state(k("state"), 60, {"nonce": "n"})
    assert raw.exists(p("state")) == 1
    assert await store.consume_state(k("state")) == {"nonce": "n"}

    await store.rate_limit(k("rl:1"), 5, 60)
    await store.rate_limit_all([(k("rl:2"), 5, 60), (k("rl:3"), 5, 60)])
    await store.throttle(k("rl:4"), 1, 1, 1)
    assert raw.exists(p("rl:1"), p("rl:2"), p("rl:3"), p("rl:4")) == 4
    assert raw.exists(k("rl:1"), k("rl:2"), k("rl:3"), k("rl:4")) == 0
    assert await store.wait(k("rl:1"), 0, 0) == 0


def test_prefix_must_not_carry_a_hash_tag(standalone):
    with standalone.client() as client, pytest.raises(ValueError, match="hash tag"):
        OAuthStore(client, prefix="{tenant}:")


async def test_pkce_refused_before_saving(target):
    store, raw = target.store, target.raw
    key = f"oauth:{{{target.tag()}}}:code"
    assert len(AUTHLIB_DEFAULT_VERIFIER) == 30
    for method in ("plain", None):
        fields = code_fields(AUTHLIB_DEFAULT_VERIFIER)
        if method is None:
            del fields["code_challenge_method"]
        else:
            fields["code_challenge_method"] = method
        with pytest.raises(
            InvalidRequest, match=r"43 to 128 characters.*got 30 characters"
        ) as short:
            await store.save_code(key, 600, fields)
        assert AUTHLIB_DEFAULT_VERIFIER not in str(short.value)
    with pytest.raises(InvalidRequest, match="some outside that set"):
        await store.save_code(key, 600, code_fields("+" * 43))
    assert raw.exists(key) == 0
    with pytest.raises(InvalidRequest, match="got 30 characters"):
        s256_challenge(AUTHLIB_DEFAULT_VERIFIER)
    # Valid syntax passes on to the module, which refuses plain by default.
    with pytest.raises(InvalidRequest, match="plain is not allowed"):
        await store.save_code(
            key, 600, {**code_fields(create_pair().verifier), "code_challenge_method": "plain"}
        )
