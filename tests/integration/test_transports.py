"""Network destinations against real servers: tus (@tus/server), S3 (moto, rclone serve s3), SFTP (rclone)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import bagit
import pytest

from tests.helpers import harvest_command, snapshot, subprocess_env, write_config
from tests.integration.conftest import copy_sample
from tests.integration.servers import TUS_TOKEN, Server, fetch_bags, start_tus

INSTRUMENT = "TEST-SCOPE-01"


def run_scan(tmp_path: Path, server: Server, **environment: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, destinations=[server.destination])
    env = {**subprocess_env(), **server.environment, **environment}
    return subprocess.run(
        harvest_command("scan", "--config", str(config)), capture_output=True, text=True, env=env, timeout=180
    )


def acquisition(tmp_path: Path) -> Path:
    session = tmp_path / "instrument" / "alice" / "s1"
    copy_sample("ome-tiff/multifile-master", session)
    copy_sample("dicom/single/CT_small.dcm", session)
    (session / "big.raw").write_bytes(os.urandom(12 << 20))  # multipart for S3, several PATCHes for tus
    return session


def test_scan_delivers_verifiable_bags_and_reruns_duplicate_nothing(tmp_path: Path, server: Server) -> None:
    session = acquisition(tmp_path)
    before = snapshot(tmp_path / "instrument")
    result = run_scan(tmp_path, server)
    assert result.returncode == 0, result.stdout + result.stderr

    bags = fetch_bags(server, tmp_path / "fetched")
    bag_path = bags / INSTRUMENT / "alice" / "s1"
    bagit.Bag(str(bag_path)).validate()
    sidecar = json.loads((bag_path / "harvest.json").read_text())
    assert len(sidecar["files"]) == 7
    for entry in sidecar["files"]:
        source = tmp_path / "instrument" / entry["source_path"]
        assert hashlib.sha256(source.read_bytes()).hexdigest() == entry["sha256"]
    assert (bag_path / "ro-crate-metadata.json").exists()
    assert snapshot(tmp_path / "instrument") == before
    # How each file was checked on arrival; SFTP asks rclone's server for sha256sum, so no
    # byte is read back.
    verification = sidecar["verification"]
    assert verification["destination"] == server.destination["name"]
    assert sum(verification["methods"].values()) == 7
    methods = {"rclone-sftp": {"server sha256sum": 7}, "tus": {"sha256 announced to the archive": 7}}
    # S3 (moto, rclone serve s3): the six small files by the store's MD5 ETag (sent by obstore),
    # big.raw part by part with Content-MD5 and the completed ETag (botocore).
    s3 = {"md5 etag": 6, "content-md5 per part, etag": 1}
    assert verification["methods"] == methods.get(server.kind, s3), verification

    stored_before = sorted(path.name for path in server.directory.rglob("*") if path.is_file())
    again = run_scan(tmp_path, server)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(path.name for path in server.directory.rglob("*") if path.is_file()) == stored_before
    assert session.exists()


def test_rejected_credentials_pause_with_a_hint_and_never_print_the_secret(
    tmp_path: Path, authenticating_server: Server
) -> None:
    server = authenticating_server
    acquisition(tmp_path)
    wrong = "wrong-secret-value-8d2f:also-wrong-91c3"
    variable = next(iter(server.environment))
    if server.kind == "rclone-sftp":
        wrong_key = __import__("paramiko").RSAKey.generate(2048)
        buffer = __import__("io").StringIO()
        wrong_key.write_private_key(buffer)
        wrong = buffer.getvalue()
    result = run_scan(tmp_path, server, **{variable: wrong})
    assert result.returncode == 1
    credential = server.destination["credential"]
    assert f"credentials rejected for {server.destination['name']}" in result.stdout
    assert f"harvest login {credential}" in result.stdout
    assert "Traceback" not in result.stderr
    for fragment in (wrong[:20], "wrong-secret-value", "also-wrong"):
        assert fragment not in result.stdout + result.stderr


def test_tus_retries_injected_server_errors_honouring_retry_after(tmp_path: Path) -> None:
    tus = start_tus(tmp_path)
    try:
        acquisition(tmp_path)
        (tus.directory / "faults.json").write_text(json.dumps({"status": 503, "count": 3, "retry_after": 1}))
        result = run_scan(tmp_path, tus)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads((tus.directory / "faults.json").read_text())["count"] == 0
        (tus.directory / "faults.json").unlink()
        bagit.Bag(str(fetch_bags(tus, tmp_path / "fetched") / INSTRUMENT / "alice" / "s1")).validate()
    finally:
        tus.stop()


def test_tus_server_rejects_a_checksum_mismatch(tmp_path: Path) -> None:
    """The archive's finish hook recomputes SHA-256: a corrupted upload is refused, never accepted."""
    import requests

    tus = start_tus(tmp_path)
    try:
        url = tus.destination["url"]
        headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {TUS_TOKEN}"}
        metadata = "sha256 " + __import__("base64").b64encode(b"0" * 64).decode()
        created = requests.post(url, headers={**headers, "Upload-Length": "5", "Upload-Metadata": metadata}, timeout=10)
        assert created.status_code == 201
        upload = requests.compat.urljoin(url, created.headers["Location"])
        patched = requests.patch(
            upload, data=b"hello", timeout=10,
            headers={**headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        assert patched.status_code == 460
    finally:
        tus.stop()


def test_destinations_are_tracked_independently(tmp_path: Path) -> None:
    tus = start_tus(tmp_path, name="facility")
    try:
        acquisition(tmp_path)
        missing_share = {"name": "nas-share", "type": "filesystem", "path": str(tmp_path / "not-mounted")}
        config = write_config(tmp_path, destinations=[tus.destination, missing_share])
        result = subprocess.run(
            harvest_command("scan", "--config", str(config)),
            capture_output=True, text=True, env={**subprocess_env(), **tus.environment}, timeout=180,
        )  # fmt: skip
        assert result.returncode == 1
        assert "destination nas-share unavailable" in result.stdout
        assert "not committed at facility" not in result.stdout
        bagit.Bag(str(fetch_bags(tus, tmp_path / "fetched") / INSTRUMENT / "alice" / "s1")).validate()
    finally:
        tus.stop()


def test_orphaned_multipart_uploads_are_aborted(tmp_path: Path) -> None:
    from tests.integration.servers import s3_client, start_moto

    moto = start_moto(tmp_path)
    try:
        client = s3_client(moto.destination["endpoint_url"])
        # As if the agent crashed between creating an upload and journalling it.
        orphan = client.create_multipart_upload(Bucket="imaging", Key="lsm980/TEST-SCOPE-01/x/y/data/big.raw")
        # Another instrument sharing the bucket and prefix: its uploads are not ours to abort.
        unrelated = client.create_multipart_upload(Bucket="imaging", Key="lsm980/OTHER-SCOPE/x/y/data/big.raw")
        acquisition(tmp_path)
        result = run_scan(tmp_path, moto)
        assert result.returncode == 0, result.stdout + result.stderr
        remaining = {
            upload["UploadId"] for upload in client.list_multipart_uploads(Bucket="imaging").get("Uploads", [])
        }
        assert orphan["UploadId"] not in remaining
        assert unrelated["UploadId"] in remaining  # another instrument's upload: not ours
        assert "aborted 1 orphaned upload(s) at objects" in result.stderr
    finally:
        moto.stop()


def test_tus_superseded_upload_is_terminated_at_the_server(tmp_path: Path) -> None:
    import requests

    from agent.config.models import TusDestination
    from agent.destinations.base import PayloadItem
    from agent.destinations.tus import TusTransport
    from agent.errors import StopRequested
    from agent.pipeline.hashing import identity_of

    tus = start_tus(tmp_path)
    os.environ.update(tus.environment)
    try:
        source = tmp_path / "big.raw"
        source.write_bytes(os.urandom(3 << 20))
        transport = TusTransport(TusDestination(**{**tus.destination, "chunk_bytes": 1 << 20}))
        item = PayloadItem(
            source_path=source, identity=identity_of(source.stat()),
            sha256=hashlib.sha256(source.read_bytes()).hexdigest(), bag_path="TEST-SCOPE-01/a/b",
            path_in_dataset="big.raw", resume_offset_bytes=0,
        )  # fmt: skip

        class StopAfterFirstChunk:
            saved: dict[str, str] | None = None
            checkpoints: list[int] = []  # noqa: RUF012

            def started(self, remote_key: str, resumed_from_bytes: int | None) -> None: ...
            def save_state(self, state: dict[str, str] | None) -> None:
                self.saved = state

            def checkpoint(self, offset_bytes: int) -> None:
                self.checkpoints.append(offset_bytes)

            def progress(self, sent_bytes: int) -> None: ...
            def should_stop(self) -> bool:
                return bool(self.checkpoints)

        control = StopAfterFirstChunk()
        with pytest.raises(StopRequested):
            transport.deliver(item, control)
        assert control.saved is not None and control.checkpoints == [1 << 20]
        upload_url = control.saved["upload_url"]
        headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {TUS_TOKEN}"}
        assert requests.head(upload_url, headers=headers, timeout=10).status_code == 200
        transport.abandon(control.saved)  # the file changed: this upload will never finish
        assert requests.head(upload_url, headers=headers, timeout=10).status_code in (404, 410)
    finally:
        for key in tus.environment:
            os.environ.pop(key, None)
        tus.stop()


def test_tus_tag_files_of_a_superseded_revision_are_terminated(tmp_path: Path) -> None:
    tus = start_tus(tmp_path)
    try:
        session = tmp_path / "instrument" / "nia" / "s1"
        session.mkdir(parents=True)
        (session / "a.tif").write_bytes(b"first")
        config = write_config(tmp_path, destinations=[tus.destination])
        env = {**subprocess_env(), **tus.environment}
        for content in (b"late", b"later"):
            result = subprocess.run(harvest_command("scan", "--config", str(config)), capture_output=True,
                                    text=True, env=env, timeout=120)  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
            (session / f"{content.decode()}.tif").write_bytes(content)  # a late file: a new revision
        result = subprocess.run(harvest_command("scan", "--config", str(config)), capture_output=True,
                                text=True, env=env, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

        def uploads_of(name: str) -> list[str]:
            found = []
            for info_path in tus.directory.glob("*.json"):
                if info_path.name == "faults.json":
                    continue
                relative = json.loads(info_path.read_text()).get("metadata", {}).get("relative_path", "")
                if relative.endswith(f"/{name}"):
                    found.append(relative)
            return found

        # Three revisions were committed; only the latest one's tag files remain at the server.
        assert len(uploads_of("tagmanifest-sha256.txt")) == 1
        assert len(uploads_of("harvest.json")) == 1
        bag = fetch_bags(tus, tmp_path / "fetched") / "TEST-SCOPE-01" / "nia" / "s1"
        bagit.Bag(str(bag)).validate()
        assert json.loads((bag / "harvest.json").read_text())["dataset"]["revision"] == 3
    finally:
        tus.stop()


def test_tus_credentials_never_follow_a_location_to_another_origin(tmp_path: Path) -> None:
    from tests.integration.faultproxy import FaultProxy

    tus = start_tus(tmp_path)
    elsewhere = FaultProxy(tus.port)  # another origin (port) that reaches the same server
    configured = FaultProxy(tus.port)
    try:
        session = tmp_path / "instrument" / "quinn" / "s1"
        session.mkdir(parents=True)
        (session / "a.tif").write_bytes(os.urandom(1 << 20))
        # The creation's Location points at the other origin, as a hostile or broken server might.
        configured.set_header("Location", f"http://127.0.0.1:{elsewhere.port}/files/stolen", count=50)
        destination = {**tus.destination, "url": f"http://127.0.0.1:{configured.port}/files/"}
        config = write_config(tmp_path, destinations=[destination])
        result = subprocess.run(harvest_command("scan", "--config", str(config)), capture_output=True, text=True,
                                env={**subprocess_env(), **tus.environment}, timeout=240)  # fmt: skip
        assert result.returncode != 0, result.stdout
        assert "another origin" in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert not elsewhere.saw_authorization and elsewhere.requests == [], elsewhere.requests
        assert TUS_TOKEN not in result.stdout + result.stderr
    finally:
        configured.close()
        elsewhere.close()
        tus.stop()


def test_a_token_echoed_by_the_server_is_masked_everywhere(tmp_path: Path) -> None:
    from tests.integration.faultproxy import FaultProxy

    tus = start_tus(tmp_path)
    proxy = FaultProxy(tus.port)
    try:
        copy_sample("dicom/single/CT_small.dcm", tmp_path / "instrument" / "rae" / "s1")
        proxy.respond(400, count=1000, reason=f"Bad Request for token {TUS_TOKEN} at ?token={TUS_TOKEN}")
        destination = {**tus.destination, "url": tus.destination["url"].replace(str(tus.port), str(proxy.port))}
        log_file = tmp_path / "agent.log"
        config = write_config(tmp_path, destinations=[destination], logging={"file": str(log_file), "level": "debug"})
        env = {**subprocess_env(), **tus.environment}
        scan = subprocess.run(harvest_command("scan", "--config", str(config)), capture_output=True, text=True,
                              env=env, timeout=300)  # fmt: skip
        assert scan.returncode != 0
        assert "Bad Request for token" in scan.stdout + scan.stderr + log_file.read_text(), "the reason was seen"
        status = subprocess.run(harvest_command("status", "--json", "--config", str(config)), capture_output=True,
                                text=True, env=env, timeout=60)  # fmt: skip
        texts = {"scan": scan.stdout + scan.stderr, "status": status.stdout + status.stderr,
                 "log": log_file.read_text()}  # fmt: skip
        for path in (tmp_path / "state").iterdir():
            if path.is_file():
                texts[path.name] = path.read_bytes().decode("latin-1")
        leaked = [where for where, text in texts.items() if TUS_TOKEN in text]
        assert leaked == [], leaked
    finally:
        proxy.close()
        tus.stop()


def test_sftp_agrees_on_aes_gcm_where_the_server_offers_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AES-GCM spares paramiko an HMAC per packet; rclone serve sftp offers it."""
    from agent.config.destinations import SftpDestination
    from agent.destinations.sftp import SftpTransport
    from tests.integration.servers import start_rclone_sftp

    server = start_rclone_sftp(tmp_path)
    try:
        for name, value in server.environment.items():
            monkeypatch.setenv(name, value)
        transport = SftpTransport(SftpDestination(**server.destination), tmp_path)
        transport.sftp()
        assert transport._client is not None
        ssh = transport._client.get_transport()
        ciphers = (getattr(ssh, "local_cipher", None), getattr(ssh, "remote_cipher", None))
        assert ciphers == ("aes128-gcm@openssh.com",) * 2
        transport.close()
    finally:
        server.stop()
