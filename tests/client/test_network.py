"""client/http.py's Transport on a corporate network: an explicit proxy or the environment's, a CA bundle, and
loopback never proxied; RemBG's mask-only output; the cut-out fetched without the API key.

The add-on never proxies this machine, and the emulator listens on loopback by default: the proxied tests run an
HTTPS emulator on one of this machine's other addresses (its certificate names that address too).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from client import runware, tasks
from client.errors import RunwareError
from client.http import Transport
from client.runware import Cutout, RunwareClient
from tests import tls
from tests.client.conftest import KEY
from tests.emulator import Emulator, cutout_png
from tests.proxy import Proxy

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def no_network_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy and CA settings must not decide these tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def lan_address() -> str | None:
    """An address of this machine that is not loopback, or None."""
    for probe in ("192.0.2.1", "10.255.255.255", "8.8.8.8"):  # a UDP "connect" sends nothing: a route lookup
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))
            except OSError:
                continue
            address = s.getsockname()[0]
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return None


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """This machine's non-loopback address and a throw-away CA whose server certificate also names it."""
    address = lan_address()
    if address is None:
        pytest.skip("this machine has no address but loopback, which the add-on never proxies")
    if tls.openssl() is None:
        pytest.skip(tls.MISSING)
    # tests/tls.py certifies 127.0.0.1 and localhost only: add this address to the server certificate's names.
    config = tls._SERVER_CONFIG
    assert "subjectAltName = " in config
    tls._SERVER_CONFIG = re.sub(r"(subjectAltName = [^\n]*)", rf"\1, IP:{address}", config)
    try:
        certs = tls.make_certs(tmp_path_factory.mktemp("certs"))
    finally:
        tls._SERVER_CONFIG = config
    return SimpleNamespace(address=address, certs=certs, ca=str(certs.ca))


@pytest.fixture
def https_emu(remote: SimpleNamespace):
    """The emulator over HTTPS on a non-loopback address (API and file host)."""
    with Emulator(api_key=KEY, processing_time=0.1, host=remote.address,
                  tls=(str(remote.certs.cert), str(remote.certs.key))) as emulator:
        yield emulator


@pytest.fixture
def url_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """removeBackground answered with only an imageURL, which the client then fetches. The emulator answers so
    only when asked for outputType URL (it has no mode to do it whatever was asked): ask for it."""
    make = tasks.remove_background_task

    def url_task(*args, **kwargs) -> dict:
        return {**make(*args, **kwargs), "outputType": "URL"}

    monkeypatch.setattr(runware.tasks, "remove_background_task", url_task)


def client_for(emu: Emulator, transport: Transport) -> RunwareClient:
    return RunwareClient(KEY, emu.api_url, transport=transport, max_retries=0, timeout=20)


def png_header(png: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">IIBB", png[16:26])


def png_chunks(png: bytes) -> list[bytes]:
    kinds, offset = [], 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        kinds.append(kind)
        offset += 12 + length
    return kinds


def netloc(url: str) -> str:
    return urlsplit(url).netloc


def nothing_secret_in(proxy: Proxy) -> None:
    for rec in proxy.requests:
        assert "Authorization" not in rec.headers, rec.line
        assert not any(KEY in str(v) for v in rec.headers.values()) and KEY not in rec.line


# --- the proxy preference ---------------------------------------------------------------------------------


def test_a_proxy_tunnels_api_requests_and_the_key_never_passes_in_clear(https_emu, remote):
    with Proxy() as proxy:
        transport = Transport(proxy=proxy.url, ca_bundle=remote.ca)
        try:
            client = client_for(https_emu, transport)
            assert client.account()["balance"] == 12.5
            cutout = client.remove_background(cutout_png(40, 30))
            assert cutout.mask_only and png_header(cutout.png)[:2] == (40, 30)
        finally:
            transport.close()
        assert proxy.requests, "nothing went through the proxy"
        assert {(r.method, r.target) for r in proxy.requests} == {("CONNECT", netloc(https_emu.api_url))}
        nothing_secret_in(proxy)
    assert [t["taskType"] for r in https_emu.requests for t in r.body] == ["accountManagement", "removeBackground"]
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in https_emu.requests), "inside the tunnel"


