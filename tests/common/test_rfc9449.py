"""RFC 9449 proof checks: every rule of section 4.3 refuses its forgery, a good proof passes."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from secure_mcp.common import rfc9449
from secure_mcp.common.rfc9449 import (
    InvalidProof,
    NonceRequired,
    Nonces,
    check_proof,
    htu_of,
    make_proof,
    one_header,
)
from tests.support.dpop import DROP, hmac_proof, jkt_of, new_key, proof

URL = "http://127.0.0.1:8000/mcp"
TOKEN = "smcp_at_token"


def check(value: str, **kwargs: Any) -> rfc9449.Proof:
    """check_proof for a POST to URL carrying TOKEN."""
    return check_proof(value, method="POST", url=URL, access_token=TOKEN, **kwargs)


def test_a_good_proof_names_its_key() -> None:
    key = new_key()
    checked = check(proof(key, "POST", URL, token=TOKEN))
    assert checked.jkt == jkt_of(key)
    assert len(checked.replay_key()) == 64
    assert checked.expires_at() == checked.iat + rfc9449.MAX_AGE + rfc9449.CLOCK_SKEW


def test_client_proofs_pass_the_server_checks() -> None:
    key = new_key()
    value = make_proof(key, "POST", URL + "?q=1#f", access_token=TOKEN, nonce="n")
    assert check(value).jkt == jkt_of(key)


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("RS256", RSAKey.generate_key(2048)),
        ("PS256", RSAKey.generate_key(2048)),
        ("ES384", ECKey.generate_key("P-384")),
        ("ES512", ECKey.generate_key("P-521")),
    ],
    ids=["RS256", "PS256", "ES384", "ES512"],
)
def test_every_advertised_algorithm_verifies(alg: str, key: Any) -> None:
    header = {"alg": alg, "jwk": key.as_dict(private=False)}
    assert check(proof(key, "POST", URL, token=TOKEN, header=header)).jkt


KEY = new_key()
OTHER = new_key()
FORGERIES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("typ-jwt", {"typ": "JWT"}, {}, "typ must be dpop"),
    ("typ-missing", {"typ": DROP}, {}, "typ must be dpop"),
    ("alg-none", {"alg": "none"}, {}, "alg is not one"),
    ("alg-unknown", {"alg": "ES999"}, {}, "alg is not one"),
    ("jwk-missing", {"jwk": DROP}, {}, "has no jwk"),
    ("jwk-private", {"jwk": KEY.as_dict(private=True)}, {}, "must be a public key"),
    ("jwk-other-key", {"jwk": OTHER.as_dict(private=False)}, {}, "signature does not verify"),
    ("jwk-wrong-type", {"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}, {}, "not a key for"),
    ("jwk-not-strings", {"jwk": {"kty": "EC", "crv": "P-256", "x": 1, "y": 2}}, {}, "malformed"),
    ("jwk-bad-point", {"jwk": {"kty": "EC", "crv": "P-256", "x": "A", "y": "A"}}, {}, "malformed"),
    ("jti-missing", {}, {"jti": DROP}, "needs a jti"),
    ("jti-long", {}, {"jti": "j" * 300}, "needs a jti"),
    ("htm-wrong", {}, {"htm": "GET"}, "htm"),
    ("htu-other-path", {}, {"htu": "http://127.0.0.1:8000/other"}, "htu"),
    ("htu-other-port", {}, {"htu": "http://127.0.0.1:8001/mcp"}, "htu"),
    ("htu-missing", {}, {"htu": DROP}, "htu"),
    ("iat-missing", {}, {"iat": DROP}, "numeric iat"),
    ("iat-text", {}, {"iat": "now"}, "numeric iat"),
    ("iat-bool", {}, {"iat": True}, "numeric iat"),
    ("iat-stale", {}, {"iat": int(time.time()) - 3600}, "too old"),
    ("iat-future", {}, {"iat": int(time.time()) + 3600}, "too old or in the future"),
    ("ath-missing", {}, {"ath": DROP}, "ath"),
    ("ath-other-token", {}, {"ath": rfc9449.access_token_hash("another")}, "ath"),
]


@pytest.mark.parametrize(
    ("header", "claims", "reason"),
    [row[1:] for row in FORGERIES],
    ids=[row[0] for row in FORGERIES],
)
def test_forged_proofs_are_refused(
    header: dict[str, Any], claims: dict[str, Any], reason: str
) -> None:
    value = proof(KEY, "POST", URL, token=TOKEN, header=header, claims=claims)
    with pytest.raises(InvalidProof, match=reason):
        check(value)


def test_a_symmetric_algorithm_is_refused() -> None:
    with pytest.raises(InvalidProof, match="alg is not one"):
        check(hmac_proof("POST", URL, b"k" * 32))


def test_a_short_rsa_key_is_refused() -> None:
    with warnings.catch_warnings():  # joserfc warns about the short key it is asked to make
        warnings.simplefilter("ignore")
        small = RSAKey.generate_key(1024)
        header = {"alg": "RS256", "jwk": small.as_dict(private=False)}
        value = proof(small, "POST", URL, token=TOKEN, header=header)  # type: ignore[arg-type]
    with pytest.raises(InvalidProof, match="shorter than 2048"):
        check(value)


def test_an_algorithm_the_server_does_not_list_is_refused() -> None:
    with pytest.raises(InvalidProof, match="alg is not one"):
        check(proof(KEY, "POST", URL, token=TOKEN), algorithms=("RS256",))


@pytest.mark.parametrize(
    "value",
    ["", "a.b", "x" * 9000, "e30.e30.", "!!.!!.!!"],
    ids=["empty", "two-parts", "too-long", "unsigned", "garbage"],
)
def test_non_jws_values_are_refused(value: str) -> None:
    with pytest.raises(InvalidProof):
        check(value)


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    from joserfc import jws

    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": KEY.as_dict(private=False)}
    value = jws.serialize_compact(head, "[1]", KEY, algorithms=["ES256"])
    with pytest.raises(InvalidProof, match="not a JSON object"):
        check(value)
    value = jws.serialize_compact(head, "not json", KEY, algorithms=["ES256"])
    with pytest.raises(InvalidProof, match="signature"):
        check(value)


def test_htu_ignores_query_fragment_case_and_default_port() -> None:
    assert htu_of("HTTP://Example.COM:80/a?b#c") == "http://example.com/a"
    assert htu_of("https://example.com:443") == "https://example.com/"
    assert htu_of("http://[::1]:8000/mcp") == "http://[::1]:8000/mcp"
    assert htu_of("http://host:99999/x") == "http://host/x"  # an impossible port: never equal
    value = proof(KEY, "POST", "http://127.0.0.1:8000/mcp?x=1#frag", token=TOKEN)
    assert check(value).jkt


def test_only_one_dpop_header() -> None:
    assert one_header([]) is None
    assert one_header([b" a.b.c "]) == "a.b.c"
    with pytest.raises(InvalidProof, match="exactly one"):
        one_header([b"a", b"b"])
    with pytest.raises(InvalidProof, match="exactly one"):
        one_header(["a.b.c, d.e.f"])


def test_nonces_from_one_key_pass_everywhere_and_expire() -> None:
    now = [1_000_000.0]
    nonces = Nonces(b"k", lifetime=300, clock=lambda: now[0])
    other = Nonces(b"other", lifetime=300, clock=lambda: now[0])
    issued = nonces.current()
    assert nonces.valid(issued)
    assert Nonces(b"k", clock=lambda: now[0]).valid(issued)
    assert not other.valid(issued)
    now[0] += 300
    assert nonces.valid(issued)  # the next slot still takes it
    now[0] += 300
    assert not nonces.valid(issued)
    for bad in (None, 5, "", "x", "1.2.3", "abc.def", "9" * 30 + ".x", f"{issued}x"):
        assert not nonces.valid(bad)


def test_a_nonce_is_asked_for_before_the_clock_is_judged() -> None:
    nonces = Nonces(b"k")
    stale = proof(KEY, "POST", URL, token=TOKEN, claims={"iat": int(time.time()) - 3600})
    with pytest.raises(NonceRequired) as caught:
        check(stale, nonce_ok=nonces.valid, new_nonce=nonces.current)
    assert nonces.valid(caught.value.nonce)
    assert caught.value.error == "use_dpop_nonce"
    fresh = proof(KEY, "POST", URL, token=TOKEN, nonce=caught.value.nonce)
    assert check(fresh, nonce_ok=nonces.valid, new_nonce=nonces.current).jkt == jkt_of(KEY)
