"""A small HTTP proxy for tests, as found on corporate networks (stdlib only, threaded).

    with Proxy() as proxy:                          # or Proxy(refuse=407), Proxy(require_auth=("u", "p"))
        requests.get(url, proxies={"http": proxy.url, "https": proxy.url})
        assert {r.host for r in proxy.requests} == {"127.0.0.1"}
        assert not any("Authorization" in r.headers for r in proxy.requests)   # nothing secret in clear

- `CONNECT host:port` (what clients send for https://) opens a tunnel and relays bytes both ways, unread.
- A plain request with an absolute URI (what clients send for http://) is forwarded to its origin with
  `Connection: close` (Proxy-* headers removed; a body needs a Content-Length) and the origin's answer relayed
  as it comes (its body byte for byte; its headers say `Connection: close`, as the proxy then hangs up).
- `refuse=407` / `refuse=403`: every request (CONNECT or plain) is answered with that status instead;
  407 with `Proxy-Authenticate: Basic`.
- `require_auth=("user", "pass")`: requests without that `Proxy-Authorization: Basic …` get a 407.

`requests` records every request line with its headers, and the status the proxy answered (for a plain request
the origin's; None when nothing came back). Only what the proxy can see is recorded: inside a CONNECT tunnel
(TLS) it sees nothing, which is the point of the `Authorization` assertion above.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

try:
    from .emulator import Headers
except ImportError:  # run with tests/ on sys.path: the emulator package, from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.emulator import Headers

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "proxy-connection", "te",
               "trailer", "transfer-encoding", "upgrade"}


@dataclass
class ProxyRequest:
    line: str  # the request line as received, e.g. "CONNECT localhost:8443 HTTP/1.1"
    method: str
    target: str  # "host:port" for CONNECT, the absolute URI otherwise
    headers: Headers  # case-insensitive
    time: float  # time.monotonic()
    status: int | None = None

    @property
    def host(self) -> str:
        """The host the request was for (no port)."""
        if self.method == "CONNECT":
            return self.target.rpartition(":")[0].strip("[]")
        return urlsplit(self.target).hostname or ""


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, proxy: Proxy):
        self.proxy = proxy
        super().__init__(addr, _ProxyHandler)

    def handle_error(self, request, client_address):  # clients and origins hanging up are normal here
        pass


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EmulatedProxy/1.0"
    timeout = 30

    def setup(self):
        super().setup()
        self.server.proxy._track(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.proxy._untrack(self.connection)

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        pass

    # ---- requests

    def do_CONNECT(self):  # noqa: N802 (the stdlib's naming)
        rec = self._record()
        if self._refused(rec):
            return
        host, _, port = self.path.rpartition(":")
        self.close_connection = True
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError):
            self._answer(rec, 502, "Bad Gateway")
            return
        proxy = self.server.proxy
        proxy._track(upstream)
        try:
            self.send_response(200, "Connection established")
            self.end_headers()
            rec.status = 200
            self._tunnel(upstream)
        finally:
            proxy._untrack(upstream)
            upstream.close()

    def _forward(self):
        rec = self._record()
        if self._refused(rec):
            return
        self.close_connection = True
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            self._answer(rec, 400, "Bad Request", b"Only absolute http:// URIs (or CONNECT) are proxied.")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"{self.command} {target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
        if "Host" not in self.headers:
            lines.append(f"Host: {url.netloc}")
        lines.append("Connection: close")
        try:
            upstream = socket.create_connection((url.hostname, url.port or 80), timeout=10)
        except OSError:
            self._answer(rec, 502, "Bad Gateway")
            return
        proxy = self.server.proxy
        proxy._track(upstream)
        try:
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            head = b""  # the answer's status line and headers, rewritten to say Connection: close
            while not proxy._stopping.is_set():
                if not select.select([upstream], [], [], 0.1)[0]:
                    continue
                data = upstream.recv(65536)
                if not data:
                    break
                if head is not None:
                    head += data
                    if b"\r\n\r\n" not in head:
                        continue
                    head, _, data = head.partition(b"\r\n\r\n")
                    self.connection.sendall(self._rewrite_head(rec, head))
                    head = None
                self.connection.sendall(data)
        except OSError:
            pass
        finally:
            proxy._untrack(upstream)
            upstream.close()

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _forward  # noqa: N815

    # ---- helpers

    @staticmethod
    def _rewrite_head(rec: ProxyRequest, head: bytes) -> bytes:
        """The origin's status line and headers, hop-by-hop connection headers replaced by Connection: close
        (the proxy closes the client's connection after each forwarded answer)."""
        lines = head.split(b"\r\n")
        with contextlib.suppress(ValueError, IndexError):
            rec.status = int(lines[0].split(b" ", 2)[1])
        kept = [line for line in lines[1:]
                if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive", b"proxy-connection")]
        return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n"

    def _record(self) -> ProxyRequest:
        rec = ProxyRequest(self.requestline, self.command, self.path, Headers(self.headers.items()),
                           time.monotonic())
        proxy = self.server.proxy
        with proxy.lock:
            proxy.requests.append(rec)
        return rec

    def _refused(self, rec: ProxyRequest) -> bool:
        proxy = self.server.proxy
        if proxy.refuse:
            self._answer(rec, proxy.refuse, "Refused by the emulated proxy")
            return True
        if proxy.require_auth and not self._authorized(proxy.require_auth):
            self._answer(rec, 407, "Proxy Authentication Required")
            return True
        return False

    def _authorized(self, credentials: tuple[str, str]) -> bool:
        scheme, _, value = (self.headers.get("Proxy-Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError):
            return False
        return (user, password) == tuple(credentials)

    def _answer(self, rec: ProxyRequest, status: int, reason: str, body: bytes | None = None) -> None:
        body = body if body is not None else f"{status} {reason}\n".encode()
        rec.status = status
        self.close_connection = True
        self.send_response(status, reason)
        if status == 407:
            self.send_header("Proxy-Authenticate", 'Basic realm="emulated proxy"')
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _tunnel(self, upstream: socket.socket) -> None:
        client, stopping = self.connection, self.server.proxy._stopping
        peers = {client: upstream, upstream: client}
        while not stopping.is_set():
            try:
                readable = select.select(list(peers), [], [], 0.1)[0]
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
            except (OSError, ValueError):
                return


class Proxy:
    """An HTTP proxy on loopback; see the module's docstring."""

    def __init__(self, refuse: int | None = None, require_auth: tuple[str, str] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        if refuse not in (None, 403, 407):
            raise ValueError("refuse must be 403, 407 or None")
        self.refuse = refuse
        self.require_auth = require_auth
        self.host, self.port = host, port
        self.url = ""
        self.requests: list[ProxyRequest] = []
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Proxy:
        self._stopping.clear()
        self._server = _ProxyServer((self.host, self.port), self)
        self.url = f"http://{self.host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="emulated-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ends within about a second, tunnels and downloads in flight included."""
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            with self.lock:
                sockets = list(self._sockets)
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._server.server_close()
        if self._thread:
            self._thread.join(timeout=1)
        self._server = self._thread = None

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def hosts(self) -> set[str]:
        """Every host something was requested for through the proxy."""
        with self.lock:
            return {r.host for r in self.requests}

    def _track(self, sock: socket.socket) -> None:
        with self.lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self.lock:
            self._sockets.discard(sock)
