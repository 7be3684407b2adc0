"""Every HTTP exchange of the add-on, bounded in bytes and seconds, cancellable at once, redirects checked.

- **Bytes**: bodies are read raw off the wire (identity is asked for; a gzip or deflate body is inflated here,
  with a bound), and counted before they are kept, whatever urllib3 the running Blender bundles (4.2 ships
  1.26.8, which would otherwise inflate first and count after). A declared Content-Length over the cap is
  refused before any byte is read.
- **Seconds**: every exchange has a wall-clock deadline (its own timeout, and its job's limit); a `Guard`
  trips when it is cancelled or past its deadline, and tripping shuts the sockets of its exchanges down, so a
  read blocked in the middle of a body (a host sending a byte now and then) returns at once. Connecting and
  name resolution are interruptible too.
- **Hops**: redirects are followed here, one hop at a time, each checked (https, or http on this machine)
  and never with the API's headers; API answers are never redirected.
- **Proxies and certificates**: an explicit proxy and CA bundle (the preferences), else the environment's;
  never a proxy for this machine (a key meant for loopback HTTP must not travel in clear to a proxy).

Pure Python on `requests`; runs on worker threads and never imports bpy.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import Code, Sam3dError

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    MISSING = ""
except ImportError as exc:  # a distribution build of Blender without them: the add-on enables and says so
    MISSING = (exc.name or "requests").split(".")[0]
    HTTPAdapter = HTTPConnection = HTTPSConnection = object  # type: ignore[misc,assignment]
    HTTPConnectionPool = HTTPSConnectionPool = object  # type: ignore[misc,assignment]
    ConnectTimeoutError = NewConnectionError = OSError  # type: ignore[misc,assignment]

CHUNK = 64 * 1024
PIECE = 1024 * 1024  # at most this much inflated at once (a gzip bomb inflates 1000:1)
WATCH_INTERVAL = 0.05  # how often the watchdog looks at deadlines and cancels: the cancel latency
MAX_HOPS = 5
REDIRECTS = {301, 302, 303, 307, 308}


# --- URLs ------------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine: `localhost` (and its subdomains), a loopback or unspecified address,
    in any form a resolver accepts (`127.1`, `2130706433`, `::ffff:127.0.0.1`, `0.0.0.0`)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return _local_ip(host)


def _local_ip(text: str) -> bool:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        if not text or not text[0].isdigit():
            return False
        try:  # the shorthand IPv4 forms inet_aton (and so the resolver) accepts: 127.1, 0x7f000001
            address = ipaddress.ip_address(socket.inet_aton(text))
        except (OSError, ValueError):
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def check_url(url: str, what: str = "API URL", *, local: bool = False) -> None:
    """HTTPS only, except plain HTTP to this machine for the API URL itself (the emulator, a local proxy). Any
    other address (a result URL, a redirect, a cut-out, a webhook) may be on this machine only when the API is
    (`local`): a server elsewhere never makes the add-on send a request to a port of this machine."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    on_this_machine = bool(host) and is_loopback(host)
    if what != "API URL" and on_this_machine and not local:
        raise Sam3dError(Code.LOCAL_RESULT_URL, f"{parts.scheme}://{host}")
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and on_this_machine:
        return
    code = Code.INSECURE_URL if what == "API URL" else Code.INSECURE_RESULT_URL
    raise Sam3dError(code, f"The {what} must start with https:// (got {parts.scheme or 'nothing'}://).")


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


# --- the guard: cancel and deadline, tripped by a watchdog --------------------------------------------


class Guard:
    """One job's (or one call's) cancel flag and wall-clock deadline. The watchdog trips it; tripping shuts
    every socket its exchanges hold, so nothing it started stays blocked."""

    def __init__(self, cancel: threading.Event | None = None, seconds: float | None = None,
                 timeout_code: str = Code.JOB_TIMEOUT) -> None:
        self.cancel = cancel or threading.Event()
        self.deadline = time.monotonic() + seconds if seconds else float("inf")
        self.timeout_code = timeout_code

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Sam3dError(Code.CANCELLED)
        if self.remaining() <= 0:
            raise Sam3dError(self.timeout_code)

    def wait(self, seconds: float) -> None:
        """Sleep, waking at once on a cancel; past the deadline raises its code."""
        if self.cancel.wait(max(0.0, min(seconds, self.remaining()))):
            raise Sam3dError(Code.CANCELLED)
        self.check()


