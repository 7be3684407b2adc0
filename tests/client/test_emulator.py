"""Plain checks of the Runware emulator itself, with urllib (what the real API would answer)."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import json
import shutil
import socket
import struct
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
import zlib
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from tests import glb, tls
from tests.emulator import HUGE_RESULT_INDEXES, Emulator, Faults, Style, bomb_bytes, cutout_png, image_size
from tests.proxy import Proxy
from tests.watch import until

KEY = "test-key"


@pytest.fixture
def emu():
    with Emulator(api_key=KEY, processing_time=0.2) as emulator:
        yield emulator


def post(emu: Emulator, body, key: str | None = KEY, raw: bytes | None = None):
    """(status, parsed body or None, headers) of one POST to the API."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(emu.api_url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as err:
        content = err.read()
        return err.code, json.loads(content) if content else None, err.headers


def get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def sam3d(**extra) -> dict:
    image = data_uri(cutout_png(40, 30))
    return {"taskType": "3dInference", "taskUUID": str(uuid.uuid4()), "model": "meta:sam@3d",
            "positivePrompt": "a ball", "inputs": {"image": image, "mask": image}, **extra}


def poll(emu: Emulator, task_uuid: str):
    return post(emu, [{"taskType": "getResponse", "taskUUID": task_uuid}])


def wait_done(emu: Emulator, task_uuid: str) -> dict:
    time.sleep(emu.processing_time + 0.05)
    return poll(emu, task_uuid)[1]


@pytest.mark.parametrize("raw", [b"not json", b'{"taskType": "3dInference"}', b"[1, 2]"])
def test_body_must_be_an_array_of_tasks(emu, raw):
    status, body, _ = post(emu, None, raw=raw)
    assert status == 400 and body["errors"][0]["code"].startswith("invalid")


def test_auth_forms(emu):
    ok = [{"taskType": "authentication", "apiKey": KEY}, sam3d()]
    assert post(emu, ok, key=None)[0] == 200
    assert post(emu, [sam3d()])[0] == 200
    status, body, _ = post(emu, [sam3d()], key=None)
    assert (status, body["errors"][0]["code"]) == (401, "missingApiKey")
    status, body, _ = post(emu, [sam3d()], key="nope")
    assert (status, body["errors"][0]["code"]) == (401, "invalidApiKey")
    emu.faults.empty_401 = True
    assert post(emu, [sam3d()], key="nope")[:2] == (401, None)
    assert emu.billed_tasks() == 2


@pytest.mark.parametrize("envelope", ["errors", "error", "bare"])
def test_error_envelopes(emu, envelope):
    emu.style.error_envelope = envelope
    _, body, _ = post(emu, [sam3d()], key="nope")
    err = {"errors": body.get("errors", [None])[0], "error": body.get("error"), "bare": body}[envelope]
    assert err["code"] == "invalidApiKey" and err["documentation"].startswith("https://")


def test_dropped_submission_then_retry_conflicts_and_is_not_billed_again(emu):
    task = sam3d()
    emu.faults.drop_after_submit = 1
    with pytest.raises(http.client.RemoteDisconnected):
        post(emu, [task])
    status, body, _ = post(emu, [task])
    err = body["errors"][0]
    assert (status, err["code"], err["taskUUID"]) == (400, "conflictTaskUUID", task["taskUUID"])
    assert emu.tasks[task["taskUUID"]].submissions == 2 and emu.billed_tasks() == 1


@pytest.mark.parametrize("form, expected", [("item", 1), ("empty", 0)])
def test_ack_forms_then_results(emu, form, expected):
    emu.style.ack_form = form
    task = sam3d(seed=7, numberResults=2)
    _, ack, _ = post(emu, [task])
    assert len(ack["data"]) == expected
    assert [i["status"] for i in poll(emu, task["taskUUID"])[1]["data"]] == ["processing"] * 2
    items = wait_done(emu, task["taskUUID"])["data"]
    assert [(i["resultIndex"], i["seed"], i["status"]) for i in items] == [(0, 7, "success"),
                                                                           (1, 8, "success")]
    assert "cost" not in items[0]


def test_validation_codes(emu):
    cases = {
        "invalidModel": sam3d(model="runware:1@1"),
        "missingPositivePrompt": {k: v for k, v in sam3d().items() if k != "positivePrompt"},
        "missingMask": sam3d(inputs={"image": data_uri(cutout_png(4, 4))}),
        "invalidMask": sam3d(inputs={"image": data_uri(cutout_png(4, 4)),
                                     "mask": data_uri(cutout_png(5, 4))}),  # sizes differ
        "unsupportedParameter": sam3d(outputFormat="OBJ"),
        "invalidNumberResults": sam3d(numberResults=5),
        "invalidSeed": sam3d(seed=2**63),
        "invalidTaskUUID": sam3d(taskUUID="123"),
    }
    for code, task in cases.items():
        status, body, _ = post(emu, [task])
        assert (status, body["errors"][0]["code"]) == (400, code)
    assert emu.billed_tasks() == 0


