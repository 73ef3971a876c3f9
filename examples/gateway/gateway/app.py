"""The gateway's HTTP endpoints (Starlette), on the redis-oauth client package.

Every code and token string is ``<grant handle>.<random>`` (``new_secret``); its key is
the SHA-256 of the string under the grant's hash tag (``KeyScheme``), so a code, its
tokens, their successors and the grant set share one Cluster slot, and no secret
appears in a key name. Nothing is logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from redis.asyncio import Redis
from redis_oauth import (
    AsyncOAuthStore,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    KeyScheme,
    OAuthError,
    RateLimit,
    handle_of,
    new_handle,
    new_secret,
    sha256_hex,
)
from starlette.applications import Starlette
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .settings import Settings
from .upstream import stub_login

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")


# Errors the module has no code for; each answers like the package's own classes.


class InvalidBasicClient(InvalidClient):
    """Client authentication with HTTP Basic failed: 401 with WWW-Authenticate."""


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    status = 400


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"
    status = 400


class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"  # RFC 7591 §3.2.2
    status = 400


class InvalidRedirectUri(OAuthError):
    error = "invalid_redirect_uri"
    status = 400


def error_response(e: OAuthError, headers: Mapping[str, str]) -> JSONResponse:
    """RFC 6749 §5.2: the error as JSON, with its status; Basic failures get a challenge."""
    extra = {"WWW-Authenticate": 'Basic realm="token"'} if isinstance(e, InvalidBasicClient) else {}
    return JSONResponse(e.to_dict(), e.status, {**headers, **extra})


def too_many_requests(headers: Mapping[str, str]) -> JSONResponse:
    body = {"error": "too_many_requests", "error_description": "rate limit exceeded"}
    return JSONResponse(body, 429, headers)


def single_values(params: ImmutableMultiDict[str, Any]) -> dict[str, str]:
    """Request parameters, each at most once (RFC 6749 §3.1, §3.2)."""
    values: dict[str, str] = {}
    for name, value in params.multi_items():
        if name in values or not isinstance(value, str):
            raise InvalidRequest(f"parameter {name} is repeated or not text")
        values[name] = value
    return values


def required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidRequest(f"{name} is missing")
    return value


def new_jti() -> str:
    """An access token's id (RFC 7662 ``jti``): random, so it reveals nothing of the token.

    EXCHANGE and ROTATE give their fields to both tokens they create, so the refresh
    token's record carries the jti of the access token issued with it; operators
    look for access tokens only (``OAUTH.SCAN ... KIND token``).
    """
    return secrets.token_hex(12)


def client_ip(request: Request) -> str:
    # Behind a proxy, take the address from its header instead (and trust only it).
    return request.client.host if request.client else "unknown"


def rate_key(endpoint: str, kind: str, value: str) -> str:
    """A counter key, ``rl:{ip:<sha256>}:token``: hashing keeps braces out of the tag."""
    return f"rl:{{{kind}:{sha256_hex(value)}}}:{endpoint}"


def with_query(uri: str, params: Mapping[str, str]) -> str:
    return uri + ("&" if urlsplit(uri).query else "?") + urlencode(params)


def valid_redirect_uri(uri: object) -> bool:
    """HTTPS, or HTTP on a loopback host (native apps, RFC 8252 §7.3); no fragment."""
    if not isinstance(uri, str):
        return False
    parts = urlsplit(uri)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    return (parts.scheme == "https" or (parts.scheme == "http" and loopback)) and (
        bool(parts.hostname) and not parts.fragment
    )


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str
    basic: bool


def credentials(request: Request, form: Mapping[str, str]) -> Credentials:
    """client_secret_basic or client_secret_post (RFC 6749 §2.3.1), not both."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() != "basic ":
        return Credentials(form.get("client_id", ""), form.get("client_secret", ""), False)
    if "client_secret" in form:
        raise InvalidRequest("use one client authentication method, not two")
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidBasicClient("malformed Basic credentials") from None
    client_id, _, secret = decoded.partition(":")
    client_id = unquote_plus(client_id)
    if form.get("client_id", client_id) != client_id:
        raise InvalidRequest("client_id differs from the authenticated client")
    return Credentials(client_id, unquote_plus(secret), True)


