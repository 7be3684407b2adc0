"""Every failure a user can meet: a sentence for a person, no traceback, nothing half-imported, nothing paid lost."""

from __future__ import annotations

from pathlib import Path

import bpy
import pytest
from conftest import KEY, last_task, new_objects, use_inputs


def fails(match: str) -> str:
    """Run reconstruct expecting an error report; return its text. Nothing may have been added."""
    before = set(bpy.data.objects)
    meshes = set(bpy.data.meshes)
    collections = set(bpy.data.collections)
    with pytest.raises(RuntimeError, match=match) as info:
        bpy.ops.sam3d.reconstruct()
    assert new_objects(before) == []
    assert set(bpy.data.meshes) == meshes and set(bpy.data.collections) == collections
    text = str(info.value)
    assert "Traceback" not in text and KEY not in text
    return text


@pytest.mark.parametrize("empty_body", [False, True])
def test_invalid_key(sam3d, empty_body):
    sam3d.emu.faults.empty_401 = empty_body
    sam3d.prefs.api_key = "wrong-key-that-must-not-be-echoed"
    use_inputs()
    text = fails("rejected the API key")
    assert "wrong-key-that-must-not-be-echoed" not in text


def test_no_credits(sam3d):
    sam3d.emu.faults.insufficient_credits = True
    use_inputs()
    fails("no credits")
    assert sam3d.emu.billed_tasks() == 0


def test_busy_server_is_retried_honouring_retry_after(sam3d):
    sam3d.emu.faults.status_sequence = [429, 503]
    sam3d.emu.faults.retry_after = 0.3
    use_inputs()
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert len(new_objects(before)) == 1
    statuses = [r.status for r in sam3d.emu.requests]
    assert statuses[:3] == [429, 503, 200]
    gaps = [b.time - a.time for a, b in zip(sam3d.emu.requests, sam3d.emu.requests[1:3], strict=False)]
    assert min(gaps) >= 0.3, "Retry-After was not honoured"
    assert sam3d.emu.billed_tasks() == 1


def test_server_busy_for_too_long_says_so(sam3d):
    sam3d.emu.faults.status_sequence = [503] * 6
    sam3d.emu.faults.retry_after = 0
    use_inputs()
    fails("busy")


@pytest.mark.parametrize("form", ["errors", "data"])
@pytest.mark.parametrize("code, words", [("timeoutProvider", "did not answer in time"),
                                         ("contentPolicyViolation", "content policy")])
def test_task_errors_in_both_documented_forms(sam3d, form, code, words):
    sam3d.emu.faults.task_error = code
    sam3d.emu.faults.task_error_form = form
    use_inputs()
    fails(words)


def test_dropped_submission_is_polled_not_paid_twice(sam3d):
    sam3d.emu.faults.drop_after_submit = 1
    use_inputs()
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert len(new_objects(before)) == 1
    task = last_task(sam3d.emu)
    assert sam3d.emu.tasks[task["taskUUID"]].submissions == 2  # the retry met conflictTaskUUID
    assert sam3d.emu.billed_tasks() == 1


def test_download_cut_short_is_fetched_again(sam3d):
    sam3d.emu.faults.truncate_downloads = 1
    use_inputs()
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert len(new_objects(before)) == 1
    assert len([r for r in sam3d.emu.file_requests if r.method == "GET"]) >= 2


def test_download_without_length_cut_short_is_caught_by_the_glb_header(sam3d):
    sam3d.emu.faults.no_content_length = True
    sam3d.emu.faults.truncate_downloads = 1
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}


def test_corrupt_download_is_not_imported_and_says_why(sam3d):
    sam3d.emu.faults.corrupt_downloads = 10
    use_inputs()
    fails("not a valid GLB")
    assert not list(sam3d.results.rglob("*.glb"))


def test_download_larger_than_the_limit_is_refused(sam3d):
    sam3d.emu.faults.download_size = 3 * 1024 * 1024
    sam3d.prefs.max_download_mb = 1
    use_inputs()
    fails("larger than the download limit")


def test_expired_result_url(sam3d):
    sam3d.emu.faults.file_status = 404
    use_inputs()
    fails("expired")


