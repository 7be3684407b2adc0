"""Every response shape runware-api.md admits, read by client/tasks.py (plain data, no network)."""

from __future__ import annotations

import base64

import pytest

from client import tasks
from client.errors import RunwareError

U = "0bfd1f7c-213a-4cc4-b44d-ce9eace8e1c3"
OTHER = "11111111-2222-4333-8444-555555555555"
URL = "https://im.runware.ai/image/os/a02d21/ws/4/ii/4a01c929.glb"


def test_inference_task_always_has_prompt_cost_and_the_fixed_outputs():
    task = tasks.inference_task(image="img-uuid", mask="data:image/png;base64,AAAA", prompt="  ")
    assert task["taskType"] == "3dInference"
    assert task["positivePrompt"]  # never empty, even when the user typed nothing
    assert task["includeCost"] is True
    assert (task["outputType"], task["outputFormat"]) == ("URL", "GLB")
    assert task["inputs"] == {"image": "img-uuid", "mask": "data:image/png;base64,AAAA"}
    assert "seed" not in task and "ttl" not in task and "webhookURL" not in task
    assert task["taskUUID"] != tasks.inference_task(image="a", mask="b", prompt="c")["taskUUID"]


def test_inference_task_sends_every_optional_parameter_given():
    task = tasks.inference_task(image="a", mask="b", prompt="chair", seed=2**63 - 1, number_results=4,
                                delivery="sync", ttl=120, webhook_url="https://hook", upload_endpoint="https://put")
    assert task["seed"] == 2**63 - 1 and task["numberResults"] == 4 and task["deliveryMethod"] == "sync"
    assert task["ttl"] == 120 and task["webhookURL"] == "https://hook" and task["uploadEndpoint"] == "https://put"


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"seed": 2**63}, {"number_results": 5}, {"ttl": 30}])
def test_inference_task_refuses_values_the_api_refuses(kwargs):
    with pytest.raises(RunwareError):
        tasks.inference_task(image="a", mask="b", prompt="c", **kwargs)


def test_result_in_outputs_files():
    body = {"data": [{"taskType": "3dInference", "taskUUID": U, "status": "success", "seed": 90625, "cost": 0.0038,
                      "outputs": {"files": [{"uuid": "f1", "url": URL}]}}]}
    state = tasks.task_state(body, U)
    assert [(g.url, g.uuid, g.seed, g.cost) for g in state.results] == [(URL, "f1", 90625, 0.0038)]
    assert not state.processing and not state.errors


def test_result_in_model_fields_and_inline_data():
    glb = b"glTF-bytes"
    body = {"data": [
        {"taskUUID": U, "status": "success", "resultIndex": 0, "modelUUID": "m0", "modelURL": URL, "seed": 1},
        {"taskUUID": U, "status": "success", "resultIndex": 1, "modelBase64Data": base64.b64encode(glb).decode()},
        {"taskUUID": U, "status": "success", "resultIndex": 2,
         "modelDataURI": "data:model/gltf-binary;base64," + base64.b64encode(glb).decode()},
    ]}
    state = tasks.task_state(body, U)
    assert [g.index for g in state.results] == [0, 1, 2]
    assert state.results[0].url == URL and state.results[1].data == glb and state.results[2].data == glb


def test_generations_differing_in_result_index_are_never_merged():
    same = {"taskUUID": U, "status": "success", "outputs": {"files": [{"uuid": "x", "url": URL}]}}
    body = {"data": [{**same, "resultIndex": 0, "seed": 5}, {**same, "resultIndex": 1, "seed": 6},
                     {**same, "resultIndex": 1}]}
    state = tasks.task_state(body, U)
    assert [(g.index, g.seed) for g in state.results] == [(0, 5), (1, 6)]


def test_several_files_in_one_item_are_several_generations():
    files = [{"uuid": f"f{i}", "url": f"{URL}?{i}"} for i in range(3)]
    state = tasks.task_state({"data": [{"taskUUID": U, "status": "success", "outputs": {"files": files}}]}, U)
    assert [g.uuid for g in state.results] == ["f0", "f1", "f2"]


def test_items_are_matched_by_task_uuid_not_position():
    body = {"data": [{"taskUUID": OTHER, "status": "success", "modelURL": "https://x/other.glb"},
                     {"taskUUID": U, "status": "success", "modelURL": URL}]}
    assert [g.url for g in tasks.task_state(body, U).results] == [URL]


@pytest.mark.parametrize("word", ["processing", "pending"])
def test_processing_with_and_without_progress(word):
    state = tasks.task_state({"data": [{"taskUUID": U, "status": word, "progress": 40}]}, U)
    assert state.processing and state.progress == 40 and not state.results
    assert tasks.task_state({"data": [{"taskUUID": U, "status": word}]}, U).progress is None


def test_acknowledgement_with_and_without_item():
    assert tasks.task_state({"data": [{"taskType": "3dInference", "taskUUID": U}]}, U).acknowledged
    state = tasks.task_state({"data": []}, U)
    assert not state.results and not state.errors


def test_error_in_errors_array_and_inside_data():
    in_errors = {"errors": [{"code": "timeoutProvider", "message": "slow", "taskUUID": U, "status": "error"}]}
    in_data = {"data": [{"taskUUID": U, "status": "error", "error": {"code": "timeoutProvider", "message": "slow"}}]}
    for body in (in_errors, in_data):
        state = tasks.task_state(body, U)
        assert [e.code for e in state.errors] == ["timeoutProvider"]
        assert "did not answer in time" in str(state.errors[0])


def test_errors_of_another_task_are_not_ours_but_request_errors_are():
    body = {"data": [{"taskUUID": U, "status": "success", "modelURL": URL}],
            "errors": [{"code": "invalidMask", "message": "bad", "taskUUID": OTHER}]}
    state = tasks.task_state(body, U)
    assert state.results and not state.errors
    assert [e.code for e in tasks.task_state({"errors": [{"code": "invalidApiKey"}]}, U).errors] == ["invalidApiKey"]


@pytest.mark.parametrize("body", [
    {"error": {"code": "insufficientCredits", "message": "no money"}},
    {"code": "insufficientCredits", "message": "no money"},
])
def test_legacy_error_forms(body):
    state = tasks.task_state(body, U)
    assert [e.code for e in state.errors] == ["insufficientCredits"]
    assert "credits" in str(state.errors[0])


def test_error_parameter_as_list_and_unknown_code_keeps_server_words():
    err = tasks.error_from({"code": "invalidFoo", "message": "foo must be bar", "parameter": ["a", "b"]})
    assert err.parameter == "a, b"
    assert "foo must be bar" in str(err) and "invalidFoo" in str(err)


@pytest.mark.parametrize("data", [[{"taskUUID": U, "imageUUID": "img-1"}], {"taskUUID": U, "imageUUID": "img-1"},
                                  [{"taskUUID": U, "mediaUUID": "img-1"}]])
def test_upload_answer_as_array_object_or_media(data):
    assert tasks.upload_uuid({"data": data}, U) == "img-1"


def test_not_json_object_is_a_bad_response():
    with pytest.raises(RunwareError) as info:
        tasks.task_state("<html>", U)
    assert info.value.code == "badResponse"