def test_mixed_data_and_errors_in_one_answer(emu):
    good, bad = sam3d(), sam3d(numberResults=9)
    status, body, _ = post(emu, [good, bad])
    assert status == 200
    assert body["data"][0]["taskUUID"] == good["taskUUID"]
    assert body["errors"][0]["taskUUID"] == bad["taskUUID"]


def test_failed_generations_in_both_forms(emu):
    emu.faults.fail_generations = 1
    task = sam3d(numberResults=2)
    post(emu, [task])
    body = wait_done(emu, task["taskUUID"])
    assert body["data"][0]["status"] == "success" and body["errors"][0]["resultIndex"] == 1
    emu.faults.task_error, emu.faults.task_error_form = "timeoutProvider", "data"
    task = sam3d()
    post(emu, [task])
    assert wait_done(emu, task["taskUUID"])["data"][0]["error"]["code"] == "timeoutProvider"


def test_status_sequence_sends_retry_after(emu):
    emu.faults.status_sequence, emu.faults.retry_after = [429, 503], 0
    assert [post(emu, [sam3d()])[2]["Retry-After"] for _ in range(2)] == ["0", "0"]
    assert post(emu, [sam3d()])[0] == 200


def test_upload_then_use_the_uuid(emu):
    png = cutout_png(40, 30)
    emu.style.upload_data_form = "object"
    upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": data_uri(png)}
    _, body, _ = post(emu, [upload])
    image_uuid = body["data"]["imageUUID"]
    assert emu.uploads[image_uuid] == png and get(body["data"]["imageURL"])[1] == png
    assert post(emu, [sam3d(inputs={"image": image_uuid, "mask": data_uri(png)})])[0] == 200


@pytest.mark.parametrize("output_type, field", [
    ("base64Data", "imageBase64Data"), ("dataURI", "imageDataURI"), ("URL", "imageURL")])
def test_remove_background_returns_a_cutout_of_the_same_size(emu, output_type, field):
    task = {"taskType": "removeBackground", "taskUUID": str(uuid.uuid4()), "model": "runware:112@1",
            "inputs": {"image": data_uri(cutout_png(321, 123))}, "outputType": output_type}
    status, body, _ = post(emu, [task])
    value = body["data"][0][field]
    png = get(value)[1] if output_type == "URL" else base64.b64decode(value.split(",")[-1])
    assert status == 200 and png[:4] == b"\x89PNG" and image_size(png) == (321, 123)
    assert png[25] == 6  # colour type RGBA: the alpha is the mask


def test_file_host_faults_and_never_sees_the_key(emu):
    task = sam3d()
    post(emu, [task])
    url = wait_done(emu, task["taskUUID"])["data"][0]["outputs"]["files"][0]["url"]
    assert url.startswith("http://localhost:")
    emu.faults.truncate_downloads = 1
    with pytest.raises(http.client.IncompleteRead):
        get(url)
    emu.faults.corrupt_downloads = 1
    assert get(url)[1][:4] != b"glTF"
    emu.faults.download_size = 300_000
    status, data, headers = get(url, {"Range": "bytes=100-"})
    assert status == 206 and headers["Content-Range"] == f"bytes 100-{len(data) + 99}/{len(data) + 100}"
    emu.faults.no_content_length = True
    status, data, headers = get(url)
    assert headers["Content-Length"] is None and abs(len(data) - 300_000) < 8 and glb.read_glb(data)
    emu.faults.truncate_downloads = 1  # close-delimited and cut short: only the GLB header can tell
    data = get(url)[1]
    assert len(data) < struct.unpack_from("<I", data, 8)[0]
    emu.faults.file_status = 404
    assert get(url)[0] == 404
    assert all("Authorization" not in r.headers for r in emu.file_requests)


def test_results_expire_after_ttl(emu):
    task = sam3d(ttl=60)
    post(emu, [task])
    url = wait_done(emu, task["taskUUID"])["data"][0]["outputs"]["files"][0]["url"]
    assert get(url)[0] == 200
    emu._files[url.split(emu.files_url)[1]].expires_at = time.monotonic()  # skip the wait
    assert get(url)[0] == 403