class _Exchange:
    """One request in flight: its guard, its own deadline, and the connections it opened."""

    def __init__(self, guard: Guard, seconds: float, local: bool = True) -> None:
        self.guard = guard
        self.deadline = min(guard.deadline, time.monotonic() + seconds)
        self.local = local  # may it connect to this machine (its API is here, or it goes through a proxy)?
        self.refused_local = False  # a name that resolved to this machine was not connected to
        self.tripped = ""  # "cancelled", "timeout" or the guard's timeout code
        self._conns: list[Any] = []
        self._lock = threading.Lock()

    def watch(self, conn: Any) -> None:
        with self._lock:
            self._conns.append(conn)
            if self.tripped:
                _shut(conn)

    def due(self, now: float) -> str:
        if self.guard.cancel.is_set():
            return "cancelled"
        if now >= self.deadline:
            return self.guard.timeout_code if now >= self.guard.deadline else Code.TIMEOUT
        return ""

    def trip(self, reason: str) -> None:
        with self._lock:
            if self.tripped:
                return
            self.tripped = reason
            for conn in self._conns:
                _shut(conn)

    def error(self) -> Sam3dError:
        return Sam3dError(self.tripped or Code.TIMEOUT, retryable=self.tripped == Code.TIMEOUT)


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None) or getattr(conn, "_sam3d_sock", None)
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that trips exchanges past their deadline or cancelled; it ends when idle."""

    def __init__(self) -> None:
        self._active: set[_Exchange] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, exchange: _Exchange) -> None:
        with self._lock:
            self._active.add(exchange)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sam3d-http-watchdog", daemon=True)
                self._thread.start()

    def remove(self, exchange: _Exchange) -> None:
        with self._lock:
            self._active.discard(exchange)

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            with self._lock:
                active = list(self._active)
                if not active and now - idle_since > 2.0:
                    self._thread = None
                    return
            if active:
                idle_since = now
            for exchange in active:
                reason = exchange.due(now)
                if reason:
                    exchange.trip(reason)


WATCHDOG = _Watchdog()
_current = threading.local()  # the exchange the running thread is in: its connections register with it


@contextmanager
def _in_exchange(exchange: _Exchange) -> Iterator[_Exchange]:
    _current.exchange = exchange
    WATCHDOG.add(exchange)
    try:
        yield exchange
    finally:
        WATCHDOG.remove(exchange)
        _current.exchange = None


# --- connections that register with the current exchange and connect interruptibly ------------------


class _Watched:
    """Mixed into urllib3's connections: each registers with the exchange that uses it (also when reused from
    the pool), and connects in small steps that a trip interrupts."""

    sock: socket.socket | None
    _dns_host: str
    port: int
    timeout: Any
    socket_options: Any
    host: str

    def request(self, *args: Any, **kwargs: Any) -> Any:
        exchange = getattr(_current, "exchange", None)
        if exchange is not None:
            exchange.watch(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _new_conn(self) -> socket.socket:
        exchange = getattr(_current, "exchange", None)
        if exchange is not None:
            exchange.watch(self)
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        try:
            return _connect(self, (self._dns_host, self.port), timeout, self.socket_options or [], exchange)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc  # type: ignore[arg-type]
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc  # type: ignore[arg-type]


def _connect(conn: Any, address: tuple[str, int], timeout: float | None, options: list,
             exchange: _Exchange | None) -> socket.socket:
    """Resolve and connect without blocking where a trip cannot reach (a name server or a host that never
    answers would otherwise hold the worker for the system's own timeouts)."""
    started = time.monotonic()
    limit = started + (timeout if timeout else 30.0)

    def stop() -> None:
        if exchange is not None and exchange.tripped:
            raise OSError(f"stopped ({exchange.tripped})")
        if time.monotonic() > limit:
            raise TimeoutError("connect timed out")

    found: list[Any] = []
    done = threading.Event()

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(address[0], address[1], 0, socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)
        done.set()

    threading.Thread(target=resolve, name="sam3d-resolve", daemon=True).start()
    while not done.wait(WATCH_INTERVAL):
        stop()
    if isinstance(found[0], OSError):
        raise found[0]
    last: OSError = OSError(f"no address for {address[0]}")
    if exchange is not None and not exchange.local and any(_local_ip(str(a[4][0])) for a in found[0]):
        exchange.refused_local = True  # a name of a server elsewhere that resolves to this machine
        raise OSError(f"{address[0]} is this machine")
    for family, kind, proto, _, sockaddr in found[0]:
        sock = socket.socket(family, kind, proto)
        conn._sam3d_sock = sock
        try:
            for option in options:
                sock.setsockopt(*option)
            sock.setblocking(False)
            code = sock.connect_ex(sockaddr)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, 10035):  # 10035: Windows' WSAEWOULDBLOCK
                raise OSError(code, os.strerror(code))
            while not any(select.select([], [sock], [sock], WATCH_INTERVAL)[1:]):
                stop()
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
            sock.settimeout(timeout)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if isinstance(exc, TimeoutError) or (exchange is not None and exchange.tripped):
                raise
    raise last


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager


