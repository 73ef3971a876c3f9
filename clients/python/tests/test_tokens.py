"""Codes, tokens, refresh rotation, revocation and introspection, in every variant."""

from __future__ import annotations

import time

import pytest

from redis_oauth import (
    Exchange,
    Introspection,
    InvalidGrant,
    InvalidScope,
    KeyScheme,
    NotReplicated,
    Rotation,
    create_pair,
    new_handle,
    new_secret,
)

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def code_fields(challenge: str = CHALLENGE, **extra: str) -> dict:
    return {
        "client_id": "app1",
        "redirect_uri": "https://app/cb",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


async def test_code_flow(target):
    store, keys = target.store, KeyScheme()
    handle = new_handle()
    code, token = new_secret(handle), new_secret(handle)
    pair = create_pair()
    assert (
        await store.save_code(
            keys.code(code), 600, code_fields(pair.challenge, sub="u42", scope="read write")
        )
        is None
    )

    redeemed = await store.exchange(
        keys.code(code),
        client_id="app1",
        redirect_uri="https://app/cb",
        code_verifier=pair.verifier,
        issue=(keys.access_token(token), 3600),
        fields={"jti": "t-1", "token_type": "Bearer"},
    )
    assert redeemed == Exchange(
        {"client_id": "app1", "redirect_uri": "https://app/cb", "sub": "u42", "scope": "read write"}
    )
    assert redeemed.client_id == "app1"

    info = await store.introspect(keys.access_token(token))
    now = int(time.time())
    assert info.active is True
    assert info.fields == {**redeemed.fields, "jti": "t-1", "token_type": "Bearer"}
    assert info.exp is not None and info.iat is not None
    assert abs(info.exp - (now + 3600)) <= 2 and abs(info.iat - now) <= 2
    assert info.to_dict() == {"active": True, **info.fields, "exp": info.exp, "iat": info.iat}

    # A replay is refused and revokes the token issued from the code.
    with pytest.raises(InvalidGrant) as refused:
        await store.exchange(
            keys.code(code),
            client_id="app1",
            redirect_uri="https://app/cb",
            code_verifier=pair.verifier,
        )
    assert refused.value.description == "authorization code already used"
    assert (refused.value.error, refused.value.status) == ("invalid_grant", 400)
    assert refused.value.to_dict() == {
        "error": "invalid_grant",
        "error_description": "authorization code already used",
    }
    assert await store.introspect(keys.access_token(token)) == Introspection(False)


async def test_exchange_checks_and_burn(target):
    store, tag = target.store, target.tag()
    key = f"oauth:{{{tag}}}:code"
    await store.save_code(key, 600, code_fields())
    with pytest.raises(InvalidGrant, match="code_verifier does not match code_challenge"):
        await store.exchange(
            key, client_id="app1", redirect_uri="https://app/cb", code_verifier="x" * 43
        )
    with pytest.raises(InvalidGrant, match="redirect_uri does not match"):
        await store.exchange(key, client_id="app1", code_verifier=VERIFIER)
    with pytest.raises(
        InvalidGrant, match=r"client_id does not match.*revoked after too many failed attempts"
    ):
        await store.exchange(
            key, client_id="app2", redirect_uri="https://app/cb", code_verifier=VERIFIER
        )
    with pytest.raises(InvalidGrant, match="not found or expired"):
        await store.exchange(
            key, client_id="app1", redirect_uri="https://app/cb", code_verifier=VERIFIER
        )


async def test_refresh_rotation_grace_and_reuse(target):
    store, raw, tag = target.store, target.raw, target.tag()
    k = lambda name: f"oauth:{{{tag}}}:{name}"  # noqa: E731
    await store.save_code(k("code"), 600, code_fields(scope="read write"))
    await store.exchange(
        k("code"),
        client_id="app1",
        redirect_uri="https://app/cb",
        code_verifier=VERIFIER,
        issue=(k("at:0"), 600),
        refresh=(k("rt:0"), 86400),
        grant=k("grant"),
    )
    first = await store.rotate(
        k("rt:0"), k("rt:1"), 86400, issue=(k("at:1"), 600), grace=30, fields={"scope": "read"}
    )
    assert first == Rotation(
        {"client_id": "app1", "redirect_uri": "https://app/cb", "scope": "read"},
        k("rt:1"),
        k("at:1"),
        False,
    )
    # The client retries after a lost response: same successor, nothing created.
    retry = await store.rotate(k("rt:0"), k("rt:2"), 86400, issue=(k("at:2"), 600), grace=30)
    assert (retry.refresh_key, retry.access_key, retry.replayed) == (k("rt:1"), k("at:1"), True)
    assert raw.exists(k("rt:2"), k("at:2")) == 0

    with pytest.raises(InvalidScope, match="scope cannot widen") as wider:
        await store.rotate(k("rt:1"), k("rt:3"), 86400, fields={"scope": "read admin"})
    assert (wider.value.error, wider.value.status) == ("invalid_scope", 400)

    without_access = await store.rotate(k("rt:1"), k("rt:3"), 86400)
    assert without_access.access_key is None and without_access.replayed is False

    # rt:1 was rotated without grace: presenting it again is reuse; the grant goes.
    with pytest.raises(InvalidGrant, match="reused; its grant is revoked"):
        await store.rotate(k("rt:1"), k("rt:4"), 86400)
    assert raw.exists(k("grant"), k("rt:3"), k("at:1"), k("at:0"), k("code")) == 0


async def test_cutoff_revokes_before(target):
    store, tag = target.store, target.tag()
    k = lambda name: f"oauth:{{{tag}}}:{name}"  # noqa: E731
    await store.save_code(k("code"), 600, code_fields())
    await store.exchange(
        k("code"),
        client_id="app1",
        redirect_uri="https://app/cb",
        code_verifier=VERIFIER,
        issue=(k("at:0"), 600),
        refresh=(k("rt:0"), 86400),
        grant=k("grant"),
    )
    assert (await store.introspect(k("at:0"), cutoffs=[k("cutoff")])).active
    cutoff = await store.revoke_before(k("cutoff"))
    assert abs(cutoff - time.time() * 1000) < 5000
    assert await store.introspect(
        k("at:0"), cutoffs=[k("cutoff"), k("cutoff:app1")]
    ) == Introspection(False)
    assert (await store.introspect(k("at:0"))).active  # not checked against the cutoff
    with pytest.raises(InvalidGrant, match="refresh token revoked"):
        await store.rotate(k("rt:0"), k("rt:1"), 86400, cutoffs=[k("cutoff")])


async def test_save_token_revoke_and_revoke_grant(target):
    store, raw, tag = target.store, target.raw, target.tag()
    k = lambda name: f"oauth:{{{tag}}}:{name}"  # noqa: E731
    assert await store.save_token(k("at:1"), 3600, {"sub": "u42", "scope": "read"}) is None
    await store.save_token(k("at:2"), 3600, grant=k("grant"))
    await store.save_token(k("at:3"), 60, {"client_id": "app1"}, grant=k("grant"))
    assert (await store.introspect(k("at:2"))).fields == {}
    assert raw.smembers(k("grant")) == {k("at:2"), k("at:3")}

    # RFC 7009: unknown and repeated keys are not errors.
    assert await store.revoke(k("at:1"), k("never"), k("at:1")) == 1
    assert await store.revoke(k("at:1")) == 0
    assert raw.smembers(k("grant")) == {k("at:2"), k("at:3")}
    assert await store.revoke_grant(k("grant")) == 2
    assert await store.revoke_grant(k("grant")) == 0
    assert raw.exists(k("at:2"), k("at:3"), k("grant")) == 0


async def test_introspect_inactive_answers(target):
    store, tag = target.store, target.tag()
    key = f"oauth:{{{tag}}}:code"
    assert await store.introspect(f"oauth:{{{tag}}}:missing") == Introspection(False)
    await store.save_code(key, 600, code_fields())
    inactive = await store.introspect(key)  # a code is not a token
    assert inactive.active is False and inactive.to_dict() == {"active": False}


async def test_wait_on_the_connection_of_the_write(target):
    store, tag = target.store, target.tag()
    k = lambda name: f"oauth:{{{tag}}}:{name}"  # noqa: E731
    await store.save_code(k("code:1"), 600, code_fields())
    await store.save_code(k("code:2"), 600, code_fields())
    ok = await store.exchange(
        k("code:1"),
        client_id="app1",
        redirect_uri="https://app/cb",
        code_verifier=VERIFIER,
        issue=(k("at:1"), 60),
        wait=(0, 10),
    )
    assert ok.client_id == "app1"
    # No server here has a replica: asking for one must fail loudly, after the write.
    with pytest.raises(NotReplicated) as lonely:
        await store.exchange(
            k("code:2"),
            client_id="app1",
            redirect_uri="https://app/cb",
            code_verifier=VERIFIER,
            issue=(k("at:2"), 60),
            wait=(1, 10),
        )
    assert (lonely.value.acknowledged, lonely.value.status) == (0, 503)
    assert (await store.introspect(k("at:2"))).active
    # An error reply of the command wins over WAIT's.
    with pytest.raises(InvalidGrant, match="already used"):
        await store.exchange(
            k("code:2"),
            client_id="app1",
            redirect_uri="https://app/cb",
            code_verifier=VERIFIER,
            wait=(1, 10),
        )
    assert await store.wait(k("at:1"), 0, 10) == 0
