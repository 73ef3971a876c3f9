"""Configuration from environment variables; every lifetime is in seconds."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _optional_int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value else None


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = ""  # before every key, e.g. "gw1:" for gateways sharing one Redis
    issuer: str = "http://127.0.0.1:8000"
    # HMAC key that derives a refresh token's successor from it, so that a retried
    # refresh inside the grace window gets the same strings. Share it between workers.
    server_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    code_ttl: int = 120
    access_ttl: int = 3600  # without an upstream exp (the bounded fallback)
    access_ttl_max: int = 12 * 3600  # with an upstream exp: never longer than this
    refresh_ttl: int = 30 * 86400
    refresh_grace: int = 30
    client_ttl: int = 90 * 86400
    # The stubbed login's upstream session: its JWT's exp is now + this; None: no exp.
    upstream_session_ttl: int | None = None
    rate_window: int = 60
    rate_limit_ip: int = 120  # requests per window from one address, per endpoint
    rate_limit_subject: int = 30  # per user (/authorize) or client (/token)

    @classmethod
    def from_env(cls) -> Settings:
        key = os.environ.get("GATEWAY_SERVER_KEY", "")
        return cls(
            redis_url=os.environ.get("REDIS_URL", cls.redis_url),
            key_prefix=os.environ.get("KEY_PREFIX", cls.key_prefix),
            issuer=os.environ.get("GATEWAY_ISSUER", cls.issuer).rstrip("/"),
            server_key=key.encode() if key else secrets.token_bytes(32),
            code_ttl=_int("CODE_TTL", cls.code_ttl),
            access_ttl=_int("ACCESS_TTL", cls.access_ttl),
            access_ttl_max=_int("ACCESS_TTL_MAX", cls.access_ttl_max),
            refresh_ttl=_int("REFRESH_TTL", cls.refresh_ttl),
            refresh_grace=_int("REFRESH_GRACE", cls.refresh_grace),
            client_ttl=_int("CLIENT_TTL", cls.client_ttl),
            upstream_session_ttl=_optional_int("UPSTREAM_SESSION_TTL"),
            rate_window=_int("RATE_WINDOW", cls.rate_window),
            rate_limit_ip=_int("RATE_LIMIT_IP", cls.rate_limit_ip),
            rate_limit_subject=_int("RATE_LIMIT_SUBJECT", cls.rate_limit_subject),
        )
