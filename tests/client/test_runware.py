"""client/runware.py against the emulator: auth, retries, conflictTaskUUID, polling, and the key's safety."""

from __future__ import annotations

import threading
import time

import pytest

from client import tasks
from client.errors import RunwareError
from client.http import Guard
from client.runware import RunwareClient, check_url
from tests.client.conftest import KEY
from tests.emulator import cutout_png


def client_for(emu, key: str = KEY, **kwargs) -> RunwareClient:
    return RunwareClient(key, emu.api_url, backoff_base=0.05, **kwargs)


def task(**kwargs) -> dict:
    png = cutout_png(64, 48)  # any PNG: image and mask must only share a size
    return tasks.inference_task(image=tasks.data_uri_png(png), mask=tasks.data_uri_png(png), prompt="cube",
                                **kwargs)


def run(client: RunwareClient, t: dict) -> tasks.TaskState:
    state = client.submit(t)
    if len(state.results) >= t["numberResults"]:
        return state
    return client.wait(t["taskUUID"], t["numberResults"], deadline=time.monotonic() + 30, first_delay=0.05)


def test_bearer_auth_json_array_and_user_agent(emu):
    c = client_for(emu, user_agent="sam3d-blender/test")
    state = run(c, task())
    assert len(state.results) == 1 and state.results[0].url.startswith(emu.files_url)
    first = emu.requests[0]
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["User-Agent"] == "sam3d-blender/test"
    assert isinstance(first.body, list) and first.body[0]["taskType"] == "3dInference"
    assert all(r.body[0]["taskType"] == "getResponse" for r in emu.requests[1:])


@pytest.mark.parametrize("style", [
    {"result_form": "modelURL"}, {"ack_form": "empty"}, {"status_word": "pending", "include_progress": False},
    {"echo_task_type": "getResponse"}, {"multi_form": "files"},
])
def test_every_documented_shape_gives_the_results(emu, style):
    for name, value in style.items():
        setattr(emu.style, name, value)
    state = run(client_for(emu), task(number_results=3))
    assert len(state.results) == 3
    assert len({g.url for g in state.results}) == 3


def test_sync_delivery_answers_without_polling(emu):
    state = client_for(emu).submit(task(delivery="sync"))
    assert len(state.results) == 1
    assert len(emu.requests) == 1


@pytest.mark.parametrize("envelope", ["errors", "error", "bare"])
def test_request_errors_in_every_envelope(emu, envelope):
    emu.style.error_envelope = envelope
    with pytest.raises(RunwareError) as info:
        run(client_for(emu, key="bad-key-123456"), task())
    assert info.value.code == "invalidApiKey" and info.value.status == 401
    assert "bad-key-123456" not in str(info.value)


def test_retries_429_and_503_honouring_retry_after(emu):
    emu.faults.status_sequence = [429, 503]
    emu.faults.retry_after = 0.2
    state = run(client_for(emu), task())
    assert state.results
    assert emu.requests[2].time - emu.requests[1].time >= 0.2
    assert emu.billed_tasks() == 1


def test_gives_up_after_the_retries(emu):
    emu.faults.status_sequence = [503] * 10
    emu.faults.retry_after = 0
    with pytest.raises(RunwareError) as info:
        run(client_for(emu, max_retries=2), task())
    assert info.value.status == 503 and len(emu.requests) == 3


def test_dropped_submission_meets_conflict_and_is_polled(emu):
    emu.faults.drop_after_submit = 1
    t = task()
    state = run(client_for(emu), t)
    assert state.results
    assert emu.tasks[t["taskUUID"]].submissions == 2 and emu.billed_tasks() == 1


def test_conflict_on_a_first_submission_is_an_error(emu):
    t = task()
    run(client_for(emu), t)
    with pytest.raises(RunwareError) as info:
        client_for(emu).submit(t)
    assert info.value.code == "conflictTaskUUID"


def test_partial_success_keeps_the_good_generations(emu):
    emu.faults.fail_generations = 1
    state = run(client_for(emu), task(number_results=3))
    assert len(state.results) == 2 and len(state.errors) == 1


