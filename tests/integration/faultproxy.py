"""A fault-injecting TCP proxy between the agent and a real server (127.0.0.1 only).

Faults, each applied once, in order: ``("reset", n)`` closes both sides abruptly after
*n* more client-to-server bytes; ``("stall", seconds)`` stops forwarding for a while;
``("truncate", n)`` forwards only *n* bytes of the next server reply, then closes.
``drop_header(name, count)`` removes that header from the next *count* server replies
that carry it (a 201 without Location, a PATCH reply without Upload-Offset, a part
without ETag): protocol violations a real server or middlebox can produce.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections import deque


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: deque[tuple[str, float]] = deque()
        self.applied: list[str] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._header_drops: list[list[object]] = []
        self.requests: list[bytes] = []  # the request line of each request seen (to count them)
        self.request_times: list[float] = []  # when each was seen (time.monotonic)
        self._responses: list[list[object]] = []
        self.saw_authorization = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def add(self, kind: str, amount: float) -> None:
        with self._lock:
            self.faults.append((kind, amount))

    def respond(self, status: int, count: int, retry_after: float | None = None, reason: str = "Injected") -> None:
        """Answer the next *count* requests with *status* (and Retry-After) instead of the server."""
        with self._lock:
            self._responses.append([status, count, retry_after, reason])

    def _canned(self) -> bytes | None:
        with self._lock:
            for response in self._responses:
                status, remaining, retry_after, reason = response
                assert isinstance(status, int) and isinstance(remaining, int)
                if remaining > 0:
                    response[1] = remaining - 1
                    self.applied.append(f"respond {status}")
                    extra = f"Retry-After: {retry_after:g}\r\n" if retry_after is not None else ""
                    body = b"injected\n"
                    return (
                        f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
                    ).encode() + body
        return None

    def set_header(self, name: str, value: str, count: int = 1) -> None:
        """Give the next *count* replies that carry header *name* this *value* instead."""
        with self._lock:
            self._header_drops.append([name.lower().encode(), count, value.encode()])

    def drop_header(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._header_drops.append([name.lower().encode(), count])

    def _mangle(self, data: bytes) -> bytes:
        with self._lock:
            for drop in self._header_drops:
                name, remaining = drop[0], drop[1]
                replacement = drop[2] if len(drop) > 2 else None
                assert isinstance(name, bytes) and isinstance(remaining, int)
                if remaining <= 0:
                    continue
                head, separator, body = data.partition(b"\r\n\r\n")
                pattern = re.compile(rb"\r\n" + re.escape(name) + rb":[^\r\n]*", re.IGNORECASE)
                if separator and pattern.search(head):
                    new = b"" if replacement is None else b"\r\n" + name + b": " + replacement  # type: ignore[operator]
                    start, end = pattern.search(head).span()  # type: ignore[union-attr]
                    data = head[:start] + new + head[end:] + separator + body
                    drop[1] = remaining - 1
                    self.applied.append(f"{'set' if replacement is not None else 'drop'} {name.decode()}")
        return data

    def _next_fault(self, kinds: tuple[str, ...]) -> tuple[str, float] | None:
        with self._lock:
            if self.faults and self.faults[0][0] in kinds:
                fault = self.faults.popleft()
                self.applied.append(fault[0])
                return fault
        return None

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for source, target, direction in ((client, upstream, "up"), (upstream, client, "down")):
                thread = threading.Thread(target=self._pump, args=(source, target, direction), daemon=True)
                thread.start()
                self._threads.append(thread)

    @staticmethod
    def _reset(*sockets: socket.socket) -> None:
        for sock in sockets:
            try:  # SO_LINGER 0: the peer sees a connection reset, not a clean close
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass

    def _pump(self, source: socket.socket, target: socket.socket, direction: str) -> None:
        budget: float | None = None
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if direction == "up":
                    if re.search(rb"(?im)^authorization:", data):
                        self.saw_authorization = True
                    lines = re.findall(rb"(?m)^(?:GET|PUT|POST|HEAD|PATCH|DELETE|OPTIONS) [^\r\n]*", data)
                    for line in lines:
                        with self._lock:
                            self.requests.append(line)
                            self.request_times.append(time.monotonic())
                    canned = self._canned() if lines and self._responses else None
                    if canned is not None:
                        source.sendall(canned)  # the client's socket: it reads the reply, then EOF
                        for sock in (source, target):
                            with contextlib.suppress(OSError):
                                sock.shutdown(socket.SHUT_RDWR)
                        return
                    if budget is None:
                        fault = self._next_fault(("reset", "stall"))
                        if fault and fault[0] == "stall":
                            time.sleep(fault[1])
                        elif fault:
                            budget = fault[1]
                    if budget is not None:
                        if len(data) >= budget:
                            target.sendall(data[: int(budget)])
                            self._reset(source, target)
                            return
                        budget -= len(data)
                else:
                    if self._header_drops:
                        data = self._mangle(data)
                    fault = self._next_fault(("truncate",))
                    if fault:
                        target.sendall(data[: int(fault[1])])
                        self._reset(source, target)
                        return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accepting.join(timeout=5)
