"""A broken or malicious server, end to end through `bpy.ops.sam3d.*` in the real Blender: a result naming files
outside itself, /dev/zero, compression bombs, a host trickling a byte at a time, redirects, a huge photo, a
.blend trying to send results elsewhere, absurd resultIndex values.

Each case asserts, where it applies: a sentence for a person (no traceback, no key), nothing added to the file
(no object, no image, nothing packed), no file read outside the task's folder (an audit hook on "open"),
this process's peak memory growth (Linux VmHWM, reset through /proc/self/clear_refs as tests/bench.py does),
a time bound, and a sent (perhaps billed) task left resumable in the journal.
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import time
import zlib
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import KEY, MODULE, last_task, module, sent, tick, use_inputs
from test_extension import draw

from client.journal import Journal
from tests import glb
from tests.emulator import bomb_bytes, cutout_png, image_size, mask_png
from tests.watch import PeakGrowth, Recorder, until

MB = 1024 * 1024
HANG = 60.0  # seconds: a hang detector, never a speed goal
BOMB = 2 * 1024**3  # inflates to 2 GiB; about 2 MB on the wire
KINDS = ("objects", "meshes", "collections", "images", "materials", "textures")


# --- helpers ------------------------------------------------------------------------------------------


def snapshot() -> dict[str, set]:
    return {kind: set(getattr(bpy.data, kind)) for kind in KINDS}


def fails(match: str) -> str:
    """Reconstruct, expecting an error report matching `match`; nothing may have been added to the file."""
    before = snapshot()
    with pytest.raises(RuntimeError) as info:
        bpy.ops.sam3d.reconstruct()
    text = str(info.value)
    assert re.search(match, text), text
    assert snapshot() == before, "something was added"
    assert not [i for i in bpy.data.images if i.packed_file is not None], "something was packed"
    assert "Traceback" not in text and KEY not in text
    return text


def task_uuid(emu) -> str:
    return last_task(emu)["taskUUID"]


def resumable(folder: Path, uuid: str, status: str = "interrupted") -> None:
    """Sent (perhaps billed): the journal keeps the task for Resume."""
    record = Journal(folder).tasks()[uuid]
    assert record.unfinished and record.status == status, (record.status, record.code)


def small_inputs(sam3d) -> None:
    """A 64×48 photo and its mask: reading and sending them costs next to nothing, so a peak is the case's own
    (the example photo, 1600×898, costs about 45 MB to read and encode)."""
    photo, mask = sam3d.tmp / "small.png", sam3d.tmp / "small_mask.png"
    photo.write_bytes(cutout_png(64, 48))
    mask.write_bytes(mask_png(64, 48))
    sam3d.settings.image, sam3d.settings.mask = bpy.data.images.load(str(photo)), bpy.data.images.load(str(mask))


# --- 1. a result naming a file outside itself ---------------------------------------------------------------


def plant_secret(tmp: Path) -> tuple[Path, Path, bytes]:
    """(result folder, secret file, secret bytes), laid out like Blender's user folder, where an installed
    extension's result folder is `4.2/extensions/.user/user_default/sam3d/results`: six `..` above a task's
    folder is `4.2`, whose `config/userpref.blend` holds the user's preferences."""
    version = tmp / "blender" / "4.2"
    result_dir = version / "extensions" / ".user" / "user_default" / "sam3d" / "results"
    secret = version / "config" / "userpref.blend"
    secret.parent.mkdir(parents=True)
    token = b"SAM3D-SECRET-" + os.urandom(8).hex().encode()
    text = b"tEXt" + b"Comment\0" + token
    chunk = struct.pack(">I", len(text) - 4) + text + struct.pack(">I", zlib.crc32(text))
    png = cutout_png(8, 8)
    secret.write_bytes(png[:33] + chunk + png[33:])  # a real PNG: an importer would load it, and pack it
    return result_dir, secret, token


