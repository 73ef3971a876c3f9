"""The asyncio store, for ``redis.asyncio.Redis`` and ``redis.asyncio.cluster.RedisCluster``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import (
    ConnectionError,
    RedisError,
    ResponseError,
    TimeoutError,
)

from ._commands import Call, Commands, Fields, Wait, add_counts, combine_census, redirection
from .errors import NoPermission
from .results import (
    Census,
    ClientRegistration,
    Exchange,
    Introspection,
    ListedRecord,
    RateLimit,
    Rotation,
    ScanPage,
)

T = TypeVar("T")


async def _send(client: Redis | ClusterNode, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send commands on one connection; error replies come back as exception objects."""
    if len(commands) == 1:
        try:
            return [await client.execute_command(*commands[0])]
        except ResponseError as e:
            return [e]
    if isinstance(client, ClusterNode):
        queued = [PipelineCommand(i, *args) for i, args in enumerate(commands)]
        await client.execute_pipeline(queued)
        return [command.result for command in queued]
    pipe = client.pipeline(transaction=False)
    for args in commands:
        pipe.execute_command(*args)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies


def _owner(client: RedisCluster, key: str) -> ClusterNode:
    """The master that owns ``key``'s slot, from the slot map."""
    return cast(ClusterNode, client.get_node_from_key(key))  # None only for replica=True


