"""Typed redis-py client for the redis-oauth module's ``OAUTH.*`` commands."""

from .asyncio import AsyncOAuthStore
from .client import OAuthStore
from .errors import (
    CrossSlot,
    Exists,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    NoPermission,
    NotReplicated,
    OAuthError,
    ServerError,
    WrongType,
)
from .keys import KeyScheme, handle_of, new_handle, new_secret, sha256_hex
from .pkce import PKCEPair, create_pair, s256_challenge
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

__version__ = "0.1.0"

__all__ = [
    "RECORD_KINDS",
    "AsyncOAuthStore",
    "Census",
    "ClientRegistration",
    "CrossSlot",
    "Exchange",
    "Exists",
    "Introspection",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "KeyScheme",
    "ListedRecord",
    "NoPermission",
    "NotReplicated",
    "OAuthError",
    "OAuthStore",
    "PKCEPair",
    "RateLimit",
    "Rotation",
    "ScanPage",
    "ServerError",
    "WrongType",
    "create_pair",
    "handle_of",
    "new_handle",
    "new_secret",
    "s256_challenge",
    "sha256_hex",
]
