"""Plain checks of the Runware emulator itself, with urllib (what the real API would answer)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import glb
from tests.emulator import Emulator, cutout_png, image_size

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