def test_a_proxy_with_a_user_and_password_is_authenticated(https_emu, remote):
    with Proxy(require_auth=("corp-user", "s3cret-pw")) as proxy:
        authed = proxy.url.replace("http://", "http://corp-user:s3cret-pw@")
        transport = Transport(proxy=authed, ca_bundle=remote.ca)
        try:
            assert client_for(https_emu, transport).account()["organization"] == "Emulated Org"
        finally:
            transport.close()
        assert [(r.method, r.status) for r in proxy.requests] == [("CONNECT", 200)]
        assert proxy.requests[0].headers["Proxy-Authorization"].startswith("Basic ")
        nothing_secret_in(proxy)


def test_the_cutout_download_goes_through_the_proxy_too(https_emu, remote, url_answers):
    with Proxy() as proxy:
        transport = Transport(proxy=proxy.url, ca_bundle=remote.ca)
        try:
            cutout = client_for(https_emu, transport).remove_background(cutout_png(40, 30))
        finally:
            transport.close()
        assert png_header(cutout.png)[:2] == (40, 30)
        [get] = https_emu.file_requests
        assert get.method == "GET" and get.status == 200
        tunnels = {r.target for r in proxy.requests if r.method == "CONNECT"}
        assert tunnels == {netloc(https_emu.api_url), netloc(https_emu.files_url)}
        assert all(r.method == "CONNECT" for r in proxy.requests)
        nothing_secret_in(proxy)


@pytest.mark.parametrize("refuse", [407, 403])
def test_a_refusing_proxy_has_its_own_sentence(https_emu, remote, refuse):
    with Proxy(refuse=refuse) as proxy:
        transport = Transport(proxy=proxy.url, ca_bundle=remote.ca)
        try:
            with pytest.raises(RunwareError) as info:
                client_for(https_emu, transport).account()
        finally:
            transport.close()
        assert [(r.method, r.status) for r in proxy.requests] == [("CONNECT", refuse)]
    assert info.value.code == "proxyRefused" and "The proxy refused the connection" in str(info.value)
    assert https_emu.requests == []


# --- the environment's proxy ------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_without_a_proxy_preference_the_environments_proxy_is_used_for_https(https_emu, remote, monkeypatch,
                                                                                 variable):
    with Proxy() as proxy:
        monkeypatch.setenv(variable, proxy.url)
        transport = Transport(ca_bundle=remote.ca)
        try:
            assert transport.proxy_for(https_emu.api_url) == proxy.url
            assert client_for(https_emu, transport).account()["balance"] == 12.5
        finally:
            transport.close()
        assert [(r.method, r.target) for r in proxy.requests] == [("CONNECT", netloc(https_emu.api_url))]
        nothing_secret_in(proxy)


@pytest.mark.parametrize("source", ["environment", "preference"])
def test_this_machine_is_never_reached_through_a_proxy(emu, monkeypatch, url_answers, source):
    """The emulator on loopback over plain http: a key sent there through a proxy would travel in clear."""
    with Proxy() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        transport = Transport(proxy=proxy.url if source == "preference" else "", api_url=emu.api_url)
        try:
            assert transport.proxy_for(emu.api_url) == "" and transport.proxy_for(emu.files_url) == ""
            client = client_for(emu, transport)
            assert client.account()["balance"] == 12.5
            assert png_header(client.remove_background(cutout_png(40, 30)).png)[:2] == (40, 30)  # a URL fetch
        finally:
            transport.close()
        assert proxy.requests == [], [r.line for r in proxy.requests]
    assert len(emu.requests) == 2 and len(emu.file_requests) == 1, "both hosts were reached directly"