def test_webhook_and_upload_endpoint(emu):
    received = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.command, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if len(received) == 1 else 200)  # the first webhook is retried
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST  # noqa: N815 (the stdlib's naming)

        def log_message(self, *args):
            pass

    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{sink.server_address[1]}"
    try:
        task = sam3d(webhookURL=base + "/hook", uploadEndpoint=base + "/put")
        post(emu, [task])
        time.sleep(emu.processing_time + 0.6)
        state = emu.tasks[task["taskUUID"]]
        assert state.webhook_results[0]["attempts"] == [500, 200]
        assert state.upload_results == [{"url": base + "/put", "status": 200}]
        assert json.loads(received[1][1])["data"][0]["status"] == "success"
        assert received[-1][0] == "PUT" and received[-1][1][:4] == b"glTF"
    finally:
        sink.shutdown()
        sink.server_close()


def test_stop_is_fast_even_with_a_sync_request_waiting():
    emu = Emulator(processing_time=30).start()

    def waiting_client():
        with contextlib.suppress(OSError, http.client.HTTPException):  # stop() hangs up on it
            post(emu, [sam3d(deliveryMethod="sync")])

    threading.Thread(target=waiting_client, daemon=True).start()
    time.sleep(0.2)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 1.5


def test_canonical_mesh_shape():
    doc, _ = glb.read_glb(glb.canonical_glb())
    assert [n["name"] for n in doc["nodes"]] == ["world", "geometry_0"] and "materials" not in doc
    attributes = doc["meshes"][0]["primitives"][0]["attributes"]
    assert set(attributes) == {"POSITION", "COLOR_0"}
    bounds = doc["accessors"][attributes["POSITION"]]
    assert all(-0.5 <= v <= 0.5 for v in bounds["min"] + bounds["max"])
    assert 500 <= doc["accessors"][0]["count"] // 3 <= 2000


# ---------------------------------------------------------------- helpers for the modes below

MIB = 1024 * 1024


def finished(emu: Emulator, **extra) -> tuple[dict, dict]:
    """(task, poll answer) of a 3dInference task that has finished."""
    task = sam3d(**extra)
    assert post(emu, [task])[0] == 200
    return task, wait_done(emu, task["taskUUID"])


def glb_url(emu: Emulator, **extra) -> str:
    return finished(emu, **extra)[1]["data"][0]["outputs"]["files"][0]["url"]


def connect(url: str, timeout: float = 5, context=None) -> tuple[http.client.HTTPConnection, str]:
    """A raw connection (no redirects, no decoding) to the URL's host, and the path to ask for."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context), parts.path
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), parts.path


def hang_up(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse | None = None) -> None:
    """Really close: the response's file keeps the socket open after conn.close() alone."""
    if resp is not None:
        resp.close()
    conn.close()


def inflate(data: bytes, encoding: str, limit: int = 1 << 40) -> tuple[int, bool]:
    """(inflated size, all zeros?), inflating at most 16 MiB at a time and stopping past `limit`."""
    d = zlib.decompressobj(31 if encoding == "gzip" else 15)
    total, zeros, pending = 0, True, data
    while pending and total <= limit:
        out = d.decompress(pending, 16 * MIB)
        total += len(out)
        zeros = zeros and not out.strip(b"\0")
        pending = d.unconsumed_tail
    return total, zeros


