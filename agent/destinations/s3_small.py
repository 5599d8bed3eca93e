"""Small S3 objects through obstore: one PUT each, sent and signed in Rust.

botocore spends about 4 ms of Python per PUT building, validating and signing the request,
all of it under the interpreter lock: many small files could not keep a store busy. obstore
(the Rust object_store crate) does that work outside the lock, so the transfer worker's
threads overlap their PUTs.

This is a fast path only, never the sole one. A PUT is taken as delivered only when the
store's ETag is the MD5 of exactly the bytes sent (what S3 and its look-alikes answer for a
single PUT): the store computed it from what it stored. Anything else (an error, a reply
without such an ETag, a key this path does not send unchanged, a configuration it does not
cover) returns False, and the botocore path sends the object again with Content-MD5, with its
retries, Retry-After and error translation. A store whose ETags are no MD5 (SSE-KMS) turns
the fast path off for the connection.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.config.models import S3Destination
from agent.secrets.credentials import resolve

if TYPE_CHECKING:
    from obstore.store import ClientConfig  # a type only: not importable at run time

logger = logging.getLogger(__name__)
#: Delivered.verified_by for an object found intact by the MD5 its store computed.
MD5_ETAG = "md5 etag"
# object_store percent-encodes some characters in a path: only keys it sends unchanged go
# this way (the bag names of ordinary acquisitions); the rest go through botocore.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9._~+=,@-]+(/[A-Za-z0-9._~+=,@-]+)*")
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


def plain_key(key: str) -> bool:
    """Whether obstore sends *key* byte for byte as botocore would."""
    return bool(_PLAIN_KEY.fullmatch(key)) and all(part not in (".", "..") for part in key.split("/"))


class SmallPuts:
    """The obstore fast path of one S3 destination (thread-safe: obstore's store is)."""

    def __init__(self, config: S3Destination, wait_turn: Callable[[], None]) -> None:
        self._config = config
        self._wait_turn = wait_turn
        self.reset()

    def reset(self) -> None:
        """A new connection (after an outage or new credentials): build the store again."""
        self._store: Any = None
        # Only with explicit credentials (botocore's default chain is not mirrored here).
        self.enabled = self._config.credential is not None

    def _built(self) -> Any:
        if self._store is None:
            from obstore.store import S3Store  # loaded on first use, off every start-up

            assert self._config.credential is not None  # noqa: S101 - enabled only with one
            access_key, _, secret_key = resolve(self._config.credential).value.partition(":")
            timeout = f"{self._config.timeout_seconds:g}s"
            client: ClientConfig = {"timeout": timeout, "connect_timeout": timeout}
            endpoint = self._config.endpoint_url
            if endpoint and endpoint.startswith("http://"):
                client["allow_http"] = True
            if self._config.ca_bundle is not None:
                client["root_certificate"] = self._config.ca_bundle.read_bytes()
            options: dict[str, Any] = {"endpoint": endpoint} if endpoint else {}
            self._store = S3Store(
                self._config.bucket,
                region=self._config.region or "us-east-1",
                access_key_id=access_key,
                secret_access_key=secret_key,
                virtual_hosted_style_request=False,  # path style, as the botocore client
                unsigned_payload=True,  # the ETag is checked against the MD5 of the bytes
                client_options=client,
                retry_config={"max_retries": 0},  # botocore's path retries, honouring Retry-After
                **options,
            )
        return self._store

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """PUT *body* at *key*; True only when the store's ETag proves it holds these bytes."""
        if not self.enabled or not plain_key(key) or not all(value.isascii() for value in metadata.values()):
            return False
        import obstore

        self._wait_turn()  # a server's Retry-After holds every request of the destination
        try:
            reply = obstore.put(self._built(), key, body, attributes=dict(metadata), use_multipart=False)
        except Exception as error:  # noqa: BLE001 - any failure: the botocore path sends it again
            logger.debug("%s: fast PUT of %s failed (%s); sending it with botocore", self._config.name, key,
                         type(error).__name__)  # fmt: skip
            return False
        etag = str(reply.get("e_tag") or "").strip('"').lower()
        if not _MD5_HEX.fullmatch(etag):
            logger.info("%s: the store's ETags are no MD5; small objects go with Content-MD5", self._config.name)
            self.enabled = False
            return False
        return etag == hashlib.md5(body).hexdigest()  # noqa: S324 - S3's ETag is MD5