def test_proxy_for_says_what_is_used(monkeypatch):
    assert Transport().proxy_for("https://api.runware.ai/v1") == ""
    explicit = Transport(proxy="http://u:pw@proxy.corp.example:3128")
    assert explicit.proxy_for("https://api.runware.ai/v1") == "http://u:pw@proxy.corp.example:3128"
    for loopback in ("http://127.0.0.1:8765/v1", "http://localhost:1/x", "https://[::1]:8443/v1"):
        assert explicit.proxy_for(loopback) == "", loopback
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy.example:8080")
    monkeypatch.setenv("HTTP_PROXY", "http://plain-proxy.example:8080")
    from_env = Transport()
    assert from_env.proxy_for("https://api.runware.ai/v1") == "http://env-proxy.example:8080"
    assert from_env.proxy_for("http://127.0.0.1:8765/v1") == ""
    assert explicit.proxy_for("https://api.runware.ai/v1") == "http://u:pw@proxy.corp.example:3128", \
        "the preference wins over the environment"
    monkeypatch.setenv("NO_PROXY", "api.runware.ai")
    assert Transport().proxy_for("https://api.runware.ai/v1") == "", "NO_PROXY is honoured"


# --- certificates ---------------------------------------------------------------------------------------


def test_an_untrusted_certificate_names_the_ca_bundle_setting_and_the_bundle_makes_it_trusted(https_emu, remote):
    transport = Transport()
    try:
        with pytest.raises(RunwareError) as info:
            client_for(https_emu, transport).account()
    finally:
        transport.close()
    assert info.value.code == "tlsUntrusted" and "CA Bundle" in str(info.value)
    assert https_emu.requests == [], "nothing was sent to an untrusted host"
    transport = Transport(ca_bundle=remote.ca)
    try:
        assert client_for(https_emu, transport).account()["balance"] == 12.5
    finally:
        transport.close()




def test_a_missing_ca_bundle_file_has_its_own_sentence(https_emu, tmp_path):
    transport = Transport(ca_bundle=str(tmp_path / "corporate-ca.pem"))
    try:
        with pytest.raises(RunwareError) as info:
            client_for(https_emu, transport).account()
    finally:
        transport.close()
    assert info.value.code == "caBundleMissing" and "CA Bundle file" in str(info.value)


def test_the_ca_bundle_preference_wins_over_requests_ca_bundle_in_the_environment(https_emu, remote, monkeypatch):
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # the public CAs, as many machines set it
    transport = Transport(ca_bundle=remote.ca)
    try:
        assert client_for(https_emu, transport).account()["balance"] == 12.5
    finally:
        transport.close()


# --- RemBG: the mask itself, and the cut-out fetched without the key ---------------------------------------------


def test_mask_only_returns_an_opaque_grayscale_png_of_the_size_sent(emu):
    emu.rembg_shape = (0.25, 0.25, 0.75, 0.75)
    transport = Transport(api_url=emu.api_url)
    try:
        cutout = client_for(emu, transport).remove_background(cutout_png(64, 48), mask_only=True)
    finally:
        transport.close()
    assert isinstance(cutout, Cutout) and cutout.mask_only is True
    assert png_header(cutout.png) == (64, 48, 8, 0), "8-bit grayscale"
    assert b"tRNS" not in png_chunks(cutout.png), "opaque"
    [task] = [t for r in emu.requests for t in r.body]
    assert task["model"] == "runware:109@1" and task["settings"] == {"returnOnlyMask": True}


def test_without_mask_only_it_returns_a_cutout_with_alpha(emu):
    transport = Transport(api_url=emu.api_url)
    try:
        cutout = client_for(emu, transport).remove_background(cutout_png(64, 48), mask_only=False)
    finally:
        transport.close()
    assert cutout.mask_only is False and png_header(cutout.png) == (64, 48, 8, 6), "8-bit RGBA"
    [task] = [t for r in emu.requests for t in r.body]
    assert "returnOnlyMask" not in task.get("settings", {})


def test_the_cutout_url_is_fetched_without_the_api_key(emu, url_answers):
    transport = Transport(api_url=emu.api_url)
    try:
        cutout = client_for(emu, transport).remove_background(cutout_png(64, 48))
    finally:
        transport.close()
    assert png_header(cutout.png)[:2] == (64, 48)
    [answer] = [r.response for r in emu.requests]
    item = answer["data"][0]
    assert "imageURL" in item and "imageBase64Data" not in item and "imageDataURI" not in item
    [get] = emu.file_requests
    assert get.method == "GET" and get.status == 200
    assert "Authorization" not in get.headers
    assert not any(KEY in str(v) for v in get.headers.values()) and KEY not in get.path
