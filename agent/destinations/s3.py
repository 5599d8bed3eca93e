"""S3 destination: low-level multipart uploads with boto3, resumable across restarts.

Not ``upload_file``: it aborts the multipart upload on failure, throwing away what was
sent. Here the UploadId is journalled right after creation and every completed part
(number, ETag, MD5) right after the server acknowledges it; a restart reconciles with
ListParts where the server has it, otherwise with the journal, and sends only what is
missing. Every part and single PUT carries Content-MD5; the object's metadata carries
the whole-file SHA-256, instrument id and dataset key; a HEAD after completion checks
the size and the multipart ETag (MD5 of the part MD5s). An object already there with
the same SHA-256 and size is not sent again.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, EndpointConnectionError

from agent.config.models import S3Destination
from agent.destinations.base import PROBE_BYTES, Delivered, DestinationTransport, PayloadItem, SelfTest, TransferControl
from agent.destinations.http import RetryableHTTPError, http_date, retry_after_value
from agent.destinations.moving import UncommitOnce, checked_source, login_hint
from agent.destinations.s3_etag import etag_matches
from agent.destinations.s3_small import MD5_ETAG, SmallPuts
from agent.errors import AuthError, ItemError, StopRequested, TransientError
from agent.package.bagit import COMMIT_MARKERS
from agent.package.sidecar import DatasetPackage
from agent.pipeline.hashing import read_at, stream_chunks
from agent.secrets.credentials import resolve

_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503", "500", "429"}
_GONE_CODES = {"NoSuchUpload"}
S3_ATTEMPTS = 4


def _retry_after(headers: dict[str, str]) -> float | None:
    return retry_after_value(headers.get("retry-after") or headers.get("Retry-After"))


class S3Transport(DestinationTransport):
    def __init__(self, config: S3Destination) -> None:
        self.name = config.name
        self.config = config
        self._client: Any = None
        self._uncommits = UncommitOnce(self._remove_markers)
        self.parallel_small_files = config.concurrency
        self._small_puts = SmallPuts(config, self.wait_turn)

    # ----- errors: the one place botocore exceptions become the agent's ---------------

    def _translate(self, error: Exception, what: str) -> Exception:
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _AUTH_CODES or status in (401, 403):
                hint = login_hint(self.config.credential, "check AWS credentials")
                return AuthError(f"credentials rejected for {self.name} ({code or status}): {hint}")
            if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
                headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                return RetryableHTTPError(f"{self.name}: {what}: {code or status}", _retry_after(headers))
            if code == "NoSuchBucket":
                return TransientError(f"{self.name}: bucket {self.config.bucket} does not exist")
            return ItemError(f"{self.name}: {what}: {code or status}")
        if isinstance(error, EndpointConnectionError | ConnectionError):
            return TransientError(f"{self.name}: {what}: cannot connect to {self.config.endpoint_url or 'S3'}")
        return TransientError(f"{self.name}: {what}: {type(error).__name__}")

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(), method)(**kwargs)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, what) from None

    def client(self) -> Any:
        if self._client is None:
            credentials: dict[str, str] = {}
            if self.config.credential:
                secret = resolve(self.config.credential).value
                access_key, _, secret_key = secret.partition(":")
                if not secret_key:
                    raise AuthError(
                        f"credential {self.config.credential!r} for {self.name} must be ACCESS_KEY_ID:SECRET_ACCESS_KEY"
                    )
                credentials = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
            self._client = boto3.client(
                "s3",
                endpoint_url=self.config.endpoint_url,
                region_name=self.config.region,
                verify=str(self.config.ca_bundle) if self.config.ca_bundle else True,
                config=Config(
                    # Non-AWS servers reject the newer default checksum headers.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"},
                    connect_timeout=self.config.timeout_seconds,
                    read_timeout=self.config.timeout_seconds,
                    # Every body carries Content-MD5, which the server checks: hashing it
                    # again with SHA-256 for the signature (botocore's default over plain
                    # HTTP) costs a second pass over every byte and guards nothing more.
                    s3={"addressing_style": "path", "payload_signing_enabled": False},
                    max_pool_connections=max(10, self.config.concurrency * 2),
                ),
                **credentials,
            )
            # First in line: botocore's own retries ignore Retry-After and say nothing.
            self._client.meta.events.register_first("needs-retry.s3", self._before_retry)
            self._client.meta.events.register("before-send.s3", self._before_send)
        return self._client

    def _before_retry(self, attempts: int, response: Any = None, caught_exception: Any = None, **_: Any) -> Any:
        """Honour a server's Retry-After in botocore's retries, and report each retry to status."""
        status = 0
        headers: dict[str, str] = {}
        if response is not None:
            status = int(response[1].get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            headers = response[1].get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
        if caught_exception is None and status < 500 and status not in (408, 429):
            self.retry_note = None
            return None
        cause = type(caught_exception).__name__ if caught_exception is not None else f"HTTP {status}"
        self.retry_note = f"{cause}, attempt {attempts + 1} of {S3_ATTEMPTS}"
        delay = _retry_after(headers)
        self.hold_off(delay)  # every request of this destination waits, not only this one
        if delay is not None and attempts < S3_ATTEMPTS:
            return delay  # botocore sleeps this long before the next attempt
        return None

    def _before_send(self, **_: Any) -> None:
        """No request before the server's Retry-After has passed (returns None: send as usual)."""
        self.wait_turn()

    def probe(self) -> None:
        self._client = None
        self._small_puts.reset()
        try:
            self._call("check bucket", "head_bucket", Bucket=self.config.bucket)
        except ItemError as error:  # HEAD has no body: a missing bucket is a bare 404
            raise TransientError(f"{self.name}: bucket {self.config.bucket} not usable yet ({error})") from None

    def self_test(self, scope: str) -> SelfTest:
        self.probe()
        key = self._key(f"{scope}/.harvest-doctor-{uuid.uuid4().hex}")
        bucket = self.config.bucket
        reply = self._call("write a probe object", "put_object", Bucket=bucket, Key=key, Body=PROBE_BYTES)
        try:
            body = self._call("read the probe object", "get_object", Bucket=bucket, Key=key)["Body"].read()
            if body != PROBE_BYTES:
                raise ItemError(f"{self.name}: the probe object read back differently")
        finally:
            self._call("delete the probe object", "delete_object", Bucket=bucket, Key=key)
        server_time = http_date(reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date"))
        return SelfTest(f"wrote, read back and deleted s3://{bucket}/{key}", server_time)

    def sync(self) -> None:
        """Nothing to do: an acknowledged PUT or part is durable at the server."""

    def _key(self, relative: str) -> str:
        return f"{self.config.prefix}{relative}"

    # ----- payload ---------------------------------------------------------------

    def _already_there(self, key: str, item: PayloadItem) -> str | None:
        """How the archive is known to hold exactly these bytes under *key* already, or None.

        By the SHA-256 in the object's metadata (looked up without regard to case: ``rclone
        serve s3`` returns ``Sha256``), else, where a server forgot metadata, by its ETag:
        a single PUT's is the MD5 of the bytes, a multipart one's the MD5 of the part MD5s
        and the part count, both computed here from the source (a local read is far
        cheaper than sending the file again).
        """
        try:
            head = self.client().head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._translate(error, "HEAD") from None
        except BotoCoreError as error:
            raise self._translate(error, "HEAD") from None
        if head.get("ContentLength") != item.identity.size_bytes:
            return None
        metadata = {str(name).lower(): str(value) for name, value in (head.get("Metadata") or {}).items()}
        if metadata.get("sha256"):
            return "sha256 metadata" if metadata["sha256"] == item.sha256 else None
        matches = etag_matches(str(head.get("ETag", "")).strip('"'), item, self.config.part_bytes)
        return "etag" if matches else None

    def deliver(self, item: PayloadItem, control: TransferControl) -> Delivered:
        remote_key = item.remote_key
        key = self._key(remote_key)
        small = item.identity.size_bytes < self.config.part_bytes
        # A small object is simply PUT again (one request, same bytes, no duplicate);
        # a large one is looked up first so that a re-run never re-sends gigabytes.
        if not small and (found := self._already_there(key, item)):
            return Delivered(remote_key, skipped=True, verified_by=found)
        self._uncommits.before_change(item.bag_path)
        metadata = {
            "sha256": item.sha256,
            "instrument-id": item.instrument_id,
            "dataset-key": item.dataset_key,
            "size": str(item.identity.size_bytes),
        }
        with checked_source(item) as source:
            if small:
                control.started(remote_key, None)
                body = bytes(stream_chunks(source, item.identity.size_bytes, 0, max(item.identity.size_bytes, 1))())
                control.progress(len(body))
                if self._small_puts.put(key, body, metadata):
                    return Delivered(remote_key, skipped=False, verified_by=MD5_ETAG)
                self._put(key, body, metadata)
            else:
                etag_proved = self._multipart(source, key, remote_key, item, metadata, control)
        if small:  # a single PUT was already verified by its ETag (the MD5 of the bytes received)
            return Delivered(remote_key, skipped=False, verified_by="content-md5")
        if etag_proved:
            # Every part's bytes were checked by the server against their Content-MD5, and the
            # completed object's ETag is the MD5 of exactly those parts' MD5s in order: the
            # object is the source. A HEAD would add nothing (and costs a whole-object hash on
            # stores that compute ETags lazily, 1.3 s per GiB with rclone serve s3).
            return Delivered(remote_key, skipped=False, verified_by="content-md5 per part, etag")
        head = self._call("verify (HEAD)", "head_object", Bucket=self.config.bucket, Key=key)
        if head.get("ContentLength") != item.identity.size_bytes:
            raise ItemError(f"{self.name}: {remote_key} has {head.get('ContentLength')} bytes at the archive")
        return Delivered(remote_key, skipped=False, verified_by="content-md5 per part, size")

    def _remove_markers(self, bag_path: str) -> None:
        """Before a committed bag changes, delete its manifest objects: it is no longer complete."""
        for name in COMMIT_MARKERS:
            self._call("uncommit", "delete_object", Bucket=self.config.bucket, Key=self._key(f"{bag_path}/{name}"))

    def _put(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        digest = hashlib.md5(body).digest()  # noqa: S324 - Content-MD5 is what S3 verifies
        response = self._call(
            "PUT",
            "put_object",
            Bucket=self.config.bucket,
            Key=key,
            Body=body,
            ContentMD5=base64.b64encode(digest).decode(),
            Metadata=metadata,
        )
        # Content-MD5 already makes the server refuse damaged bytes; a plain-MD5 ETag is
        # checked too (stores with SSE-KMS return other ETags, which are not compared).
        etag = str(response.get("ETag", "")).strip('"')
        if len(etag) == 32 and etag != digest.hex():
            raise ItemError(f"{self.name}: {key}: ETag does not match the MD5 of the bytes sent")

    def _multipart(
        self, source: int, key: str, remote_key: str, item: PayloadItem, metadata: dict[str, str],
        control: TransferControl,
    ) -> bool:  # fmt: skip
        """Send what is missing of a multipart upload and complete it. True when the server's
        ETag for the completed object proves it is made of exactly the parts sent."""
        part_bytes = self.config.part_bytes
        size = item.identity.size_bytes
        state = dict(item.resume_state or {})
        parts: dict[int, dict[str, str]] = {int(part["number"]): part for part in state.get("parts", [])}
        upload_id = state.get("upload_id")
        if upload_id and state.get("part_bytes") == part_bytes:
            try:
                parts = self._reconcile(key, upload_id, parts)
            except _UploadGone:
                upload_id = None
        else:
            upload_id = None
        if upload_id is None:
            created = self._call(
                "create multipart upload", "create_multipart_upload",
                Bucket=self.config.bucket, Key=key, Metadata=metadata,
            )  # fmt: skip
            upload_id = created.get("UploadId")
            if not upload_id:
                raise TransientError(f"{self.name}: create multipart upload: reply without an UploadId")
            parts = {}
            control.save_state({"upload_id": upload_id, "key": key, "part_bytes": part_bytes, "parts": []})
            control.started(remote_key, None)
        else:
            done = sum(min(part_bytes, size - (number - 1) * part_bytes) for number in parts)
            control.started(remote_key, done)
        part_count = (size + part_bytes - 1) // part_bytes
        missing = [number for number in range(1, part_count + 1) if number not in parts]

        def send_part(number: int) -> dict[str, str]:
            # Positioned reads: parts are read concurrently from one descriptor.
            offset = (number - 1) * part_bytes
            body = read_at(source, min(part_bytes, size - offset), offset)
            control.progress(len(body))
            digest = hashlib.md5(body).digest()  # noqa: S324
            response = self._call(
                f"part {number}", "upload_part",
                Bucket=self.config.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
                ContentMD5=base64.b64encode(digest).decode(),
            )  # fmt: skip
            etag = response.get("ETag")
            if not etag:
                raise TransientError(f"{self.name}: part {number}: reply without an ETag; will try again")
            return {"number": str(number), "etag": str(etag), "md5": digest.hex()}

        # A few parts in flight at once (memory: concurrency x part_bytes); each
        # acknowledged part is journalled as it completes, in whatever order.
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix=f"s3-{self.name}") as pool:
            pending = {pool.submit(send_part, number) for number in missing[: self.config.concurrency]}
            queued = iter(missing[self.config.concurrency :])
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        part = future.result()
                    except TransientError:
                        for other in pending:
                            other.cancel()
                        self._note_stuck_part(control, key, upload_id, part_bytes, parts, state)
                        raise
                    parts[int(part["number"])] = part
                    control.save_state(
                        {"upload_id": upload_id, "key": key, "part_bytes": part_bytes, "parts": list(parts.values())}
                    )
                    control.checkpoint(min(size, len(parts) * part_bytes))
                    if control.should_stop():
                        for other in pending:
                            other.cancel()
                        raise StopRequested
                    following = next(queued, None)
                    if following is not None:
                        pending.add(pool.submit(send_part, following))
        ordered = [parts[number] for number in sorted(parts)]
        result = self._call(
            "complete multipart upload", "complete_multipart_upload",
            Bucket=self.config.bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": int(part["number"]), "ETag": part["etag"]} for part in ordered]},
        )  # fmt: skip
        expected = hashlib.md5(b"".join(bytes.fromhex(part["md5"]) for part in ordered)).hexdigest()  # noqa: S324
        etag = str(result.get("ETag", "")).strip('"')
        if etag and etag != f"{expected}-{len(ordered)}":
            raise ItemError(f"{self.name}: {remote_key}: multipart ETag {etag} does not match the parts sent")
        return bool(etag) and sorted(parts) == list(range(1, part_count + 1))

    def _note_stuck_part(
        self, control: TransferControl, key: str, upload_id: str, part_bytes: int,
        parts: dict[int, dict[str, str]], state: dict[str, Any],
    ) -> None:  # fmt: skip
        """A part that fails again and again (seen with rclone serve s3 after a connection reset
        mid-part) can wedge an upload at the server: after two failures, start a new one."""
        stuck = int(state.get("stuck", 0)) + 1
        if stuck < 2:
            state.update({"upload_id": upload_id, "key": key, "part_bytes": part_bytes,
                          "parts": list(parts.values()), "stuck": stuck})  # fmt: skip
            control.save_state(state)
            return
        control.save_state(None)
        # Best effort: servers expire abandoned uploads on their own.
        with contextlib.suppress(ItemError, TransientError, AuthError):
            self.abandon({"upload_id": upload_id, "key": key})

    def _reconcile(self, key: str, upload_id: str, journalled: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
        """Parts both the server and the journal know, with matching ETags; NoSuchUpload -> start over."""
        try:
            listed = self.client().list_parts(Bucket=self.config.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in _GONE_CODES:
                raise _UploadGone from None
            if code in ("NotImplemented", "501"):
                return journalled  # the server cannot list parts: trust the journal
            raise self._translate(error, "list parts") from None
        except BotoCoreError as error:
            raise self._translate(error, "list parts") from None
        server = {int(part["PartNumber"]): part["ETag"] for part in listed.get("Parts", [])}
        return {number: part for number, part in journalled.items() if server.get(number) == part["etag"]}

    def abort_orphans(self, known_states: list[dict[str, Any]], scope: str) -> int:
        known = {state.get("upload_id") for state in known_states}
        try:
            listed = self.client().list_multipart_uploads(Bucket=self.config.bucket, Prefix=self._key(f"{scope}/"))
        except (ClientError, BotoCoreError):
            return 0  # the server cannot list uploads: it must expire them itself
        aborted = 0
        for upload in listed.get("Uploads", []):
            if upload["UploadId"] not in known:
                self.abandon({"upload_id": upload["UploadId"], "key": upload["Key"]})
                aborted += 1
        return aborted

    def abandon(self, state: dict[str, Any]) -> None:
        upload_id, key = state.get("upload_id"), state.get("key")
        if upload_id and key:
            self._call("abort multipart upload", "abort_multipart_upload",
                       Bucket=self.config.bucket, Key=key, UploadId=upload_id)  # fmt: skip

    # ----- commit ----------------------------------------------------------------

    def commit(self, package: DatasetPackage) -> None:
        self._uncommits.before_commit(package.bag_path)
        for tag_file in package.tag_files:
            self._put(
                self._key(f"{package.bag_path}/{tag_file.name}"),
                tag_file.content,
                {"sha256": hashlib.sha256(tag_file.content).hexdigest(), "bag-revision": str(package.revision)},
            )


class _UploadGone(TransientError):
    def __init__(self) -> None:
        super().__init__("the multipart upload no longer exists at the server; starting it again")
