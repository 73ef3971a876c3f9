"""Reply types: the same whatever the protocol (RESP2 or RESP3) and decoding.

Field names and values are ``str``. Values that are not UTF-8 are decoded with
``surrogateescape``: ``value.encode("utf-8", "surrogateescape")`` gives the bytes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exchange:
    """``exchange``: the authorization code's fields (without the PKCE challenge)."""

    fields: dict[str, str]

    @property
    def client_id(self) -> str:
        return self.fields["client_id"]


@dataclass(frozen=True)
class Introspection:
    """``introspect``: an RFC 7662 answer. Inactive answers carry nothing else."""

    active: bool
    fields: dict[str, str] = field(default_factory=dict)
    exp: int | None = None
    iat: int | None = None

    def to_dict(self) -> dict[str, bool | int | str]:
        """The JSON body of an RFC 7662 introspection response."""
        if not self.active:
            return {"active": False}
        body: dict[str, bool | int | str] = {"active": True}
        body.update(self.fields)
        if self.exp is not None:
            body["exp"] = self.exp
        if self.iat is not None:
            body["iat"] = self.iat
        return body


@dataclass(frozen=True)
class Rotation:
    """``rotate``: the successor's fields and keys.

    ``replayed`` is true for a retry inside the grace window: nothing was created,
    and the keys are those of the successor created by the first rotation.
    ``access_key`` is ``None`` when no access token was issued.
    """

    fields: dict[str, str]
    refresh_key: str
    access_key: str | None
    replayed: bool


@dataclass(frozen=True)
class ClientRegistration:
    """``get_client``: a registration's fields (never secret material) and its expiry."""

    fields: dict[str, str]
    client_secret_expires_at: int


@dataclass(frozen=True)
class RateLimit:
    """``rate_limit``, ``rate_limit_all`` and ``throttle``: the decision.

    Times are whole seconds, rounded up. ``retry_after`` is -1 when allowed, and when
    refused for a cost that can never be allowed. ``deciding`` is set by
    ``rate_limit_all`` only: the 0-based position of the deciding limit.
    """

    limited: bool
    limit: int
    remaining: int
    retry_after: int
    reset_after: int
    deciding: int | None = None

    def headers(self) -> dict[str, str]:
        """HTTP response headers: ``RateLimit-*`` (IETF draft up to -07) and ``Retry-After``.

        ``Retry-After`` is present only for a refused request that waiting can fix;
        answer 429 Too Many Requests when ``limited`` is true.
        """
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if self.limited and self.retry_after >= 0:
            headers["Retry-After"] = str(self.retry_after)
        return headers
