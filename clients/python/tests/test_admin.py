"""The operators' tasks: listing records, purging a client, the census, ACL limits.

Each test writes under a store prefix of its own, so that a walk with no filter
sees exactly its records (the servers are shared by the whole session). In Cluster
every task walks every primary; the fixtures check that no MOVED, ASK or COMMAND
GETKEYS happened.
"""

from __future__ import annotations

import inspect
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from conftest import SyncAsAsync
from test_tokens import VERIFIER, code_fields

from redis_oauth import (
    RECORD_KINDS,
    AsyncOAuthStore,
    Census,
    InvalidGrant,
    InvalidRequest,
    KeyScheme,
    ListedRecord,
    NoPermission,
    OAuthStore,
    new_handle,
    new_secret,
)

keys = KeyScheme()
REDIRECT = "https://app/cb"


@dataclass
class Issued:
    """What ``issue`` wrote for one client: keys by kind (without the prefix), by grant."""

    client_id: str
    subjects: list[str]
    by_kind: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in RECORD_KINDS})
    grant_of_subject: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, key: str, subject: str | None = None) -> None:
        self.by_kind[kind].add(key)
        if subject is not None:
            self.grant_of_subject.setdefault(subject, set()).add(key)

    def counts(self) -> dict[str, int]:
        return {kind: len(found) for kind, found in self.by_kind.items()}


async def issue(store: Any, client_id: str) -> Issued:
    """A registration, two redeemed grants (the first rotated once), a pending code, a state.

    13 records: code 1, redeemed_code 2, token 3, refresh 2, rotated_refresh 1,
    client 1, state 1, grant 2; live tokens of two subjects.
    """
    subjects = [f"{client_id}-u{i}" for i in range(3)]
    out = Issued(client_id, subjects[:2])
    registration = keys.client(client_id)
    await store.save_client(registration, {"client_id": client_id, "client_name": "app"}, ttl=3600)
    out.add("client", registration)
    refresh_of: list[tuple[str, str]] = []
    for sub in subjects[:2]:
        handle = new_handle()
        code, access, refresh = new_secret(handle), new_secret(handle), new_secret(handle)
        await store.save_code(keys.code(code), 600, code_fields(client_id=client_id, sub=sub))
        await store.exchange(
            keys.code(code),
            client_id=client_id,
            redirect_uri=REDIRECT,
            code_verifier=VERIFIER,
            issue=(keys.access_token(access), 600),
            refresh=(keys.refresh_token(refresh), 900),
            grant=keys.grant(handle),
        )
        out.add("redeemed_code", keys.code(code))  # a tombstone: no client_id, no sub
        out.add("token", keys.access_token(access), sub)
        out.add("refresh", keys.refresh_token(refresh), sub)
        out.add("grant", keys.grant(handle), sub)
        refresh_of.append((handle, refresh))
    handle, old = refresh_of[0]
    successor, access = new_secret(handle), new_secret(handle)
    await store.rotate(
        keys.refresh_token(old),
        keys.refresh_token(successor),
        900,
        issue=(keys.access_token(access), 600),
    )
    out.by_kind["refresh"].discard(keys.refresh_token(old))
    out.grant_of_subject[subjects[0]].discard(keys.refresh_token(old))
    out.add("rotated_refresh", keys.refresh_token(old))  # a tombstone too
    out.add("refresh", keys.refresh_token(successor), subjects[0])
    out.add("token", keys.access_token(access), subjects[0])
    pending = new_secret(new_handle())
    await store.save_code(
        keys.code(pending), 600, code_fields(client_id=client_id, sub=subjects[2])
    )
    out.add("code", keys.code(pending), subjects[2])
    state = keys.state(f"state-{client_id}")
    await store.save_state(state, 300, {"client_id": client_id})
    out.add("state", state)
    return out


async def listing(store: Any, **filters: Any) -> list[ListedRecord]:
    """``iter_records`` of either store: an iterator (sync) or an async iterator."""
    found = store.iter_records(**filters)
    if inspect.iscoroutine(found):  # the sync store behind SyncAsAsync
        found = await found
    if hasattr(found, "__aiter__"):
        return [record async for record in found]
    return list(found)


