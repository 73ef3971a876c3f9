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


#: The classes of record ``scan`` lists and ``census``/``purge_client`` count, in
#: the module's order.
RECORD_KINDS = (
    "code",
    "redeemed_code",
    "token",
    "refresh",
    "rotated_refresh",
    "client",
    "state",
    "grant",
)


@dataclass(frozen=True)
class ListedRecord:
    """One record found by ``scan`` or ``iter_records``.

    ``kind`` is one of ``RECORD_KINDS``; ``key`` is without the store's prefix.
    ``expires_at_ms`` and ``created_ms`` are Unix milliseconds, ``None`` when the
    key has no expiry or the record no creation time (tombstones, states, grants).
    ``fields`` are the record's own fields (never the module's ``_`` entries nor
    secret material); for a grant: ``members`` (a count) and the ``client_id`` and
    ``sub`` of one of its members.
    """

    key: str
    kind: str
    expires_at_ms: int | None
    created_ms: int | None
    fields: dict[str, str]

    @property
    def client_id(self) -> str | None:
        return self.fields.get("client_id")

    @property
    def subject(self) -> str | None:
        return self.fields.get("sub")


@dataclass(frozen=True)
class ScanPage:
    """``scan``: the cursor of the next step (``"0"``: done) and this step's records.

    As with ``SCAN``, a step may find no record while the cursor is not yet ``"0"``.
    """

    cursor: str
    records: list[ListedRecord]


@dataclass(frozen=True)
class Census:
    """``census``: live counts from the module's background census (``INFO oauth_census``).

    ``records`` maps each of ``RECORD_KINDS`` to its count; ``subjects`` is the
    number of distinct ``sub`` of live access and refresh tokens ("active users");
    ``keys`` is how many keys the passes looked at. Over several nodes (every
    primary in Cluster) these are sums: a subject whose tokens sit on two nodes is
    counted twice. ``passes`` is the fewest passes a node has finished, ``age_ms``
    the age of the oldest node's last pass and ``duration_ms`` the longest pass
    (both ``None`` while a node has finished none); ``nodes`` is how many nodes
    answered.

    Each node refreshes its counts in the background, pass after pass: a record
    written while a pass runs is counted once the next pass has finished, i.e. after
    that node's ``passes`` has grown by two.
    """

    records: dict[str, int]
    subjects: int
    keys: int
    passes: int
    age_ms: int | None
    duration_ms: int | None
    nodes: int = 1

    def __getitem__(self, kind: str) -> int:
        return self.records[kind]
