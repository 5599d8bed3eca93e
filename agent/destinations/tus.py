"""tus 1.0 destination: resumable uploads over HTTP, on requests.

Our own client, because tuspy buffers whole chunks and its fingerprints collide on
files of equal size. The upload URL is journalled right after the 201 (before any
byte is sent), every acknowledged PATCH is a durable checkpoint, and a restart asks the
server for the offset (HEAD) instead of trusting anything local.

* 409 (offset mismatch) -> HEAD and continue from the server's offset;
* 404/410 (upload gone) -> start a new upload;
* 460 (checksum mismatch) -> resend the chunk;
* ``Upload-Checksum`` (sha1) only when the server lists the ``checksum`` extension;
* ``Upload-Metadata``: filename, relative path, sha256, size, instrument id, dataset key;
  the archive side recomputes SHA-256 when the upload finishes and rejects a mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from agent.config.models import TusDestination
from agent.destinations.base import PROBE_BYTES, Delivered, DestinationTransport, PayloadItem, SelfTest, TransferControl
from agent.destinations.http import ATTEMPTS, RetryableHTTPError, check_response, http_date, with_retries
from agent.destinations.moving import checked_source
from agent.errors import ItemError, StopRequested, TransientError
from agent.package.sidecar import DatasetPackage
from agent.pipeline.hashing import stream_chunks
from agent.secrets.credentials import resolve

logger = logging.getLogger(__name__)
TUS_VERSION = "1.0.0"
SEND_BLOCK_BYTES = 1 << 20


def encode_metadata(values: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8', 'surrogateescape')).decode()}" for key, value in values.items()
    )


class _ChunkBody:
    """A bounded, streamed request body: requests sends it with a Content-Length."""

    def __init__(self, read_next: Any, length: int, control: TransferControl) -> None:
        self._read_next = read_next
        self._length = length
        self._control = control

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        remaining = self._length
        while remaining > 0:
            chunk = self._read_next(min(SEND_BLOCK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            self._control.progress(len(chunk))
            yield bytes(chunk)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> str:
    """scheme://host:port of *url*, the port made explicit (so :443 and no port are one origin)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