@pytest.mark.parametrize("kind", ["relative", "absolute", "file"])
def test_a_result_naming_a_file_outside_never_reaches_blender(sam3d, kind):
    result_dir, secret, token = plant_secret(sam3d.tmp)
    sam3d.prefs.result_dir = str(result_dir)
    uri = {"relative": "../../../../../../config/userpref.blend", "absolute": str(secret), "file": secret.as_uri()}
    sam3d.emu.result_bytes = glb.glb_with_image_uri(uri[kind])
    use_inputs()
    with Recorder(sam3d.tmp) as seen:
        fails(r"^Error: The result refers to files outside itself.*it was not imported, for your safety")
    uuid = task_uuid(sam3d.emu)
    task_dir = result_dir / uuid
    assert "mask_0_0.glb" in seen.relative, "the recorder saw the gate open the result, from its task's folder"
    assert str(result_dir) in seen.opened and uuid in seen.relative, "reached folder by folder from the result folder"
    assert str(secret) not in seen.opened and not any(".." in name for name in seen.relative)
    folders = {result_dir, result_dir / "locks", task_dir}  # opened as folders, to open their files without links
    outside = [p for p in seen.opened if not (p.startswith(str(task_dir) + os.sep) or Path(p) in folders or
                                              Path(p).parent in (result_dir, result_dir / "locks"))]
    assert outside == [], "only the task's folder, the journal and the task's lock"
    saved = sam3d.tmp / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(saved), compress=False)
    assert token not in saved.read_bytes()
    resumable(result_dir, uuid)


def test_the_planted_secret_would_show_in_a_saved_blend_had_blender_loaded_it(sam3d):
    """The control of the test above: an image the importer loads is packed, and its bytes are in the file."""
    _, secret, token = plant_secret(sam3d.tmp)
    image = bpy.data.images.load(str(secret))
    image.pack()
    image.use_fake_user = True  # as a material would use it: saved
    saved = sam3d.tmp / "control.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(saved), compress=False)
    assert token in saved.read_bytes()


# --- 2. a buffer that is /dev/zero --------------------------------------------------------------------


def test_a_buffer_on_dev_zero_is_refused_fast_in_bounded_memory(sam3d):
    sam3d.emu.result_bytes = glb.glb_with_buffer_uri("/dev/zero", byte_length=2**31)
    small_inputs(sam3d)
    with Recorder(sam3d.tmp, paths=("/dev/zero",)) as seen, PeakGrowth() as peak:
        started = time.monotonic()
        fails(r"^Error: The result refers to files outside itself")
        elapsed = time.monotonic() - started
    assert "/dev/zero" not in seen.opened
    assert peak.mb < 64, f"{peak.mb:.0f} MB"
    assert elapsed < 20, f"{elapsed:.1f} s: reading /dev/zero?"
    resumable(sam3d.results, task_uuid(sam3d.emu))


# --- 3. compression bombs, an inline result over the limit -------------------------------------------------


def arm(emu, where: str, encoding: str) -> None:
    bomb_bytes(BOMB, encoding)  # built (and cached) before anything is measured
    emu.faults.gzip_bomb, emu.faults.bomb_encoding, emu.faults.bomb_size = where, encoding, BOMB


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_glb_bomb_is_refused_with_a_sentence_in_bounded_memory(sam3d, encoding):
    arm(sam3d.emu, "file", encoding)
    small_inputs(sam3d)
    with PeakGrowth() as peak:
        started = time.monotonic()
        fails(r"^Error: The downloaded result is not a valid GLB file")  # its first bytes say so
        assert time.monotonic() - started < HANG
    assert peak.mb < 64, f"peak memory growth {peak.mb:.0f} MB"
    uuid = task_uuid(sam3d.emu)
    assert not [p for p in (sam3d.results / uuid).iterdir() if p.suffix in (".glb", ".part")]
    resumable(sam3d.results, uuid)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_bomb_as_a_poll_answer_is_refused_with_a_sentence_in_bounded_memory(sam3d, encoding):
    arm(sam3d.emu, "api", encoding)
    small_inputs(sam3d)
    with PeakGrowth() as peak:
        fails(r"^Error: Runware sent an answer far larger than any this add-on expects")
    assert peak.mb < 64, f"peak memory growth {peak.mb:.0f} MB"
    resumable(sam3d.results, task_uuid(sam3d.emu))


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_bomb_as_the_auto_mask_image_is_refused_in_bounded_memory(sam3d, monkeypatch, encoding):
    """Auto Mask, the server answering with an image URL (the emulator answers as asked: the task is made to
    ask for a URL), which serves a bomb."""
    tasks = module("client.tasks")
    original = tasks.remove_background_task

    def asking_for_a_url(*args, **kwargs):  # noqa: ANN002, ANN003
        task = original(*args, **kwargs)
        task["outputType"] = "URL"
        return task

    monkeypatch.setattr(tasks, "remove_background_task", asking_for_a_url)
    arm(sam3d.emu, "cutout", encoding)
    small_inputs(sam3d)
    before = snapshot()
    with PeakGrowth() as peak, pytest.raises(RuntimeError) as info:
        bpy.ops.sam3d.auto_mask()
    text = str(info.value)
    assert re.search(r"^Error: Runware sent an answer far larger than any", text), text
    assert "Traceback" not in text and KEY not in text
    assert peak.mb < 64, f"peak memory growth {peak.mb:.0f} MB"
    assert snapshot() == before, "a mask was made of it"
    [cutout] = [r for r in sam3d.emu.file_requests if r.path.startswith("/images/")]
    assert "authorization" not in cutout.headers


