"""A real redis-server with the module, and gateways served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import uvicorn

from gateway import Settings, create_app

HERE = Path(__file__).resolve().parent.parent
DEFAULT_MODULE = HERE / "../../target/release/libredis_oauth.so"


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A redis-server with the module on a Unix socket in ``tmp``, answering PING."""
    server = shutil.which(os.environ.get("REDIS_SERVER", "redis-server"))
    module = Path(os.environ.get("REDIS_OAUTH_MODULE", DEFAULT_MODULE)).resolve()
    if server is None:
        pytest.fail("redis-server not found: install it or set REDIS_SERVER")
    if not module.is_file():
        pytest.fail(f"module not found: {module} (build it, or set REDIS_OAUTH_MODULE)")
    sock = tmp / "s.sock"
    # refresh-grace-uses 1: one retry of a lost refresh response, the next is reuse.
    args = [
        server,
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--dir",
        str(tmp),
        "--loadmodule",
        str(module),
        "refresh-grace-uses",
        "1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with (tmp / "redis.log").open("w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis(unix_socket_path=str(sock)).ping():
                return proc, sock
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start:\n{(tmp / 'redis.log').read_text()}")
            time.sleep(0.05)


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def redis_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    proc, sock = start_redis(tmp_path_factory.mktemp("redis"))
    yield sock
    stop_redis(proc)


@pytest.fixture(scope="session")
def redis_client(redis_socket: Path) -> redis.Redis:
    """For checks on the stored data only; the gateway goes through the package."""
    return redis.Redis(unix_socket_path=str(redis_socket), decode_responses=True)


@pytest.fixture(scope="session")
def start_gateway(redis_socket: Path) -> Iterator[Callable[..., str]]:
    """Serves a gateway with the given settings over HTTP; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> str:
        settings = dataclasses.replace(Settings(redis_url=f"unix://{redis_socket}"), **overrides)
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        servers.append((server, thread))
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def gateway(start_gateway: Callable[..., str]) -> str:
    """The gateway most tests use: no upstream exp (the fallback TTL), small per-subject limits."""
    return start_gateway(access_ttl=600, rate_limit_ip=10_000, rate_limit_subject=8)