class TusTransport(DestinationTransport):
    def __init__(self, config: TusDestination) -> None:
        self.name = config.name
        self.config = config
        self.url = config.url if config.url.endswith("/") else config.url + "/"
        self._session: requests.Session | None = None
        self._extensions: set[str] | None = None
        self._trusted_origins = {_origin(self.url), *(_origin(host) for host in config.upload_hosts)}

    # ----- session and server capabilities ---------------------------------------

    def _http(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            session.headers["Tus-Resumable"] = TUS_VERSION
            session.headers["User-Agent"] = "harvest-agent"
            if self.config.credential:
                session.headers["Authorization"] = f"Bearer {resolve(self.config.credential).value}"
            session.verify = str(self.config.ca_bundle) if self.config.ca_bundle else True
            self._session = session
        return self._session

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        def send() -> requests.Response:
            self.wait_turn()
            response = self._http().request(method, url, timeout=self.config.timeout_seconds, **kwargs)
            if response.status_code not in (404, 409, 410, 460):
                try:
                    check_response(response, self.name, self.config.credential, what)
                except RetryableHTTPError as error:
                    self.hold_off(error.retry_after_seconds)
                    raise
            return response

        return with_retries(send, self.name, what, self._note_retry)

    def _note_retry(self, note: str | None) -> None:
        self.retry_note = note

    def extensions(self) -> set[str]:
        if self._extensions is None:
            response = self._request("OPTIONS", self.url, "OPTIONS")
            header = response.headers.get("Tus-Extension", "")
            self._extensions = {item.strip() for item in header.split(",") if item.strip()}
            if "creation" not in self._extensions:
                raise ItemError(f"{self.name}: the tus server does not support upload creation")
        return self._extensions

    def probe(self) -> None:
        self._extensions = None
        self._session = None  # re-read the credential: `harvest login` may have fixed it
        self.extensions()
        # OPTIONS is answered without authentication (CORS): a HEAD on an upload that
        # does not exist tells whether the credentials are accepted (404) or not (401).
        self._offset(urljoin(self.url, "harvest-probe-0000"))

    def self_test(self, scope: str) -> SelfTest:
        self.probe()
        upload_url = self._create(len(PROBE_BYTES), {"filename": f"harvest-doctor-{scope}"})
        try:
            response = self._request(
                "PATCH",
                upload_url,
                "probe PATCH",
                data=PROBE_BYTES,
                headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            )
            if response.status_code != 204:
                raise ItemError(f"{self.name}: probe PATCH answered HTTP {response.status_code}")
            offset = self._offset(upload_url)
            if offset != len(PROBE_BYTES):
                raise ItemError(f"{self.name}: the server holds {offset} of the probe's {len(PROBE_BYTES)} bytes")
        finally:
            if "termination" in self.extensions():
                self._request("DELETE", upload_url, "delete probe")
        server_time = http_date(response.headers.get("Date"))
        return SelfTest(f"created, sent, checked the offset of and deleted a probe upload at {self.url}", server_time)

    def sync(self) -> None:
        """Nothing to do: every acknowledged PATCH is already durable at the server."""

    # ----- uploads ---------------------------------------------------------------

    def _create(self, length: int, metadata: dict[str, str]) -> str:
        response = self._request(
            "POST",
            self.url,
            "create upload",
            headers={"Upload-Length": str(length), "Upload-Metadata": encode_metadata(metadata)},
        )
        location = response.headers.get("Location")
        if response.status_code != 201 or not location:
            # A reply that breaks the protocol (a cut or garbled 201) is the server's or the
            # network's fault, not the file's: retried with backoff, never an item error.
            raise TransientError(
                f"{self.name}: create upload: the server answered HTTP {response.status_code}"
                f"{'' if location else ' without a Location header'}; will try again"
            )
        upload_url = urljoin(self.url, location)  # a relative Location is resolved against the endpoint
        if _origin(upload_url) not in self._trusted_origins:
            # The credential goes only where the facility said: a server (or whoever answers
            # in its place) cannot send it elsewhere with a Location header.
            raise TransientError(
                f"{self.name}: the server placed an upload on another origin ({_origin(upload_url)}); refused,"
                " the credential is sent only to the configured url (or to upload_hosts)"
            )
        return upload_url

    def _offset(self, upload_url: str) -> int | None:
        """The server's offset for *upload_url*, or None if the upload no longer exists."""
        response = self._request("HEAD", upload_url, "resume (HEAD)", headers={"Cache-Control": "no-store"})
        if response.status_code in (404, 410):
            return None
        check_response(response, self.name, self.config.credential, "resume (HEAD)")
        return self._offset_header(response, "resume (HEAD)")

    def _offset_header(self, response: requests.Response, what: str) -> int:
        """The Upload-Offset a reply must carry; a missing or garbled one is a transient fault."""
        value = response.headers.get("Upload-Offset", "")
        if not value.isdigit():
            raise TransientError(f"{self.name}: {what}: reply without a valid Upload-Offset; will try again")
        return int(value)

    def deliver(self, item: PayloadItem, control: TransferControl) -> Delivered:
        remote_key = item.remote_key
        metadata = {
            "filename": item.path_in_dataset.rsplit("/", 1)[-1],
            "relative_path": remote_key,
            "sha256": item.sha256,
            "size": str(item.identity.size_bytes),
            "instrument_id": item.instrument_id,
            "dataset_key": item.dataset_key,
        }
        with checked_source(item) as source:
            self._upload(source, item, metadata, remote_key, control)
        # The archive side checks the announced SHA-256 when the upload finishes (and
        # refuses a mismatch) only if it is set up to: the label claims no more than that.
        chunks = ", sha1 per chunk" if "checksum" in self.extensions() else ""
        return Delivered(remote_key, skipped=False, verified_by=f"sha256 announced to the archive{chunks}")

    def _upload(
        self, source: int, item: PayloadItem, metadata: dict[str, str], remote_key: str, control: TransferControl
    ) -> None:
        size = item.identity.size_bytes
        upload_url = (item.resume_state or {}).get("upload_url")
        offset = self._offset(upload_url) if upload_url else None
        if upload_url is None or offset is None:
            upload_url = self._create(size, metadata)
            control.save_state({"upload_url": upload_url})  # durable before the first byte
            offset = 0
            control.started(remote_key, None)
        else:
            control.started(remote_key, offset)
        resends = 0
        failures = 0
        while offset < size or size == 0:
            if control.should_stop():
                raise StopRequested
            length = min(self.config.chunk_bytes, size - offset)
            try:
                response = self._patch(source, upload_url, offset, length, control)
            except RetryableHTTPError as error:
                failures += 1
                self.retry_note = f"PATCH: {error}, attempt {failures + 1} of {ATTEMPTS}"
                if failures >= ATTEMPTS:
                    raise
                time.sleep(error.retry_after_seconds or min(0.5 * 2**failures, 10.0))
                offset = self._offset(upload_url) or 0
                continue
            except TransientError as error:
                failures += 1
                self.retry_note = f"PATCH: {error}, attempt {failures + 1} of {ATTEMPTS}"
                if failures >= ATTEMPTS:
                    raise
                time.sleep(min(0.5 * 2**failures, 10.0))
                server_offset = self._offset(upload_url)
                if server_offset is None:
                    raise
                offset = server_offset
                continue
            if response.status_code == 460 and resends < 3:
                resends += 1
                continue  # the chunk arrived damaged: send it again
            if response.status_code == 409:
                server_offset = self._offset(upload_url)
                if server_offset is None:
                    raise TransientError(f"{self.name}: upload vanished during resume; will start again")
                offset = server_offset
                continue
            if response.status_code in (404, 410):
                control.save_state(None)
                raise TransientError(f"{self.name}: the server dropped upload {remote_key}; will start again")
            if response.status_code >= 400:
                # The finishing PATCH is where the archive verifies SHA-256.
                control.save_state(None)
                raise ItemError(f"{self.name}: {remote_key} rejected by the archive (HTTP {response.status_code})")
            offset = self._offset_header(response, "PATCH")
            self.retry_note = None
            control.checkpoint(offset)
            resends = failures = 0
            if size == 0:
                break

    def _patch(
        self, source: int, upload_url: str, offset: int, length: int, control: TransferControl
    ) -> requests.Response:
        headers = {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        if "checksum" in self.extensions():
            # The checksum header needs the whole chunk before sending; chunks are bounded.
            read_next = stream_chunks(source, offset + length, offset, length)
            data: Any = bytes(read_next())
            headers["Upload-Checksum"] = "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324
            control.progress(len(data))
        else:
            reader = stream_chunks(source, offset + length, offset, SEND_BLOCK_BYTES)
            data = _ChunkBody(lambda count: reader(), length, control)

        # One attempt only: a body stream cannot be replayed, and after a broken
        # connection the server may hold part of the chunk, so the caller asks for the
        # offset (HEAD) before trying again.
        self.wait_turn()
        try:
            response = self._http().patch(upload_url, data=data, headers=headers, timeout=self.config.timeout_seconds)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            raise TransientError(f"{self.name}: PATCH: {type(error).__name__}") from None
        if response.status_code in (401, 403) or response.status_code >= 500 or response.status_code in (408, 429):
            try:
                check_response(response, self.name, self.config.credential, "PATCH")
            except RetryableHTTPError as error:
                self.hold_off(error.retry_after_seconds)
                raise
        return response

    def abandon(self, state: dict[str, Any]) -> None:
        upload_url = state.get("upload_url")
        if upload_url and "termination" in self.extensions():
            response = self._request("DELETE", upload_url, "terminate")
            logger.info("terminated abandoned upload %s (HTTP %d)", upload_url, response.status_code)

    # ----- commit ----------------------------------------------------------------

    def commit(self, package: DatasetPackage) -> dict[str, Any] | None:
        """Each tag file is its own upload, in order: the tag manifest, last, is the commit marker.

        Returns the uploads' URLs: once a later revision is committed they are terminated.
        """
        uploads: list[str] = []
        for tag_file in package.tag_files:
            remote_key = f"{package.bag_path}/{tag_file.name}"
            metadata = {
                "filename": tag_file.name,
                "relative_path": remote_key,
                "sha256": hashlib.sha256(tag_file.content).hexdigest(),
                "size": str(len(tag_file.content)),
                "bag_revision": str(package.revision),
            }
            upload_url = self._create(len(tag_file.content), metadata)
            response = self._request(
                "PATCH",
                upload_url,
                f"upload {tag_file.name}",
                data=tag_file.content,
                headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            )
            if response.status_code >= 400:
                raise ItemError(f"{self.name}: {remote_key} rejected by the archive (HTTP {response.status_code})")
            uploads.append(upload_url)
        return {"tag_uploads": uploads}