def test_glb_the_importer_rejects_leaves_nothing_and_keeps_the_file(sam3d):
    # A well-formed GLB (it passes the gate) that holds no mesh: the import is refused, and nothing is half made.
    import json
    import struct

    doc = json.dumps({"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
                      "nodes": [{"name": "empty"}]}).encode()
    doc += b" " * (-len(doc) % 4)
    chunk = struct.pack("<I", len(doc)) + b"JSON" + doc
    sam3d.emu.result_bytes = b"glTF" + struct.pack("<II", 2, 12 + len(chunk)) + chunk
    use_inputs()
    text = fails("could not import")
    kept = Path(text.split("kept at ")[1].strip().rstrip("."))
    assert kept.suffix == ".glb" and kept.read_bytes() == sam3d.emu.result_bytes


def test_a_glb_the_gate_refuses_is_kept_and_the_task_stays_resumable(sam3d):
    import struct

    junk = b'{"asset": {"version": "2.0"}, "meshes": [{"primitives": [{"attributes": {"POSITION": 7}}]}]}'
    junk += b" " * (-len(junk) % 4)
    chunk = struct.pack("<I", len(junk)) + b"JSON" + junk
    sam3d.emu.result_bytes = b"glTF" + struct.pack("<II", 2, 12 + len(chunk)) + chunk
    use_inputs()
    fails("damaged GLB")
    [uuid] = [u for u, t in sam3d.emu.tasks.items() if t.task_type == "3dInference"]
    from client.journal import Journal

    assert Journal(sam3d.results).tasks()[uuid].status == "interrupted", "paid: Resume may fetch it again"


def test_the_key_never_reaches_the_file_host(sam3d):
    use_inputs()
    bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.file_requests, "the result should come from the second host"
    for rec in sam3d.emu.file_requests:
        assert "authorization" not in {k.lower() for k in rec.headers}
        assert KEY not in str(rec.headers) and KEY not in rec.path
    for rec in sam3d.emu.requests:
        assert rec.headers.get("Authorization") == f"Bearer {KEY}" and KEY not in rec.path


def test_plain_http_to_a_remote_host_is_refused(sam3d):
    sam3d.prefs.api_url = "http://api.example.com/v1"
    use_inputs()
    fails("https://")
    assert sam3d.emu.requests == []


def test_network_down(sam3d):
    sam3d.prefs.api_url = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
    use_inputs()
    fails("Cannot reach Runware")


def test_refuses_with_a_reason_when_online_access_is_off(sam3d):
    use_inputs()
    bpy.context.preferences.system.use_online_access = False
    try:
        assert not bpy.ops.sam3d.reconstruct.poll()
        with pytest.raises(RuntimeError, match="Online access is off"):
            bpy.ops.sam3d.reconstruct()
    finally:
        bpy.context.preferences.system.use_online_access = True
    assert sam3d.emu.requests == []


def test_refuses_with_a_reason_without_a_key_and_uses_the_environment(sam3d, monkeypatch):
    use_inputs()
    sam3d.prefs.api_key = ""
    with pytest.raises(RuntimeError, match="No Runware API key"):
        bpy.ops.sam3d.reconstruct()
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert sam3d.emu.requests[-1].headers.get("Authorization") == f"Bearer {KEY}"


@pytest.mark.parametrize("missing, words", [("image", "Pick a photo"), ("mask", "Pick a mask")])
def test_refuses_with_a_reason_without_photo_or_mask(sam3d, missing, words):
    use_inputs()
    setattr(sam3d.settings, missing, None)
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.sam3d.reconstruct()


def test_the_key_is_not_saved_in_the_blend_file(sam3d):
    use_inputs()
    bpy.ops.sam3d.reconstruct()
    path = sam3d.tmp / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    assert KEY.encode() not in path.read_bytes()


def test_result_folder_that_cannot_be_written_is_refused_before_sending(sam3d):
    blocker = sam3d.tmp / "not-a-folder"
    blocker.write_text("a file where the result folder should be")
    sam3d.prefs.result_dir = str(blocker)
    use_inputs()
    fails("Cannot write to the result folder")
    assert sam3d.emu.requests == []


def test_the_photo_as_its_own_mask_is_refused(sam3d):
    use_inputs()
    sam3d.settings.mask = sam3d.settings.image
    with pytest.raises(RuntimeError, match="mask is the photo itself"):
        bpy.ops.sam3d.reconstruct()
    assert sam3d.emu.requests == []


def test_the_request_timeout_preference_reaches_every_request(sam3d):
    sam3d.prefs.request_timeout = 5.0  # the smallest allowed
    sam3d.emu.faults.trickle, sam3d.emu.faults.trickle_api = 0.5, True  # every API answer, a byte at a time
    use_inputs()
    try:
        fails("did not answer in time")
    finally:
        sam3d.emu.faults.trickle = None
    assert sam3d.emu.billed_tasks() == 0, "it gave up on the photo's upload, before any task"
