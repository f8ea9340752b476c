"""The path's HS256 prepares each secret once, and otherwise decodes exactly as pyjwt does."""

from __future__ import annotations

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import HMACAlgorithm

from investigation.backend import auth

SECRET = "test-only-secret-for-key-preparation-0123456789"
CLAIMS = {"sub": "user-1", "iat": 1_757_365_610, "exp": 1_757_366_510, "jti": "j-1"}
PEM_SECRET = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"


def pyjwt_prepared(key: str | bytes) -> bytes | type[BaseException]:
    try:
        return HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key)
    except jwt.PyJWTError as error:
        return type(error)


def path_prepared(key: str | bytes) -> bytes | type[BaseException]:
    try:
        return auth._DECODER._jws._algorithms["HS256"].prepare_key(key)
    except jwt.PyJWTError as error:
        return type(error)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80), st.sampled_from([PEM_SECRET, '{"k": "x"}', ""])))
def test_the_path_prepares_a_key_as_pyjwt_does(key: str | bytes) -> None:
    assert path_prepared(key) == pyjwt_prepared(key)


def test_a_secret_is_prepared_once_however_many_tokens_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = SECRET + "-counted"
    tokens = [jwt.encode({**CLAIMS, "sub": f"user-{user}"}, secret, algorithm="HS256") for user in range(3)]
    prepared: list[object] = []
    original = HMACAlgorithm.prepare_key

    def counting(self: HMACAlgorithm, key: str | bytes) -> bytes:
        prepared.append(key)
        return original(self, key)

    monkeypatch.setattr(HMACAlgorithm, "prepare_key", counting)
    auth._prepared_hmac_key.cache_clear()
    for user, token in enumerate(tokens):
        assert auth._decode_verified(token, secret, "HS256", CLAIMS["iat"])["sub"] == f"user-{user}"
    assert prepared == [secret]


def test_a_refused_secret_is_refused_at_every_decode() -> None:
    token = jwt.encode(CLAIMS, SECRET, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            auth._decode_verified(token, PEM_SECRET, "HS256", CLAIMS["iat"])


def test_a_token_signed_with_another_secret_is_still_refused() -> None:
    token = jwt.encode(CLAIMS, SECRET + "-other", algorithm="HS256")
    with pytest.raises(jwt.InvalidSignatureError):
        auth._decode_verified(token, SECRET, "HS256", CLAIMS["iat"])


def test_the_global_pyjwt_decoder_is_left_as_pyjwt_ships_it() -> None:
    """The benchmark's bare loop calls `jwt.decode`: the path's decoder must not change it."""
    assert type(jwt.api_jws._jws_global_obj._algorithms["HS256"]) is HMACAlgorithm
