"""Client registrations, single-use state, help, and the protocol actually spoken."""

from __future__ import annotations

import time

import pytest

from redis_oauth import ClientRegistration, InvalidRequest, KeyScheme, WrongType

SECRET = "4f9c1a7e2b8d4e6f0a3c5b7d9e1f2a4c"


async def test_client_registration(target):
    store, raw, keys = target.store, target.raw, KeyScheme()
    key = keys.client(f"app-{target.tag()}")
    expires = await store.save_client(
        key,
        {"client_id": "app1", "client_secret": SECRET, "redirect_uris": "https://app/cb"},
        ttl=86400,
    )
    assert abs(expires - (time.time() + 86400)) <= 2
    assert "client_secret" not in raw.hgetall(key)

    assert await store.verify_client(key, SECRET) is True
    assert await store.verify_client(key, SECRET.encode()) is True
    assert await store.verify_client(key, "wrong-secret") is False
    assert await store.verify_client(keys.client("unknown"), SECRET) is False

    assert await store.get_client(key) == ClientRegistration(
        {"client_id": "app1", "redirect_uris": "https://app/cb"}, expires
    )
    assert await store.get_client(keys.client("unknown")) is None

    # Replaced without a secret: the old one no longer verifies.
    without_ttl = await store.save_client(key, {"client_id": "app1"})
    assert without_ttl > expires
    assert await store.verify_client(key, SECRET) is False

    with pytest.raises(InvalidRequest, match="at least 16 bytes"):
        await store.save_client(key, {"client_id": "app1", "client_secret": "s3cret"})
    assert await store.delete_client(key) is True
    assert await store.delete_client(key) is False


async def test_state_is_single_use(target):
    store, keys = target.store, KeyScheme()
    state, marker = keys.state(f"s-{target.tag()}"), keys.state(f"m-{target.tag()}")
    assert (
        await store.save_state(state, 300, {"redirect_uri": "https://app/cb", "nonce": "n-1"})
        is None
    )
    await store.save_state(marker, 300)
    assert await store.consume_state(state) == {"redirect_uri": "https://app/cb", "nonce": "n-1"}
    assert await store.consume_state(state) is None
    assert await store.consume_state(marker) == {}
    client = keys.client(target.tag())
    await store.save_client(client, {"client_id": "x"})
    with pytest.raises(WrongType, match="does not hold a state record") as wrong:
        await store.consume_state(client)
    assert wrong.value.to_dict() == {"error": "server_error"}


async def test_help(target):
    lines = await target.store.help()
    assert lines[0].startswith("OAUTH.<command>")
    assert any(line.startswith("OAUTH.RATELIMITALL ") for line in lines)


async def test_protocol_is_the_one_asked_for(target):
    """RESP3 must really be spoken, also through Cluster nodes (redis-py 5 included)."""
    client = target.client
    if target.kind == "standalone":
        info = client.execute_command("CLIENT", "INFO")
    elif target.mode == "sync":
        info = client.get_redis_connection(client.get_default_node()).execute_command(
            "CLIENT", "INFO"
        )
    else:
        await client.initialize()
        info = client.get_default_node().execute_command("CLIENT", "INFO")
    if target.mode == "async":
        info = await info
    if isinstance(info, bytes):
        info = info.decode()
    assert f" resp={target.protocol} " in f" {info.strip()} "
