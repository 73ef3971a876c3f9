"""Command lines and reply parsing, shared by the sync and asyncio stores.

Nothing here does I/O: each builder returns a ``Call`` (the arguments, the key to
route by, how to read the reply), which the stores send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar, Union

from redis.exceptions import AskError, MovedError, ResponseError

from . import pkce
from .errors import NotReplicated, ServerError, translate, translate_admin
from .results import (
    RECORD_KINDS,
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
FieldValue = Union[str, bytes, int, float]
Fields = Mapping[str, FieldValue]
#: ``(numreplicas, timeout_ms)`` for ``WAIT`` right after the command, on its connection.
Wait = tuple[int, int]


@dataclass(frozen=True)
class Call(Generic[T]):
    args: tuple[Any, ...] = field(repr=False)  # may hold a verifier or a client secret
    key: str | None  # the first key, prefixed: Cluster routes by it; None for no key
    parse: Callable[[Any], T]
    wait: Wait | None = None
    translate: Callable[[BaseException], BaseException] = field(default=translate, repr=False)

    @property
    def commands(self) -> list[tuple[Any, ...]]:
        """The command, then ``WAIT`` if asked: they must share one connection."""
        if self.wait is None:
            return [self.args]
        return [self.args, ("WAIT", *self.wait)]

    def finish(self, replies: Sequence[Any]) -> T:
        """The parsed reply of ``commands``; error replies arrive as exception objects."""
        if isinstance(replies[0], BaseException):
            raise self.translate(replies[0]) from replies[0]
        result = self.parse(replies[0])
        if self.wait is not None:
            if isinstance(replies[1], BaseException):
                raise self.translate(replies[1]) from replies[1]
            if replies[1] < self.wait[0]:
                raise NotReplicated(replies[1], self.wait[0])
        return result


def redirection(reply: Any) -> tuple[str, str, int] | None:
    """``("MOVED" or "ASK", host, port)`` if ``reply`` is a Cluster redirection.

    redis-py maps them to ``MovedError``/``AskError``, except redis-py 5 with RESP3,
    which leaves them plain ``ResponseError`` with the code word.
    """
    if isinstance(reply, AskError):
        return ("MOVED" if isinstance(reply, MovedError) else "ASK"), reply.host, reply.port
    if isinstance(reply, ResponseError):
        code, _, rest = str(reply).partition(" ")
        if code in ("MOVED", "ASK"):
            host, _, port = rest.partition(" ")[2].rpartition(":")
            return code, host, int(port)
    return None


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _pairs(reply: Any) -> Iterable[tuple[str, Any]]:
    """A map reply: a dict in RESP3, a flat array in RESP2."""
    items = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
    return ((text(k), v) for k, v in items)


def _split(reply: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The caller's fields, and the module's own entries (names starting with ``_``)."""
    fields: dict[str, str] = {}
    internal: dict[str, Any] = {}
    for name, value in _pairs(reply):
        if name.startswith("_"):
            internal[name] = value
        else:
            fields[name] = text(value)
    return fields, internal


def _fields(fields: Fields | None) -> list[Any]:
    flat: list[Any] = ["FIELDS", len(fields or {})]
    for name, value in (fields or {}).items():
        flat += [name, value]
    return flat


def _ok(reply: Any) -> None:
    return None


def _rate_limit(reply: Sequence[int]) -> RateLimit:
    deciding = reply[5] - 1 if len(reply) > 5 else None
    return RateLimit(bool(reply[0]), reply[1], reply[2], reply[3], reply[4], deciding)