def test_cancel_stops_polling_at_once(emu):
    emu.processing_time = 30
    cancel = threading.Event()
    c = client_for(emu, guard=Guard(cancel))
    t = task()
    c.submit(t)
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(RunwareError) as info:
        c.wait(t["taskUUID"], 1, deadline=time.monotonic() + 60, first_delay=0.05)
    assert info.value.code == "cancelled", "a cancel wakes the poll loop (else it would end in the job's limit)"


def test_job_time_limit(emu):
    emu.processing_time = 30
    c = client_for(emu)
    t = task()
    c.submit(t)
    with pytest.raises(RunwareError) as info:
        c.wait(t["taskUUID"], 1, deadline=time.monotonic() + 0.5, first_delay=0.05)
    assert info.value.code == "jobTimeout"


@pytest.mark.parametrize("url", ["http://api.runware.ai/v1", "ftp://x/v1", "http://10.0.0.1/v1", "nonsense"])
def test_plain_http_is_refused_except_on_loopback(url):
    with pytest.raises(RunwareError) as info:
        check_url(url)
    assert info.value.code == "insecureUrl"


@pytest.mark.parametrize("url", ["https://api.runware.ai/v1", "http://127.0.0.1:8/v1", "http://localhost/v1",
                                 "http://[::1]:8/v1"])
def test_https_and_loopback_are_allowed(url):
    check_url(url)


def test_no_key_is_refused_before_any_request(emu):
    with pytest.raises(RunwareError) as info:
        RunwareClient("", emu.api_url)
    assert info.value.code == "missingApiKey" and emu.requests == []


def test_server_message_quoting_the_key_is_scrubbed():
    from client.errors import scrubbed

    err = tasks.error_from({"code": "invalidThing", "message": f"bad value {KEY} in request"})
    assert KEY not in str(scrubbed(err, KEY))


@pytest.mark.parametrize("envelope", ["array", "object"])
def test_remove_background_returns_a_cutout_png(emu, envelope):
    emu.style.upload_data_form = envelope
    png = client_for(emu).remove_background(cutout_png(64, 48), mask_only=False).png
    assert png.startswith(b"\x89PNG") and png[16:24] == (64).to_bytes(4, "big") + (48).to_bytes(4, "big")
    [task] = emu.requests[0].body
    assert task["taskType"] == "removeBackground" and task["outputFormat"] == "PNG"


def test_retry_after_as_an_http_date_is_honoured(emu):
    emu.faults.status_sequence = [429]
    emu.faults.retry_after = 1
    emu.style.retry_after_form = "date"
    state = run(client_for(emu), task())
    assert state.results
    gap = emu.requests[1].time - emu.requests[0].time
    assert gap >= 0.5, f"the date said wait about a second; it waited {gap:.2f} s"


def test_without_retry_after_the_backoff_is_used(emu):
    emu.faults.status_sequence = [503]
    emu.style.retry_after_form = "none"
    state = run(client_for(emu), task())
    assert state.results and emu.requests[1].time - emu.requests[0].time >= 0.05  # backoff_base in client_for


def test_a_caption_is_the_answers_text_and_cost_sent_as_the_model_pages_write_it(emu):
    emu.caption_text = "A brass desk lamp."
    caption = client_for(emu).caption(cutout_png(40, 30))
    assert (caption.text, caption.cost) == ("A brass desk lamp.", 0.0019)
    [sent] = emu.requests[0].body
    assert (sent["taskType"], sent["model"], sorted(sent["inputs"])) == ("caption", tasks.CAPTION_MODEL, ["image"])
    assert sent["includeCost"] is True and sent["prompt"] and emu.billed("caption") == 1


@pytest.mark.parametrize("text", ["", "   ", None, 42, ["a lamp"]])
def test_a_caption_answer_without_text_is_a_bad_response(emu, text):
    emu.caption_text = lambda task: text
    with pytest.raises(RunwareError) as caught:
        client_for(emu).caption(cutout_png(40, 30))
    assert caught.value.code == "badResponse" and "caption" in str(caught.value)


def test_a_caption_model_that_is_not_one_is_refused_by_the_server(emu):
    with pytest.raises(RunwareError) as caught:
        client_for(emu).caption(cutout_png(40, 30), model="meta:sam@3d")
    assert caught.value.code == "invalidModel" and emu.billed("caption") == 0