@pytest.mark.parametrize("form", ["base64", "dataURI"])
def test_an_inline_result_larger_than_the_limit_is_refused(sam3d, form):
    sam3d.emu.style.result_form, sam3d.emu.faults.download_size = form, 3 * MB
    sam3d.prefs.max_download_mb = 1
    use_inputs()
    fails(r"^Error: The result is larger than the download limit set in the preferences")
    uuid = task_uuid(sam3d.emu)
    assert not list((sam3d.results / uuid).glob("*.glb"))
    assert not sam3d.emu.file_requests
    resumable(sam3d.results, uuid)


# --- 4. a download host trickling a byte every 0.3 s ------------------------------------------------------


def test_a_trickling_download_ends_at_the_job_time_limit(sam3d):
    sam3d.emu.faults.trickle = 0.3
    sam3d.prefs.request_timeout, sam3d.prefs.job_timeout = 20.0, 30.0  # the smallest time limit
    use_inputs()
    started = time.monotonic()
    fails(r"^Error: The reconstruction took longer than the time limit set in the preferences")
    assert time.monotonic() - started < HANG
    assert until(lambda: sam3d.emu.trickle_open == 0, 5), "the connection stays open"
    assert 0 < sam3d.emu.trickle_bytes_sent < 150
    resumable(sam3d.results, task_uuid(sam3d.emu))


def trickling_job(sam3d):  # noqa: ANN201
    """A job started as the UI starts it (not waited for), once its download is trickling."""
    sam3d.emu.faults.trickle = 0.3
    use_inputs()
    entry = module("operators.one_object.reconstruct").start_job(bpy.context)
    assert until(lambda: sam3d.emu.trickle_open == 1 and sam3d.emu.trickle_bytes_sent >= 2), "no download"
    return entry


def test_cancel_ends_a_trickling_download_mid_read(sam3d):
    entry = trickling_job(sam3d)
    job = entry.job
    started = time.monotonic()
    assert bpy.ops.sam3d.cancel(task_uuid=job.task_uuid) == {"FINISHED"}
    while not job.done:
        assert time.monotonic() - started < HANG
        job.drain(block=0.05)
    assert time.monotonic() - started < 5, "cancel waited for the host"
    assert job.join(5) and until(lambda: sam3d.emu.trickle_open == 0, 5), "the connection was not closed"
    before = snapshot()
    tick()  # the app timer takes the ended job and says what happened
    runner = module("operators.machinery.runner").RUNNER
    assert not runner.jobs and snapshot() == before
    [(level, text)] = list(runner.messages)
    assert level == "INFO" and text.startswith(f"Cancelled. The task {job.task_uuid} was already sent")
    assert "Resume" in text and KEY not in text
    resumable(sam3d.results, job.task_uuid, status="processed")  # cancelled after it was sent: Resume offers it


def test_disabling_the_add_on_ends_a_trickling_download(sam3d):
    job = trickling_job(sam3d).job
    started = time.monotonic()
    bpy.ops.preferences.addon_disable(module=MODULE)
    try:
        assert time.monotonic() - started < 5, "disabling waited for the host"
        assert job.join(0) and not job.alive
        assert not [t for t in threading.enumerate() if t.name.startswith("sam3d-job")]
        assert until(lambda: sam3d.emu.trickle_open == 0, 5), "the connection was not closed"
    finally:
        bpy.ops.preferences.addon_enable(module=MODULE)
    assert hasattr(bpy.ops.sam3d, "reconstruct")
    resumable(sam3d.results, job.task_uuid, status="processed")