# --- bodies --------------------------------------------------------------------------------------------


class _Inflater:
    """gzip / deflate inflated with a bound; identity passed through. Other encodings are refused."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise Sam3dError(Code.BAD_RESPONSE, f"the answer is encoded as {encoding!r}, which was not asked for")
        self._first = True
        self._raw_fallback = encoding == "deflate"

    def pieces(self, data: bytes, room: int) -> Iterator[bytes]:
        """`data` inflated, in pieces of at most PIECE bytes, stopping once more than `room` came out (one more
        than allowed tells the caller it is too big): a bomb never sits in memory beyond one piece."""
        if self._z is None:
            yield data
            return
        total = 0
        while True:
            try:
                piece = self._z.decompress(data, min(PIECE, room - total + 1))
            except zlib.error:
                if self._first and self._raw_fallback:  # "deflate" sent as raw deflate, as some servers do
                    self._z, self._first = zlib.decompressobj(-zlib.MAX_WBITS), False
                    continue
                raise Sam3dError(Code.BAD_RESPONSE, "the answer's compressed body is damaged") from None
            self._first = False
            total += len(piece)
            if piece:
                yield piece
            data = self._z.unconsumed_tail
            if not data or total > room:
                return


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    url: str = ""


# --- the transport ----------------------------------------------------------------------------------


class Transport:
    """Sessions for one set of network preferences. The API client and the downloads share it; only the API
    client ever adds its key (to requests for the API host)."""

    def __init__(self, *, proxy: str = "", ca_bundle: str = "", user_agent: str = "sam3d-blender",
                 api_url: str = "") -> None:
        self.proxy = proxy.strip()
        self.ca_bundle = ca_bundle.strip()
        self.user_agent = user_agent
        # Requests to this machine only for an API on this machine (the emulator): `check_url`'s `local`.
        self.local = bool(api_url) and is_loopback(host_of(api_url))
        self.api_host = host_of(api_url)  # the API itself may be a name that resolves here (a local gateway)
        self._configured = self._session(trust_env=not self.proxy)
        if self.proxy:
            self._configured.proxies = {"http": self.proxy, "https": self.proxy}
        self._direct = self._session(trust_env=False)  # this machine: never through a proxy

    def _session(self, trust_env: bool) -> requests.Session:
        session = requests.Session()
        session.trust_env = trust_env
        adapter = _Adapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        if self.ca_bundle:
            session.verify = self.ca_bundle
        return session

    def close(self) -> None:
        self._configured.close()
        self._direct.close()

    def session_for(self, url: str) -> requests.Session:
        return self._direct if is_loopback(host_of(url)) else self._configured

    def proxy_for(self, url: str) -> str:
        """The proxy a request to `url` goes through ('' for none), for the connection test's report."""
        if is_loopback(host_of(url)):
            return ""
        if self.proxy:
            return self.proxy
        proxies = requests.utils.get_environ_proxies(url)
        return proxies.get(urlsplit(url).scheme, "") or proxies.get("all", "")

    @contextmanager
    def open(self, method: str, url: str, *, guard: Guard, timeout: float, headers: dict[str, str] | None = None,
             data: bytes | None = None) -> Iterator[tuple[requests.Response, _Exchange]]:
        """One request, its answer's headers read, its body still on the wire. Raises Sam3dError."""
        guard.check()
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise Sam3dError(Code.CA_BUNDLE_MISSING, self.ca_bundle)
        # Connecting to this machine: only for an API here, or through a proxy (the user's; it connects on).
        local = self.local or host_of(url) == self.api_host or bool(self.proxy_for(url))
        exchange = _Exchange(guard, timeout, local=local)
        sent = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", **(headers or {})}
        connect = max(0.1, min(10.0, exchange.deadline - time.monotonic()))
        with _in_exchange(exchange):
            try:
                # The CA bundle per request too: requests lets REQUESTS_CA_BUNDLE override a session's own.
                resp = self.session_for(url).request(method, url, data=data, headers=sent, stream=True,
                                                     allow_redirects=False, timeout=(connect, timeout),
                                                     verify=self.ca_bundle or None)
            except requests.exceptions.ProxyError as exc:
                raise exchange.error() if exchange.tripped else _proxy_error(exc) from None
            except requests.exceptions.SSLError as exc:
                raise exchange.error() if exchange.tripped else _tls_error(exc, self.ca_bundle) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if exchange.tripped:
                    raise exchange.error() from None
                if exchange.refused_local:
                    raise Sam3dError(Code.LOCAL_RESULT_URL, host_of(url)) from None
                timed_out = isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectionError)
                raise Sam3dError(Code.TIMEOUT if timed_out else Code.NETWORK, retryable=True) from None
            except requests.RequestException as exc:  # a malformed URL or header
                raise Sam3dError(Code.NETWORK, type(exc).__name__) from None
            except OSError as exc:  # raised by requests itself for a certificate file it cannot read
                code = Code.CA_BUNDLE_MISSING if self.ca_bundle else Code.NETWORK
                raise Sam3dError(code, type(exc).__name__) from None
            try:
                yield resp, exchange
            finally:
                resp.close()

    def fetch(self, method: str, url: str, *, guard: Guard, timeout: float, max_bytes: int,
              headers: dict[str, str] | None = None, data: bytes | None = None) -> Answer:
        """A whole (small) answer in memory, capped at `max_bytes` on the wire and inflated."""
        parts: list[bytes] = []
        with self.open(method, url, guard=guard, timeout=timeout, headers=headers, data=data) as (resp, exchange):
            read_body(resp, exchange, max_bytes, parts.append)
            return Answer(resp.status_code, dict(resp.headers), b"".join(parts), url)


