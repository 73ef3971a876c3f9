"""End to end: authlib's OAuth2Session over HTTP, the gateway, redis-server with the module."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from redis_oauth import KeyScheme, handle_of

REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the tests read the Location header
keys = KeyScheme()
StartGateway = Callable[..., str]  # the start_gateway fixture: settings overrides -> base URL


def register(base: str, **meta: Any) -> dict[str, Any]:
    response = requests.post(f"{base}/register", json={"redirect_uris": [REDIRECT], **meta})
    assert response.status_code == 201, response.text
    client: dict[str, Any] = response.json()
    return client


def session(client: dict[str, Any]) -> OAuth2Session:
    return OAuth2Session(
        client["client_id"],
        client["client_secret"],
        scope="read write",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method=client["token_endpoint_auth_method"],
    )


def user() -> str:
    return f"user-{secrets.token_hex(4)}"


def authorize(base: str, oauth: OAuth2Session, login: str) -> tuple[str, str, str]:
    """The redirect back to the client, its verifier and state (the stubbed login is immediate)."""
    verifier = generate_token(64)  # RFC 7636: 43 to 128 characters; authlib's default is 30
    url, state = oauth.create_authorization_url(
        f"{base}/authorize", code_verifier=verifier, login_hint=login
    )
    response = requests.get(url, allow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["Location"], verifier, state


def login(base: str, oauth: OAuth2Session, who: str | None = None) -> dict[str, Any]:
    location, verifier, state = authorize(base, oauth, who or user())
    token: dict[str, Any] = oauth.fetch_token(
        f"{base}/token", authorization_response=location, code_verifier=verifier, state=state
    )
    return token


def introspect(base: str, client: dict[str, Any], token: str) -> dict[str, Any]:
    response = requests.post(
        f"{base}/introspect",
        data={"token": token},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def revoke(base: str, client: dict[str, Any], token: str) -> requests.Response:
    return requests.post(
        f"{base}/revoke", data={"token": token}, auth=(client["client_id"], client["client_secret"])
    )


def refresh_error(oauth: OAuth2Session, base: str, refresh_token: str) -> str:
    with pytest.raises(OAuthError) as refused:
        oauth.refresh_token(f"{base}/token", refresh_token=refresh_token)
    return str(refused.value.error)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# Registration


def test_registration(gateway: str, redis_client: redis.Redis) -> None:
    client = register(gateway, client_name="demo", token_endpoint_auth_method="client_secret_post")
    assert client["redirect_uris"] == [REDIRECT]
    assert client["token_endpoint_auth_method"] == "client_secret_post"
    assert len(client["client_secret"]) >= 32
    assert 0 < client["client_secret_expires_at"] - time.time() <= 90 * 86400
    stored = redis_client.hgetall(keys.client(client["client_id"]))
    assert client["client_secret"] not in stored.values()  # only its SHA-256 is kept

    off_loopback = {"redirect_uris": ["http://example.com/cb"]}  # plain HTTP
    response = requests.post(f"{gateway}/register", json=off_loopback)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_redirect_uri")
    public = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    response = requests.post(f"{gateway}/register", json=public)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_client_metadata")

    metadata = requests.get(f"{gateway}/.well-known/oauth-authorization-server").json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]


# The authorization code flow


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_code_flow(gateway: str, method: str) -> None:
    client = register(gateway, token_endpoint_auth_method=method)
    who = user()
    token = login(gateway, session(client), who)
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read write"
    assert token["expires_in"] == 600  # no upstream exp: the fallback
    info = introspect(gateway, client, token["access_token"])
    assert info["active"] is True
    assert (info["sub"], info["client_id"], info["scope"]) == (
        who,
        client["client_id"],
        "read write",
    )
    assert abs(info["exp"] - (time.time() + 600)) <= 2
    # An id of its own (random), never the token: the admin CLI revokes by it.
    assert re.fullmatch(r"[0-9a-f]{24}", info["jti"])


def test_state_passes_through_and_pkce_s256_is_required(gateway: str) -> None:
    client = register(gateway)
    oauth = session(client)
    location, _, state = authorize(gateway, oauth, user())
    assert query_of(location)["state"] == state

    base = {
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "state": "xyz",
        "login_hint": user(),
    }
    challenge = generate_token(43)
    for pkce in (
        {},
        {"code_challenge": challenge, "code_challenge_method": "plain"},
        {"code_challenge": challenge},
        {"code_challenge": "short", "code_challenge_method": "S256"},
    ):
        response = requests.get(
            f"{gateway}/authorize", params={**base, **pkce}, allow_redirects=False
        )
        assert response.status_code == 302
        query = query_of(response.headers["Location"])
        assert (query["error"], query["state"]) == ("invalid_request", "xyz")
        assert "code" not in query

    # Never redirect to an unknown client or an unregistered URI.
    for wrong in ({"client_id": "nope"}, {"redirect_uri": "https://evil.example/cb"}):
        response = requests.get(
            f"{gateway}/authorize", params={**base, **wrong}, allow_redirects=False
        )
        assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_token_errors(gateway: str) -> None:
    client = register(gateway)
    oauth = session(client)
    location, verifier, _ = authorize(gateway, oauth, user())
    code = query_of(location)["code"]
    url = f"{gateway}/token"
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }

    wrong = requests.post(url, data=form, auth=(client["client_id"], "wrong-secret"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    unknown = requests.post(url, data={**form, "client_id": "nope", "client_secret": "x" * 32})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_client")

    auth = (client["client_id"], client["client_secret"])
    for bad, error in (
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"code": ""}, "invalid_request"),
        ({"redirect_uri": "http://127.0.0.1:9/other"}, "invalid_grant"),
    ):
        response = requests.post(url, data={**form, **bad}, auth=auth)
        assert (response.status_code, response.json()["error"]) == (400, error)
    # After one failed attempt the code still redeems with the right verifier.
    response = requests.post(url, data=form, auth=auth)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_wrong_verifier_is_invalid_grant(gateway: str) -> None:
    client = register(gateway)
    oauth = session(client)
    location, _, state = authorize(gateway, oauth, user())
    with pytest.raises(OAuthError) as refused:
        oauth.fetch_token(
            f"{gateway}/token",
            authorization_response=location,
            code_verifier=generate_token(64),
            state=state,
        )
    assert refused.value.error == "invalid_grant"


def test_replayed_code_is_refused_and_its_tokens_revoked(gateway: str) -> None:
    client = register(gateway)
    oauth = session(client)
    location, verifier, state = authorize(gateway, oauth, user())
    token = oauth.fetch_token(
        f"{gateway}/token", authorization_response=location, code_verifier=verifier, state=state
    )
    assert introspect(gateway, client, token["access_token"])["active"] is True

    with pytest.raises(OAuthError) as replay:
        oauth.fetch_token(
            f"{gateway}/token", authorization_response=location, code_verifier=verifier, state=state
        )
    assert replay.value.error == "invalid_grant"
    assert introspect(gateway, client, token["access_token"]) == {"active": False}
    assert refresh_error(oauth, gateway, token["refresh_token"]) == "invalid_grant"


def test_concurrent_redemptions_of_one_code(gateway: str) -> None:
    client = register(gateway)
    location, verifier, state = authorize(gateway, session(client), user())
    start = threading.Barrier(2, timeout=10)
    results: list[Any] = []

    def redeem() -> None:
        oauth = session(client)  # one session (and connection) per thread
        start.wait()
        try:
            results.append(
                oauth.fetch_token(
                    f"{gateway}/token",
                    authorization_response=location,
                    code_verifier=verifier,
                    state=state,
                )
            )
        except OAuthError as e:
            results.append(e.error)

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1 and results.count("invalid_grant") == 1, results
    # The loser's attempt was a reuse of the code: the winner's tokens are revoked too.
    assert introspect(gateway, client, winners[0]["access_token"]) == {"active": False}


# Refresh tokens


def test_refresh_rotation(gateway: str) -> None:
    client = register(gateway)
    oauth = session(client)
    first = login(gateway, oauth)
    second = oauth.refresh_token(f"{gateway}/token", refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert handle_of(second["refresh_token"]) == handle_of(first["refresh_token"])  # one grant
    assert introspect(gateway, client, second["access_token"])["active"] is True

    narrower = oauth.refresh_token(
        f"{gateway}/token", refresh_token=second["refresh_token"], scope="read"
    )
    assert narrower["scope"] == "read"
    assert introspect(gateway, client, narrower["access_token"])["scope"] == "read"
    wider = requests.post(
        f"{gateway}/token",
        auth=(client["client_id"], client["client_secret"]),
        data={
            "grant_type": "refresh_token",
            "scope": "read admin",
            "refresh_token": narrower["refresh_token"],
        },
    )
    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")


def test_replayed_refresh_token_revokes_the_family(gateway: str) -> None:
    client = register(gateway)
    oauth = session(client)
    first = login(gateway, oauth)
    second = oauth.refresh_token(f"{gateway}/token", refresh_token=first["refresh_token"])

    # A retry of a lost response, inside the grace window: the same answer.
    retry = oauth.refresh_token(f"{gateway}/token", refresh_token=first["refresh_token"])
    assert (retry["access_token"], retry["refresh_token"]) == (
        second["access_token"],
        second["refresh_token"],
    )
    assert 0 < retry["expires_in"] <= second["expires_in"]

    # Once more: reuse. The whole family is revoked.
    assert refresh_error(oauth, gateway, first["refresh_token"]) == "invalid_grant"
    for token in (first, second):
        assert introspect(gateway, client, token["access_token"]) == {"active": False}
    assert refresh_error(oauth, gateway, second["refresh_token"]) == "invalid_grant"


def test_refresh_token_of_another_client(gateway: str) -> None:
    owner, thief = register(gateway), register(gateway)
    token = login(gateway, session(owner))
    assert refresh_error(session(thief), gateway, token["refresh_token"]) == "invalid_grant"
    # Treated as stolen: the grant is revoked for its owner too.
    assert introspect(gateway, owner, token["access_token"]) == {"active": False}
    assert refresh_error(session(owner), gateway, token["refresh_token"]) == "invalid_grant"


# Revocation and introspection


def test_revocation(gateway: str) -> None:
    client, other = register(gateway), register(gateway)
    oauth = session(client)

    token = login(gateway, oauth)
    assert revoke(gateway, other, token["access_token"]).status_code == 400  # not its token
    assert introspect(gateway, client, token["access_token"])["active"] is True
    response = revoke(gateway, client, token["access_token"])
    assert response.status_code == 200
    assert introspect(gateway, client, token["access_token"]) == {"active": False}
    # Revoking an access token leaves the refresh token.
    fresh = oauth.refresh_token(f"{gateway}/token", refresh_token=token["refresh_token"])

    # Revoking a refresh token takes the grant's access tokens along (RFC 7009 §2.1).
    assert revoke(gateway, client, fresh["refresh_token"]).status_code == 200
    assert introspect(gateway, client, fresh["access_token"]) == {"active": False}
    assert refresh_error(oauth, gateway, fresh["refresh_token"]) == "invalid_grant"

    for unknown in (fresh["refresh_token"], "no-such-token", "abc.def"):
        assert revoke(gateway, client, unknown).status_code == 200
    unauthenticated = requests.post(f"{gateway}/revoke", data={"token": "x"})
    assert unauthenticated.status_code == 401


def test_introspection(gateway: str) -> None:
    client, resource_server = register(gateway), register(gateway)
    token = login(gateway, session(client))
    info = introspect(gateway, resource_server, token["access_token"])
    assert info["active"] is True and info["client_id"] == client["client_id"]
    assert set(info) == {
        "active",
        "client_id",
        "sub",
        "scope",
        "jti",
        "token_type",
        "exp",
        "iat",
        "iss",
    }
    for inactive in (token["refresh_token"], "nope", "abc.def"):
        assert introspect(gateway, client, inactive) == {"active": False}
    missing = requests.post(
        f"{gateway}/introspect", data={}, auth=(client["client_id"], client["client_secret"])
    )
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    unauthenticated = requests.post(f"{gateway}/introspect", data={"token": token["access_token"]})
    assert (unauthenticated.status_code, unauthenticated.json()) == (
        401,
        {"error": "invalid_client", "error_description": "client authentication failed"},
    )


# Rate limits


def assert_limited(response: requests.Response, limit: int) -> None:
    assert response.status_code == 429
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_rate_limit_per_user_on_authorize(gateway: str) -> None:
    client = register(gateway)
    oauth = session(client)
    who = user()
    for i in range(8):
        url, _ = oauth.create_authorization_url(
            f"{gateway}/authorize", login_hint=who, code_verifier=generate_token(64)
        )
        response = requests.get(url, allow_redirects=False)
        assert response.status_code == 302
        assert response.headers["RateLimit-Remaining"] == str(7 - i)
    assert_limited(requests.get(url, allow_redirects=False), 8)
    authorize(gateway, oauth, user())  # another user is not limited


def test_rate_limit_per_client_on_token(gateway: str) -> None:
    client = register(gateway)
    form = {
        "grant_type": "authorization_code",
        "code": "x.y",
        "client_id": client["client_id"],
        "client_secret": "wrong-secret-wrong-secret",
    }
    for _ in range(8):
        assert requests.post(f"{gateway}/token", data=form).status_code == 401
    assert_limited(requests.post(f"{gateway}/token", data=form), 8)
    other = register(gateway)
    response = requests.post(f"{gateway}/token", data={**form, "client_id": other["client_id"]})
    assert response.status_code == 401


def test_rate_limit_per_address(start_gateway: StartGateway) -> None:
    base = start_gateway(rate_limit_ip=3, key_prefix="strict:")  # its own counters
    client = register(base)
    for _ in range(3):  # three different users, one address
        authorize(base, session(client), user())
    location = requests.get(
        f"{base}/authorize", params={"login_hint": user()}, allow_redirects=False
    )
    assert_limited(location, 3)
    form = {"grant_type": "refresh_token", "refresh_token": "x.y"}
    for _ in range(3):
        assert requests.post(f"{base}/token", data=form).status_code == 401
    assert_limited(requests.post(f"{base}/token", data=form), 3)


# Token lifetimes and keys


def test_token_ttl_follows_the_upstream_exp(
    start_gateway: StartGateway, redis_client: redis.Redis
) -> None:
    base = start_gateway(upstream_session_ttl=90, key_prefix="ttl:")
    client = register(base)
    oauth = session(client)
    token = login(base, oauth)
    assert 88 <= token["expires_in"] <= 90
    exp = introspect(base, client, token["access_token"])["exp"]
    assert abs(exp - (time.time() + 90)) <= 2
    refresh_key = "ttl:" + keys.refresh_token(token["refresh_token"])
    assert 0 < redis_client.ttl(refresh_key) <= 90  # not 30 days
    refreshed = oauth.refresh_token(f"{base}/token", refresh_token=token["refresh_token"])
    assert refreshed["expires_in"] <= 90
    assert abs(introspect(base, client, refreshed["access_token"])["exp"] - exp) <= 1


def test_token_ttl_is_capped(start_gateway: StartGateway) -> None:
    base = start_gateway(upstream_session_ttl=86400, access_ttl_max=300)
    client = register(base)
    assert login(base, session(client))["expires_in"] == 300


def test_expired_upstream_login_issues_nothing(start_gateway: StartGateway) -> None:
    base = start_gateway(upstream_session_ttl=1)
    oauth = session(register(base))
    location, verifier, state = authorize(base, oauth, user())
    time.sleep(1.2)
    with pytest.raises(OAuthError) as refused:
        oauth.fetch_token(
            f"{base}/token", authorization_response=location, code_verifier=verifier, state=state
        )
    assert refused.value.error == "invalid_grant"


def test_keys_hash_the_secrets_and_all_expire(gateway: str, redis_client: redis.Redis) -> None:
    client = register(gateway)
    oauth = session(client)
    location, verifier, state = authorize(gateway, oauth, user())
    code = query_of(location)["code"]
    token = oauth.fetch_token(
        f"{gateway}/token", authorization_response=location, code_verifier=verifier, state=state
    )
    token = oauth.refresh_token(f"{gateway}/token", refresh_token=token["refresh_token"])
    handle = handle_of(code)
    grant_keys = set(redis_client.scan_iter(match=f"oauth:{{g:{handle}}}:*"))
    # The code (a tombstone now), two access and two refresh tokens, and the grant set.
    assert len(grant_keys) == 6
    for key in grant_keys:
        assert re.fullmatch(rf"oauth:\{{g:{handle}\}}:((code|at|rt):[0-9a-f]{{64}}|grant)", key)
    assert keys.access_token(token["access_token"]) in grant_keys
    assert keys.refresh_token(token["refresh_token"]) in grant_keys
    secrets_ = (
        code,
        verifier,
        token["access_token"],
        token["refresh_token"],
        client["client_secret"],
    )
    for key in redis_client.scan_iter():
        assert redis_client.ttl(key) > 0, key  # never a key without expiry
        assert not any(secret in key for secret in secrets_)