# --- 5. redirects -------------------------------------------------------------------------------------


def test_a_redirect_to_plain_http_elsewhere_is_refused_without_connecting(sam3d):
    sam3d.emu.faults.redirect = "http://example.invalid/x.glb"
    use_inputs()
    with Recorder(sam3d.tmp) as seen:
        fails(r"^Error: Runware gave a result address that is not https://")
    assert "example.invalid" not in seen.resolved, "it looked the host up"
    assert [r.status for r in sam3d.emu.file_requests] == [302]
    resumable(sam3d.results, task_uuid(sam3d.emu))


def test_a_chain_of_three_redirects_on_the_file_host_is_followed_without_the_key(sam3d):
    sam3d.emu.faults.redirect_chain = 3
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert bpy.data.objects["mask_0"]["sam3d_task_uuid"] == task_uuid(sam3d.emu)
    assert [r.status for r in sam3d.emu.file_requests] == [302, 302, 302, 200]
    for rec in sam3d.emu.file_requests:
        assert "authorization" not in rec.headers and KEY not in str(dict(rec.headers)) and KEY not in rec.path


def test_more_than_five_redirects_are_refused(sam3d):
    sam3d.emu.faults.redirect_chain = 6
    use_inputs()
    fails(r"^Error: The result could not be downloaded. \(more than 5 redirects\)")
    assert len(sam3d.emu.file_requests) == 6
    resumable(sam3d.results, task_uuid(sam3d.emu))


# --- 6. a large photo --------------------------------------------------------------------------------


def write_png(path: Path, pixels: np.ndarray) -> None:
    """An 8-bit PNG of an (h, w) gray or (h, w, 3) RGB array, fast (zlib level 1), without Blender."""
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = np.zeros((h, 1 + w * channels), np.uint8)
    rows[:, 1:] = pixels.reshape(h, w * channels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, {1: 0, 3: 2}[channels], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.data, 1))
                     + chunk(b"IEND", b""))


