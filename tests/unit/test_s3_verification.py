"""How a multipart S3 upload is verified: every part by its Content-MD5 at the server, the
whole by the completed object's ETag (the MD5 of the parts' MD5s), and by a HEAD only where
the server's reply cannot prove it.

The S3 client is replaced by an in-memory fake (the real servers, moto and rclone serve s3,
are in the integration tests); what is checked here is the decision.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from agent.config.destinations import S3Destination
from agent.destinations.base import PayloadItem
from agent.destinations.s3 import S3Transport
from agent.errors import ItemError
from agent.pipeline.hashing import identity_of

PART = 5 << 20


class FakeS3:
    """Keeps parts in memory, checks Content-MD5 as a server does; *complete_etag* says how
    the completion is answered: "right", "wrong" or "none" (a store that sends no ETag)."""

    def __init__(self, complete_etag: str) -> None:
        self.complete_etag = complete_etag
        self.parts: dict[int, bytes] = {}
        self.calls: list[str] = []

    def head_object(self, **_: Any) -> dict[str, Any]:
        self.calls.append("head_object")
        if "complete_multipart_upload" not in self.calls:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")
        return {"ContentLength": sum(len(body) for body in self.parts.values())}

    def delete_object(self, **_: Any) -> dict[str, Any]:  # the bag is uncommitted before it changes
        return {}

    def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
        self.calls.append("create_multipart_upload")
        return {"UploadId": "u1"}

    def upload_part(self, *, PartNumber: int, Body: bytes, ContentMD5: str, **_: Any) -> dict[str, Any]:
        digest = hashlib.md5(Body).digest()  # noqa: S324
        assert base64.b64encode(digest).decode() == ContentMD5
        self.parts[PartNumber] = Body
        return {"ETag": f'"{digest.hex()}"'}

    def complete_multipart_upload(self, **_: Any) -> dict[str, Any]:
        self.calls.append("complete_multipart_upload")
        digests = b"".join(hashlib.md5(self.parts[n]).digest() for n in sorted(self.parts))  # noqa: S324
        etag = {"right": f"{hashlib.md5(digests).hexdigest()}-{len(self.parts)}", "wrong": "0" * 32 + "-3",  # noqa: S324
                "none": ""}[self.complete_etag]  # fmt: skip
        return {"ETag": f'"{etag}"'} if etag else {}


class Control:
    def started(self, remote_key: str, resumed_from_bytes: int | None) -> None: ...
    def save_state(self, state: dict[str, Any] | None) -> None: ...
    def checkpoint(self, offset_bytes: int) -> None: ...
    def progress(self, sent_bytes: int) -> None: ...
    def should_stop(self) -> bool:
        return False


def deliver(tmp_path: Path, fake: FakeS3) -> str | None:
    source = tmp_path / "stack.raw"
    source.write_bytes(os.urandom(2 * PART + 1234))
    config = S3Destination(type="s3", name="objects", bucket="imaging", part_bytes=PART)
    transport = S3Transport(config)
    transport._client = fake
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    item = PayloadItem(source, identity_of(source.stat()), sha256, "FAC/a/s1", "stack.raw", 0)
    return transport.deliver(item, Control()).verified_by


def test_a_completed_etag_that_proves_the_parts_needs_no_head(tmp_path: Path) -> None:
    fake = FakeS3("right")
    assert deliver(tmp_path, fake) == "content-md5 per part, etag"
    assert fake.calls == ["head_object", "create_multipart_upload", "complete_multipart_upload"]


def test_without_an_etag_in_the_reply_the_size_is_checked_by_head(tmp_path: Path) -> None:
    fake = FakeS3("none")
    assert deliver(tmp_path, fake) == "content-md5 per part, size"
    assert fake.calls[-1] == "head_object"


def test_an_etag_that_does_not_match_the_parts_sent_fails_the_file(tmp_path: Path) -> None:
    with pytest.raises(ItemError, match="does not match the parts sent"):
        deliver(tmp_path, FakeS3("wrong"))


def test_a_small_file_the_fast_path_cannot_prove_goes_with_content_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import obstore

    monkeypatch.setattr(obstore, "put", lambda *_, **__: {"e_tag": '"' + "0" * 32 + '"'})  # bytes damaged on the way
    monkeypatch.setenv("HARVEST_CREDENTIAL_S3_KEY", "AKIA:secret")
    source = tmp_path / "tile.tif"
    source.write_bytes(os.urandom(4096))
    put: list[dict[str, Any]] = []

    class Store(FakeS3):
        def put_object(self, **kwargs: Any) -> dict[str, Any]:
            assert base64.b64decode(kwargs["ContentMD5"]) == hashlib.md5(kwargs["Body"]).digest()  # noqa: S324
            put.append(kwargs)
            return {"ETag": f'"{hashlib.md5(kwargs["Body"]).hexdigest()}"'}  # noqa: S324

    config = S3Destination(type="s3", name="objects", bucket="imaging", part_bytes=PART, credential="s3-key")
    transport = S3Transport(config)
    transport._client = Store("right")
    item = PayloadItem(source, identity_of(source.stat()), "0" * 64, "FAC/a/s1", "tile.tif", 0)
    assert transport.deliver(item, Control()).verified_by == "content-md5"
    assert [kwargs["Key"] for kwargs in put] == ["FAC/a/s1/data/tile.tif"]
