"""The operators' admin CLI (``python -m gateway.admin``), run as an operator would.

Real flows by two registered clients (authlib over HTTP), then each task, its output
checked against what the flows created. These tests have a redis-server of their
own, emptied before each test, since the census counts the whole keyspace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from conftest import HERE, start_redis, stop_redis
from redis_oauth import KeyScheme
from test_gateway import (
    REDIRECT,
    authorize,
    introspect,
    login,
    refresh_error,
    register,
    session,
    user,
)

keys = KeyScheme()
CLIENT_TTL = 86400


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    proc, sock = start_redis(tmp_path_factory.mktemp("admin-redis"))
    yield sock
    stop_redis(proc)


@pytest.fixture(scope="module")
def admin_gateway(start_gateway: Callable[..., str], own_redis: Path) -> str:
    return start_gateway(
        redis_url=f"unix://{own_redis}",
        access_ttl=600,
        client_ttl=CLIENT_TTL,
        rate_limit_ip=10_000,
        rate_limit_subject=1000,
    )


def cli(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway.admin ...`` in a process of its own, configured by environment."""
    env = {**os.environ, "REDIS_URL": f"unix://{sock}", "KEY_PREFIX": ""}
    return subprocess.run(
        [sys.executable, "-m", "gateway.admin", *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(sock: Path, *args: str) -> Any:
    done = cli(sock, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class World:
    """What the flows created: two clients, their users and token responses."""

    gateway: str
    sock: Path
    alpha: dict[str, Any]
    beta: dict[str, Any]
    users: list[str]  # u1, u2 (alpha), u3 (alpha, pending code), u4 (beta)
    a1: dict[str, Any]  # u1's first tokens (alpha)
    a1_refreshed: dict[str, Any]  # u1's after one refresh
    a2: dict[str, Any]  # u2's (alpha)
    b: dict[str, Any]  # u4's (beta)

    def access_tokens(self) -> list[tuple[dict[str, Any], str]]:
        """Every live access token and its client: ``(client, access_token)``."""
        return [
            (self.alpha, self.a1["access_token"]),
            (self.alpha, self.a1_refreshed["access_token"]),
            (self.alpha, self.a2["access_token"]),
            (self.beta, self.b["access_token"]),
        ]


#: What the flows of ``world`` leave, by census class.
ALPHA = {
    "client": 1,
    "code": 1,  # u3's, never redeemed
    "redeemed_code": 2,
    "token": 3,  # u1's first and refreshed, u2's
    "refresh": 2,
    "rotated_refresh": 1,
    "state": 0,
    "grant": 2,
}
BETA = {**dict.fromkeys(ALPHA, 0), "client": 1, "redeemed_code": 1, "token": 1, "refresh": 1}
BETA["grant"] = 1


@pytest.fixture
def world(admin_gateway: str, own_redis: Path) -> World:
    redis.Redis(unix_socket_path=str(own_redis)).flushall()
    alpha = register(admin_gateway, client_name="alpha app")
    beta = register(admin_gateway, client_name="beta app")
    users = [user() for _ in range(4)]
    oauth = session(alpha)
    a1 = login(admin_gateway, oauth, users[0])
    a1_refreshed = oauth.refresh_token(f"{admin_gateway}/token", refresh_token=a1["refresh_token"])
    a2 = login(admin_gateway, session(alpha), users[1])
    authorize(admin_gateway, session(alpha), users[2])  # a code left pending
    b = login(admin_gateway, session(beta), users[3])
    return World(admin_gateway, own_redis, alpha, beta, users, a1, a1_refreshed, a2, b)


def expected_stats(*classes: dict[str, int], users: int) -> dict[str, int]:
    total = {kind: sum(c[kind] for c in classes) for kind in ALPHA}
    return {
        "registrations": total["client"],
        "access_tokens": total["token"],
        "refresh_tokens": total["refresh"],
        "codes": total["code"],
        "states": total["state"],
        "grants": total["grant"],
        "redeemed_codes": total["redeemed_code"],
        "rotated_refresh_tokens": total["rotated_refresh"],
        "active_users": users,
    }


def test_stats_count_the_data(world: World) -> None:
    stats = cli_json(world.sock, "stats", "--fresh")
    census = {k: stats.pop(k) for k in ("census_age_ms", "census_passes", "nodes")}
    assert stats == expected_stats(ALPHA, BETA, users=3)  # u3 has no token yet
    assert census["nodes"] == 1 and census["census_passes"] >= 2
    assert 0 <= census["census_age_ms"] < 5000

    text = cli(world.sock, "stats")
    assert text.returncode == 0, text.stderr
    assert "live access tokens" in text.stdout and "active users" in text.stdout
    assert any(line.split()[-1] == "4" for line in text.stdout.splitlines() if "access" in line)


def test_clients_and_tokens_list_exactly_the_data(world: World) -> None:
    now_ms = time.time() * 1000
    clients = cli_json(world.sock, "clients")
    assert sorted((c["client_id"], c["name"]) for c in clients) == sorted(
        [(world.alpha["client_id"], "alpha app"), (world.beta["client_id"], "beta app")]
    )
    for c in clients:
        assert abs(c["created_ms"] - now_ms) < 30_000
        assert abs(c["expires_at_ms"] - (now_ms + CLIENT_TTL * 1000)) < 30_000

    # Each live access token, as introspection describes it.
    expected = []
    for client, token in world.access_tokens():
        info = introspect(world.gateway, client, token)
        expected.append((info["jti"], info["sub"], info["client_id"], info["scope"]))
        assert info["jti"] not in token  # an id of its own
    assert len({jti for jti, *_ in expected}) == 4

    def listed(*filters: str) -> list[tuple[str, str, str, str]]:
        tokens = cli_json(world.sock, "tokens", *filters)
        for t in tokens:
            assert abs(t["expires_at_ms"] - (now_ms + 600_000)) < 30_000
        return sorted((t["jti"], t["sub"], t["client_id"], t["scope"]) for t in tokens)

    alpha_id, beta_id = world.alpha["client_id"], world.beta["client_id"]
    u1 = world.users[0]
    assert listed() == sorted(expected)
    assert listed("--client", alpha_id) == sorted(e for e in expected if e[2] == alpha_id)
    assert listed("--subject", u1) == sorted(e for e in expected if e[1] == u1)
    assert len(listed("--subject", u1)) == 2  # the first access token outlives the refresh
    assert listed("--client", beta_id, "--subject", u1) == []

    text = cli(world.sock, "tokens", "--client", beta_id)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].split() == ["JTI", "USER", "CLIENT_ID", "SCOPE", "EXPIRES"]
    assert world.users[3] in text.stdout and "1 live access token(s)" in text.stdout


def test_revoke_token_by_jti(world: World) -> None:
    target = world.a2["access_token"]
    jti = introspect(world.gateway, world.alpha, target)["jti"]
    done = cli(world.sock, "revoke-token", jti)
    assert done.returncode == 0, done.stderr
    assert f"revoked 1 access token(s) with jti {jti}" in done.stdout
    assert introspect(world.gateway, world.alpha, target) == {"active": False}
    for client, token in world.access_tokens():
        if token != target:
            assert introspect(world.gateway, client, token)["active"] is True
    assert jti not in {t["jti"] for t in cli_json(world.sock, "tokens")}
    # The refresh token of that grant is another credential: it still works.
    refreshed = session(world.alpha).refresh_token(
        f"{world.gateway}/token", refresh_token=world.a2["refresh_token"]
    )
    assert introspect(world.gateway, world.alpha, refreshed["access_token"])["active"] is True

    again = cli(world.sock, "--json", "revoke-token", jti)
    assert again.returncode == 1 and json.loads(again.stdout) == {"jti": jti, "revoked": 0}


def test_delete_client_with_everything_issued_to_it(world: World) -> None:
    alpha_id = world.alpha["client_id"]
    deleted = cli_json(world.sock, "delete-client", alpha_id)
    assert deleted == {"client_id": alpha_id, "deleted": ALPHA}

    stats = cli_json(world.sock, "stats", "--fresh")
    assert {k: v for k, v in stats.items() if k in expected_stats(BETA, users=1)} == (
        expected_stats(BETA, users=1)
    )
    assert [c["client_id"] for c in cli_json(world.sock, "clients")] == [world.beta["client_id"]]

    # Alpha is gone: its credentials and its tokens are refused.
    for token in (world.a1, world.a1_refreshed, world.a2):
        assert introspect(world.gateway, world.beta, token["access_token"]) == {"active": False}
    assert refresh_error(session(world.alpha), world.gateway, world.a2["refresh_token"]) == (
        "invalid_client"
    )
    # Presented by a client that still exists, the refresh token itself is unknown.
    assert refresh_error(session(world.beta), world.gateway, world.a2["refresh_token"]) == (
        "invalid_grant"
    )
    response = requests.get(
        f"{world.gateway}/authorize",
        params={"client_id": alpha_id, "redirect_uri": REDIRECT, "response_type": "code"},
        allow_redirects=False,
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")

    # Beta still works: introspection, refresh, a new login.
    oauth = session(world.beta)
    assert introspect(world.gateway, world.beta, world.b["access_token"])["active"] is True
    refreshed = oauth.refresh_token(
        f"{world.gateway}/token", refresh_token=world.b["refresh_token"]
    )
    assert introspect(world.gateway, world.beta, refreshed["access_token"])["active"] is True
    login(world.gateway, oauth)

    text = cli(world.sock, "delete-client", alpha_id)  # again: nothing left
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"deleted client {alpha_id}:"
    assert all(line.split()[-1] == "0" for line in text.stdout.splitlines()[1:])
