"""Every request parameter of the model page is reachable from the scene settings and the preferences."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bpy
import pytest
from conftest import last_task, new_objects, use_inputs

from tests.watch import until


class Receiver:
    """A bucket and a webhook on loopback: records what Runware (the emulator) PUTs and POSTs."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _take(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.got.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST = _take  # noqa: N815 (http.server's names)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 5.0) -> None:
        until(lambda: len(self.got) >= count, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_advanced_parameters_reach_the_request(sam3d, receiver):
    use_inputs()
    s = sam3d.settings
    s.prompt, s.use_random_seed, s.seed, s.num_results = "a bench", False, 1234567, 2
    s.ttl = 3600
    sam3d.prefs.upload_endpoint = f"{receiver.url}/bucket/result.glb?X-Amz-Signature=abc"
    sam3d.prefs.webhook_url = f"{receiver.url}/hook"
    before = set(bpy.data.objects)
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    made = new_objects(before)
    task = last_task(sam3d.emu)
    assert task["positivePrompt"] == "a bench" and task["seed"] == 1234567 and task["numberResults"] == 2
    assert task["ttl"] == 3600 and task["deliveryMethod"] == "async"
    assert task["uploadEndpoint"] == sam3d.prefs.upload_endpoint and task["webhookURL"] == sam3d.prefs.webhook_url
    assert (task["outputType"], task["outputFormat"], task["model"]) == ("URL", "GLB", "meta:sam@3d")
    assert sorted(o["sam3d_seed"] for o in made) == ["1234567", "1234568"]
    receiver.wait(4)
    puts = [body for method, path, body in receiver.got if method == "PUT" and path.startswith("/bucket/")]
    hooks = [json.loads(body) for method, path, body in receiver.got if method == "POST" and path == "/hook"]
    assert puts and all(body[:4] == b"glTF" for body in puts)
    assert hooks and all(h["data"][0]["taskUUID"] == task["taskUUID"] for h in hooks)
    for _, _, body in receiver.got:
        assert sam3d.prefs.api_key.encode() not in body


def test_sync_delivery_needs_no_polling(sam3d):
    use_inputs()
    sam3d.settings.delivery_method = "SYNC"
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    kinds = [t["taskType"] for r in sam3d.emu.requests for t in r.body]
    assert kinds == ["imageUpload", "3dInference"] and last_task(sam3d.emu)["deliveryMethod"] == "sync"


def test_model_id_is_a_preference(sam3d):
    use_inputs()
    sam3d.prefs.model = "meta:sam@4"  # a version the emulator doesn't know: its refusal reaches the user
    with pytest.raises(RuntimeError, match="code|model") as info:
        bpy.ops.sam3d.reconstruct()
    assert last_task(sam3d.emu)["model"] == "meta:sam@4"
    assert "Traceback" not in str(info.value)


def test_a_short_ttl_is_refused_with_a_sentence(sam3d):
    use_inputs()
    sam3d.settings.ttl = 30
    with pytest.raises(RuntimeError, match="at least 60 seconds"):
        bpy.ops.sam3d.reconstruct()


def test_results_go_to_the_extension_user_folder_by_default(sam3d):
    use_inputs()
    sam3d.prefs.result_dir = ""
    obj = bpy.ops.sam3d.reconstruct() and bpy.context.view_layer.objects.active
    glb = Path(obj["sam3d_glb"])
    assert glb.exists()
    assert "/extensions/.user/user_default/sam3d/results/" in glb.as_posix()


def test_a_server_seed_past_32_bits_can_be_sent_back_exactly(sam3d):
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    first = bpy.context.view_layer.objects.active
    assert int(first["sam3d_seed"]) >= 2**31, "the emulator's server seeds are past 32 bits"
    sam3d.settings.exact_seed = first["sam3d_seed"]  # copied from the object, as a user would
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert last_task(sam3d.emu)["seed"] == int(first["sam3d_seed"])
    assert bpy.context.view_layer.objects.active["sam3d_seed"] == first["sam3d_seed"]
    sam3d.settings.exact_seed = str(2**63)
    with pytest.raises(RuntimeError, match="Exact Seed"):
        bpy.ops.sam3d.reconstruct()


def test_a_relative_result_folder_is_made_absolute_when_set(sam3d):
    sam3d.prefs.result_dir = "//results"
    assert sam3d.prefs.result_dir == bpy.path.abspath("//results") and not sam3d.prefs.result_dir.startswith("//")
