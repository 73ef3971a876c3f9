"""PKCE (RFC 7636): make a verifier and its S256 challenge, and check their syntax.

A verifier, and a ``plain`` challenge (which is the verifier), must be 43 to 128
characters of ``A-Z a-z 0-9 - . _ ~`` (§4.1). Some libraries make shorter ones by
default (authlib's ``generate_token()`` makes 30 characters): such a code could be
saved but never redeemed, so they are refused here, before anything is saved.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import NamedTuple

from .errors import InvalidRequest

_ALPHABET = re.compile(r"[A-Za-z0-9\-._~]*")
_SYNTAX = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


class PKCEPair(NamedTuple):
    verifier: str
    challenge: str
    method: str = "S256"


def check(value: str | bytes, name: str = "code_verifier") -> str:
    """Return ``value`` as ``str`` if it is valid verifier syntax, else raise ``InvalidRequest``.

    The message names the length and the rule, never the value.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if _SYNTAX.fullmatch(value) is None:
        outside = "" if _ALPHABET.fullmatch(value) else ", some outside that set"
        raise InvalidRequest(
            f"{name} must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ "
            f"(RFC 7636 §4.1); got {len(value)} characters{outside}"
        )
    return value


def s256_challenge(verifier: str | bytes) -> str:
    """BASE64URL(SHA-256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(check(verifier).encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def create_pair(length: int = 64) -> PKCEPair:
    """A random verifier of ``length`` characters (43 to 128) and its S256 challenge."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE verifier has 43 to 128 characters")
    verifier = secrets.token_urlsafe(length)[:length]
    return PKCEPair(verifier, s256_challenge(verifier))