def by_kind(records: list[ListedRecord]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for record in records:
        out.setdefault(record.kind, set()).add(record.key)
    return out


def nonempty(expected: dict[str, set[str]]) -> dict[str, set[str]]:
    return {kind: found for kind, found in expected.items() if found}


async def primaries(target: Any) -> list[Any]:
    """``[None]`` for a server; the Cluster's primaries otherwise (for ``node=``)."""
    if target.kind == "standalone":
        return [None]
    if target.mode == "async":
        await target.client.initialize()
    return list(target.client.get_primaries())


def handle_in(key: str) -> str:
    """The grant handle of a key made by ``KeyScheme``: ``oauth:{g:<handle>}:...``."""
    return key.split("{g:", 1)[1].split("}", 1)[0]


def prefixed(target: Any) -> Any:
    return target.make_store(f"adm{secrets.token_hex(4)}:")


async def test_filters_match_the_data(target):
    store = prefixed(target)
    a, b = await issue(store, f"a-{target.tag()}"), await issue(store, f"b-{target.tag()}")
    everything = {k: a.by_kind[k] | b.by_kind[k] for k in RECORD_KINDS}
    assert by_kind(await listing(store, count=100)) == everything

    # Tombstones (a redeemed code, a rotated refresh token) keep no client_id nor sub.
    with_client = {
        k: v for k, v in a.by_kind.items() if k not in ("redeemed_code", "rotated_refresh")
    }
    assert by_kind(await listing(store, client_id=a.client_id)) == with_client
    assert by_kind(await listing(store, kind="token", client_id=a.client_id, count=7)) == {
        "token": a.by_kind["token"]
    }
    first = a.subjects[0]
    assert by_kind(await listing(store, subject=first)) == {
        "token": {k for k in a.grant_of_subject[first] if ":at:" in k},
        "refresh": {k for k in a.grant_of_subject[first] if ":rt:" in k},
        "grant": {k for k in a.grant_of_subject[first] if k.endswith(":grant")},
    }
    assert await listing(store, subject=first, client_id=b.client_id) == []
    assert by_kind(await listing(store, kind="rotated_refresh")) == {
        "rotated_refresh": a.by_kind["rotated_refresh"] | b.by_kind["rotated_refresh"]
    }
    # MATCH is a glob after the prefix: only the registrations.
    assert by_kind(await listing(store, match="oauth:client:*")) == {
        "client": a.by_kind["client"] | b.by_kind["client"]
    }

    now = time.time() * 1000
    records = {r.key: r for r in await listing(store, client_id=a.client_id)}
    token = records[sorted(a.by_kind["token"] & a.grant_of_subject[a.subjects[1]])[0]]
    assert token.fields == {
        "client_id": a.client_id,
        "redirect_uri": REDIRECT,
        "sub": a.subjects[1],
    }
    assert (token.client_id, token.subject) == (a.client_id, a.subjects[1])
    assert token.expires_at_ms is not None and abs(token.expires_at_ms - (now + 600_000)) < 5000
    assert token.created_ms is not None and abs(token.created_ms - now) < 5000
    registration = records[keys.client(a.client_id)]
    assert registration.fields == {"client_id": a.client_id, "client_name": "app"}  # no secret
    grant = records[sorted(a.by_kind["grant"] & a.grant_of_subject[a.subjects[1]])[0]]
    assert grant.fields == {"members": "3", "client_id": a.client_id, "sub": a.subjects[1]}
    assert grant.created_ms is None
    state = records[keys.state(f"state-{a.client_id}")]
    assert state.fields == {"client_id": a.client_id}


async def test_scan_steps_cover_every_node(target):
    store = prefixed(target)
    a = await issue(store, f"a-{target.tag()}")
    seen: list[ListedRecord] = []
    for node in await primaries(target):
        cursor, steps = "0", 0
        while True:
            page = await store.scan(cursor, count=3, node=node)
            seen += page.records
            cursor, steps = page.cursor, steps + 1
            if cursor == "0":
                break
        assert steps > 1  # COUNT 3 of a shared keyspace: many steps, some of them empty
    assert by_kind(seen) == nonempty(a.by_kind)
    assert len(seen) == sum(a.counts().values())


async def test_purge_client_counts_and_spares_the_other_client(target):
    store = prefixed(target)
    a, b = await issue(store, f"a-{target.tag()}"), await issue(store, f"b-{target.tag()}")
    b_before = await listing(store, client_id=b.client_id)

    assert await store.purge_client(a.client_id, count=50) == a.counts()
    assert await store.purge_client(a.client_id) == dict.fromkeys(RECORD_KINDS, 0)
    assert by_kind(await listing(store)) == nonempty(b.by_kind)
    assert sorted(await listing(store, client_id=b.client_id), key=lambda r: r.key) == sorted(
        b_before, key=lambda r: r.key
    )

    # What the purged client held no longer works; the other client's still does.
    for key in a.by_kind["token"]:
        assert (await store.introspect(key)).active is False
    purged = sorted(a.by_kind["refresh"])[0]
    with pytest.raises(InvalidGrant):
        await store.rotate(purged, keys.refresh_token(new_secret(handle_in(purged))), 60)
    assert await store.get_client(keys.client(a.client_id)) is None
    for key in b.by_kind["token"]:
        assert (await store.introspect(key)).active is True
    old = sorted(b.by_kind["refresh"])[0]
    rotated = await store.rotate(old, keys.refresh_token(new_secret(handle_in(old))), 60)
    assert rotated.fields["client_id"] == b.client_id


async def fresh_census(target: Any, store: Any) -> Census:
    """The census once every node has finished two passes since now (one may be running)."""
    nodes = await primaries(target)
    start = [(await store.census(node=n)).passes for n in nodes]
    deadline = time.monotonic() + 20
    for node, passes in zip(nodes, start):
        while (await store.census(node=node)).passes < passes + 2:
            assert time.monotonic() < deadline, "the census did not finish two passes"
            time.sleep(0.02)
    census: Census = await store.census()
    return census


async def test_census_counts_the_data(target):
    admins = [target.raw] if target.cluster is None else target.cluster.admins
    for admin in admins:
        admin.flushall()  # the census counts the whole keyspace
    store = target.store
    a, b = await issue(store, f"a-{target.tag()}"), await issue(store, f"b-{target.tag()}")
    census = await fresh_census(target, store)
    assert census.records == {k: a.counts()[k] + b.counts()[k] for k in RECORD_KINDS}
    assert census["token"] == 6
    # Each subject's tokens share one grant's hash tag, so one node: no double count.
    assert census.subjects == 4
    assert census.keys == 26
    assert census.nodes == (1 if target.cluster is None else 3)
    assert census.passes >= 2 and census.age_ms is not None and census.duration_ms is not None

    await store.purge_client(a.client_id)
    census = await fresh_census(target, store)
    assert census.records == b.counts() and census.subjects == 2


def client_as(target: Any, username: str, password: str) -> Any:
    """A client of the target's kind, protocol and mode, logged in as ``username``."""
    options = {
        "protocol": target.protocol,
        "decode_responses": target.protocol == 3,
        "username": username,
        "password": password,
    }
    if target.cluster is not None:
        nodes = target.cluster.cluster.startup_nodes()
        if target.mode == "sync":
            return redis.cluster.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in nodes], **options
            )
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in nodes], **options
        )
    socket_path = target.raw.connection_pool.connection_kwargs["path"]
    if target.mode == "sync":
        return redis.Redis(unix_socket_path=socket_path, **options)
    return redis.asyncio.Redis(unix_socket_path=socket_path, **options)