def png_pixels(png: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit, unfiltered PNG (what the emulator writes)."""
    width, height, depth, color_type = struct.unpack(">IIBB", png[16:26])
    assert depth == 8
    idat, offset = b"", 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        if kind == b"IDAT":
            idat += png[offset + 8:offset + 8 + length]
        offset += 12 + length
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    rows = [raw[y * stride:(y + 1) * stride] for y in range(height)]
    assert all(r[0] == 0 for r in rows)
    return width, height, bpp, [r[1:] for r in rows]


def rembg(model="runware:109@1", size=(64, 48), **extra) -> dict:
    return {"taskType": "removeBackground", "taskUUID": str(uuid.uuid4()), "model": model,
            "inputs": {"image": data_uri(cutout_png(*size))}, "outputType": "base64Data", "outputFormat": "PNG",
            **extra}


def account(**extra) -> dict:
    return {"taskType": "accountManagement", "taskUUID": str(uuid.uuid4()), "operation": "getDetails", **extra}


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxy or CA settings from the environment
    return s


# ---------------------------------------------------------------- hostile: a broken or malicious server


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_gzip_bomb_replaces_glb_downloads_even_when_identity_was_asked(emu, encoding):
    url = glb_url(emu)
    emu.faults.gzip_bomb, emu.faults.bomb_encoding, emu.faults.bomb_size = "file", encoding, 64 * MIB
    status, body, headers = get(url, {"Accept-Encoding": "identity"})  # urllib never inflates
    assert status == 200 and headers["Content-Encoding"] == encoding
    assert headers["Content-Type"] == "model/gltf-binary" and int(headers["Content-Length"]) == len(body)
    assert len(body) < 100_000 and inflate(body, encoding) == (64 * MIB, True)
    assert emu.file_bytes_sent == len(body)
    emu.faults.gzip_bomb = None
    assert get(url)[1] == emu.result_bytes


def test_default_bomb_inflates_to_2_gib_from_about_2_mb():
    size = Faults().bomb_size
    assert size == 2 * 1024**3
    bomb = bomb_bytes(size)
    assert 1 * MIB < len(bomb) < 3 * MIB and bomb is bomb_bytes(size)  # cached
    assert struct.unpack("<I", bomb[-4:])[0] == size % 2**32  # gzip's ISIZE
    assert inflate(bomb, "gzip", limit=32 * MIB)[1]  # zeros, as far as we care to look


def test_gzip_bomb_on_polls_and_on_cutouts(emu):
    task = sam3d()
    emu.faults.gzip_bomb, emu.faults.bomb_size = "api", 8 * MIB
    assert post(emu, [task])[1]["data"][0]["taskUUID"] == task["taskUUID"]  # submissions stay plain JSON
    request = urllib.request.Request(emu.api_url, json.dumps([{"taskType": "getResponse", "taskUUID":
                                     task["taskUUID"]}]).encode(), {"Authorization": f"Bearer {KEY}",
                                                                     "Accept-Encoding": "identity"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        body = resp.read()
        assert resp.headers["Content-Encoding"] == "gzip" and resp.headers["Content-Type"] == "application/json"
    assert inflate(body, "gzip") == (8 * MIB, True)
    assert emu.requests[-1].response["data"][0]["taskUUID"] == task["taskUUID"]  # what it would have said

    emu.faults.gzip_bomb = "cutout"
    _, answer, _ = post(emu, [rembg(outputType="URL")])
    status, body, headers = get(answer["data"][0]["imageURL"])
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["Content-Type"] == "image/png"
    assert get(glb_url(emu))[1][:4] == b"glTF"  # other downloads are untouched


def test_trickling_file_host_sends_a_byte_at_a_time_until_the_client_hangs_up(emu):
    url = glb_url(emu)
    emu.faults.trickle = 0.1
    conn, path = connect(url)
    conn.request("GET", path)
    started = time.monotonic()
    resp = conn.getresponse()  # the headers come at once
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(emu.result_bytes)
    assert time.monotonic() - started < 0.5
    assert resp.read(3) == emu.result_bytes[:3] and time.monotonic() - started >= 0.25
    assert emu.trickle_open == 1
    hang_up(conn, resp)
    assert until(lambda: emu.trickle_open == 0, 3)
    sent = emu.trickle_bytes_sent
    time.sleep(0.3)
    assert 3 <= emu.trickle_bytes_sent == sent <= 5 and emu.file_bytes_sent == sent


def test_trickling_api_only_when_asked(emu):
    emu.faults.trickle = 0.05
    assert post(emu, [account()])[0] == 200  # the API host answers at once without trickle_api
    emu.faults.trickle_api = True
    conn, path = connect(emu.api_url)
    conn.request("POST", path, json.dumps([account()]), {"Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read(2) == b'{"'
    hang_up(conn, resp)
    assert until(lambda: emu.trickle_open == 0, 3) and emu.trickle_bytes_sent <= 4


def test_redirects_and_redirect_chains_are_all_recorded(emu):
    url = glb_url(emu)
    emu.faults.redirect = "http://example.invalid/x.glb"
    conn, path = connect(url)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert (resp.status, resp.headers["Location"]) == (302, "http://example.invalid/x.glb")
    hang_up(conn, resp)

    emu.faults.redirect, emu.faults.redirect_chain = None, 3
    first = len(emu.file_requests)
    status, data, _ = get(url)  # urllib follows up to 10 hops
    assert status == 200 and data == emu.result_bytes
    hops = emu.file_requests[first:]
    assert [r.status for r in hops] == [302, 302, 302, 200] and len({r.path for r in hops}) == 4

    with Emulator(api_key=KEY) as other:  # the hops, then another server
        elsewhere = post(other, [{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()),
                                  "image": data_uri(cutout_png(8, 8))}])[1]["data"][0]["imageURL"]
        emu.faults.redirect, emu.faults.redirect_chain = elsewhere, 1
        assert get(url)[1] == cutout_png(8, 8)
        assert [r.status for r in emu.file_requests[-2:]] == [302, 302] and len(other.file_requests) == 1


def test_declared_length_lies_then_the_body_stalls(emu):
    emu.faults.download_size = 1_000_000
    url = glb_url(emu)
    emu.faults.declared_length = 5 * 1024**3
    conn, path = connect(url)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert int(resp.headers["Content-Length"]) == 5 * 1024**3
    hang_up(conn, resp)  # a client that checks Content-Length before reading hangs up here
    assert until(lambda: emu.trickle_open == 0, 3)
    assert emu.file_bytes_sent <= 64 * 1024

    conn, path = connect(url, timeout=0.5)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.read(64 * 1024)[:4] == b"glTF"
    with pytest.raises(TimeoutError):
        resp.read(1)  # then nothing, until we hang up
    hang_up(conn, resp)
    assert until(lambda: emu.trickle_open == 0, 3)


def test_stop_is_prompt_with_trickling_stalled_and_bomb_connections_open():
    emu = Emulator(api_key=KEY, processing_time=0.05).start()
    url = glb_url(emu)
    clients = []

    def ask(target: str, wait: bool = True) -> None:
        conn, path = connect(target)
        api = target == emu.api_url
        conn.request("POST" if api else "GET", path, b"[]" if api else None)
        if wait:
            conn.getresponse()
        clients.append(conn)

    emu.faults.trickle, emu.faults.trickle_api = 0.2, True
    ask(url)  # a trickling download
    ask(emu.api_url)  # a trickling API answer
    emu.faults.declared_length = 10**9
    ask(url)  # a stalled download
    emu.faults.gzip_bomb = "file"
    ask(url, wait=False)  # a bomb nobody reads
    assert until(lambda: emu.trickle_open == 3, 3)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 1.2
    assert until(lambda: emu.trickle_open == 0, 1)
    for conn in clients:
        conn.close()


# ---------------------------------------------------------------- results that abuse resultIndex


@pytest.mark.parametrize("form, expected", [
    ("normal", [0, 1, 2]), ("duplicate", [0, 0, 0]), ("huge", list(HUGE_RESULT_INDEXES[:3])),
    ("absent", [None, None, None])])
def test_result_index_forms(emu, form, expected):
    emu.style.result_index = form
    task = sam3d(seed=7, numberResults=3)
    post(emu, [task])
    processing = poll(emu, task["taskUUID"])[1]["data"]
    assert [i.get("resultIndex") for i in processing] == expected
    items = wait_done(emu, task["taskUUID"])["data"]
    assert [i.get("resultIndex") for i in items] == expected
    assert [i["seed"] for i in items] == [7, 8, 9]
    assert len({i["outputs"]["files"][0]["url"] for i in items}) == 3
    if form == "huge":
        assert isinstance(items[0]["resultIndex"], int) and items[0]["resultIndex"] == 10**30


def test_failed_generations_follow_the_result_index_form(emu):
    emu.style.result_index, emu.faults.fail_generations = "huge", 1
    task = sam3d(numberResults=3)
    post(emu, [task])
    assert wait_done(emu, task["taskUUID"])["errors"][0]["resultIndex"] == "7"


@pytest.mark.parametrize("form, field, prefix", [
    ("base64", "modelBase64Data", ""), ("dataURI", "modelDataURI", "data:model/gltf-binary;base64,")])
def test_inline_results_and_an_oversized_one(emu, form, field, prefix):
    emu.style.result_form = form
    item = finished(emu)[1]["data"][0]
    assert item[field].startswith(prefix) and "modelUUID" in item and "outputs" not in item
    assert base64.b64decode(item[field][len(prefix):]) == emu.result_bytes
    emu.faults.download_size = 3 * MIB
    item = finished(emu)[1]["data"][0]
    data = base64.b64decode(item[field][len(prefix):])
    assert abs(len(data) - 3 * MIB) < 8 and glb.read_glb(data)


# ---------------------------------------------------------------- hostile GLBs (tests/glb.py)


def test_glb_with_external_uris():
    doc, binary = glb.read_glb(glb.glb_with_image_uri("../../../../config/userpref.blend"))
    assert doc["images"] == [{"uri": "../../../../config/userpref.blend"}]
    assert doc["textures"][0]["source"] == 0 and doc["meshes"][0]["primitives"][0]["material"] == 0
    assert "TEXCOORD_0" in doc["meshes"][0]["primitives"][0]["attributes"] and binary

    data = glb.glb_with_buffer_uri("/dev/zero")
    doc, binary = glb.read_glb(data)
    assert doc["buffers"][0]["uri"] == "/dev/zero" and doc["buffers"][0]["byteLength"] > 0
    assert binary == b"" and struct.unpack_from("<I", data, 8)[0] == len(data)  # no BIN chunk at all


def test_glb_with_unknown_required_extension():
    doc, _ = glb.read_glb(glb.glb_with_unknown_required_extension("KHR_from_the_future"))
    assert doc["extensionsRequired"] == doc["extensionsUsed"] == ["KHR_from_the_future"]


def test_glb_out_of_range_accessors():
    doc, binary = glb.read_glb(glb.glb_out_of_range_accessor("count"))
    position = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    assert position["count"] * 12 > doc["bufferViews"][position["bufferView"]]["byteLength"]
    doc, binary = glb.read_glb(glb.glb_out_of_range_accessor("index"))
    indices = array("H", binary[:12])
    assert max(indices) == doc["accessors"][0]["max"][0] >= doc["accessors"][1]["count"]
    doc, _ = glb.read_glb(glb.glb_out_of_range_accessor("offset"))
    assert doc["bufferViews"][1]["byteOffset"] > doc["buffers"][0]["byteLength"]


def test_glb_with_triangles_small_ones_are_distinct():
    for n in (1, 7, 65534, 70_000):
        doc, binary = glb.read_glb(glb.glb_with_triangles(n))
        count = doc["accessors"][0]["count"]
        indices = array("H", binary[:2 * count])
        triangles = {tuple(sorted(indices[i:i + 3])) for i in range(0, count, 3)}
        assert count == 3 * n and len(triangles) == n and all(len(set(t)) == 3 for t in triangles)
        assert max(indices) < doc["accessors"][1]["count"]


def test_glb_with_twelve_million_triangles_is_fast_and_lean():
    tracemalloc.start()
    started = time.perf_counter()
    try:
        data = glb.glb_with_triangles(12_000_000)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    doc, _ = glb.read_glb(data)
    assert doc["accessors"][0]["count"] == 36_000_000 and 68 * MIB < len(data) < 70 * MIB
    assert elapsed < 5 and peak < 4 * len(data)  # a Python list of 36 M ints alone would be ~1.3 GB
    del data


# ---------------------------------------------------------------- disagreeing the ways Runware may


def test_range_ignored_answers_the_whole_body(emu):
    url = glb_url(emu)
    assert get(url, {"Range": "bytes=100-"})[0] == 206
    emu.style.range_ignored = True
    status, data, headers = get(url, {"Range": "bytes=100-"})
    assert status == 200 and data == emu.result_bytes and headers["Content-Range"] is None
    assert headers["Accept-Ranges"] is None


def test_literal_results_and_success_without_status(emu):
    emu.style.literal_results = True
    item = finished(emu, seed=5, includeCost=True)[1]["data"][0]
    assert list(item) == ["taskType", "taskUUID", "status", "seed", "cost", "outputs"]  # the docs' example
    emu.style.status_on_success = False
    items = finished(emu, numberResults=2)[1]["data"]
    assert all("status" not in i and "resultIndex" not in i and "outputs" in i for i in items)


@pytest.mark.parametrize("form", ["seconds", "date", "none"])
def test_retry_after_forms(emu, form):
    emu.style.retry_after_form, emu.faults.retry_after = form, 30
    emu.faults.status_sequence = [429]
    status, _, headers = post(emu, [sam3d()])
    assert status == 429
    if form == "none":
        assert headers["Retry-After"] is None
    elif form == "seconds":
        assert headers["Retry-After"] == "30"
    else:
        when = email.utils.parsedate_to_datetime(headers["Retry-After"]).timestamp()
        assert headers["Retry-After"].endswith(" GMT") and 29 <= when - time.time() <= 32


def test_forgotten_tasks(emu):
    (a, _), (b, _) = finished(emu), finished(emu)
    emu.forget(a["taskUUID"])
    status, body, _ = poll(emu, a["taskUUID"])
    assert (status, body["errors"][0]["code"]) == (404, "taskFailedOrNotFound")
    assert poll(emu, b["taskUUID"])[1]["data"][0]["status"] == "success"
    emu.faults.forget_tasks = True
    assert poll(emu, b["taskUUID"])[1]["errors"][0]["code"] == "taskFailedOrNotFound"
    assert emu.billed_tasks() == 2
    status, body, _ = post(emu, [a])  # still known to the server: a resubmission conflicts
    assert body["errors"][0]["code"] == "conflictTaskUUID"


def test_list_finished_only(emu):
    emu.style.list_finished_only = True
    task = sam3d(numberResults=2)
    post(emu, [task])
    assert poll(emu, task["taskUUID"])[1] == {"data": []}
    assert [i["status"] for i in wait_done(emu, task["taskUUID"])["data"]] == ["success", "success"]
    emu.style.multi_form = "files"
    task = sam3d(numberResults=2)
    post(emu, [task])
    assert poll(emu, task["taskUUID"])[1] == {"data": []}


def test_progress_is_off_by_default(emu):
    assert Style().include_progress is False
    task = sam3d()
    post(emu, [task])
    assert "progress" not in poll(emu, task["taskUUID"])[1]["data"][0]
    emu.style.include_progress = True
    assert 0 <= poll(emu, task["taskUUID"])[1]["data"][0]["progress"] <= 99


# ---------------------------------------------------------------- new services


def test_account_management_get_details(emu):
    status, body, _ = post(emu, [account()])
    item = body["data"][0]
    assert status == 200 and item["taskType"] == "accountManagement" and item["operation"] == "getDetails"
    assert item["organizationName"] == "Emulated Org" and item["balance"] == 12.5
    assert uuid.UUID(item["organizationUUID"]) and item["team"] and item["apiKeys"]
    assert KEY not in json.dumps(body)
    emu.balance = 3.25
    assert post(emu, [account()])[1]["data"][0]["balance"] == 3.25
    emu.faults.insufficient_credits = True
    assert post(emu, [account()])[1]["data"][0]["balance"] == 0
    status, body, _ = post(emu, [account(operation="deleteEverything")])
    assert (status, body["errors"][0]["code"], body["errors"][0]["parameter"]) == (
        400, "unsupportedParameter", "operation")
    assert post(emu, [account()], key="wrong")[0] == 401
    assert emu.billed("accountManagement") == 0 and emu.billed_tasks() == 0


def test_remove_background_return_only_mask(emu):
    status, body, _ = post(emu, [rembg(settings={"returnOnlyMask": True}, size=(60, 40))])
    png = base64.b64decode(body["data"][0]["imageBase64Data"])
    width, height, bpp, rows = png_pixels(png)
    assert status == 200 and (width, height, bpp) == (60, 40, 1)  # opaque grayscale
    assert rows[20][30] == 255 and rows[0][0] == rows[39][59] == 0  # a white ellipse on black
    assert set(b"".join(rows)) == {0, 255}

    status, body, _ = post(emu, [rembg(model="runware:112@1", settings={"returnOnlyMask": True})])
    err = body["errors"][0]
    assert (status, err["code"], err["parameter"]) == (400, "unsupportedParameter", "settings.returnOnlyMask")
    assert emu.billed("removeBackground") == 1 and emu.billed_tasks() == 0


def test_rembg_shape_places_the_object(emu):
    emu.rembg_shape = (0.5, 0.0, 1.0, 0.5)  # the top-right quarter
    body = post(emu, [rembg(settings={"returnOnlyMask": True}, size=(40, 20))])[1]
    _, _, _, rows = png_pixels(base64.b64decode(body["data"][0]["imageBase64Data"]))
    assert [r[19] for r in rows[:10]] == [0] * 10 and [r[20] for r in rows[:10]] == [255] * 10
    assert all(r == bytes(40) for r in rows[10:])

    emu.rembg_shape = lambda w, h: (bytes(255 if x < w // 4 else 0 for x in range(w)) for _ in range(h))
    body = post(emu, [rembg(size=(40, 20))])[1]  # the cut-out follows the same shape, in its alpha
    _, _, bpp, rows = png_pixels(base64.b64decode(body["data"][0]["imageBase64Data"]))
    alpha = [r[3::4] for r in rows]
    assert bpp == 4 and all(a == b"\xff" * 10 + bytes(30) for a in alpha)
    assert emu.billed("removeBackground") == 2


def test_reset_restores_every_default(emu):
    emu.faults.gzip_bomb, emu.faults.trickle, emu.faults.redirect_chain = "file", 1.0, 2
    emu.style.result_index, emu.style.literal_results, emu.style.retry_after_form = "huge", True, "date"
    emu.balance, emu.rembg_shape = 1.0, (0, 0, 1, 1)
    finished(emu)
    emu.forget(next(iter(emu.tasks)))
    emu.reset()
    assert emu.faults == Faults() and emu.style == Style() and emu.balance == 12.5 and emu.rembg_shape is None
    assert emu.file_bytes_sent == emu.trickle_bytes_sent == 0 and not emu.tasks and not emu._forgotten


# ---------------------------------------------------------------- proxy and TLS


def test_proxy_forwards_plain_http_and_records_what_it_sees(emu):
    url = glb_url(emu)
    with Proxy() as proxy, session() as s:
        proxies = {"http": proxy.url, "https": proxy.url}
        resp = s.post(emu.api_url, json=[account()], headers={"Authorization": f"Bearer {KEY}"}, proxies=proxies)
        assert resp.status_code == 200 and resp.json()["data"][0]["balance"] == 12.5
        assert s.get(url, proxies=proxies).content == emu.result_bytes
        first, second = proxy.requests
        assert first.method == "POST" and first.target == emu.api_url and first.status == 200
        assert first.headers["Authorization"] == f"Bearer {KEY}"  # plain http: the key passed in clear
        assert "Authorization" not in second.headers and proxy.hosts() == {"127.0.0.1", "localhost"}
    assert emu.requests[-1].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("refuse", [403, 407])
def test_proxy_refuses(emu, refuse):
    with Proxy(refuse=refuse) as proxy, session() as s:
        resp = s.get(emu.files_url + "/x", proxies={"http": proxy.url})
        assert resp.status_code == refuse
        assert ("Proxy-Authenticate" in resp.headers) == (refuse == 407)
        with pytest.raises(requests.exceptions.ProxyError):
            s.get("https://localhost:9/x", proxies={"https": proxy.url}, timeout=5)
        assert [(r.method, r.status) for r in proxy.requests] == [("GET", refuse), ("CONNECT", refuse)]
    assert not emu.file_requests


def test_proxy_requires_basic_auth(emu):
    url = glb_url(emu)
    with Proxy(require_auth=("user", "s3cret")) as proxy, session() as s:
        assert s.get(url, proxies={"http": proxy.url}).status_code == 407
        authed = proxy.url.replace("http://", "http://user:s3cret@")
        assert s.get(url, proxies={"http": authed}).content == emu.result_bytes
        assert [r.status for r in proxy.requests] == [407, 200]
        assert proxy.requests[1].headers["Proxy-Authorization"].startswith("Basic ")


@pytest.fixture(scope="module")
def certs():
    if tls.openssl() is None:
        pytest.skip(tls.MISSING)
    made = tls.make_certs()
    yield made
    shutil.rmtree(made.folder, ignore_errors=True)


@pytest.fixture
def tls_emu(certs):
    with Emulator(api_key=KEY, processing_time=0.1, tls=(str(certs.cert), str(certs.key))) as emulator:
        yield emulator


def test_tls_serves_both_hosts_and_only_our_ca_trusts_them(tls_emu, certs):
    emu = tls_emu
    assert emu.api_url.startswith("https://127.0.0.1:") and emu.files_url.startswith("https://localhost:")
    with session() as s:
        task = sam3d()
        auth = {"Authorization": f"Bearer {KEY}"}
        assert s.post(emu.api_url, json=[task], headers=auth, verify=str(certs.ca)).status_code == 200
        time.sleep(emu.processing_time + 0.05)
        answer = s.post(emu.api_url, json=[{"taskType": "getResponse", "taskUUID": task["taskUUID"]}],
                        headers=auth, verify=str(certs.ca)).json()
        url = answer["data"][0]["outputs"]["files"][0]["url"]
        assert url.startswith(emu.files_url)
        assert s.get(url, verify=str(certs.ca)).content == emu.result_bytes
    # A fresh session: requests < 2.32 (Blender 4.2's 2.27) reuses a pooled connection whatever verify says.
    with session() as s:
        with pytest.raises(requests.exceptions.SSLError):
            s.get(url, verify=True)  # the system's CAs know nothing of ours
        with pytest.raises(requests.exceptions.SSLError):
            s.post(emu.api_url, json=[account()], headers=auth, verify=True)
    with pytest.raises(http.client.RemoteDisconnected):  # plain http to an https port
        conn, path = connect(emu.files_url.replace("https", "http"))
        conn.request("GET", "/")
        conn.getresponse()


def test_tls_through_a_connect_proxy_hides_the_key(tls_emu, certs):
    emu = tls_emu
    with Proxy(require_auth=("u", "p")) as proxy, session() as s:
        proxies = {"https": proxy.url.replace("http://", "http://u:p@")}
        resp = s.post(emu.api_url, json=[account()], headers={"Authorization": f"Bearer {KEY}"},
                      proxies=proxies, verify=str(certs.ca))
        assert resp.status_code == 200 and resp.json()["data"][0]["organizationName"] == "Emulated Org"
        assert [r.method for r in proxy.requests] == ["CONNECT"]
        assert proxy.requests[0].target == urlsplit(emu.api_url).netloc
        assert not any("Authorization" in r.headers for r in proxy.requests)


def test_stop_is_prompt_with_a_tls_client_that_never_handshakes(certs):
    emu = Emulator(tls=(str(certs.cert), str(certs.key))).start()
    parts = urlsplit(emu.api_url)
    with socket.create_connection((parts.hostname, parts.port)) as silent:
        time.sleep(0.1)
        started = time.monotonic()
        emu.stop()
        assert time.monotonic() - started < 1.2
        silent.settimeout(1)
        assert silent.recv(10) == b""
