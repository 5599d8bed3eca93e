"""The HTTP endpoint that serves ``/metrics`` and ``/status``: safe to leave running on an instrument PC.

- It listens on loopback unless the config says ``allow_remote`` (checked when the config
  loads); a remote endpoint needs a bearer token (a credential resolved like the
  destinations') or mutual TLS (``tls.client_ca``).
- It serves a bounded number of connections (``max_connections``; more are closed at
  once) and gives each at most ``timeout_seconds`` to send its request and take the
  answer, so a slow or half-sent request (slowloris) costs neither threads nor memory.
- A connection that fails is a debug line in the log, never a traceback on stderr.
- ``/status`` is, by default, a summary: health, counts, destinations and workers, but
  no dataset keys or fields, no file paths and no free-text messages (which may quote
  them). ``status_detail: full`` serves the whole ``harvest status --json`` report.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from agent.config.models import Metrics
from agent.observe.health import assess
from agent.observe.metrics import JournalCollector
from agent.observe.report import StatusReport
from agent.observe.status import build_status

logger = logging.getLogger(__name__)


def tls_context(settings: Metrics) -> ssl.SSLContext | None:
    """The server's TLS context (mutual when ``client_ca`` is set), or None for plain HTTP."""
    tls = settings.tls
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.certificate, tls.key)
    if tls.client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=tls.client_ca)
    return context


def summary(report: StatusReport) -> dict[str, Any]:
    """The status report without what may name a person or a sample: keys, fields, paths, messages."""
    datasets: dict[str, int] = {}
    for dataset in report["datasets"]:
        datasets[str(dataset.get("state"))] = datasets.get(str(dataset.get("state")), 0) + 1
    unsafe = report["oldest_unsafe"]
    withheld: dict[str, Any] = {
        "detail": "summary",
        "agent": report["agent"],
        "workers": {
            name: {key: value for key, value in worker.items() if key != "last_restart_reason"}
            for name, worker in report["workers"].items()
        },
        "files": report["files"],
        "deliveries": report["deliveries"],
        "destinations": [
            {key: value for key, value in destination.items() if key not in ("reason", "retrying")}
            | {"retrying": bool(destination.get("retrying"))}
            for destination in report["destinations"]
        ],
        "in_flight": [
            {key: entry[key] for key in ("destination", "bytes_done", "bytes_total")} for entry in report["in_flight"]
        ],
        "recent_datasets_by_state": datasets,
        "failed_files": len(report["failed_files"]),
        "unreadable": {"count": report["unreadable"]["count"]},
        "errors": [{key: error[key] for key in ("at", "kind", "destination", "hint")} for error in report["errors"]],
        "guard": {key: value for key, value in report["guard"].items() if key != "path"},
        "oldest_unsafe": None if unsafe is None else {"since": unsafe["since"], "age_seconds": unsafe["age_seconds"]},
        "waiting": report["waiting"],
        "everything_archived": report["everything_archived"],
    }
    withheld["health"] = assess(withheld)
    return withheld


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    server_version = "harvest-agent"
    sys_version = ""

    def setup(self) -> None:
        limit = self.server.settings.timeout_seconds
        self.request.settimeout(limit)  # each read and write...
        # ...and the whole exchange: a request trickled in byte by byte is cut at the deadline.
        self._deadline = threading.Timer(limit, self._expire)
        self._deadline.daemon = True
        self._deadline.start()
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().setup()
        except BaseException:
            self._deadline.cancel()
            raise

    def _expire(self) -> None:
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._deadline.cancel()

    def _authorised(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())

    def do_GET(self) -> None:
        if not self._authorised():
            self.server.unauthorised += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="harvest-agent"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                body, content_type = generate_latest(self.server.registry), CONTENT_TYPE_LATEST
            elif path == "/status":
                report = build_status(self.server.state_dir)
                shown = summary(report) if self.server.settings.status_detail == "summary" else report
                body, content_type = json.dumps(shown, indent=2).encode(), "application/json"
            else:
                self.send_error(404, "try /metrics or /status")
                return
        except Exception as error:  # noqa: BLE001 - one failed scrape must not stop the endpoint
            logger.warning("metrics endpoint: %s", error)
            self.send_error(500, "could not read the journal")
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics: " + format, *args)


class MetricsServer(ThreadingHTTPServer):
    """Serves the journal's figures over HTTP(S) in a thread of its own; ``start``/``stop``."""

    daemon_threads = True
    request_queue_size = 64  # a burst waits in the kernel's backlog instead of being dropped

    def __init__(self, settings: Metrics, state_dir: Path, *, token: str | None = None) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.token = token
        self.refused = 0  # connections closed because max_connections were busy
        self.unauthorised = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(JournalCollector(state_dir))
        self._tls = tls_context(settings)
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        host = settings.host or "127.0.0.1"
        super().__init__((host, settings.port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="metrics", daemon=True)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self._tls is not None:  # the handshake happens in the connection's own thread, under its deadline
            connection = self._tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        logger.debug("metrics: a connection from %s ended early (%s)", client_address[0], type(error).__name__)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
