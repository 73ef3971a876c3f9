"""The operators' admin CLI: ``python -m gateway.admin <command>``.

Same ``REDIS_URL`` and ``KEY_PREFIX`` as the gateway. Every command walks the
keyspace with the module's cursor commands (``OAUTH.SCAN``, ``OAUTH.PURGECLIENT``,
``COUNT`` keys per call) or reads its census (``INFO oauth_census``): no blocking
full scan, no ``KEYS``. Output is for people; ``--json`` prints one JSON document.

    stats                 counts by kind and active users (the module's census)
    clients               registrations: client_id, name, created, expiry
    tokens                live access tokens: jti, user, client, scope, expiry
    revoke-token JTI      revoke the access token with this jti
    delete-client ID      delete a client and everything issued to it, with counts
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
from redis_oauth import Census, KeyScheme, ListedRecord, OAuthStore

from .settings import Settings

#: What ``stats`` shows, in order: (JSON name, label, census kind).
STATS = (
    ("registrations", "registrations", "client"),
    ("access_tokens", "live access tokens", "token"),
    ("refresh_tokens", "live refresh tokens", "refresh"),
    ("codes", "pending codes", "code"),
    ("states", "states", "state"),
    ("grants", "grants", "grant"),
    ("redeemed_codes", "redeemed codes (kept to detect replays)", "redeemed_code"),
    ("rotated_refresh_tokens", "rotated refresh tokens (idem)", "rotated_refresh"),
)
#: ``delete-client``'s lines: census kind -> label.
CLASS_LABELS = {
    "client": "registrations",
    "code": "pending codes",
    "redeemed_code": "redeemed codes",
    "token": "access tokens",
    "refresh": "refresh tokens",
    "rotated_refresh": "rotated refresh tokens",
    "state": "states",
    "grant": "grants",
}


class Admin:
    """The tasks, on an ``OAuthStore`` with the gateway's key prefix."""

    def __init__(self, store: OAuthStore, count: int) -> None:
        self.store = store
        self.count = count
        self.keys = KeyScheme()

    def stats(self, fresh: bool, timeout: float = 30.0) -> dict[str, Any]:
        census = self._fresh_census(timeout) if fresh else self.store.census()
        out: dict[str, Any] = {name: census[kind] for name, _, kind in STATS}
        out["active_users"] = census.subjects
        out["census_age_ms"] = census.age_ms
        out["census_passes"] = census.passes
        out["nodes"] = census.nodes
        return out

    def _fresh_census(self, timeout: float) -> Census:
        """The census once every node has finished two passes since now."""
        client = self.store.client
        nodes: list[ClusterNode | None] = [None]
        if isinstance(client, RedisCluster):  # each primary runs its own census
            nodes = list(client.get_primaries())  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout
        for node, start in [(n, self.store.census(node=n).passes) for n in nodes]:
            while self.store.census(node=node).passes < start + 2:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        "the census did not finish a pass (is oauth.census-batch 0?)"
                    )
                time.sleep(0.05)
        return self.store.census()

    def records(self, kind: str, **filters: str | None) -> list[ListedRecord]:
        return list(self.store.iter_records(kind=kind, count=self.count, **filters))

    def clients(self) -> list[dict[str, Any]]:
        found = sorted(self.records("client"), key=lambda r: r.created_ms or 0)
        return [
            {
                "client_id": r.fields.get("client_id", ""),
                "name": r.fields.get("client_name"),
                "created_ms": r.created_ms,
                "expires_at_ms": r.expires_at_ms,
            }
            for r in found
        ]

    def tokens(self, client_id: str | None, subject: str | None) -> list[dict[str, Any]]:
        found = self.records("token", client_id=client_id, subject=subject)
        found.sort(key=lambda r: (r.created_ms or 0, r.key))
        return [
            {
                "jti": r.fields.get("jti"),
                "sub": r.subject,
                "client_id": r.client_id,
                "scope": r.fields.get("scope"),
                "created_ms": r.created_ms,
                "expires_at_ms": r.expires_at_ms,
            }
            for r in found
        ]

    def revoke_token(self, jti: str) -> int:
        """Revokes the live access tokens whose ``jti`` field is ``jti``; how many."""
        matching = [r.key for r in self.records("token") if r.fields.get("jti") == jti]
        return self.store.revoke(*matching) if matching else 0

    def delete_client(self, client_id: str) -> dict[str, int]:
        """The registration, then everything issued to the client: counts by kind.

        The registration goes first, so that the client can obtain nothing while the
        walk runs (the gateway authenticates every token request); the purge would
        take it too, when its walk reaches it.
        """
        registered = self.store.delete_client(self.keys.client(client_id))
        counts = self.store.purge_client(client_id, count=self.count)
        counts["client"] = counts.get("client", 0) + int(registered)
        return counts


