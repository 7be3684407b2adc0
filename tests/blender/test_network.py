"""Test Connection, and every request on a corporate network: a proxy (the preference or the environment's), a CA
bundle for a firewall that inspects HTTPS, and this machine never reached through a proxy.

The add-on never proxies loopback, where the emulator listens by default: the proxied tests run an HTTPS emulator
on one of this machine's other addresses, with a throw-away CA (tests/tls.py) whose certificate also names it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from types import SimpleNamespace
from urllib.parse import urlsplit

import bpy
import pytest
from conftest import KEY, module, use_inputs

from tests import tls
from tests.emulator import Emulator
from tests.proxy import Proxy

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
ROUND_TRIP = re.compile(r"Round trip: \d+ ms · proxy: (.+)")


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


@pytest.fixture(params=["lan"])
def https_emu(request, sam3d, remote: SimpleNamespace):  # noqa: ANN001
    """The emulator over HTTPS (API and file host) on a non-loopback address ("lan") or on loopback, the
    preferences pointed at it (no CA bundle yet)."""
    host = remote.address if request.param == "lan" else "127.0.0.1"
    with Emulator(api_key=KEY, processing_time=0.2, host=host,
                  tls=(str(remote.certs.cert), str(remote.certs.key))) as emulator:
        sam3d.prefs.api_url = emulator.api_url
        yield emulator


@pytest.fixture
def url_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """removeBackground answered with only an imageURL, which the add-on then fetches. The emulator answers so
    only when asked for outputType URL (it has no mode to do it whatever was asked): ask for it."""
    client_tasks = module("client.tasks")
    make = client_tasks.remove_background_task
    monkeypatch.setattr(client_tasks, "remove_background_task",
                        lambda *args, **kwargs: {**make(*args, **kwargs), "outputType": "URL"})


def report() -> list[tuple[str, str]]:
    return list(module("preferences").CONNECTION_REPORT)


def shown_proxy() -> str:
    """What the report's last line says of the proxy."""
    found = ROUND_TRIP.fullmatch(report()[-1][1])
    assert found, report()
    return found.group(1)


def ledger():  # noqa: ANN201
    return module("operators.machinery.runner").RUNNER.ledger


def free(*emus: Emulator) -> None:
    """Nothing reserved, nothing spent, no task created (so nothing billed)."""
    assert ledger().reserved == 0 and ledger().spent == 0
    for emu in emus:
        assert emu.tasks == {}, [t.task_type for t in emu.tasks.values()]
        assert {t["taskType"] for r in emu.requests for t in r.body} <= {"accountManagement"}


def netloc(url: str) -> str:
    return urlsplit(url).netloc


def nothing_secret_in(proxy: Proxy) -> None:
    for rec in proxy.requests:
        assert "Authorization" not in rec.headers, rec.line
        assert not any(KEY in str(v) for v in rec.headers.values()) and KEY not in rec.line


def failing_connection(match: str) -> str:
    """Run Test Connection expecting an error; the report holds that one sentence."""
    with pytest.raises(RuntimeError, match=match) as info:
        bpy.ops.sam3d.test_connection()
    [(level, text)] = report()
    assert level == "ERROR" and re.search(match, text), text
    assert KEY not in text and "Traceback" not in str(info.value)
    return text


# --- Test Connection ----------------------------------------------------------------------------------


def test_a_good_key_shows_the_balance_the_round_trip_and_no_proxy(sam3d):
    sam3d.emu.balance = 7.25
    assert bpy.ops.sam3d.test_connection() == {"FINISHED"}
    lines = report()
    assert lines[0] == ("INFO", "Connected: the key works (Emulated Org).")
    assert ("INFO", "Balance: $7.25") in lines, "the balance the account reports"
    assert lines[-1][0] == "INFO" and shown_proxy() == "none"
    [rec] = sam3d.emu.requests
    assert [t["taskType"] for t in rec.body] == ["accountManagement"] and rec.body[0]["operation"] == "getDetails"
    free(sam3d.emu)


