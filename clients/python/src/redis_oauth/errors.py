"""Exceptions: one class per error code of the module, each with its OAuth meaning.

Every class carries the module's code word (``code``), the OAuth ``error`` value a
token endpoint answers (RFC 6749 §5.2) and the HTTP ``status`` to answer with.
Errors of the store itself (a key collision, a record of the wrong kind, a
cross-slot call, an internal error) are the server's fault: ``server_error``, 5xx.
"""

from __future__ import annotations

from typing import ClassVar

from redis.exceptions import ClusterCrossSlotError, NoPermissionError, ResponseError


class OAuthError(Exception):
    """Base class. ``description`` is the module's sentence (never a secret)."""

    code: ClassVar[str | None] = None
    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 500

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def to_dict(self) -> dict[str, str]:
        """The JSON body of an RFC 6749 §5.2 error response.

        ``error_description`` is included for client errors (4xx) only: the
        sentences of server errors describe the store, not the request.
        """
        body = {"error": self.error}
        if self.status < 500:
            body["error_description"] = self.description
        return body


class InvalidGrant(OAuthError):
    """``INVALID_GRANT``: unknown, expired, reused or mismatched code or refresh token."""

    code = "INVALID_GRANT"
    error = "invalid_grant"
    status = 400


class InvalidRequest(OAuthError):
    """``INVALID_REQUEST``: a malformed argument (also raised before sending, for PKCE)."""

    code = "INVALID_REQUEST"
    error = "invalid_request"
    status = 400


class InvalidScope(OAuthError):
    """``INVALID_SCOPE``: a refresh asked for a wider scope (RFC 6749 §6)."""

    code = "INVALID_SCOPE"
    error = "invalid_scope"
    status = 400


class InvalidClient(OAuthError):
    """Client authentication failed (``verify_client`` answered ``False``).

    The module has no such error: raise it yourself. RFC 6749 §5.2 asks for 401 and,
    if the client authenticated with HTTP Basic, a ``WWW-Authenticate`` header.
    """

    error = "invalid_client"
    status = 401


class Exists(OAuthError):
    """``EXISTS``: a record to create is already there (a key collision)."""

    code = "EXISTS"


class WrongType(OAuthError):
    """``WRONGTYPE``: the key holds another Redis type or another kind of record."""

    code = "WRONGTYPE"


class ServerError(OAuthError):
    """``ERR``: an arity error or the module's internal error."""

    code = "ERR"


class CrossSlot(OAuthError):
    """``CROSSSLOT``: the keys of one call are in different Cluster hash slots.

    Give the keys of one call the same hash tag (see ``KeyScheme``).
    """

    code = "CROSSSLOT"


class NoPermission(OAuthError, NoPermissionError):
    """``NOPERM`` from an operator's task (``scan``, ``iter_records``, ``purge_client``,
    ``census``): the connection's ACL user may not do it.

    From ``purge_client``: a key to delete is one the user may read but not write,
    and that step deleted nothing. Also when Redis's ACL refuses the command itself.
    It is a redis-py ``NoPermissionError`` too. (The other methods let Redis's own
    ``NOPERM`` through unchanged, as redis-py raises it.)
    """

    code = "NOPERM"
    #: From ``purge_client``: what the steps before the refused one had deleted.
    purged: dict[str, int] | None = None

    def __repr__(self) -> str:  # redis-py 8's RedisError shows only the class
        return f"NoPermission({self.description!r})"


class NotReplicated(OAuthError):
    """Fewer replicas than asked acknowledged the write within the timeout (``WAIT``).

    The command itself succeeded: its records exist on the master.
    """

    status = 503

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(f"{acknowledged} of {wanted} replicas acknowledged the write")
        self.acknowledged = acknowledged


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidGrant,
        InvalidRequest,
        InvalidScope,
        Exists,
        WrongType,
        ServerError,
        CrossSlot,
    )
}


def translate(exc: BaseException) -> BaseException:
    """The exception to raise for an error reply; Redis's own errors pass through.

    redis-py removes the code word from the errors it maps to classes of its own
    (``ERR``, and ``CROSSSLOT`` in Cluster), so those are recognised by class too.
    """
    if isinstance(exc, ClusterCrossSlotError):
        return CrossSlot(str(exc))
    if not isinstance(exc, ResponseError):
        return exc
    message = str(exc)
    code, _, sentence = message.partition(" ")
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(sentence)
    if type(exc) is ResponseError and not code.isupper():
        return ServerError(message)  # an ERR reply whose code redis-py removed
    return exc


def translate_admin(exc: BaseException) -> BaseException:
    """``translate``, and ``NOPERM`` as ``NoPermission``: for the operators' tasks."""
    if isinstance(exc, NoPermissionError) and not isinstance(exc, OAuthError):
        return NoPermission(str(exc).removeprefix("NOPERM "))  # the code word, if left
    if isinstance(exc, ResponseError) and str(exc).startswith("NOPERM "):
        return NoPermission(str(exc).removeprefix("NOPERM "))
    return translate(exc)