@pytest.fixture
def big_files(sam3d) -> tuple[Path, Path]:
    """A 6000×6000 8-bit RGB photo and its mask, as PNG files."""
    side = 6000
    ramp = (np.arange(side) * 255 // (side - 1)).astype(np.uint8)
    photo = np.empty((side, side, 3), np.uint8)
    photo[..., 0] = ramp[None, :]
    photo[..., 1] = ramp[:, None]
    photo[..., 2] = 128
    write_png(sam3d.tmp / "big.png", photo)
    del photo
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4:3 * side // 4, side // 3:2 * side // 3] = 255
    write_png(sam3d.tmp / "big_mask.png", mask)
    del mask
    return sam3d.tmp / "big.png", sam3d.tmp / "big_mask.png"


def test_a_6000_pixel_photo_is_sent_at_2048_in_bounded_memory(sam3d, big_files):
    images = [bpy.data.images.load(str(path)) for path in big_files]  # loaded (not decoded), as a user opens them
    sam3d.settings.image, sam3d.settings.mask = images
    with PeakGrowth() as peak:
        assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    task = last_task(sam3d.emu)
    assert image_size(sent(sam3d.emu, task, "image")) == (2048, 2048)
    assert image_size(sent(sam3d.emu, task, "mask")) == (2048, 2048)
    assert peak.mb < 600, f"peak memory growth {peak.mb:.0f} MB (the old code: 1.4 GB)"
    assert not any(image.has_data for image in images), "read on a copy: the originals stay undecoded"


@pytest.mark.parametrize("which", ["photo", "mask"])
def test_an_image_over_the_megapixel_limit_is_refused_before_anything(sam3d, big_files, which):
    sam3d.prefs.max_photo_megapixels = 20
    use_inputs()  # a small photo and mask, then the big one in its place
    big = bpy.data.images.load(str(big_files[0 if which == "photo" else 1]))
    setattr(sam3d.settings, "image" if which == "photo" else "mask", big)
    with pytest.raises(RuntimeError) as info:
        bpy.ops.sam3d.reconstruct()
    text = str(info.value)
    assert re.search(rf"The image {re.escape(repr(big.name))} is 6000×6000 \(36 megapixels\), more than the 20 "
                     r"megapixels allowed in the add-on preferences \(Largest Photo\)", text), text
    assert "Traceback" not in text
    assert sam3d.emu.requests == [], "something was sent"
    assert not big.has_data, "Blender decoded it"


# --- 7. a .blend cannot send results elsewhere ---------------------------------------------------------------


def test_a_blend_file_carrying_the_old_destinations_sends_none(sam3d):
    use_inputs()
    sam3d.settings["webhook_url"] = "https://evil.example/hook"  # the old scene properties, as raw ID properties
    sam3d.settings["upload_endpoint"] = "https://evil.example/put"
    path = sam3d.tmp / "old.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    settings = bpy.context.scene.sam3d
    assert settings.get("webhook_url") == "https://evil.example/hook", "the file holds them"
    assert settings.image is not None and settings.mask is not None
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    task = last_task(sam3d.emu)
    assert "webhookURL" not in task and "uploadEndpoint" not in task
    assert "evil.example" not in json.dumps([r.body for r in sam3d.emu.requests], default=str)

    hook = f"{sam3d.emu.files_url}/hook"  # this machine: plain http allowed
    sam3d.prefs.webhook_url = hook
    settings.use_random_seed, settings.seed = False, 7  # another request than the first
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    assert last_task(sam3d.emu)["webhookURL"] == hook, "the preference is what is sent"


@pytest.mark.parametrize("name", ["webhook_url", "upload_endpoint"])
def test_preferences_refuse_a_plain_http_destination_and_the_panel_shows_a_set_one(sam3d, name):
    for refused in ("http://evil.example/x", "ftp://evil.example/x", "//evil.example/x", "evil.example/x"):
        setattr(sam3d.prefs, name, refused)
        assert getattr(sam3d.prefs, name) == "", refused
    for kept in ("http://127.0.0.1:9/x", "https://hooks.example/x"):
        setattr(sam3d.prefs, name, kept)
        assert getattr(sam3d.prefs, name) == kept
    for panel in ("SAM3D_PT_view3d", "SAM3D_PT_image"):
        labels = [text for kind, text in draw(panel) if kind == "label"]
        assert any("https://hooks.example/x" in text for text in labels), labels


def test_a_plain_http_destination_that_got_past_the_preferences_is_refused_before_sending(sam3d, monkeypatch):
    with monkeypatch.context() as patch:  # as if kept by an older version's preferences, unchecked
        patch.setattr(module("preferences"), "is_secure_destination", lambda url: True)
        sam3d.prefs.upload_endpoint = "http://evil.example/put"
    assert sam3d.prefs.upload_endpoint == "http://evil.example/put"
    use_inputs()
    fails(r"^Error: The Webhook URL and Upload Endpoint must start with https://")
    assert sam3d.emu.requests == [], "something was sent"


# --- 8. resultIndex: repeated, absurd -----------------------------------------------------------------


@pytest.mark.parametrize("form, count", [("duplicate", 3), ("huge", 4)])
def test_every_result_is_imported_whatever_its_result_index(sam3d, monkeypatch, form, count):
    sam3d.emu.style.result_index = form
    made: dict[int, bytes] = {}

    def factory(task: dict, index: int) -> bytes:  # each its own vertex count: an overwritten file shows
        positions, tris, colors = glb.ellipsoid(segments=8 + 4 * index, rings=6)
        made[index] = glb.make_glb(positions, tris, colors)
        return made[index]

    monkeypatch.setattr(sam3d.emu, "result_factory", factory)  # the emulator's reset() leaves it
    sam3d.settings.num_results = count
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    uuid = task_uuid(sam3d.emu)
    files = sorted((sam3d.results / uuid).glob("*.glb"))
    assert [f.name for f in files] == [f"mask_0_{n}.glb" for n in range(count)]
    assert sorted(f.read_bytes() for f in files) == sorted(made.values()), "a result overwrote another"
    objects = [o for o in bpy.data.objects if o.get("sam3d_task_uuid") == uuid]
    assert sorted(o.name for o in objects) == [f"mask_0_v{n + 1}" for n in range(count)]
    for obj in objects:
        doc, _ = glb.read_glb(Path(obj["sam3d_glb"]).read_bytes())
        assert len(obj.data.vertices) == doc["accessors"][1]["count"]
        assert 0 <= obj["sam3d_result_index"] < 2**16
    assert len({len(o.data.vertices) for o in objects}) == count
    assert Journal(sam3d.results).tasks()[uuid].status == "imported"
