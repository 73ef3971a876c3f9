"""Pure helpers: no server involved."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio
from redis.exceptions import ClusterCrossSlotError, NoPermissionError, ResponseError
from test_tokens import CHALLENGE, VERIFIER

from redis_oauth import (
    RECORD_KINDS,
    AsyncOAuthStore,
    Census,
    CrossSlot,
    Introspection,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    KeyScheme,
    NoPermission,
    OAuthStore,
    RateLimit,
    ServerError,
    create_pair,
    handle_of,
    new_handle,
    new_secret,
    s256_challenge,
    sha256_hex,
)
from redis_oauth._commands import Commands, combine_census
from redis_oauth.errors import translate, translate_admin


def test_translate_error_replies():
    grant = translate(ResponseError("INVALID_GRANT authorization code already used"))
    assert (
        isinstance(grant, InvalidGrant) and grant.description == "authorization code already used"
    )
    # redis-py removes "ERR " from the replies it maps to ResponseError.
    internal = translate(
        ResponseError("internal error in redis-oauth; details are in the server log")
    )
    assert isinstance(internal, ServerError) and internal.to_dict() == {"error": "server_error"}
    assert isinstance(translate(ResponseError("ERR wrong number of arguments")), ServerError)
    assert isinstance(
        translate(ClusterCrossSlotError("Keys in request don't hash to the same slot")), CrossSlot
    )
    assert isinstance(
        translate(ResponseError("CROSSSLOT Keys in request don't hash to the same slot")), CrossSlot
    )
    noperm = NoPermissionError("this user has no permissions to access one of the keys")
    assert translate(noperm) is noperm  # Redis's own errors pass through
    tryagain = ResponseError("TRYAGAIN Multiple keys request during rehashing of slot")
    assert translate(tryagain) is tryagain
    # The operators' tasks name NOPERM (still a redis-py NoPermissionError).
    for reply in (noperm, ResponseError("NOPERM " + str(noperm))):
        admin = translate_admin(reply)
        assert isinstance(admin, NoPermission) and isinstance(admin, NoPermissionError)
        assert admin.description == str(noperm)
    assert isinstance(translate_admin(ResponseError("INVALID_REQUEST bad")), InvalidRequest)


def test_census_of_several_nodes():
    def node(passes: int, age: int | None, tokens: int) -> Census:
        records = dict.fromkeys(RECORD_KINDS, 1) | {"token": tokens}
        return Census(records, subjects=2, keys=10, passes=passes, age_ms=age, duration_ms=3)

    both = combine_census([node(5, 100, 4), node(3, 900, 1)])
    assert both.records == dict.fromkeys(RECORD_KINDS, 2) | {"token": 5}
    assert (both.subjects, both.keys, both.nodes) == (4, 20, 2)
    assert (both.passes, both.age_ms, both.duration_ms) == (3, 900, 3)
    assert both["token"] == 5
    assert combine_census([node(1, 100, 1), node(0, None, 0)]).age_ms is None


def test_match_keeps_to_the_prefix():
    call = Commands("gw[1]*:").scan("0", "oauth:*", 100, "token", None, None)
    assert call.args == (
        "OAUTH.SCAN",
        "0",
        "MATCH",
        r"gw\[1\]\*:oauth:*",
        "COUNT",
        100,
        "KIND",
        "token",
    )
    assert Commands("").scan("0", None, None, None, "c", "u").args == (
        "OAUTH.SCAN",
        "0",
        "CLIENT",
        "c",
        "SUBJECT",
        "u",
    )
    assert Commands("gw:").purge_client("c", "7", None, None).args == (
        "OAUTH.PURGECLIENT",
        "c",
        "7",
        "MATCH",
        "gw:*",
    )


def test_error_bodies():
    assert InvalidRequest("ttl is not an integer").to_dict() == {
        "error": "invalid_request",
        "error_description": "ttl is not an integer",
    }
    assert (InvalidClient.error, InvalidClient.status) == ("invalid_client", 401)


def test_pkce():
    assert s256_challenge(VERIFIER) == CHALLENGE  # RFC 7636 Appendix B
    for length in (43, 64, 128):
        pair = create_pair(length)
        assert len(pair.verifier) == length and pair.method == "S256"
        assert pair.challenge == s256_challenge(pair.verifier)
    for length in (42, 129):
        with pytest.raises(ValueError):
            create_pair(length)
    with pytest.raises(InvalidRequest, match="got 129 characters"):
        s256_challenge("a" * 129)
    with pytest.raises(InvalidRequest, match="got 43 characters, some outside that set"):
        s256_challenge("a" * 42 + "=")


def test_key_scheme():
    handle = new_handle()
    code = new_secret(handle)
    assert handle_of(code) == handle and len(handle) == 16
    assert KeyScheme().code(code) == f"oauth:{{g:{handle}}}:code:{sha256_hex(code)}"
    assert KeyScheme().access_token(code).endswith(f":at:{sha256_hex(code)}")
    assert KeyScheme().refresh_token(code.encode()).startswith(f"oauth:{{g:{handle}}}:rt:")
    assert sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    users = KeyScheme("idp", tag_kind="u")
    assert users.grant("42", "7f3a") == "idp:{u:42}:grant:7f3a"
    assert users.cutoff("42") == "idp:{u:42}:cutoff"
    assert users.cutoff("42", "app1") == "idp:{u:42}:cutoff:app1"
    assert users.client("app1") == "idp:client:app1"
    assert users.state("xyz") == f"idp:state:{sha256_hex('xyz')}"
    # A string without a handle maps to a key that holds nothing.
    assert handle_of("no-dot") == "" and handle_of("bad!handle.x") == ""
    assert KeyScheme().access_token("garbage").startswith("oauth:{g:}:at:")
    with pytest.raises(ValueError):
        new_secret("has.dot")
    with pytest.raises(ValueError):
        KeyScheme("oauth{x}")


def test_store_refuses_the_other_kind_of_client():
    with pytest.raises(TypeError, match="see AsyncOAuthStore"):
        OAuthStore(redis.asyncio.Redis())
    with pytest.raises(TypeError, match="see OAuthStore"):
        AsyncOAuthStore(redis.Redis())


def test_reply_types():
    assert Introspection(False, {"sub": "u"}).to_dict() == {"active": False}
    assert Introspection(True, {"sub": "u"}, 20, 10).to_dict() == {
        "active": True,
        "sub": "u",
        "exp": 20,
        "iat": 10,
    }
    allowed = RateLimit(False, 10, 9, -1, 60)
    assert "Retry-After" not in allowed.headers() and allowed.deciding is None
