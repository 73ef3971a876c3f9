"""Runs the token endpoint of docs/clients.md, as written there, against the standalone server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from redis_oauth import KeyScheme, OAuthStore, create_pair, new_handle, new_secret

COMPAT = Path(__file__).resolve().parents[3] / "docs" / "clients.md"
SECRET = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"


@pytest.fixture
def endpoint(standalone):
    text = COMPAT.read_text()
    code = re.search(r"<!-- token-endpoint-example -->\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(COMPAT), "exec"), namespace)
    with standalone.client() as client:
        namespace["store"] = OAuthStore(client)
        yield namespace


def test_token_endpoint_example(endpoint):
    store, keys, token_endpoint = endpoint["store"], KeyScheme(), endpoint["token_endpoint"]
    client_id = f"app-{new_handle()}"
    store.save_client(keys.client(client_id), {"client_id": client_id, "client_secret": SECRET})
    handle, pair = new_handle(), create_pair()
    code = new_secret(handle)
    store.save_code(
        keys.code(code),
        600,
        {
            "client_id": client_id,
            "redirect_uri": "https://app/cb",
            "scope": "read write",
            "code_challenge": pair.challenge,
            "code_challenge_method": "S256",
        },
    )
    form = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": SECRET,
        "code": code,
        "redirect_uri": "https://app/cb",
        "code_verifier": pair.verifier,
    }
    ip = new_handle()

    status, body, headers = token_endpoint(form, ip)
    assert status == 200 and body["token_type"] == "Bearer" and body["scope"] == "read write"
    assert headers["Cache-Control"] == "no-store" and headers["RateLimit-Remaining"] == "19"
    assert store.introspect(keys.access_token(body["access_token"])).active

    assert token_endpoint(form, ip)[:2] == (
        400,
        {"error": "invalid_grant", "error_description": "authorization code already used"},
    )
    assert not store.introspect(
        keys.access_token(body["access_token"])
    ).active  # the replay revoked it

    # A fresh code, then refresh twice with the same token: the retry gets the same answer.
    code = new_secret(handle := new_handle())
    store.save_code(
        keys.code(code),
        600,
        {
            "client_id": client_id,
            "scope": "read write",
            "code_challenge": pair.challenge,
            "code_challenge_method": "S256",
        },
    )
    first = token_endpoint({**form, "code": code, "redirect_uri": ""}, ip)[1]
    refresh = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": SECRET,
        "refresh_token": first["refresh_token"],
        "scope": "read",
    }
    status, rotated, _ = token_endpoint(refresh, ip)
    assert (
        status == 200
        and rotated["scope"] == "read"
        and rotated["refresh_token"] != first["refresh_token"]
    )
    assert token_endpoint(refresh, ip)[:2] == (200, rotated)
    assert token_endpoint({**refresh, "scope": "admin"}, ip)[0] == 200  # a replay ignores FIELDS

    assert token_endpoint({**refresh, "client_secret": "wrong"}, ip)[:2] == (
        401,
        {"error": "invalid_client", "error_description": "client authentication failed"},
    )
    assert token_endpoint({**form, "code": "garbage"}, ip)[0] == 400
    assert (
        token_endpoint(
            {**refresh, "refresh_token": rotated["refresh_token"], "scope": "read admin"}, ip
        )[1]["error"]
        == "invalid_scope"
    )
    assert token_endpoint({**form, "grant_type": "password"}, ip)[:2] == (
        400,
        {"error": "unsupported_grant_type"},
    )

    # Another client presenting this client's refresh token: refused, and the grant revoked.
    other = f"app-{new_handle()}"
    store.save_client(keys.client(other), {"client_id": other, "client_secret": SECRET})
    stolen = {**refresh, "client_id": other, "refresh_token": rotated["refresh_token"], "scope": ""}
    assert token_endpoint(stolen, ip)[1] == {
        "error": "invalid_grant",
        "error_description": "refresh token was issued to another client",
    }
    assert not store.introspect(keys.access_token(rotated["access_token"])).active

    statuses = [token_endpoint(form, ip) for _ in range(12)]
    status, body, headers = statuses[-1]
    assert (
        status == 429
        and 1 <= int(headers["Retry-After"]) <= 60
        and headers["RateLimit-Remaining"] == "0"
    )