def when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines
    )


def show_stats(stats: dict[str, Any]) -> str:
    lines = [f"{label:<40} {stats[name]:>8}" for name, label, _ in STATS]
    lines.append(f"{'active users (distinct sub with a token)':<40} {stats['active_users']:>8}")
    age, nodes = stats["census_age_ms"], stats["nodes"]
    census = "no census pass finished yet" if age is None else f"census pass {age} ms old"
    lines.append(f"({census}, {nodes} node(s); the whole Redis, whatever the KEY_PREFIX)")
    return "\n".join(lines)


def show_clients(clients: list[dict[str, Any]]) -> str:
    rows = [
        [c["client_id"], c["name"] or "-", when(c["created_ms"]), when(c["expires_at_ms"])]
        for c in clients
    ]
    return table(rows, ["CLIENT_ID", "NAME", "CREATED", "EXPIRES"]) + f"\n{len(rows)} client(s)"


def show_tokens(tokens: list[dict[str, Any]]) -> str:
    rows = [
        [
            t["jti"] or "-",
            t["sub"] or "-",
            t["client_id"] or "-",
            t["scope"] or "-",
            when(t["expires_at_ms"]),
        ]
        for t in tokens
    ]
    table_ = table(rows, ["JTI", "USER", "CLIENT_ID", "SCOPE", "EXPIRES"])
    return table_ + f"\n{len(rows)} live access token(s)"


def show_deleted(client_id: str, counts: dict[str, int]) -> str:
    lines = [f"deleted client {client_id}:"]
    lines += [f"  {label:<24} {counts.get(kind, 0):>6}" for kind, label in CLASS_LABELS.items()]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gateway.admin",
        description="Operators' tasks on the gateway's Redis (REDIS_URL, KEY_PREFIX).",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--count",
        type=int,
        default=1000,
        help="keys looked at per OAUTH.SCAN / OAUTH.PURGECLIENT call (1-10000, default 1000)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="command")
    stats = sub.add_parser("stats", help="counts by kind and active users (the census)")
    stats.add_argument(
        "--fresh",
        action="store_true",
        help="wait for a census pass that started after this command (a second or so)",
    )
    sub.add_parser("clients", help="list registrations")
    tokens = sub.add_parser("tokens", help="list live access tokens")
    tokens.add_argument("--client", metavar="ID", help="only this client's")
    tokens.add_argument("--subject", metavar="SUB", help="only this user's")
    revoke = sub.add_parser("revoke-token", help="revoke one access token by its jti")
    revoke.add_argument("jti")
    delete = sub.add_parser(
        "delete-client", help="delete a client and everything issued to it, with counts"
    )
    delete.add_argument("client_id", metavar="ID")
    return p


def run(args: argparse.Namespace, admin: Admin, out: Callable[[str], None]) -> int:
    def emit(data: object, text: str) -> None:
        out(json.dumps(data, indent=2) if args.json else text)

    if args.command == "stats":
        stats = admin.stats(args.fresh)
        emit(stats, show_stats(stats))
    elif args.command == "clients":
        clients = admin.clients()
        emit(clients, show_clients(clients))
    elif args.command == "tokens":
        tokens = admin.tokens(args.client, args.subject)
        emit(tokens, show_tokens(tokens))
    elif args.command == "revoke-token":
        revoked = admin.revoke_token(args.jti)
        text = f"revoked {revoked} access token(s) with jti {args.jti}"
        emit({"jti": args.jti, "revoked": revoked}, text)
        return 0 if revoked else 1
    elif args.command == "delete-client":
        counts = admin.delete_client(args.client_id)
        emit({"client_id": args.client_id, "deleted": counts}, show_deleted(args.client_id, counts))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 1 <= args.count <= 10_000:
        parser().error("--count must be from 1 to 10000")
    settings = Settings.from_env()
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        return run(args, Admin(OAuthStore(redis, prefix=settings.key_prefix), args.count), print)
    finally:
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
