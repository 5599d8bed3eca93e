"""The obstore fast path for small S3 objects: taken as delivered only when the store's ETag
is the MD5 of the bytes sent; every other outcome leaves the object to botocore's
Content-MD5 path. obstore.put is replaced by a fake (the real stores are in the integration
tests: moto and rclone serve s3)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from agent.config.destinations import S3Destination
from agent.destinations.s3_small import SmallPuts, plain_key

BODY = b"tile bytes" * 100
MD5 = hashlib.md5(BODY).hexdigest()  # noqa: S324


@pytest.mark.parametrize(
    ("key", "plain"),
    [
        ("lsm980/FAC-01/alice/s1/data/tile_000001.tif", True),
        ("p/a+b=c,d@e~f.ome.tif", True),
        ("a b/c", False),
        ("a//b", False),
        ("a/./b", False),
        ("a/../b", False),
        ("/a", False),
        ("a/", False),
        ("caf\u00e9/x", False),
        ("a%20b", False),
    ],
)
def test_only_keys_obstore_sends_unchanged_take_the_fast_path(key: str, plain: bool) -> None:
    assert plain_key(key) is plain


def puts(
    monkeypatch: pytest.MonkeyPatch, answer: Any, credential: str | None = "s3-key"
) -> tuple[SmallPuts, list[str]]:
    import obstore

    sent: list[str] = []

    def fake_put(store: Any, key: str, body: bytes, **_: Any) -> dict[str, Any]:
        sent.append(key)
        if isinstance(answer, Exception):
            raise answer
        return {"e_tag": answer, "version": None}

    monkeypatch.setattr(obstore, "put", fake_put)
    monkeypatch.setenv("HARVEST_CREDENTIAL_S3_KEY", "AKIA:secret")
    config = S3Destination(type="s3", name="objects", bucket="imaging", credential=credential,
                           endpoint_url="http://127.0.0.1:9")  # fmt: skip
    return SmallPuts(config, lambda: None), sent


def test_an_etag_that_is_the_md5_of_the_bytes_delivers(monkeypatch: pytest.MonkeyPatch) -> None:
    small, sent = puts(monkeypatch, f'"{MD5}"')
    assert small.put("p/a.tif", BODY, {"sha256": "0" * 64}) is True
    assert sent == ["p/a.tif"]


def test_an_md5_etag_of_other_bytes_leaves_the_file_to_content_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    small, _ = puts(monkeypatch, '"' + "0" * 32 + '"')
    assert small.put("p/a.tif", BODY, {}) is False
    assert small.enabled  # a damaged body says nothing about the store


def test_a_store_whose_etags_are_no_md5_turns_the_fast_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    small, sent = puts(monkeypatch, '"kms-encrypted-etag"')
    assert small.put("p/a.tif", BODY, {}) is False
    assert not small.enabled
    assert small.put("p/b.tif", BODY, {}) is False and sent == ["p/a.tif"]


def test_any_failure_is_left_to_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    small, _ = puts(monkeypatch, ConnectionError("refused"))
    assert small.put("p/a.tif", BODY, {}) is False


def test_without_an_explicit_credential_or_with_odd_names_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    small, sent = puts(monkeypatch, f'"{MD5}"', credential=None)
    assert small.put("p/a.tif", BODY, {}) is False
    small, sent = puts(monkeypatch, f'"{MD5}"')
    assert small.put("p/a b.tif", BODY, {}) is False
    assert small.put("p/a.tif", BODY, {"dataset-key": "caf\u00e9"}) is False
    assert sent == []
