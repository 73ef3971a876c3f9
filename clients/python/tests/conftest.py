"""Fixtures: a standalone server and a 3-master Cluster, both with the module loaded.

Every test that takes ``target`` runs in 8 variants: standalone or Cluster, RESP2 or
RESP3, sync or asyncio (``decode_responses`` alternates with the protocol). ``async
def`` tests are run by the ``pytest_pyfunc_call`` hook below, in a fresh event loop.

In Cluster, a MONITOR connection on each master records every command; after each
test the fixture checks that no ``COMMAND GETKEYS`` was sent and that no master
answered ``MOVED`` or ``ASK`` (``INFO errorstats``), unless the test expects one.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from servers import REDIS_OAUTH_MODULE, REDIS_SERVER, Cluster, Server, missing_prerequisites

from redis_oauth import AsyncOAuthStore, OAuthStore


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = missing_prerequisites()
    if problems:
        pytest.exit("cannot run the tests: " + "; ".join(problems), returncode=3)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"redis-py {redis.__version__}; server {REDIS_SERVER}; module {REDIS_OAUTH_MODULE}"]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests, then close the target's clients in the same loop."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in inspect.signature(function).parameters}

    async def main() -> None:
        try:
            await function(**kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Target):
                    await value.aclose()

    asyncio.run(main())
    return True


class Monitor:
    """A MONITOR connection whose lines are collected by a thread."""

    def __init__(self, port: int) -> None:
        self.lines: list[str] = []
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.sendall(b"MONITOR\r\n")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\r\n")
            self.lines.extend(line.decode("utf-8", "replace") for line in complete)

    def close(self) -> None:
        self._sock.close()


class ClusterUnderTest:
    def __init__(self, workdir: Path) -> None:
        self.cluster = Cluster(workdir)
        self.admins = [node.client(decode_responses=True) for node in self.cluster.nodes]
        self.monitors = [Monitor(node.port) for node in self.cluster.nodes]

    def mark(self) -> list[int]:
        """A position in each monitor's log, after everything sent so far arrived."""
        token = secrets.token_hex(8)
        for admin in self.admins:
            admin.echo(token)
        deadline = time.monotonic() + 5
        while not all(any(token in line for line in m.lines[-50:]) for m in self.monitors):
            assert time.monotonic() < deadline, "MONITOR lines did not arrive"
            time.sleep(0.01)
        return [len(m.lines) for m in self.monitors]

    def lines_since(self, marks: list[int]) -> list[list[str]]:
        end = self.mark()
        return [m.lines[start:stop] for m, start, stop in zip(self.monitors, marks, end)]

    def redirections(self) -> dict[str, int]:
        """The MOVED and ASK replies each master has sent so far, summed."""
        total = {"MOVED": 0, "ASK": 0}
        for admin in self.admins:
            stats = admin.info("errorstats")
            for code in total:
                total[code] += stats.get(f"errorstat_{code}", {}).get("count", 0)
        return total

    def close(self) -> None:
        for m in self.monitors:
            m.close()
        for admin in self.admins:
            admin.close()
        self.cluster.stop()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="redis-oauth-py-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def standalone(workdir: Path) -> Iterator[Server]:
    server = Server(workdir / "standalone")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster(workdir: Path) -> Iterator[ClusterUnderTest]:
    under_test = ClusterUnderTest(workdir / "cluster")
    yield under_test
    under_test.close()


class SyncAsAsync:
    """Lets one ``async def`` test body drive the sync store: same calls, awaited."""

    def __init__(self, store: OAuthStore) -> None:
        self.sync = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


_tags = itertools.count()


class Target:
    """One variant: the store under test and a sync client to look at the data."""

    def __init__(self, kind: str, protocol: int, mode: str, server: Any, prefix: str = "") -> None:
        self.kind, self.protocol, self.mode = kind, protocol, mode
        self.cluster: ClusterUnderTest | None = server if kind == "cluster" else None
        self.expect_redirections = False
        options = {"protocol": protocol, "decode_responses": protocol == 3}
        self.raw: Any
        if self.cluster is not None:
            nodes = self.cluster.cluster.startup_nodes()
            self.raw = redis.cluster.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in nodes],
                decode_responses=True,
            )
            if mode == "sync":
                self.client: Any = redis.cluster.RedisCluster(
                    startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in nodes], **options
                )
            else:
                self.client = redis.asyncio.cluster.RedisCluster(
                    startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in nodes],
                    **options,
                )
        else:
            self.raw = server.client(decode_responses=True)
            if mode == "sync":
                self.client = server.client(**options)
            else:
                self.client = redis.asyncio.Redis(unix_socket_path=server.unixsocket, **options)
        self.store = self.make_store(prefix)

    def make_store(self, prefix: str = "") -> Any:
        if self.mode == "sync":
            return SyncAsAsync(OAuthStore(self.client, prefix=prefix))
        return AsyncOAuthStore(self.client, prefix=prefix)

    def tag(self) -> str:
        """A fresh hash tag: keys spread over the slots, hence over the masters."""
        return f"t{next(_tags)}{secrets.token_hex(4)}"

    async def aclose(self) -> None:
        if self.mode == "async":
            await self.client.aclose()

    def close(self) -> None:
        if self.mode == "sync":
            self.client.close()
        self.raw.close()


VARIANTS = [
    (kind, protocol, mode)
    for kind in ("standalone", "cluster")
    for protocol in (2, 3)
    for mode in ("sync", "async")
]
CLUSTER_VARIANTS = [v for v in VARIANTS if v[0] == "cluster"]


def _ids(variants: list[tuple]) -> list[str]:
    return [f"{kind}-resp{protocol}-{mode}" for kind, protocol, mode in variants]


def _target(request: pytest.FixtureRequest) -> Iterator[Target]:
    kind, protocol, mode = request.param
    t = Target(kind, protocol, mode, request.getfixturevalue(kind))
    if t.cluster is None:
        yield t
        t.close()
        return
    marks = t.cluster.mark()
    before = t.cluster.redirections()
    yield t
    t.close()
    seen = t.cluster.lines_since(marks)
    getkeys = [line for lines in seen for line in lines if '"command" "getkeys"' in line.lower()]
    assert not getkeys, f"COMMAND GETKEYS was sent: {getkeys[:3]}"
    if not t.expect_redirections:
        assert t.cluster.redirections() == before, "a master answered MOVED or ASK"


@pytest.fixture(params=VARIANTS, ids=_ids(VARIANTS))
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield from _target(request)


@pytest.fixture(params=CLUSTER_VARIANTS, ids=_ids(CLUSTER_VARIANTS))
def cluster_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield from _target(request)
