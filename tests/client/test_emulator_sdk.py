"""The emulator's fidelity, checked with Runware's official Python SDK (runware-sdk 1.8.0, REST transport).

`Runware(transport="rest", http_base_url=emu.api_url)` sends every POST to the emulator; `taskType` is
passed explicitly so the SDK never asks schemas.runware.ai (no network here) which task a model runs.
Some tests pin where the SDK itself falls short of runware-api.md; their docstrings say so.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
import uuid

import pytest

from tests.emulator import Emulator, cutout_png

runware = pytest.importorskip("runware")
RunwareError = runware.RunwareError

KEY = "sdk-test-key"
PNG = cutout_png(64, 48)
DATA_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.fixture
def emu():
    with Emulator(api_key=KEY, processing_time=0.3) as emulator:
        yield emulator


def run(emu: Emulator, params: dict, key: str = KEY, **config):
    """One SDK call against the emulator, on a fresh event loop."""
    async def go():
        config.setdefault("retry_delay", 10)  # ms: keep retry tests fast (jitter still adds up to 1 s)
        async with runware.Runware(api_key=key, transport="rest", http_base_url=emu.api_url, **config) as rw:
            if params["taskType"] == "imageUpload":
                return await rw.image_upload({k: v for k, v in params.items() if k != "taskType"})
            return await rw.run(params)

    return asyncio.run(go())


def sam3d(**extra) -> dict:
    task = {"taskType": "3dInference", "model": "meta:sam@3d", "positivePrompt": "a red ball",
            "inputs": {"image": DATA_URI, "mask": DATA_URI}}
    return {**task, **extra}


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def test_three_generations_via_upload_then_poll(emu):
    [upload] = run(emu, {"taskType": "imageUpload", "image": DATA_URI})
    assert upload["imageUUID"] in emu.uploads
    results = run(emu, sam3d(numberResults=3, includeCost=True,
                             inputs={"image": upload["imageUUID"], "mask": DATA_URI}))

    assert len(results) == 3
    assert [r["resultIndex"] for r in results] == [0, 1, 2]
    assert len({r["seed"] for r in results}) == 3
    urls = [r["outputs"]["files"][0]["url"] for r in results]
    assert len(set(urls)) == 3 and all(u.startswith(emu.files_url) for u in urls)
    assert all(r["cost"] == 0.0038 for r in results)
    assert all(download(u)[:4] == b"glTF" for u in urls)
    # The SDK polled with getResponse and sent the key only to the API host.
    assert any(r.body[0]["taskType"] == "getResponse" for r in emu.requests)
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in emu.requests)
    assert all("Authorization" not in r.headers for r in emu.file_requests)
    assert emu.billed_tasks() == 1


def test_sync_delivery(emu):
    [result] = run(emu, sam3d(deliveryMethod="sync", seed=2**40))
    assert result["seed"] == 2**40 and result["status"] == "success"
    assert len(emu.requests) == 1  # no polling


@pytest.mark.parametrize("empty_body", [False, True])
def test_bad_key_is_an_auth_error(emu, empty_body):
    emu.faults.empty_401 = empty_body
    with pytest.raises(RunwareError) as caught:
        run(emu, sam3d(), key="wrong-key")
    # The SDK exposes only a category: the server's raw code (invalidApiKey) is deliberately dropped.
    assert (caught.value.code, caught.value.status_code) == ("auth", 401)
    sent = emu.requests[-1].response
    assert sent is None if empty_body else sent["errors"][0]["code"] == "invalidApiKey"
    assert emu.billed_tasks() == 0


@pytest.mark.parametrize("form", ["errors", "data"])
@pytest.mark.parametrize("code, category", [
    ("contentPolicyViolation", "safety"),
    ("inferenceError", "provider"),
    # SDK 1.8.0 looks for "Timeout" (capital T) in the raw code, so timeoutProvider is "unknown" and
    # not retryable although the provider merely timed out.
    ("timeoutProvider", "unknown"),
])
def test_task_error_reaches_the_caller(emu, form, code, category):
    emu.faults.task_error, emu.faults.task_error_form = code, form
    task_uuid = str(uuid.uuid4())
    with pytest.raises(RunwareError) as caught:
        run(emu, sam3d(taskUUID=task_uuid))
    err = caught.value
    assert (err.code, err.task_uuid) == (category, task_uuid)
    assert err.message  # the server's sentence, since the raw code is not kept
    assert emu.billed_tasks() == 1


def test_transient_statuses_are_retried_with_the_same_body(emu):
    emu.faults.status_sequence = [429, 503]
    emu.faults.retry_after = 0
    [result] = run(emu, sam3d(deliveryMethod="sync"))
    assert result["status"] == "success"
    bodies = [r.body for r in emu.requests]
    assert [r.status for r in emu.requests] == [429, 503, 200] and bodies[0] == bodies[1] == bodies[2]


def test_remove_background_through_run(emu):
    task = {"taskType": "removeBackground", "model": "runware:112@1", "inputs": {"image": DATA_URI},
            "outputType": "base64Data", "outputFormat": "PNG"}
    [item] = run(emu, task)
    png = base64.b64decode(item["imageBase64Data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == PNG[16:24]  # same width and height


def test_sdk_loses_a_dropped_submission(emu):
    """SDK gap: after a dropped answer it re-sends the same taskUUID and raises the conflictTaskUUID
    error as a plain validation failure, although the task exists and was billed (the doc says: poll it)."""
    emu.faults.drop_after_submit = 1
    with pytest.raises(RunwareError) as caught:
        run(emu, sam3d())
    assert (caught.value.code, caught.value.status_code) == ("validation", 400)
    assert emu.requests[-1].response["errors"][0]["code"] == "conflictTaskUUID"
    assert emu.billed_tasks() == 1
    assert next(iter(emu.tasks.values())).submissions == 2


def test_sdk_cannot_read_several_files_in_one_item(emu):
    """SDK gap: the documented multi-file form (one item, several outputs.files) counts as one result,
    so a numberResults=2 call waits for a second item that never comes."""
    emu.style.multi_form = "files"
    with pytest.raises(RunwareError) as caught:
        run(emu, sam3d(numberResults=2), poll_timeout=2500)
    assert caught.value.code == "timeout"


def test_sdk_cannot_read_an_upload_answered_as_an_object(emu):
    """SDK gap: `data` as a single object (documented for imageUpload) yields an empty list."""
    emu.style.upload_data_form = "object"
    assert run(emu, {"taskType": "imageUpload", "image": DATA_URI}) == []
    assert len(emu.uploads) == 1


def test_caption_through_run_in_both_documented_forms(emu):
    emu.caption_text = "A wooden stool."
    [item] = run(emu, {"taskType": "caption", "model": "runware:152@2", "inputs": {"image": DATA_URI},
                       "prompt": "what is it?", "includeCost": True})
    assert item["text"] == "A wooden stool." and item["cost"] == 0.0019
    old = {"taskType": "imageCaption", "taskUUID": str(uuid.uuid4()), "model": "runware:150@2", "inputImage": DATA_URI}
    body = json.loads(urllib.request.urlopen(urllib.request.Request(
        emu.api_url, json.dumps([old]).encode(), {"Authorization": f"Bearer {KEY}",
                                                  "Content-Type": "application/json"})).read())
    assert body["data"][0]["text"] == "A wooden stool." and emu.billed("caption") == 2