def test_an_invalid_key_has_its_own_sentence(sam3d):
    sam3d.prefs.api_key = "wrong-key-that-must-not-be-echoed"
    text = failing_connection("Runware rejected the API key")
    assert "wrong-key-that-must-not-be-echoed" not in text
    free(sam3d.emu)


@pytest.mark.parametrize("how", ["balance-0", "insufficient-credits"])
def test_no_credit_left_says_so(sam3d, how):
    if how == "balance-0":
        sam3d.emu.balance = 0
    else:
        sam3d.emu.faults.insufficient_credits = True
    assert bpy.ops.sam3d.test_connection() == {"FINISHED"}  # the key works: a warning, not an error
    lines = report()
    assert lines[0][1].startswith("Connected")
    assert ("ERROR", "Balance: $0.00 — no credit left: top it up at runware.ai") in lines
    free(sam3d.emu)


def test_no_network_has_its_own_sentence(sam3d):
    sam3d.prefs.api_url = "http://127.0.0.1:9/v1"  # nothing listens there
    failing_connection("Cannot reach Runware. Check your internet connection")
    free(sam3d.emu)


@pytest.mark.parametrize("refuse", [407, 403])
def test_a_refusing_proxy_has_its_own_sentence(https_emu, remote, sam3d, refuse):
    sam3d.prefs.ca_bundle = remote.ca
    with Proxy(refuse=refuse) as proxy:
        sam3d.prefs.proxy = proxy.url
        failing_connection(r"The proxy refused the connection\. Check the Proxy setting")
        assert [(r.method, r.status) for r in proxy.requests] == [("CONNECT", refuse)]
    assert https_emu.requests == []
    free(https_emu)


@pytest.mark.parametrize("https_emu", ["lan", "loopback"], indirect=True)
def test_an_untrusted_certificate_names_the_ca_bundle_setting_and_is_trusted_with_it(https_emu, remote, sam3d):
    failing_connection(r"certificate is not trusted.*as CA Bundle in the add-on preferences")
    assert https_emu.requests == [], "nothing was sent to a host that was not trusted"
    sam3d.prefs.ca_bundle = remote.ca
    assert bpy.ops.sam3d.test_connection() == {"FINISHED"}
    assert report()[0] == ("INFO", "Connected: the key works (Emulated Org).") and shown_proxy() == "none"
    free(https_emu)


def test_the_report_names_the_proxy_but_never_its_password(https_emu, remote, sam3d, capfd):
    sam3d.prefs.ca_bundle = remote.ca
    with Proxy(require_auth=("corp-user", "s3cret-pw")) as proxy:
        sam3d.prefs.proxy = proxy.url.replace("http://", "http://corp-user:s3cret-pw@")
        assert bpy.ops.sam3d.test_connection() == {"FINISHED"}
        assert [(r.method, r.status) for r in proxy.requests] == [("CONNECT", 200)]
    assert shown_proxy().endswith(netloc(proxy.url))
    out, err = capfd.readouterr()
    for text in [t for _, t in report()] + [out, err]:
        assert "s3cret-pw" not in text
    free(https_emu)




@pytest.mark.parametrize("action", ["test_connection", "auto_mask", "reconstruct"])
def test_a_missing_ca_bundle_file_has_its_own_sentence(https_emu, sam3d, action):
    sam3d.prefs.ca_bundle = str(sam3d.tmp / "corporate-ca.pem")
    use_inputs()
    with pytest.raises(RuntimeError, match="The CA Bundle file set in the add-on preferences cannot be read"):
        getattr(bpy.ops.sam3d, action)()


# --- every request on a corporate network ------------------------------------------------------------------


