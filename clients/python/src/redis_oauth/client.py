"""The synchronous store, for ``redis.Redis`` and ``redis.cluster.RedisCluster``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
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


def _send(client: Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send commands on one connection; error replies come back as exception objects."""
    if len(commands) == 1:
        try:
            return [client.execute_command(*commands[0])]
        except ResponseError as e:
            return [e]
    pipe = client.pipeline(transaction=False)
    for args in commands:
        pipe.execute_command(*args)
    replies: list[Any] = pipe.execute(raise_on_error=False)
    return replies


def _owner(client: RedisCluster, key: str) -> Redis:
    """The client of the master that owns ``key``'s slot, from the slot map."""
    owner: Redis = client.get_redis_connection(client.get_node_from_key(key))
    return owner


class OAuthStore:
    """The module's commands on a ``Redis`` or ``RedisCluster`` client.

    ``prefix`` is prepended to every key the store sends (and removed from the keys
    it answers). It must not contain ``{`` or ``}``.

    In Cluster, each call goes straight to the master of its first key's slot (every
    key of a call shares that slot), so redis-py never resolves the keys itself
    (no ``COMMAND GETKEYS``). A ``MOVED`` or ``ASK`` reply (resharding, failover)
    refreshes the slot map and retries once; a connection error refreshes it and
    is raised, since the command may have run.
    """

    def __init__(self, client: Redis | RedisCluster, *, prefix: str = "") -> None:
        if not isinstance(client, (Redis, RedisCluster)):
            raise TypeError("OAuthStore needs a sync Redis or RedisCluster; see AsyncOAuthStore")
        self.client = client
        self._commands = Commands(prefix)

    def _run(self, call: Call[T]) -> T:
        return call.finish(self._send(call))

    def _send(self, call: Call[Any]) -> list[Any]:
        client = self.client
        if not isinstance(client, RedisCluster):
            return _send(client, call.commands)
        if call.key is None:
            return _send(client.get_redis_connection(client.get_default_node()), call.commands)
        try:
            replies = _send(_owner(client, call.key), call.commands)
            redirected = redirection(replies[0])
            if redirected is not None:
                kind, host, port = redirected
                if kind == "MOVED":  # resharded or failed over: refresh the slot map
                    client.nodes_manager.initialize()
                    replies = _send(_owner(client, call.key), call.commands)
                else:  # ASK: the slot is migrating and the key is on the importing node
                    node = client.get_node(host=host, port=port)
                    if node is not None:
                        asking = [("ASKING",), *call.commands]
                        replies = _send(client.get_redis_connection(node), asking)[1:]
            return replies
        except (ConnectionError, TimeoutError):
            with suppress(RedisError):  # the node may be gone: a failover
                client.nodes_manager.initialize()
            raise

    def _run_on(self, node: Redis, call: Call[T]) -> T:
        """One call on one node's connection (the operators' commands have no key)."""
        try:
            return call.finish(_send(node, call.commands))
        except (ConnectionError, TimeoutError):
            if isinstance(self.client, RedisCluster):
                with suppress(RedisError):
                    self.client.nodes_manager.initialize()
            raise

    def _node(self, node: ClusterNode | None) -> Redis:
        client = self.client
        if not isinstance(client, RedisCluster):
            if node is not None:
                raise ValueError("node= is for a RedisCluster; this store has one server")
            return client
        if node is None:
            raise ValueError(
                "in Cluster, pass node= (one of client.get_primaries()), or use iter_records"
            )
        conn: Redis = client.get_redis_connection(node)
        return conn

    def _primaries(self) -> list[Redis]:
        """The server, or a connection to every primary of the Cluster."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return [client]
        return [client.get_redis_connection(node) for node in client.get_primaries()]

    # Authorization codes

    def save_code(self, key: str, ttl: int, fields: Fields) -> None:
        """``OAUTH.SAVECODE``: store a code with its PKCE challenge for ``ttl`` seconds.

        A ``plain`` (or absent) ``code_challenge_method`` makes the challenge a
        verifier: its syntax is checked here first (``InvalidRequest``).
        """
        return self._run(self._commands.save_code(key, ttl, fields))

    def exchange(
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
        return self._run(call)

    # Tokens and grants

    def save_token(
        self, key: str, ttl: int, fields: Fields | None = None, *, grant: str | None = None
    ) -> None:
        """``OAUTH.SAVETOKEN``: store a token's fields for ``ttl`` seconds, maybe in a grant."""
        return self._run(self._commands.save_token(key, ttl, fields, grant))

    def introspect(self, key: str, *, cutoffs: Sequence[str] = ()) -> Introspection:
        """``OAUTH.INTROSPECT``: RFC 7662 answer; ``cutoffs`` are revoke-before keys to check."""
        return self._run(self._commands.introspect(key, cutoffs))

    def revoke(self, *keys: str) -> int:
        """``OAUTH.REVOKE``: remove tokens (unknown keys count 0); the number removed."""
        return self._run(self._commands.revoke(keys))

    def rotate(
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
        return self._run(call)

    def revoke_grant(self, grant_key: str) -> int:
        """``OAUTH.REVOKEGRANT``: delete a grant's records and set; the number of records."""
        return self._run(self._commands.revoke_grant(grant_key))

    def revoke_before(self, cutoff_key: str) -> int:
        """``OAUTH.REVOKEBEFORE``: revoke the tokens checked against the key; the cutoff (ms)."""
        return self._run(self._commands.revoke_before(cutoff_key))

    # Clients

    def save_client(self, key: str, fields: Fields, *, ttl: int | None = None) -> int:
        """``OAUTH.SAVECLIENT``: create or replace a registration; ``client_secret_expires_at``."""
        return self._run(self._commands.save_client(key, fields, ttl))

    def verify_client(self, key: str, secret: str | bytes) -> bool:
        """``OAUTH.VERIFYCLIENT``: constant-time secret check (``False`` for unknown clients)."""
        return self._run(self._commands.verify_client(key, secret))

    def get_client(self, key: str) -> ClientRegistration | None:
        """``OAUTH.GETCLIENT``: the registration without secret material, or ``None``."""
        return self._run(self._commands.get_client(key))

    def delete_client(self, key: str) -> bool:
        """``OAUTH.DELETECLIENT``: ``True`` if a registration was removed."""
        return self._run(self._commands.delete_client(key))

    # State and nonces

    def save_state(self, key: str, ttl: int, fields: Fields | None = None) -> None:
        """``OAUTH.SAVESTATE``: store a single-use state for ``ttl`` seconds."""
        return self._run(self._commands.save_state(key, ttl, fields))

    def consume_state(self, key: str) -> dict[str, str] | None:
        """``OAUTH.CONSUMESTATE``: the state's fields, once; ``None`` afterwards."""
        return self._run(self._commands.consume_state(key))

    # Rate limits

    def rate_limit(
        self, key: str, limit: int, window: int, *, cost: int = 1, sliding: bool = False
    ) -> RateLimit:
        """``OAUTH.RATELIMIT``: ``limit`` units per ``window`` seconds, fixed or sliding."""
        return self._run(self._commands.rate_limit(key, limit, window, cost, sliding))

    def rate_limit_all(
        self, limits: Sequence[tuple[str, int, int]], *, cost: int = 1, sliding: bool = False
    ) -> RateLimit:
        """``OAUTH.RATELIMITALL``: several ``(key, limit, window)``, counted all or nothing."""
        return self._run(self._commands.rate_limit_all(limits, cost, sliding))

    def throttle(
        self, key: str, max_burst: int, count: int, period: int, *, cost: int = 1
    ) -> RateLimit:
        """``OAUTH.THROTTLE``: GCRA, ``count`` per ``period`` seconds, ``max_burst + 1`` at once."""
        return self._run(self._commands.throttle(key, max_burst, count, period, cost))

    # Operators' tasks: cursor walks of the keyspace, every primary in Cluster

    def scan(
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
        """``OAUTH.SCAN``: one step of a walk over one node's records; start at ``"0"``.

        Pass ``page.cursor`` back until it is ``"0"``; a step may find nothing while
        the cursor is not ``"0"``. ``count`` keys are looked at per step (1 to 10000,
        default 10); ``match`` is a glob on key names (after the store's prefix,
        which is always matched); ``kind`` one of ``RECORD_KINDS``, ``client_id`` and
        ``subject`` filter by the records' ``client_id`` and ``sub`` fields. Keys
        the connection's ACL user cannot read are skipped. In Cluster, ``node`` is
        the primary to walk (``client.get_primaries()``); ``iter_records`` walks
        them all. A bad option raises ``InvalidRequest``.
        """
        call = self._commands.scan(cursor, match, count, kind, client_id, subject)
        return self._run_on(self._node(node), call)

    def iter_records(
        self,
        *,
        match: str | None = None,
        count: int | None = None,
        kind: str | None = None,
        client_id: str | None = None,
        subject: str | None = None,
    ) -> Iterator[ListedRecord]:
        """Every record passing the filters of ``scan``, on every primary in Cluster.

        A cursor walk, ``count`` keys per call, with ``SCAN``'s guarantees: a record
        present for the whole walk is seen, one written or deleted meanwhile may or
        may not be, and one may be seen twice (a resized table, or in Cluster a slot
        moved during the walk).
        """
        for node in self._primaries():
            cursor = "0"
            while True:
                call = self._commands.scan(cursor, match, count, kind, client_id, subject)
                page = self._run_on(node, call)
                yield from page.records
                cursor = page.cursor
                if cursor == "0":
                    break

    def purge_client(
        self, client_id: str, *, match: str | None = None, count: int | None = None
    ) -> dict[str, int]:
        """``OAUTH.PURGECLIENT`` until done on every primary: delete a client's records.

        Its registration (the record with that ``client_id`` field), codes and their
        tombstones, access and refresh tokens, states and whole grants. Returns how
        many of each of ``RECORD_KINDS`` went, summed over the nodes. ``match`` and
        ``count`` as for ``scan``. Each call is atomic, the whole walk is not: a
        record issued to the client during the walk may survive it, so stop issuing
        first (delete or disable the registration). If a key to delete is one the
        ACL user may not write, that step deletes nothing and ``NoPermission`` is
        raised, with ``purged`` holding what earlier steps deleted.
        """
        total: dict[str, int] = {}
        for node in self._primaries():
            cursor = "0"
            while True:
                call = self._commands.purge_client(client_id, cursor, match, count)
                try:
                    cursor, counts = self._run_on(node, call)
                except NoPermission as e:
                    e.purged = total
                    raise
                add_counts(total, counts)
                if cursor == "0":
                    break
        return total

    def census(self, *, node: ClusterNode | None = None) -> Census:
        """``INFO oauth_census`` of the server, or of every primary (summed), or of ``node``.

        Counts by class and active subjects, as of each node's last background pass:
        see ``Census``. Summed over several nodes, a subject whose tokens sit on two
        nodes counts twice.
        """
        if node is not None or not isinstance(self.client, RedisCluster):
            return self._run_on(self._node(node), self._commands.census())
        return combine_census([self._run_on(n, self._commands.census()) for n in self._primaries()])

    # Other

    def help(self) -> list[str]:
        """``OAUTH.HELP``: one line per command."""
        return self._run(self._commands.help())

    def wait(self, key: str, numreplicas: int, timeout_ms: int) -> int:
        """``WAIT`` on the master that owns ``key``: the replicas that acknowledged.

        ``WAIT`` counts the writes of the connection it is sent on; a pooled client
        may hand this call another connection than the write's. Prefer
        ``exchange(..., wait=...)`` and ``rotate(..., wait=...)``, which use one.
        """
        return self._run(self._commands.wait(key, numreplicas, timeout_ms))