async def test_acl_user_sees_and_purges_only_its_keys(target):
    prefix = f"acl{secrets.token_hex(4)}:"
    user, password = f"ops-{secrets.token_hex(4)}", secrets.token_hex(16)
    admins = [target.raw] if target.cluster is None else target.cluster.admins
    for admin in admins:  # full access to mine:*, read-only ro:*, nothing else
        admin.execute_command(
            "ACL",
            "SETUSER",
            user,
            "on",
            f">{password}",
            "+@all",
            f"~{prefix}mine:*",
            f"%R~{prefix}ro:*",
        )
    client = client_as(target, user, password)
    try:
        if target.mode == "sync":
            restricted: Any = SyncAsAsync(OAuthStore(client, prefix=prefix))
        else:
            restricted = AsyncOAuthStore(client, prefix=prefix)
        admin_store = target.make_store(prefix)
        tag = target.tag()
        mine, readonly, hidden = (f"{ns}:{{{tag}}}:at" for ns in ("mine", "ro", "other"))
        for key in (mine, readonly, hidden):
            await admin_store.save_token(key, 600, {"client_id": "c1", "sub": "u1"})

        assert {r.key for r in await listing(restricted)} == {mine, readonly}
        assert {r.key for r in await listing(admin_store)} == {mine, readonly, hidden}

        # A key it may read but not delete: that step deletes nothing.
        with pytest.raises(NoPermission, match="nothing was deleted") as refused:
            await restricted.purge_client("c1", count=1000)
        assert refused.value.purged is not None and sum(refused.value.purged.values()) == 0
        assert isinstance(refused.value, redis.exceptions.NoPermissionError)
        assert {r.key for r in await listing(admin_store)} == {mine, readonly, hidden}

        # Without the read-only key, the user purges what it sees and skips the rest.
        await admin_store.revoke(readonly)
        assert (await restricted.purge_client("c1"))["token"] == 1
        assert {r.key for r in await listing(admin_store)} == {hidden}
    finally:
        if target.mode == "sync":
            client.close()
        else:
            await client.aclose()
        for admin in admins:
            admin.acl_deluser(user)


async def test_bad_options_are_refused(target):
    store = target.store
    with pytest.raises(InvalidRequest, match="KIND must be one of"):
        await listing(store, kind="tokens")
    with pytest.raises(InvalidRequest, match="COUNT must be an integer from 1 to 10000"):
        await listing(store, count=0)
    with pytest.raises(InvalidRequest, match="cursor must be 0"):
        await store.scan("-1", node=(await primaries(target))[0])
    if target.cluster is None:
        with pytest.raises(ValueError, match="node= is for a RedisCluster"):
            await store.scan(node=object())
    else:
        with pytest.raises(ValueError, match="pass node="):
            await store.scan()
    with pytest.raises(ValueError, match="needs a client_id"):
        await store.purge_client("")