def test_with_a_proxy_preference_every_request_tunnels_through_it(https_emu, remote, sam3d, url_answers):
    sam3d.prefs.ca_bundle = remote.ca
    with Proxy() as proxy:
        sam3d.prefs.proxy = proxy.url
        use_inputs()
        before = set(bpy.data.objects)
        assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}  # upload, submit, poll, download
        assert len([o for o in bpy.data.objects if o not in before]) == 1
        assert bpy.ops.sam3d.auto_mask() == {"FINISHED"}  # removeBackground, then its cut-out fetched by URL
        assert bpy.ops.sam3d.test_connection() == {"FINISHED"}
        assert shown_proxy().endswith(netloc(proxy.url))
        assert proxy.requests and all(r.method == "CONNECT" for r in proxy.requests), "tunnels only"
        assert {r.target for r in proxy.requests} == {netloc(https_emu.api_url), netloc(https_emu.files_url)}
        assert all(r.status == 200 for r in proxy.requests)
        nothing_secret_in(proxy)
    sent = {t["taskType"] for r in https_emu.requests for t in r.body}
    assert {"imageUpload", "3dInference", "getResponse", "removeBackground", "accountManagement"} <= sent
    fetched = {r.path.split("/")[1] for r in https_emu.file_requests if r.method == "GET" and r.status == 200}
    assert fetched == {"files", "images"}, "the GLB and the cut-out, through the proxy"
    assert not any("Authorization" in r.headers for r in https_emu.file_requests)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_without_a_proxy_preference_the_environments_proxy_is_used(https_emu, remote, sam3d, monkeypatch, variable):
    sam3d.prefs.ca_bundle = remote.ca
    with Proxy() as proxy:
        monkeypatch.setenv(variable, proxy.url)
        assert bpy.ops.sam3d.test_connection() == {"FINISHED"}
        assert shown_proxy().endswith(netloc(proxy.url))
        use_inputs(mask=None)
        assert bpy.ops.sam3d.box_mask(xmin=400, ymin=200, xmax=800, ymax=600) == {"FINISHED"}
        assert [(r.method, r.target) for r in proxy.requests] == [("CONNECT", netloc(https_emu.api_url))] * 2
        nothing_secret_in(proxy)
    assert [t["taskType"] for r in https_emu.requests for t in r.body] == ["accountManagement", "removeBackground"]


@pytest.mark.parametrize("source", ["environment", "preference"])
def test_this_machine_is_never_reached_through_a_proxy(sam3d, monkeypatch, url_answers, source):
    """The plain emulator on loopback (http): a key sent there through a proxy would travel in clear."""
    with Proxy() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        if source == "preference":
            sam3d.prefs.proxy = proxy.url
        use_inputs()
        assert bpy.ops.sam3d.test_connection() == {"FINISHED"}
        assert shown_proxy() == "none"
        assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
        assert bpy.ops.sam3d.auto_mask() == {"FINISHED"}
        assert proxy.requests == [], [r.line for r in proxy.requests]
    assert sam3d.emu.billed() == 1 and sam3d.emu.billed("removeBackground") == 1
    fetched = {r.path.split("/")[1] for r in sam3d.emu.file_requests if r.method == "GET" and r.status == 200}
    assert fetched == {"files", "images"}, "the GLB and the cut-out, directly"


@pytest.mark.parametrize("https_emu", ["lan", "loopback"], indirect=True)
def test_a_ca_bundle_makes_a_whole_reconstruction_work(https_emu, remote, sam3d):
    sam3d.prefs.ca_bundle = remote.ca
    use_inputs()
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    [obj] = [o for o in bpy.data.objects if o not in before]
    assert obj["sam3d_task_uuid"] in https_emu.tasks
    sent = [t["taskType"] for r in https_emu.requests for t in r.body]
    assert sent[0] == "imageUpload" and "3dInference" in sent and "getResponse" in sent
    [download] = [r for r in https_emu.file_requests if r.method == "GET"]
    assert download.status == 200 and "Authorization" not in download.headers
    assert ledger().spent == 3800 and ledger().reserved == 0
