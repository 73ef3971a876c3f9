"""Start and stop the redis-server processes the tests run against."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
REDIS_OAUTH_MODULE = os.environ.get(
    "REDIS_OAUTH_MODULE",
    str(Path(__file__).resolve().parents[3] / "target" / "release" / "libredis_oauth.so"),
)
SLOTS = 16384


def missing_prerequisites() -> list[str]:
    """What prevents the suite from running at all (an empty list if nothing)."""
    problems = []
    if not (os.path.isfile(REDIS_SERVER) or shutil.which(REDIS_SERVER)):
        problems.append(f"redis-server not found at {REDIS_SERVER} (set REDIS_SERVER)")
    if not os.path.isfile(REDIS_OAUTH_MODULE):
        problems.append(f"module not found at {REDIS_OAUTH_MODULE} (set REDIS_OAUTH_MODULE)")
    return problems


def _free_port() -> int:
    """A free 127.0.0.1 port whose cluster-bus port (+10000) is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class Server:
    """One redis-server process with the module loaded, in its own directory."""

    def __init__(self, workdir: Path, *, cluster: bool = False) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.port = _free_port() if cluster else 0
        self.unixsocket = None if cluster else str(workdir / "s.sock")
        args = [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(workdir / "server.log"),
            "--loadmodule",
            REDIS_OAUTH_MODULE,
        ]
        if self.unixsocket:
            args += ["--unixsocket", self.unixsocket]
        if cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(workdir / "nodes.conf"),
                "--cluster-node-timeout",
                "5000",
            ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait_ready()

    def client(self, **kwargs) -> redis.Redis:
        if self.unixsocket:
            return redis.Redis(unix_socket_path=self.unixsocket, **kwargs)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log()}")
            try:
                with self.client(socket_timeout=1) as c:
                    c.ping()
                return
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer in 10 s:\n{self.log()}")

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


class Cluster:
    """Three masters, no replicas, the slots split in three ranges."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes: list[Server] = []
        try:
            for i in range(masters):
                self.nodes.append(Server(workdir / f"node{i}", cluster=True))
            self._join()
        except BaseException:
            self.stop()
            raise

    def _join(self) -> None:
        clients = [n.client() for n in self.nodes]
        step = SLOTS // len(clients)
        for i, c in enumerate(clients):
            last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * step - 1
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, last)
        for c in clients[1:]:
            c.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
        deadline = time.monotonic() + 30
        while not all(self._settled(c) for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok in 30 s")
            time.sleep(0.1)
        for c in clients:
            c.close()

    def _settled(self, client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER", "INFO")
        if isinstance(info, bytes):
            info = info.decode()
        fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(len(self.nodes))
            and fields.get("cluster_slots_assigned") == str(SLOTS)
        )

    def startup_nodes(self) -> list[tuple]:
        return [("127.0.0.1", n.port) for n in self.nodes]

    def node_for_port(self, port: int) -> Server | None:
        return next((n for n in self.nodes if n.port == port), None)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