class Commands:
    """One builder per module command; ``prefix`` is added to every key."""

    def __init__(self, prefix: str = "") -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the prefix must not contain { or }: it would become the hash tag")
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _unkey(self, reply: Any) -> str:
        key = text(reply)
        return key[len(self.prefix) :] if key.startswith(self.prefix) else key

    def _cutoffs(self, cutoffs: Sequence[str]) -> list[Any]:
        if not cutoffs:
            return []
        return ["CUTOFF", len(cutoffs), *map(self._key, cutoffs)]

    def save_code(self, key: str, ttl: int, fields: Fields) -> Call[None]:
        challenge = fields.get("code_challenge")
        if challenge is not None:
            method = fields.get("code_challenge_method")
            if method in (None, "plain", b"plain"):
                pkce.check(text(challenge), "code_challenge (with plain, the code_verifier)")
            else:
                pkce.check(text(challenge), "code_challenge")
        key = self._key(key)
        return Call(("OAUTH.SAVECODE", key, ttl, *_fields(fields)), key, _ok)

    def exchange(
        self,
        key: str,
        client_id: str,
        redirect_uri: str | None,
        code_verifier: str | None,
        issue: tuple[str, int] | None,
        refresh: tuple[str, int] | None,
        grant: str | None,
        fields: Fields | None,
        wait: Wait | None,
    ) -> Call[Exchange]:
        key = self._key(key)
        args: list[Any] = [
            "OAUTH.EXCHANGE",
            key,
            client_id,
            redirect_uri or "",
            code_verifier or "",
        ]
        if issue is not None:
            args += ["ISSUE", self._key(issue[0]), issue[1]]
        if refresh is not None:
            args += ["REFRESH", self._key(refresh[0]), refresh[1]]
        if grant is not None:
            args += ["GRANT", self._key(grant)]
        if fields is not None:
            args += _fields(fields)
        return Call(tuple(args), key, lambda r: Exchange(_split(r)[0]), wait)

    def save_token(
        self, key: str, ttl: int, fields: Fields | None, grant: str | None
    ) -> Call[None]:
        key = self._key(key)
        args: list[Any] = ["OAUTH.SAVETOKEN", key, ttl]
        if grant is not None:
            args += ["GRANT", self._key(grant)]
        return Call((*args, *_fields(fields)), key, _ok)

    def introspect(self, key: str, cutoffs: Sequence[str]) -> Call[Introspection]:
        key = self._key(key)

        def parse(reply: Any) -> Introspection:
            entries = dict(_pairs(reply))
            active = bool(entries.pop("active"))
            exp = entries.pop("exp", None)
            iat = entries.pop("iat", None)
            fields = {name: text(value) for name, value in entries.items()}
            return Introspection(active, fields, exp, iat)

        return Call(("OAUTH.INTROSPECT", key, *self._cutoffs(cutoffs)), key, parse)

    def revoke(self, keys: Sequence[str]) -> Call[int]:
        if not keys:
            raise ValueError("revoke needs at least one key")
        prefixed = [self._key(k) for k in keys]
        return Call(("OAUTH.REVOKE", *prefixed), prefixed[0], int)

    def rotate(
        self,
        old_key: str,
        new_key: str,
        ttl: int,
        issue: tuple[str, int] | None,
        grace: int | None,
        cutoffs: Sequence[str],
        fields: Fields | None,
        wait: Wait | None,
    ) -> Call[Rotation]:
        old_key = self._key(old_key)
        args: list[Any] = ["OAUTH.ROTATE", old_key, self._key(new_key), ttl]
        if issue is not None:
            args += ["ISSUE", self._key(issue[0]), issue[1]]
        if grace is not None:
            args += ["GRACE", grace]
        args += self._cutoffs(cutoffs)
        if fields is not None:
            args += _fields(fields)

        def parse(reply: Any) -> Rotation:
            fields, internal = _split(reply)
            access = internal.get("_access_key")
            return Rotation(
                fields,
                self._unkey(internal["_refresh_key"]),
                None if access is None else self._unkey(access),
                bool(internal["_replayed"]),
            )

        return Call(tuple(args), old_key, parse, wait)

    def revoke_grant(self, grant_key: str) -> Call[int]:
        key = self._key(grant_key)
        return Call(("OAUTH.REVOKEGRANT", key), key, int)

    def revoke_before(self, cutoff_key: str) -> Call[int]:
        key = self._key(cutoff_key)
        return Call(("OAUTH.REVOKEBEFORE", key), key, int)

    def save_client(self, key: str, fields: Fields, ttl: int | None) -> Call[int]:
        key = self._key(key)
        ttl_args = [] if ttl is None else ["TTL", ttl]

        def parse(reply: Any) -> int:
            return int(dict(_pairs(reply))["client_secret_expires_at"])

        return Call(("OAUTH.SAVECLIENT", key, *ttl_args, *_fields(fields)), key, parse)

    def verify_client(self, key: str, secret: str | bytes) -> Call[bool]:
        key = self._key(key)
        return Call(("OAUTH.VERIFYCLIENT", key, secret), key, bool)

    def get_client(self, key: str) -> Call[ClientRegistration | None]:
        key = self._key(key)

        def parse(reply: Any) -> ClientRegistration | None:
            if reply is None:
                return None
            entries = dict(_pairs(reply))
            expires = entries.pop("client_secret_expires_at")
            return ClientRegistration(
                {name: text(value) for name, value in entries.items()}, expires
            )

        return Call(("OAUTH.GETCLIENT", key), key, parse)

    def delete_client(self, key: str) -> Call[bool]:
        key = self._key(key)
        return Call(("OAUTH.DELETECLIENT", key), key, bool)

    def save_state(self, key: str, ttl: int, fields: Fields | None) -> Call[None]:
        key = self._key(key)
        return Call(("OAUTH.SAVESTATE", key, ttl, *_fields(fields)), key, _ok)

    def consume_state(self, key: str) -> Call[dict[str, str] | None]:
        key = self._key(key)
        return Call(("OAUTH.CONSUMESTATE", key), key, lambda r: None if r is None else _split(r)[0])

    def rate_limit(
        self, key: str, limit: int, window: int, cost: int, sliding: bool
    ) -> Call[RateLimit]:
        key = self._key(key)
        return Call(
            ("OAUTH.RATELIMIT", key, limit, window, *_options(cost, sliding)), key, _rate_limit
        )

    def rate_limit_all(
        self, limits: Sequence[tuple[str, int, int]], cost: int, sliding: bool
    ) -> Call[RateLimit]:
        if not limits:
            raise ValueError("rate_limit_all needs at least one (key, limit, window)")
        keys = [self._key(k) for k, _, _ in limits]
        pairs = [n for _, limit, window in limits for n in (limit, window)]
        args = ("OAUTH.RATELIMITALL", len(keys), *keys, *pairs, *_options(cost, sliding))
        return Call(args, keys[0], _rate_limit)

    def throttle(
        self, key: str, max_burst: int, count: int, period: int, cost: int
    ) -> Call[RateLimit]:
        key = self._key(key)
        return Call(
            ("OAUTH.THROTTLE", key, max_burst, count, period, *_options(cost, False)),
            key,
            _rate_limit,
        )

    # Operators' commands: no keys, sent to one node (every primary in Cluster)

    def _pattern(self, match: str | None) -> list[Any]:
        """``MATCH``: the store's prefix (as a literal) before the caller's glob."""
        if not self.prefix:
            return [] if match is None else ["MATCH", match]
        return ["MATCH", _glob_literal(self.prefix) + ("*" if match is None else match)]

    def scan(
        self,
        cursor: str | int,
        match: str | None,
        count: int | None,
        kind: str | None,
        client_id: str | None,
        subject: str | None,
    ) -> Call[ScanPage]:
        args: list[Any] = ["OAUTH.SCAN", cursor, *self._pattern(match)]
        for option, value in (
            ("COUNT", count),
            ("KIND", kind),
            ("CLIENT", client_id),
            ("SUBJECT", subject),
        ):
            if value is not None:
                args += [option, value]

        def record(reply: Any) -> ListedRecord:
            entries = dict(_pairs(reply))
            expires, created = int(entries["expires_at_ms"]), int(entries["created_ms"])
            return ListedRecord(
                self._unkey(entries["key"]),
                text(entries["kind"]),
                None if expires < 0 else expires,
                None if created < 0 else created,
                {name: text(value) for name, value in _pairs(entries["fields"])},
            )

        def parse(reply: Any) -> ScanPage:
            return ScanPage(text(reply[0]), [record(item) for item in reply[1]])

        return Call(tuple(args), None, parse, translate=translate_admin)

    def purge_client(
        self, client_id: str, cursor: str | int, match: str | None, count: int | None
    ) -> Call[tuple[str, dict[str, int]]]:
        if not client_id:
            raise ValueError("purge_client needs a client_id")
        args: list[Any] = ["OAUTH.PURGECLIENT", client_id, cursor, *self._pattern(match)]
        if count is not None:
            args += ["COUNT", count]

        def parse(reply: Any) -> tuple[str, dict[str, int]]:
            counts = {name: int(value) for name, value in _pairs(reply[1])}
            return text(reply[0]), counts

        return Call(tuple(args), None, parse, translate=translate_admin)

    def census(self) -> Call[Census]:
        return Call(("INFO", "oauth_census"), None, _census, translate=translate_admin)

    def help(self) -> Call[list[str]]:
        return Call(("OAUTH.HELP",), None, lambda r: [text(line) for line in r])

    def wait(self, key: str, numreplicas: int, timeout_ms: int) -> Call[int]:
        return Call(("WAIT", numreplicas, timeout_ms), self._key(key), int)