@contextmanager
def get_following(transport: Transport, url: str, *, guard: Guard, timeout: float,
                  headers: dict[str, str] | None = None,
                  what: str = "result URL") -> Iterator[tuple[requests.Response, _Exchange]]:
    """GET `url`, following up to MAX_HOPS redirects by hand; every hop must pass `check_url` (no https →
    http downgrade, no plain http off this machine). The answer of the last hop, body unread."""
    for _hop in range(MAX_HOPS + 1):
        check_url(url, what, local=transport.local)
        with transport.open("GET", url, guard=guard, timeout=timeout, headers=headers) as (resp, exchange):
            if resp.status_code in REDIRECTS and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                continue
            yield resp, exchange
            return
    raise Sam3dError(Code.DOWNLOAD_FAILED, f"more than {MAX_HOPS} redirects")


def declared_length(resp: requests.Response) -> int | None:
    value = resp.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def read_body(resp: requests.Response, exchange: _Exchange, max_bytes: int, sink: Callable[[bytes], object],
              *, too_large: str = Code.RESPONSE_TOO_LARGE, on_progress: Callable[[int], None] | None = None) -> int:
    """Read the body raw off the wire into `sink`, at most `max_bytes` on the wire and after inflating.
    Returns the number of bytes given to `sink`. Raises Sam3dError (`too_large`, cancelled, timeouts…)."""
    declared = declared_length(resp)
    if declared is not None and declared > max_bytes:
        raise Sam3dError(too_large, f"{declared / 1e6:.1f} MB declared")
    inflater = _Inflater(resp.headers.get("Content-Encoding", ""))
    wire = kept = 0
    raw = resp.raw
    while True:
        try:
            data = raw.read(CHUNK, decode_content=False)
        except Exception as exc:  # noqa: BLE001 - urllib3 1.26 and 2.x raise different things when cut off
            if exchange.tripped:
                raise exchange.error() from None
            raise Sam3dError(Code.DOWNLOAD_FAILED, f"the transfer was cut short ({type(exc).__name__})",
                               retryable=True) from None
        if exchange.tripped:
            raise exchange.error()
        if not data:
            break
        wire += len(data)
        if wire > max_bytes:
            raise Sam3dError(too_large, f"more than {max_bytes / 1e6:.1f} MB")
        for piece in inflater.pieces(data, max_bytes - kept):
            kept += len(piece)
            if kept > max_bytes:
                raise Sam3dError(too_large, f"more than {max_bytes / 1e6:.1f} MB once inflated")
            sink(piece)
            if on_progress:
                on_progress(kept)
    if declared is not None and wire < declared:
        raise Sam3dError(Code.DOWNLOAD_FAILED, "the transfer was cut short", retryable=True)
    return kept


def _proxy_error(exc: Exception) -> Sam3dError:
    text = str(exc)
    for status in ("407", "403"):
        if status in text:
            return Sam3dError(Code.PROXY_REFUSED, f"HTTP {status}")
    return Sam3dError(Code.PROXY_REFUSED, "no answer")


def _tls_error(exc: Exception, ca_bundle: str) -> Sam3dError:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return Sam3dError(Code.TLS_UNTRUSTED, "a custom CA bundle is set" if ca_bundle else "")
    if ca_bundle and ("No such file" in text or "Could not find" in text or "invalid path" in text):
        return Sam3dError(Code.CA_BUNDLE_MISSING, ca_bundle)
    return Sam3dError(Code.NETWORK, "TLS handshake failed")
