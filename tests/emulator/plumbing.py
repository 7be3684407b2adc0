"""HTTP plumbing: the threaded servers, their request handlers (keep-alive, chunked bodies, TLS handshakes in
the handler's thread), case-insensitive `Headers`, and `Recorded`, what one request looked like."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import Emulator


class Headers(dict):
    """Request headers with case-insensitive lookup (keys stored lower-case)."""

    def __init__(self, items=()):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@dataclass
class Recorded:
    method: str
    path: str
    headers: Headers
    body: object  # parsed JSON, or the raw bytes when the body is not JSON
    time: float
    status: int | None = None  # None: answered by closing the connection
    response: object = None  # the parsed JSON answer, if any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, emulator: Emulator, ssl_context: ssl.SSLContext | None = None):
        self.emulator = emulator
        self.ssl_context = ssl_context
        self.connections: set[socket.socket] = set()
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context:  # the handshake happens in the handler's thread, never in the accept loop
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if self.emulator.verbose:  # clients hanging up mid-answer is normal here
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API: Content-Length on every answer
    server_version = "RunwareEmulator/1.0"
    timeout = 30

    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except BaseException:
                self.server.connections.discard(self.connection)
                raise

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.connections.discard(self.connection)

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        if self.server.emulator.verbose:
            super().log_message(format, *args)

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, body: bytes, headers: dict | None = None, send_body: bool = True,
             on_sent: Callable[[int], None] | None = None):
        """Answer; `on_sent(n)` is told of the body bytes as they go out."""
        self.send_head(status, body, headers)
        if send_body and body:
            view = memoryview(body)
            for start in range(0, len(body), 256 * 1024):
                piece = view[start:start + 256 * 1024]
                self.wfile.write(piece)
                if on_sent:
                    on_sent(len(piece))

    def send_head(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            if value is not None:  # None: leave the header out
                self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()

    def peer_gone(self, wait: float, stopping: threading.Event) -> bool:
        """Wait up to `wait` seconds; True when the emulator stops or the client hung up (its socket turned
        readable mid-answer: an EOF, a TLS close_notify, or anything else we will not read)."""
        if stopping.wait(wait):
            return True
        try:
            return bool(select.select([self.connection], [], [], 0)[0])
        except (OSError, ValueError):
            return True


class ApiHandler(Handler):
    def do_POST(self):
        self.server.emulator._serve_api(self)

    def do_GET(self):  # answered with 405, and recorded
        self.server.emulator._serve_api(self)


class FileHandler(Handler):
    def do_GET(self):
        self.server.emulator._serve_file(self)

    def do_HEAD(self):
        self.server.emulator._serve_file(self)