def _options(cost: int, sliding: bool) -> list[Any]:
    return (["COST", cost] if cost != 1 else []) + (["SLIDING"] if sliding else [])


def _glob_literal(value: str) -> str:
    """``value`` as a glob matching only itself (SCAN's MATCH syntax)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)


def _info_fields(reply: Any) -> dict[str, Any]:
    """An ``INFO`` reply: redis-py's parsed dict, or the text (bytes or str)."""
    if isinstance(reply, dict):
        return {text(k): v for k, v in reply.items()}
    fields: dict[str, Any] = {}
    for line in text(reply).splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


def _census(reply: Any) -> Census:
    fields = _info_fields(reply)
    if "oauth_census_passes" not in fields:
        raise ServerError("INFO oauth_census answered no census (is the module loaded?)")
    passes = int(fields["oauth_census_passes"])
    age, duration = int(fields["oauth_census_age_ms"]), int(fields["oauth_census_duration_ms"])
    return Census(
        records={kind: int(fields[f"oauth_records_{kind}"]) for kind in RECORD_KINDS},
        subjects=int(fields["oauth_subjects"]),
        keys=int(fields["oauth_census_keys"]),
        passes=passes,
        age_ms=None if age < 0 else age,
        duration_ms=None if duration < 0 else duration,
    )


def combine_census(parts: Sequence[Census]) -> Census:
    """The census of several nodes: counts summed, the fewest passes, the oldest age."""
    if len(parts) == 1:
        return parts[0]
    ages = [p.age_ms for p in parts]
    durations = [p.duration_ms for p in parts]
    return Census(
        records={kind: sum(p.records[kind] for p in parts) for kind in RECORD_KINDS},
        subjects=sum(p.subjects for p in parts),
        keys=sum(p.keys for p in parts),
        passes=min(p.passes for p in parts),
        age_ms=None if None in ages else max(a for a in ages if a is not None),
        duration_ms=None if None in durations else max(d for d in durations if d is not None),
        nodes=sum(p.nodes for p in parts),
    )


def add_counts(total: dict[str, int], counts: Mapping[str, int]) -> None:
    """Adds one ``purge_client`` step's counts into ``total``."""
    for kind, n in counts.items():
        total[kind] = total.get(kind, 0) + n
