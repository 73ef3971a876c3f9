"""Cluster routing: by the first key, never COMMAND GETKEYS, MOVED/ASK absorbed."""

from __future__ import annotations

import pytest
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import ConnectionError
from servers import _free_port
from test_tokens import VERIFIER, code_fields


def _owner(cut, raw, key: str) -> int:
    """Index in cut.admins of the master that owns ``key``."""
    port = raw.get_node_from_key(key).port
    return next(i for i, node in enumerate(cut.cluster.nodes) if node.port == port)


def _start_migration(cut, slot: int, source: int, target: int) -> None:
    src, dst = cut.admins[source], cut.admins[target]
    dst.execute_command(
        "CLUSTER", "SETSLOT", slot, "IMPORTING", src.execute_command("CLUSTER", "MYID")
    )
    src.execute_command(
        "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.execute_command("CLUSTER", "MYID")
    )


def _finish_migration(cut, slot: int, source: int, target: int) -> None:
    src, dst = cut.admins[source], cut.admins[target]
    keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    if keys:
        src.execute_command(
            "MIGRATE", "127.0.0.1", cut.cluster.nodes[target].port, "", 0, 5000, "KEYS", *keys
        )
    owner = dst.execute_command("CLUSTER", "MYID")
    others = [a for i, a in enumerate(cut.admins) if i not in (source, target)]
    for admin in [dst, src, *others]:
        admin.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)


async def test_keys_spread_over_every_master(cluster_target):
    store, cut = cluster_target.store, cluster_target.cluster
    marks = cut.mark()
    for _ in range(40):
        tag = cluster_target.tag()
        k = lambda name, tag=tag: f"oauth:{{{tag}}}:{name}"  # noqa: E731
        await store.save_code(k("code"), 600, code_fields())
        await store.exchange(
            k("code"),
            client_id="app1",
            redirect_uri="https://app/cb",
            code_verifier=VERIFIER,
            issue=(k("at"), 60),
            refresh=(k("rt"), 60),
            grant=k("grant"),
        )
        assert (await store.introspect(k("at"))).active
        assert await store.revoke(k("rt"), k("at")) == 2  # at goes with rt, counted once
    seen = cut.lines_since(marks)
    for lines in seen:  # EXCHANGE is no-monitor; INTROSPECT shows where each call went
        assert any('"OAUTH.INTROSPECT"' in line for line in lines)


async def test_wait_goes_to_the_owner_of_the_key(cluster_target):
    store, cut = cluster_target.store, cluster_target.cluster
    key = f"oauth:{{{cluster_target.tag()}}}:at"
    owner = _owner(cut, cluster_target.raw, key)
    marks = cut.mark()
    assert await store.wait(key, 0, 0) == 0
    waits = [sum('"WAIT"' in line for line in lines) for lines in cut.lines_since(marks)]
    assert waits == [1 if i == owner else 0 for i in range(len(waits))]


async def test_moved_after_resharding_is_absorbed(cluster_target):
    store, cut, raw = cluster_target.store, cluster_target.cluster, cluster_target.raw
    cluster_target.expect_redirections = True
    key = f"oauth:state:{{{cluster_target.tag()}}}"
    await store.save_state(key, 300, {"nonce": "n-1"})  # the store's slot map is now in use
    slot, source = raw.keyslot(key), _owner(cut, raw, key)
    target = (source + 1) % len(cut.admins)
    before = cut.redirections()
    _start_migration(cut, slot, source, target)
    _finish_migration(cut, slot, source, target)

    assert await store.consume_state(key) == {"nonce": "n-1"}  # MOVED, refresh, retry
    assert await store.consume_state(key) is None  # the refreshed map routes right
    assert cut.redirections() == {"MOVED": before["MOVED"] + 1, "ASK": before["ASK"]}


async def test_ask_during_migration_is_absorbed(cluster_target):
    store, cut, raw = cluster_target.store, cluster_target.cluster, cluster_target.raw
    cluster_target.expect_redirections = True
    tag = cluster_target.tag()
    staying, arriving = f"oauth:state:{{{tag}}}:1", f"oauth:state:{{{tag}}}:2"
    await store.save_state(staying, 300, {"n": "1"})
    slot, source = raw.keyslot(staying), _owner(cut, raw, staying)
    target = (source + 2) % len(cut.admins)
    before = cut.redirections()
    _start_migration(cut, slot, source, target)
    try:
        # A new key of a migrating slot is created on the target: ASK, then ASKING.
        await store.save_state(arriving, 300, {"n": "2"})
        on_target = cut.admins[target].pipeline(transaction=False)
        assert on_target.execute_command("ASKING").exists(arriving).execute() == [True, 1]
        assert await store.consume_state(staying) == {"n": "1"}  # still on the source
    finally:
        _finish_migration(cut, slot, source, target)
    assert await store.consume_state(arriving) == {"n": "2"}
    assert cut.redirections() == {"MOVED": before["MOVED"] + 1, "ASK": before["ASK"] + 1}


async def test_connection_error_refreshes_the_slot_map(cluster_target):
    """A master that stopped answering (failover): the error is raised, the map refreshed."""
    store, client = cluster_target.store, cluster_target.client
    key = f"oauth:{{{cluster_target.tag()}}}:at"
    await store.save_token(key, 60)
    if cluster_target.mode == "sync":
        dead = redis.cluster.ClusterNode("127.0.0.1", _free_port())
    else:
        dead = redis.asyncio.cluster.ClusterNode("127.0.0.1", _free_port())
    client.nodes_manager.slots_cache[client.keyslot(key)] = [dead]
    with pytest.raises(ConnectionError):
        await store.introspect(key)
    assert (await store.introspect(key)).active


def test_monitor_check_sees_command_getkeys(cluster):
    """The check every Cluster test ends with does detect a COMMAND GETKEYS."""
    marks = cluster.mark()
    cluster.admins[0].execute_command("COMMAND GETKEYS", "OAUTH.INTROSPECT", "oauth:{x}:at")
    seen = cluster.lines_since(marks)
    assert any('"command" "getkeys"' in line.lower() for line in seen[0])
