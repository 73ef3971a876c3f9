"""The stubbed upstream login (in a real gateway: an IdP such as Hanko, via a redirect).

A real gateway verifies the upstream ID token (a JWT) at its callback and keeps its
``sub`` and ``exp``; the tokens it then issues must not outlive that ``exp``. Here the
login is immediate: the user is ``login_hint`` (or ``demo``), and the session ends
``session_ttl`` seconds from now, or has no ``exp`` at all when ``session_ttl`` is None.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

DEFAULT_USER = "demo"


@dataclass(frozen=True)
class UpstreamLogin:
    sub: str
    exp: int | None  # Unix seconds, the upstream JWT's exp claim


def stub_login(login_hint: str | None, session_ttl: int | None) -> UpstreamLogin:
    exp = None if session_ttl is None else int(time.time()) + session_ttl
    return UpstreamLogin(login_hint or DEFAULT_USER, exp)
