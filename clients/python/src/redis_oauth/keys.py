"""Key names after docs/cluster.md: secrets hashed, one hash tag per grant or subject.

A code or token string is ``<handle>.<random>``: the handle (an opaque grant id or
subject handle) is what the gateway reads back from the string to find the hash tag;
the key holds the SHA-256 of the whole string, never the string itself::

    keys = KeyScheme()                      # one slot per grant: oauth:{g:<handle>}:...
    handle = new_handle()
    code = new_secret(handle)               # give this to the client
    keys.code(code)                         # 'oauth:{g:<handle>}:code:<sha256 hex>'
    keys.grant(handle)                      # 'oauth:{g:<handle>}:grant'

``KeyScheme(tag_kind="u")`` tags by subject instead (``oauth:{u:<handle>}:...``), so
that a per-subject cutoff key shares the slot of the subject's tokens; then name
each grant with ``grant(handle, grant_id)``.

A presented string without a valid handle maps to a key under the empty handle,
which holds nothing: the commands answer it as any unknown code or token
(``InvalidGrant``, inactive, 0 revoked), so handlers need no special case.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_HANDLE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def sha256_hex(value: str | bytes) -> str:
    """Lowercase hex SHA-256 of a string (UTF-8) or bytes."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return hashlib.sha256(value).hexdigest()


def new_handle() -> str:
    """A random handle (16 hex digits) for a grant or an opaque subject handle."""
    return secrets.token_hex(8)


def new_secret(handle: str, nbytes: int = 32) -> str:
    """A code or token string ``<handle>.<random>`` with ``nbytes`` random bytes.

    The result only uses characters allowed in a Bearer token (RFC 6750 §2.1).
    """
    if _HANDLE.fullmatch(handle) is None:
        raise ValueError("a handle is 1 to 64 characters of A-Z a-z 0-9 _ -")
    return f"{handle}.{secrets.token_urlsafe(nbytes)}"


def handle_of(secret: str | bytes) -> str:
    """The handle of a string made by ``new_secret``; ``""`` if it has none."""
    if isinstance(secret, bytes):
        secret = secret.decode("utf-8", "replace")
    handle, dot, _ = secret.partition(".")
    return handle if dot and _HANDLE.fullmatch(handle) else ""


class KeyScheme:
    """Builds key names; ``tag_kind`` is ``"g"`` (a slot per grant), ``"u"`` or ``"c"`` (per
    subject or client)."""

    def __init__(self, namespace: str = "oauth", tag_kind: str = "g") -> None:
        if "{" in namespace or "}" in namespace:
            raise ValueError("the namespace must not contain { or }: it would become the hash tag")
        if _HANDLE.fullmatch(tag_kind) is None:
            raise ValueError("tag_kind is 1 to 64 characters of A-Z a-z 0-9 _ -")
        self.namespace = namespace
        self.tag_kind = tag_kind

    def tagged(self, handle: str) -> str:
        """The common start of every key of ``handle``: ``oauth:{g:<handle>}``."""
        return f"{self.namespace}:{{{self.tag_kind}:{handle}}}"

    def code(self, code: str | bytes) -> str:
        return f"{self.tagged(handle_of(code))}:code:{sha256_hex(code)}"

    def access_token(self, token: str | bytes) -> str:
        return f"{self.tagged(handle_of(token))}:at:{sha256_hex(token)}"

    def refresh_token(self, token: str | bytes) -> str:
        return f"{self.tagged(handle_of(token))}:rt:{sha256_hex(token)}"

    def grant(self, handle: str, grant_id: str = "") -> str:
        """The grant set; with ``tag_kind="u"``, name each grant with ``grant_id``."""
        return f"{self.tagged(handle)}:grant" + (f":{grant_id}" if grant_id else "")

    def cutoff(self, handle: str, client_id: str = "") -> str:
        """A revoke-before cutoff key: the handle's, or the handle's for one client."""
        return f"{self.tagged(handle)}:cutoff" + (f":{client_id}" if client_id else "")

    def client(self, client_id: str) -> str:
        """A client registration (no tag: a single-key command)."""
        return f"{self.namespace}:client:{client_id}"

    def state(self, state: str | bytes) -> str:
        """A single-use state or nonce, by the SHA-256 of its value."""
        return f"{self.namespace}:state:{sha256_hex(state)}"