class Gateway:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.store = AsyncOAuthStore(redis, prefix=settings.key_prefix)
        self.keys = KeyScheme()

    # Helpers

    async def rate_limit(self, endpoint: str, ip: str, subject: str) -> RateLimit:
        """Per address, then per subject (``u:<user>`` or ``c:<client_id>``).

        Every request that reaches the address limit counts against it, also one the
        subject's limit then refuses. The answer is the tighter of the two, for the
        headers.
        """
        s = self.settings
        by_ip = await self.store.rate_limit(
            rate_key(endpoint, "ip", ip), s.rate_limit_ip, s.rate_window
        )
        if by_ip.limited:
            return by_ip
        kind, _, value = subject.partition(":")
        by_subject = await self.store.rate_limit(
            rate_key(endpoint, kind, value), s.rate_limit_subject, s.rate_window
        )
        return by_subject if by_subject.limited or by_subject.remaining < by_ip.remaining else by_ip

    async def authenticate(self, creds: Credentials) -> str:
        """The client_id, if its secret is right; unknown clients fail alike (401)."""
        known = bool(creds.client_id and creds.secret) and await self.store.verify_client(
            self.keys.client(creds.client_id), creds.secret
        )
        if not known:
            raise (InvalidBasicClient if creds.basic else InvalidClient)(
                "client authentication failed"
            )
        return creds.client_id

    async def field(self, key: str, name: str) -> str | None:
        """One field of a code or refresh-token record, which the package has no read for.

        The module has no command that reads one record by key: EXCHANGE and ROTATE
        answer the fields only once they have issued the tokens with the TTLs given
        to them, and OAUTH.SCAN walks the keyspace (one step finds a key only by
        chance). Records are plain hashes (docs/commands/README.md); the fields read
        here are written once and never change, so reading them before a command is
        no race.
        """
        value = await self.redis.hget(self.settings.key_prefix + key, name)
        return value.decode() if isinstance(value, bytes) else value

    def lifetime(self, upstream_exp: str | None, *, fallback: int, cap: int) -> int:
        """Seconds a token may live: until the upstream exp (at most ``cap``), else ``fallback``."""
        if upstream_exp is None:
            return fallback
        left = int(upstream_exp) - int(time.time())
        if left <= 0:
            raise InvalidGrant("the upstream login has expired; sign in again")
        return min(left, cap)

    def derive(self, token: str, purpose: str) -> str:
        """A successor's string from the presented token: a retry gets the same one."""
        mac = hmac.new(self.settings.server_key, f"{purpose}:{token}".encode(), hashlib.sha256)
        tail = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
        return f"{handle_of(token)}.{tail}"

    @staticmethod
    def token_body(access: str, expires_in: int, refresh: str, scope: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "refresh_token": refresh,
        }
        return {**body, "scope": scope} if scope else body

    # RFC 7591 dynamic client registration

    async def register(self, request: Request) -> Response:
        s = self.settings
        limit = await self.store.rate_limit(
            rate_key("register", "ip", client_ip(request)), s.rate_limit_ip, s.rate_window
        )
        headers = {**NO_STORE, **limit.headers()}
        if limit.limited:
            return too_many_requests(headers)
        try:
            try:
                meta = await request.json()
            except ValueError:
                raise InvalidClientMetadata("the body is not JSON") from None
            if not isinstance(meta, dict):
                raise InvalidClientMetadata("the body is not a JSON object")
            uris = meta.get("redirect_uris")
            if not isinstance(uris, list) or not uris or not all(map(valid_redirect_uri, uris)):
                raise InvalidRedirectUri("redirect_uris: HTTPS URIs, or HTTP on loopback")
            method = meta.get("token_endpoint_auth_method", "client_secret_basic")
            if method not in AUTH_METHODS:
                raise InvalidClientMetadata(f"token_endpoint_auth_method: one of {AUTH_METHODS}")
            name = meta.get("client_name")
            if name is not None and not isinstance(name, str):
                raise InvalidClientMetadata("client_name: a string")
        except OAuthError as e:
            return error_response(e, headers)

        client_id, secret = secrets.token_hex(16), secrets.token_urlsafe(32)
        fields = {
            "client_id": client_id,
            "client_secret": secret,  # the module stores only its SHA-256
            "redirect_uris": json.dumps(uris),
            "token_endpoint_auth_method": method,
            **({"client_name": name} if name else {}),
        }
        expires_at = await self.store.save_client(
            self.keys.client(client_id), fields, ttl=s.client_ttl
        )
        body = {
            "client_id": client_id,
            "client_secret": secret,  # shown once
            "client_id_issued_at": int(time.time()),
            "client_secret_expires_at": expires_at,
            "redirect_uris": uris,
            "token_endpoint_auth_method": method,
            # The server's values, whatever was asked (RFC 7591 §3.2.1 allows replacing).
            "grant_types": list(GRANT_TYPES),
            "response_types": ["code"],
            **({"client_name": name} if name else {}),
        }
        return JSONResponse(body, 201, headers)

    # RFC 6749 §4.1.1 authorization endpoint, with PKCE S256 (RFC 7636)

    async def authorize(self, request: Request) -> Response:
        s = self.settings
        try:
            query = single_values(request.query_params)
        except OAuthError as e:
            return error_response(e, {})
        # The stub logs in at once; a real gateway redirects to its IdP here (keeping the
        # request in OAUTH.SAVESTATE) and issues the code at the IdP's callback.
        login = stub_login(query.get("login_hint"), s.upstream_session_ttl)
        limit = await self.rate_limit("authorize", client_ip(request), f"u:{login.sub}")
        headers = limit.headers()
        if limit.limited:
            return too_many_requests(headers)

        # Without a known client and one of its redirect URIs, never redirect (§4.1.2.1).
        client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
        client = await self.store.get_client(self.keys.client(client_id)) if client_id else None
        if client is None:
            return error_response(InvalidRequest("unknown client_id"), headers)
        if redirect_uri not in json.loads(client.fields["redirect_uris"]):
            return error_response(InvalidRequest("redirect_uri is not registered"), headers)

        params: dict[str, str]
        try:
            if query.get("response_type") != "code":
                raise UnsupportedResponseType("response_type must be code")
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                raise InvalidRequest("PKCE is required: code_challenge with method S256")
            code = new_secret(new_handle())  # the handle is the grant's hash tag
            fields = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "sub": login.sub,
                "code_challenge": query["code_challenge"],  # syntax checked by save_code
                "code_challenge_method": "S256",
                **({"scope": query["scope"]} if query.get("scope") else {}),
                **({"upstream_exp": str(login.exp)} if login.exp is not None else {}),
            }
            await self.store.save_code(self.keys.code(code), s.code_ttl, fields)
            params = {"code": code}
        except OAuthError as e:
            params = e.to_dict()
        if "state" in query:
            params["state"] = query["state"]
        params["iss"] = s.issuer  # RFC 9207
        return RedirectResponse(with_query(redirect_uri, params), 302, headers)

    # RFC 6749 §4.1.3 and §6 token endpoint

    async def token(self, request: Request) -> Response:
        headers = dict(NO_STORE)
        try:
            form = single_values(await request.form())
            creds = credentials(request, form)
            limit = await self.rate_limit("token", client_ip(request), f"c:{creds.client_id}")
            headers.update(limit.headers())
            if limit.limited:
                return too_many_requests(headers)
            client_id = await self.authenticate(creds)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                body = await self.redeem_code(form, client_id)
            elif grant_type == "refresh_token":
                body = await self.refresh(form, client_id)
            else:
                raise UnsupportedGrantType("grant_type: authorization_code or refresh_token")
        except OAuthError as e:  # invalid_grant 400, invalid_client 401, server_error 5xx, ...
            return error_response(e, headers)
        return JSONResponse(body, 200, headers)

    async def redeem_code(self, form: Mapping[str, str], client_id: str) -> dict[str, Any]:
        s = self.settings
        code = required(form, "code")
        handle = handle_of(code)
        if not handle:
            raise InvalidGrant("authorization code not found or expired")
        code_key = self.keys.code(code)
        # EXCHANGE answers the code's fields only after issuing with the TTLs it was
        # given: the exp that decides them has to be read first (see field()).
        upstream_exp = await self.field(code_key, "upstream_exp")
        access_ttl = self.lifetime(upstream_exp, fallback=s.access_ttl, cap=s.access_ttl_max)
        refresh_ttl = self.lifetime(upstream_exp, fallback=s.refresh_ttl, cap=s.refresh_ttl)
        access, refresh = new_secret(handle), new_secret(handle)
        # One atomic step: checks client, redirect URI and PKCE, consumes the code, issues
        # both tokens into the grant; a replayed code revokes that grant.
        result = await self.store.exchange(
            code_key,
            client_id=client_id,
            redirect_uri=form.get("redirect_uri"),
            code_verifier=form.get("code_verifier"),
            issue=(self.keys.access_token(access), access_ttl),
            refresh=(self.keys.refresh_token(refresh), refresh_ttl),
            grant=self.keys.grant(handle),
            fields={"jti": new_jti()},
        )
        return self.token_body(access, access_ttl, refresh, result.fields.get("scope"))

    async def refresh(self, form: Mapping[str, str], client_id: str) -> dict[str, Any]:
        s = self.settings
        presented = required(form, "refresh_token")
        handle = handle_of(presented)
        if not handle:
            raise InvalidGrant("refresh token not found or expired")
        old_key = self.keys.refresh_token(presented)
        upstream_exp = await self.field(old_key, "upstream_exp")
        access_ttl = self.lifetime(upstream_exp, fallback=s.access_ttl, cap=s.access_ttl_max)
        refresh_ttl = self.lifetime(upstream_exp, fallback=s.refresh_ttl, cap=s.refresh_ttl)
        access, successor = self.derive(presented, "at"), self.derive(presented, "rt")
        scope = form.get("scope")
        # Rotation, a grace-window replay (the same successor), or reuse, which revokes
        # the whole grant and raises InvalidGrant. (A replay creates nothing: its
        # tokens keep the jti of the first answer.)
        result = await self.store.rotate(
            old_key,
            self.keys.refresh_token(successor),
            refresh_ttl,
            issue=(self.keys.access_token(access), access_ttl),
            grace=s.refresh_grace,
            fields={"jti": new_jti(), **({"scope": scope} if scope else {})},
        )
        if result.fields.get("client_id") != client_id:  # §6: stolen, or a confused client
            await self.store.revoke_grant(self.keys.grant(handle))
            raise InvalidGrant("refresh token was issued to another client")
        if result.replayed:  # the access token of the first answer: its remaining lifetime
            exp = (await self.store.introspect(self.keys.access_token(access))).exp
            access_ttl = max(0, (exp or 0) - int(time.time()))
        return self.token_body(access, access_ttl, successor, result.fields.get("scope"))

    # RFC 7662 introspection and RFC 7009 revocation, for authenticated clients

    async def introspect(self, request: Request) -> Response:
        try:
            form = single_values(await request.form())
            await self.authenticate(credentials(request, form))
            info = await self.store.introspect(self.keys.access_token(required(form, "token")))
        except OAuthError as e:
            return error_response(e, NO_STORE)
        if not info.active:  # unknown, expired, revoked, or a refresh token: nothing more
            return JSONResponse({"active": False}, 200, NO_STORE)
        claims = {k: v for k, v in info.fields.items() if k in ("client_id", "sub", "scope", "jti")}
        body = {
            "active": True,
            **claims,
            "token_type": "Bearer",
            "exp": info.exp,
            "iat": info.iat,
            "iss": self.settings.issuer,
        }
        return JSONResponse(body, 200, NO_STORE)

    async def revoke(self, request: Request) -> Response:
        try:
            form = single_values(await request.form())
            client_id = await self.authenticate(credentials(request, form))
            token = required(form, "token")
            access_key, refresh_key = self.keys.access_token(token), self.keys.refresh_token(token)
            # Whose token is it? An access token says so in introspection, a refresh
            # token only in its record.
            info = await self.store.introspect(access_key)
            owner = info.fields.get("client_id") if info.active else None
            owner = owner or await self.field(refresh_key, "client_id")
            if owner is not None and owner != client_id:
                raise InvalidGrant("the token was issued to another client")
            if owner is not None:  # a refresh token takes its grant's access tokens along
                await self.store.revoke(access_key, refresh_key)
        except OAuthError as e:
            return error_response(e, NO_STORE)
        return Response(status_code=200, headers=NO_STORE)  # also for unknown tokens

    # RFC 8414 metadata, for clients that discover the endpoints

    async def metadata(self, request: Request) -> Response:
        issuer = self.settings.issuer
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "registration_endpoint": f"{issuer}/register",
                "introspection_endpoint": f"{issuer}/introspect",
                "revocation_endpoint": f"{issuer}/revoke",
                "response_types_supported": ["code"],
                "grant_types_supported": list(GRANT_TYPES),
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
                "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
                "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
                "authorization_response_iss_parameter_supported": True,
            }
        )


def create_app(settings: Settings) -> Starlette:
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    gateway = Gateway(settings, redis)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    return Starlette(
        routes=[
            Route("/register", gateway.register, methods=["POST"]),
            Route("/authorize", gateway.authorize, methods=["GET"]),
            Route("/token", gateway.token, methods=["POST"]),
            Route("/introspect", gateway.introspect, methods=["POST"]),
            Route("/revoke", gateway.revoke, methods=["POST"]),
            Route("/.well-known/oauth-authorization-server", gateway.metadata, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """The app from environment variables: ``uvicorn --factory gateway.app:app_from_env``."""
    return create_app(Settings.from_env())
