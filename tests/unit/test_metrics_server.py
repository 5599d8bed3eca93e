"""The metrics endpoint: loopback by default, authenticated when remote, bounded, quiet, and discreet."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from agent.config.models import Metrics
from agent.journal.store import Journal
from agent.observe.metrics_server import MetricsServer, summary
from agent.observe.report import StatusReport
from tests.helpers import wait_for


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    Journal(tmp_path / "state").close()
    return tmp_path / "state"


@pytest.fixture
def serve(state_dir: Path) -> Iterator[Any]:
    servers: list[MetricsServer] = []

    def start(token: str | None = None, **settings: Any) -> MetricsServer:
        server = MetricsServer(Metrics(**{"listen": "127.0.0.1:0", **settings}), state_dir, token=token)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _get(server: MetricsServer, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), b""


def test_no_host_means_loopback_and_the_network_needs_consent_and_a_credential(state_dir: Path) -> None:
    server = MetricsServer(Metrics(listen=":0"), state_dir)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
    for listen in ("0.0.0.0:9464", "192.168.1.20:9464", "scope-pc.example.org:9464"):
        with pytest.raises(ValidationError, match="reachable from the network"):
            Metrics(listen=listen)
        with pytest.raises(ValidationError, match=r"needs metrics\.credential"):
            Metrics(listen=listen, allow_remote=True)
        Metrics(listen=listen, allow_remote=True, credential="metrics-token")  # explicit and authenticated
    for listen in ("127.0.0.1:9464", "localhost:9464", "127.1.2.3:9464"):
        Metrics(listen=listen)


def test_a_bearer_token_is_required_on_every_path(serve: Any) -> None:
    server = serve(token="s3cret-scrape-token")
    for path in ("/metrics", "/status"):
        assert _get(server, path)[0] == 401
        assert _get(server, path, token="wrong")[0] == 401
        assert _get(server, path, token="s3cret-scrape-token")[0] == 200
    assert server.unauthorised == 4


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if name == "127.0.0.1":
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _write_pem(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path.with_suffix(".crt"), path.with_suffix(".key")


def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_configured_ca(tmp_path: Path, serve: Any) -> None:
    ca_key, rogue_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("facility CA", ca_key, None)
    rogue_ca = _certificate("facility CA", rogue_key, None)  # same name, another key
    ca_file, _ = _write_pem(tmp_path / "ca", ca, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    certificate, key = _write_pem(
        tmp_path / "server", _certificate("127.0.0.1", server_key, (ca.subject, ca_key)), server_key
    )
    client_cert, client_key_file = _write_pem(
        tmp_path / "client", _certificate("prometheus", client_key, (ca.subject, ca_key)), client_key
    )
    rogue_cert, rogue_key_file = _write_pem(
        tmp_path / "rogue", _certificate("prometheus", client_key, (rogue_ca.subject, rogue_key)), client_key
    )
    server = serve(tls={"certificate": certificate, "key": key, "client_ca": ca_file})
    url = f"https://127.0.0.1:{server.server_address[1]}/metrics"

    def fetch(cert: tuple[Path, Path] | None) -> int:
        context = ssl.create_default_context(cafile=ca_file)
        if cert is not None:
            context.load_cert_chain(*cert)
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return int(response.status)

    assert fetch((client_cert, client_key_file)) == 200
    for refused in (None, (rogue_cert, rogue_key_file)):
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            fetch(refused)
    assert fetch((client_cert, client_key_file)) == 200  # still serving


def test_half_sent_requests_are_bounded_and_cut_at_the_deadline(serve: Any, capfd: pytest.CaptureFixture[str]) -> None:
    server = serve(max_connections=4, timeout_seconds=1.0)
    port = server.server_address[1]
    threads_before = threading.active_count()
    slow: list[socket.socket] = []
    busiest = 0
    for _ in range(40):  # a slowloris: headers begun, never finished
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        slow.append(connection)
        busiest = max(busiest, threading.active_count())
    # Each served connection costs its thread and a deadline timer; a few more while finished
    # ones exit (a slot is free a moment before its thread has ended), never one per client.
    assert busiest <= threads_before + 2 * 4 + 4 < threads_before + 40
    for connection in slow:  # every one ends: refused at once or cut at the deadline
        connection.settimeout(10)
        assert connection.recv(1024) == b""
        connection.close()
    assert server.refused > 0
    # A client sees its end a moment before the server's thread has given back its slot.
    wait_for(lambda: threading.active_count() <= threads_before, timeout=10, what="threads gone")
    assert _get(server, "/metrics")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


REPORT_WITH_NAMES: dict[str, Any] = {
    "agent": {"running": True, "pid": 7, "mode": "run", "version": "0.1.0", "instrument_id": "SCOPE-1"},
    "workers": {"transfer:archive": {"alive": True, "restarts": 1, "last_restart_reason": "RuntimeError at DOE^JOHN"}},
    "files": {"verified": 3, "settling": 0, "quarantined": 0},
    "deliveries": {"archive": {"verified": 3}},
    "destinations": [
        {"name": "archive", "state": "paused", "reason": "403 on DOE^JOHN/s1/a.dcm", "hold": None, "retrying": None}
    ],
    "in_flight": [{"path": "/data/DOE^JOHN/s1/b.dcm", "destination": "archive", "bytes_done": 1, "bytes_total": 2}],
    "datasets": [{"key": "DOE^JOHN/s1", "state": "open", "fields": {"operator": "DOE^JOHN"}}],
    "failed_files": [{"path": "/data/DOE^JOHN/s1/c.dcm", "error": "bad"}],
    "unreadable": {"count": 1, "parts": [{"path": "/data/DOE^JOHN/s2", "reason": "permission denied"}]},
    "errors": [
        {"at": "t", "kind": "item", "path": "/data/DOE^JOHN", "destination": "archive", "message": "DOE^JOHN"}
        | {"hint": ""}
    ],
    "guard": {"active": True, "since": "t", "path": "/data/DOE^JOHN/s1/b.dcm", "rate_bytes_per_second": None},
    "oldest_unsafe": {"path": "/data/DOE^JOHN/s1/b.dcm", "since": "t", "age_seconds": 90000.0},
    "waiting": {"settling": 0, "to_hash": 0, "to_send": 1, "datasets_to_commit": 1},
    "everything_archived": False,
}


def test_the_status_summary_names_no_person_sample_or_path() -> None:
    view = summary(cast(StatusReport, REPORT_WITH_NAMES))
    text = json.dumps(view)
    assert "DOE" not in text and "/data" not in text and "s1" not in text
    assert view["health"]["state"] == "degraded"
    assert any("paused" in reason for reason in view["health"]["reasons"])
    assert view["recent_datasets_by_state"] == {"open": 1} and view["failed_files"] == 1
    assert view["in_flight"] == [{"destination": "archive", "bytes_done": 1, "bytes_total": 2}]


def test_status_serves_the_summary_unless_full_detail_is_configured(serve: Any) -> None:
    summary_status = json.loads(_get(serve(), "/status")[1])
    assert summary_status["detail"] == "summary" and "datasets" not in summary_status
    full = json.loads(_get(serve(status_detail="full"), "/status")[1])
    assert "datasets" in full and "detail" not in full