class AsyncOAuthStore:
    """The module's commands on an asyncio ``Redis`` or ``RedisCluster`` client.

    Same methods, arguments and routing as ``OAuthStore``, as coroutines.
    """

    def __init__(self, client: Redis | RedisCluster, *, prefix: str = "") -> None:
        if not isinstance(client, (Redis, RedisCluster)):
            raise TypeError(
                "AsyncOAuthStore needs an asyncio Redis or RedisCluster; see OAuthStore"
            )
        self.client = client
        self._commands = Commands(prefix)

    async def _run(self, call: Call[T]) -> T:
        return call.finish(await self._send(call))

    async def _send(self, call: Call[Any]) -> list[Any]:
        client = self.client
        if not isinstance(client, RedisCluster):
            return await _send(client, call.commands)
        await client.initialize()
        if call.key is None:
            return await _send(client.get_default_node(), call.commands)
        try:
            replies = await _send(_owner(client, call.key), call.commands)
            redirected = redirection(replies[0])
            if redirected is not None:
                kind, host, port = redirected
                if kind == "MOVED":  # resharded or failed over: refresh the slot map
                    await client.nodes_manager.initialize()
                    replies = await _send(_owner(client, call.key), call.commands)
                else:  # ASK: the slot is migrating and the key is on the importing node
                    node = client.get_node(host=host, port=port)
                    if node is not None:
                        replies = (await _send(node, [("ASKING",), *call.commands]))[1:]
            return replies
        except (ConnectionError, TimeoutError):
            with suppress(RedisError):  # the node may be gone: a failover
                await client.nodes_manager.initialize()
            raise

    async def _run_on(self, node: Redis | ClusterNode, call: Call[T]) -> T:
        """One call on one node (the operators' commands have no key)."""
        try:
            return call.finish(await _send(node, call.commands))
        except (ConnectionError, TimeoutError):
            if isinstance(self.client, RedisCluster):
                with suppress(RedisError):
                    await self.client.nodes_manager.initialize()
            raise

    async def _node(self, node: ClusterNode | None) -> Redis | ClusterNode:
        client = self.client
        if not isinstance(client, RedisCluster):
            if node is not None:
                raise ValueError("node= is for a RedisCluster; this store has one server")
            return client
        if node is None:
            raise ValueError(
                "in Cluster, pass node= (one of client.get_primaries()), or use iter_records"
            )
        await client.initialize()
        return node

    async def _primaries(self) -> list[Redis | ClusterNode]:
        """The server, or every primary of the Cluster."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return [client]
        await client.initialize()
        return list(client.get_primaries())

    # Authorization codes

    async def save_code(self, key: str, ttl: int, fields: Fields) -> None:
        """``OAUTH.SAVECODE``: store a code with its PKCE challenge for ``ttl`` seconds.

        A ``plain`` (or absent) ``code_challenge_method`` makes the challenge a
        verifier: its syntax is checked here first (``InvalidRequest``).
        """
        return await self._run(self._commands.save_code(key, ttl, fields))

    async def exchange(
        self,
        key: str,
        *,
        client_id: str,
        redirect_uri: str | None = None,
        code_verifier: str | None = None,
        issue: tuple[str, int] | None = None,
        refresh: tuple[str, int] | None = None,
        grant: str | None = None,
        fields: Fields | None = None,
        wait: Wait | None = None,
    ) -> Exchange:
        """``OAUTH.EXCHANGE``: redeem a code once; optionally create its tokens and grant.

        ``issue=(token_key, ttl)``, ``refresh=(refresh_key, ttl)`` (needs ``grant``),
        ``grant=grant_key``, ``fields`` for the tokens. ``None`` for ``redirect_uri``
        or ``code_verifier`` sends ``""`` (none). ``wait=(numreplicas, timeout_ms)``
        sends ``WAIT`` on the same connection and raises ``NotReplicated`` if fewer
        replicas acknowledged.
        """
        call = self._commands.exchange(
            key, client_id, redirect_uri, code_verifier, issue, refresh, grant, fields, wait
        )
        return await self._run(call)

    # Tokens and grants

    async def save_token(
        self, key: str, ttl: int, fields: Fields | None = None, *, grant: str | None = None
    ) -> None:
        """``OAUTH.SAVETOKEN``: store a token's fields for ``ttl`` seconds, maybe in a grant."""
        return await self._run(self._commands.save_token(key, ttl, fields, grant))

    async def introspect(self, key: str, *, cutoffs: Sequence[str] = ()) -> Introspection:
        """``OAUTH.INTROSPECT``: RFC 7662 answer; ``cutoffs`` are revoke-before keys to check."""
        return await self._run(self._commands.introspect(key, cutoffs))

    async def revoke(self, *keys: str) -> int:
        """``OAUTH.REVOKE``: remove tokens (unknown keys count 0); the number removed."""
        return await self._run(self._commands.revoke(keys))

    async def rotate(
        self,
        old_key: str,
        new_key: str,
        ttl: int,
        *,
        issue: tuple[str, int] | None = None,
        grace: int | None = None,
        cutoffs: Sequence[str] = (),
        fields: Fields | None = None,
        wait: Wait | None = None,
    ) -> Rotation:
        """``OAUTH.ROTATE``: rotate a refresh token into ``new_key`` (``ttl`` seconds).

        ``issue=(token_key, ttl)`` also creates an access token; ``grace`` seconds
        allow retries of a lost response; ``cutoffs`` are revoke-before keys.
        """
        call = self._commands.rotate(old_key, new_key, ttl, issue, grace, cutoffs, fields, wait)
        return await self._run(call)

    async def revoke_grant(self, grant_key: str) -> int:
        """``OAUTH.REVOKEGRANT``: delete a grant's records and set; the number of records."""
        return await self._run(self._commands.revoke_grant(grant_key))

    async def revoke_before(self, cutoff_key: str) -> int:
        """``OAUTH.REVOKEBEFORE``: revoke the tokens checked against the key; the cutoff (ms)."""
        return await self._run(self._commands.revoke_before(cutoff_key))

    # Clients

    async def save_client(self, key: str, fields: Fields, *, ttl: int | None = None) -> int:
        """``OAUTH.SAVECLIENT``: create or replace a registration; ``client_secret_expires_at``."""
        return await self._run(self._commands.save_client(key, fields, ttl))

    async def verify_client(self, key: str, secret: str | bytes) -> bool:
        """``OAUTH.VERIFYCLIENT``: constant-time secret check (``False`` for unknown clients)."""
        return await self._run(self._commands.verify_client(key, secret))

    async def get_client(self, key: str) -> ClientRegistration | None:
        """``OAUTH.GETCLIENT``: the registration without secret material, or ``None``."""
        return await self._run(self._commands.get_client(key))

    async def delete_client(self, key: str) -> bool:
        """``OAUTH.DELETECLIENT``: ``True`` if a registration was removed."""
        return await self._run(self._commands.delete_client(key))

    # State and nonces

    async def save_state(self, key: str, ttl: int, fields: Fields | None = None) -> None:
        """``OAUTH.SAVESTATE``: store a single-use state for ``ttl`` seconds."""
        return await self._run(self._commands.save_state(key, ttl, fields))

    async def consume_state(self, key: str) -> dict[str, str] | None:
        """``OAUTH.CONSUMESTATE``: the state's fields, once; ``None`` afterwards."""
        return await self._run(self._commands.consume_state(key))

    # Rate limits

    async def rate_limit(
        self, key: str, limit: int, window: int, *, cost: int = 1, sliding: bool = False
    ) -> RateLimit:
        """``OAUTH.RATELIMIT``: ``limit`` units per ``window`` seconds, fixed or sliding."""
        return await self._run(self._commands.rate_limit(key, limit, window, cost, sliding))

    async def rate_limit_all(
        self, limits: Sequence[tuple[str, int, int]], *, cost: int = 1, sliding: bool = False
    ) -> RateLimit:
        """``OAUTH.RATELIMITALL``: several ``(key, limit, window)``, counted all or nothing."""
        return await self._run(self._commands.rate_limit_all(limits, cost, sliding))

    async def throttle(
        self, key: str, max_burst: int, count: int, period: int, *, cost: int = 1
    ) -> RateLimit:
        """``OAUTH.THROTTLE``: GCRA, ``count`` per ``period`` seconds, ``max_burst + 1`` at once."""
        return await self._run(self._commands.throttle(key, max_burst, count, period, cost))

    # Operators' tasks: cursor walks of the keyspace, every primary in Cluster

    async def scan(
        self,
        cursor: str | int = "0",
        *,
        match: str | None = None,
        count: int | None = None,
        kind: str | None = None,
        client_id: str | None = None,
        subject: str | None = None,
        node: ClusterNode | None = None,
    ) -> ScanPage:
        """``OAUTH.SCAN``: one step of a walk over one node's records (see ``OAuthStore.scan``)."""
        call = self._commands.scan(cursor, match, count, kind, client_id, subject)
        return await self._run_on(await self._node(node), call)

    async def iter_records(
        self,
        *,
        match: str | None = None,
        count: int | None = None,
        kind: str | None = None,
        client_id: str | None = None,
        subject: str | None = None,
    ) -> AsyncIterator[ListedRecord]:
        """Every record passing the filters, on every primary: ``async for record in ...``."""
        for node in await self._primaries():
            cursor = "0"
            while True:
                call = self._commands.scan(cursor, match, count, kind, client_id, subject)
                page = await self._run_on(node, call)
                for record in page.records:
                    yield record
                cursor = page.cursor
                if cursor == "0":
                    break

    async def purge_client(
        self, client_id: str, *, match: str | None = None, count: int | None = None
    ) -> dict[str, int]:
        """``OAUTH.PURGECLIENT`` until done on every primary (see ``OAuthStore.purge_client``)."""
        total: dict[str, int] = {}
        for node in await self._primaries():
            cursor = "0"
            while True:
                call = self._commands.purge_client(client_id, cursor, match, count)
                try:
                    cursor, counts = await self._run_on(node, call)
                except NoPermission as e:
                    e.purged = total
                    raise
                add_counts(total, counts)
                if cursor == "0":
                    break
        return total

    async def census(self, *, node: ClusterNode | None = None) -> Census:
        """``INFO oauth_census``, summed over every primary (see ``OAuthStore.census``)."""
        if node is not None or not isinstance(self.client, RedisCluster):
            return await self._run_on(await self._node(node), self._commands.census())
        return combine_census(
            [await self._run_on(n, self._commands.census()) for n in await self._primaries()]
        )

    # Other

    async def help(self) -> list[str]:
        """``OAUTH.HELP``: one line per command."""
        return await self._run(self._commands.help())

    async def wait(self, key: str, numreplicas: int, timeout_ms: int) -> int:
        """``WAIT`` on the master that owns ``key``: the replicas that acknowledged.

        ``WAIT`` counts the writes of the connection it is sent on; a pooled client
        may hand this call another connection than the write's. Prefer
        ``exchange(..., wait=...)`` and ``rotate(..., wait=...)``, which use one.
        """
        return await self._run(self._commands.wait(key, numreplicas, timeout_ms))
