"""A broken or malicious server against the client's real code paths (no Blender): a result naming files
outside itself, /dev/zero, gzip and deflate bombs, a host trickling a byte at a time, redirects, absurd
resultIndex values. Each case: a sentence for a person (no traceback, no key), no file read outside the
task's folder, bounded memory (this process's peak RSS, Linux) and time, and a sent task left resumable.

Runs on every venv: `.venv/blender-4.2` holds Blender 4.2's own HTTP stack (requests 2.27.1, urllib3 1.26.8),
which inflates gzip before counting unless the client reads raw: the caps must hold there too.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import time
import uuid
import zlib
from pathlib import Path

import pytest

from client import glb_gate
from client.errors import RunwareError
from client.jobs import UPLOADS, Job, JobRequest
from client.journal import Journal
from client.runware import RunwareClient
from tests import glb
from tests.client.conftest import KEY
from tests.emulator import HUGE_RESULT_INDEXES, bomb_bytes, cutout_png
from tests.watch import PeakGrowth, Recorder, until

MB = 1024 * 1024
PHOTO = cutout_png(64, 48)  # any PNG: image and mask must only share a size
HANG = 60.0  # seconds: a hang detector, never a speed goal


# --- jobs through the real client code (client/jobs.py) --------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_uploads():
    UPLOADS.clear()  # the emulator forgets its uploads at reset
    yield
    UPLOADS.clear()


def request(emu, result_dir: Path, **kwargs) -> JobRequest:
    kwargs.setdefault("prepare", lambda: (PHOTO, PHOTO))
    kwargs.setdefault("request_timeout", 20.0)
    kwargs.setdefault("job_timeout", 120.0)
    return JobRequest(api_key=KEY, result_dir=result_dir, name="object", api_url=emu.api_url,
                      poll_first_delay=0.05, **kwargs)


def run(req: JobRequest) -> Job:
    job = Job(req).start()
    deadline = time.monotonic() + HANG
    while not job.done:
        assert time.monotonic() < deadline, "the job hung"
        job.drain(block=0.1)
    assert job.join(10), "the worker thread did not end"
    return job



def failure(job: Job, words: str) -> str:
    """The failed job's sentence, which must match `words`, hold no traceback and no key."""
    assert job.outcome is not None and job.outcome.kind == "failed", job.outcome
    text = str(job.outcome.error)
    assert re.search(words, text), text
    assert "Traceback" not in text and KEY not in text and "Error:" not in text
    return text


def resumable(job: Job, result_dir: Path, status: str = "interrupted") -> None:
    """The task was sent (perhaps billed): the journal keeps it for Resume."""
    record = Journal(result_dir).tasks()[job.task_uuid]
    assert record.unfinished and record.status == status, (record.status, record.code)


def billed(emu) -> int:
    return emu.billed("3dInference")


# --- 1. a result naming a file outside itself ---------------------------------------------------------------


def plant_secret(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """(result folder, secret file, secret bytes), laid out like Blender's user folder, where the result folder
    of an installed extension is `4.2/extensions/.user/user_default/sam3d/results`: six `..` above a task's
    folder is `4.2`, whose `config/userpref.blend` holds the user's preferences."""
    version = tmp_path / "blender" / "4.2"
    result_dir = version / "extensions" / ".user" / "user_default" / "sam3d" / "results"
    secret = version / "config" / "userpref.blend"
    secret.parent.mkdir(parents=True)
    token = b"SAM3D-SECRET-" + os.urandom(8).hex().encode()
    text = b"tEXt" + b"Comment\0" + token
    chunk = struct.pack(">I", len(text) - 4) + text + struct.pack(">I", zlib.crc32(text))
    png = cutout_png(8, 8)
    secret.write_bytes(png[:33] + chunk + png[33:])  # a real PNG: an importer would load (and pack) it
    return result_dir, secret, token


def image_uris(secret: Path) -> dict[str, str]:
    return {"relative": "../../../../../../config/userpref.blend", "absolute": str(secret),
            "file": secret.as_uri(), "file-etc": "file:///etc/passwd", "percent": "..%2F..%2Fconfig%2Fuserpref.blend",
            "plain-data": "data:image/png,../../../../../../config/userpref.blend"}


@pytest.mark.parametrize("kind", ["relative", "absolute", "file", "file-etc", "percent", "plain-data"])
def test_gate_refuses_an_image_uri_outside_the_glb_and_opens_nothing_else(tmp_path, kind):
    result_dir, secret, _ = plant_secret(tmp_path)
    task_dir = result_dir / "task"
    task_dir.mkdir(parents=True)
    path = task_dir / "object_0.glb"
    path.write_bytes(glb.glb_with_image_uri(image_uris(secret)[kind]))
    with Recorder(tmp_path, paths=("/etc/passwd",)) as seen, pytest.raises(RunwareError) as info:
        glb_gate.inspect_glb(path)
    assert info.value.code == "glbExternalFile"
    assert str(info.value).startswith("The result refers to files outside itself")
    assert str(secret) not in str(info.value) and "passwd" not in str(info.value), "the URI is never quoted back"
    assert set(seen.opened) == {str(path)}, seen.opened


@pytest.mark.parametrize("kind", ["relative", "absolute", "file"])
def test_job_with_an_image_uri_outside_is_refused_before_import_and_stays_resumable(emu, tmp_path, kind):
    result_dir, secret, _ = plant_secret(tmp_path)
    emu.result_bytes = glb.glb_with_image_uri(image_uris(secret)[kind])
    with Recorder(tmp_path) as seen:
        job = run(request(emu, result_dir))
    failure(job, r"^The result refers to files outside itself.*not imported, for your safety")
    assert str(secret) not in seen.opened
    task_dir = result_dir / job.task_uuid
    folders = {result_dir, result_dir / "locks", task_dir}  # opened as folders, to open their files without links
    outside = [p for p in seen.opened if not (p.startswith(str(task_dir) + os.sep) or Path(p) in folders or
                                              Path(p).parent in (result_dir, result_dir / "locks"))]
    assert outside == [], "only the task's folder, the journal and the task's lock"
    assert (task_dir / "object_0.glb").read_bytes() == emu.result_bytes, "kept for a look, never imported"
    resumable(job, result_dir)
    assert billed(emu) == 1


# --- 2. a buffer that is /dev/zero --------------------------------------------------------------------


@pytest.mark.parametrize("length", [None, 2**31, 2**52])
def test_a_buffer_on_dev_zero_is_refused_fast_in_bounded_memory(emu, tmp_path, length):
    emu.result_bytes = glb.glb_with_buffer_uri("/dev/zero", byte_length=length)
    with Recorder(tmp_path, paths=("/dev/zero",)) as seen, PeakGrowth() as peak:
        started = time.monotonic()
        job = run(request(emu, tmp_path / "results"))
        elapsed = time.monotonic() - started
    failure(job, r"^The result refers to files outside itself")
    assert "/dev/zero" not in seen.opened
    assert peak.mb < 64, f"{peak.mb:.0f} MB"
    assert elapsed < 15, f"{elapsed:.1f} s: reading /dev/zero?"
    resumable(job, tmp_path / "results")


# --- 3. compression bombs -----------------------------------------------------------------------------


BOMB = 2 * 1024**3  # inflates to 2 GiB; about 2 MB on the wire


@pytest.fixture
def bomb(emu):
    """Set the bomb for a place; it is built (and cached by the emulator) before any measurement."""

    def arm(where: str, encoding: str) -> None:
        bomb_bytes(BOMB, encoding)
        emu.faults.gzip_bomb, emu.faults.bomb_encoding, emu.faults.bomb_size = where, encoding, BOMB

    return arm


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_glb_bomb_is_refused_with_a_sentence_in_bounded_memory(emu, tmp_path, bomb, encoding):
    bomb("file", encoding)
    with PeakGrowth() as peak:
        job = run(request(emu, tmp_path / "results"))  # the add-on's default limit: 512 MB
    failure(job, r"^The downloaded result is not a valid GLB file")  # its first bytes say so: nothing more kept
    assert peak.mb < 64, f"peak memory growth {peak.mb:.0f} MB"
    assert not [p for p in (tmp_path / "results" / job.task_uuid).iterdir() if p.suffix in (".glb", ".part")]
    assert emu.file_bytes_sent <= len(bomb_bytes(BOMB, encoding)), "read once, never fetched again"
    resumable(job, tmp_path / "results")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_bomb_as_a_poll_answer_is_refused_with_a_sentence_in_bounded_memory(emu, tmp_path, bomb,
                                                                                          encoding):
    bomb("api", encoding)
    with PeakGrowth() as peak:
        job = run(request(emu, tmp_path / "results"))
    failure(job, r"^Runware sent an answer far larger than any this add-on expects")
    assert peak.mb < 64, f"peak memory growth {peak.mb:.0f} MB"
    resumable(job, tmp_path / "results")


def cutout_url(emu) -> str:
    """A background removal answered with a URL on the file host (what Runware may send)."""
    client = RunwareClient(KEY, emu.api_url, backoff_base=0.05)
    task = {"taskType": "removeBackground", "taskUUID": str(uuid.uuid4()), "model": "runware:109@1",
            "inputs": {"image": "data:image/png;base64," + base64.b64encode(PHOTO).decode()},
            "outputType": "URL", "outputFormat": "PNG", "deliveryMethod": "sync"}
    status, body, _ = client.call([task])
    assert status == 200
    return body["data"][0]["imageURL"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_bomb_as_the_background_removal_image_is_refused_in_bounded_memory(emu, bomb, encoding):
    url = cutout_url(emu)
    bomb("cutout", encoding)
    client = RunwareClient(KEY, emu.api_url, backoff_base=0.05)
    with PeakGrowth() as peak, pytest.raises(RunwareError) as info:
        client.fetch_image(url)
    assert info.value.code == "responseTooLarge" and "far larger than any" in str(info.value)
    assert KEY not in str(info.value)
    assert peak.mb < 64, f"peak memory growth {peak.mb:.0f} MB"


@pytest.mark.parametrize("form", ["base64", "dataURI"])
def test_an_inline_result_larger_than_the_limit_is_refused(emu, tmp_path, form):
    emu.style.result_form, emu.faults.download_size = form, 3 * MB
    job = run(request(emu, tmp_path / "results", max_download_bytes=1 * MB))
    failure(job, r"^The result is larger than the download limit set in the preferences")
    assert not list((tmp_path / "results" / job.task_uuid).glob("*.glb"))
    resumable(job, tmp_path / "results")


def test_an_inline_result_larger_than_any_api_answer_is_refused(emu, tmp_path):
    emu.style.result_form, emu.faults.download_size = "base64", 40 * MB  # within the download limit, not an answer's
    job = run(request(emu, tmp_path / "results"))
    failure(job, r"^Runware sent an answer far larger than any this add-on expects")
    resumable(job, tmp_path / "results")


def test_an_inline_result_within_the_limit_is_kept(emu, tmp_path):
    emu.style.result_form = "base64"
    job = run(request(emu, tmp_path / "results"))
    assert job.outcome.kind == "done" and job.outcome.results[0].path.read_bytes() == emu.result_bytes
    assert not emu.file_requests, "an inline result needs no download"


# --- 4. a host trickling a byte at a time -------------------------------------------------------------


def test_trickling_download_ends_at_the_job_time_limit(emu, tmp_path):
    emu.faults.trickle = 0.3
    started = time.monotonic()
    job = run(request(emu, tmp_path / "results", job_timeout=4.0))  # the request's own timeout: 20 s
    elapsed = time.monotonic() - started
    failure(job, r"^The reconstruction took longer than the time limit set in the preferences")
    assert elapsed < 4.0 + 4.0, f"{elapsed:.1f} s: the job's 4 s limit holds during a download, not the 20 s one"
    assert until(lambda: emu.trickle_open == 0), "the connection stays open"
    assert 0 < emu.trickle_bytes_sent <= 8.0 / 0.3, "no more bytes than the limit lets trickle"
    resumable(job, tmp_path / "results")


def test_trickling_download_ends_at_the_request_timeout_after_its_retries(emu, tmp_path):
    emu.faults.trickle = 0.3
    job = run(request(emu, tmp_path / "results", request_timeout=1.0))
    failure(job, r"^Runware did not answer in time")
    gets = [r for r in emu.file_requests if r.method == "GET"]
    assert len(gets) == 4, "the download is tried again 3 times"
    assert until(lambda: emu.trickle_open == 0)
    resumable(job, tmp_path / "results")


def test_cancel_ends_a_trickling_download_mid_read(emu, tmp_path):
    emu.faults.trickle = 0.3
    job = Job(request(emu, tmp_path / "results")).start()
    assert until(lambda: emu.trickle_open == 1 and emu.trickle_bytes_sent >= 2), "the download never started"
    started = time.monotonic()
    job.cancel()
    while not job.done:
        assert time.monotonic() - started < HANG
        job.drain(block=0.05)
    assert time.monotonic() - started < 5, "cancel waits for the host"
    assert job.join(5)
    assert until(lambda: emu.trickle_open == 0, 5), "the connection was not closed"
    assert job.outcome.error.code == "cancelled" and str(job.outcome.error) == "Cancelled."
    resumable(job, tmp_path / "results", status="processed")  # cancelled after it was sent: Resume offers it


def test_cancel_ends_a_trickling_api_answer_mid_read(emu, tmp_path):
    emu.processing_time = 60  # polls go on
    job = Job(request(emu, tmp_path / "results")).start()
    assert until(lambda: billed(emu) == 1), "never submitted"
    emu.faults.trickle, emu.faults.trickle_api = 0.3, True  # the answers from now on: a poll (or the submission's)
    assert until(lambda: emu.trickle_open == 1 and emu.trickle_bytes_sent >= 2), "no answer trickles"
    started = time.monotonic()
    job.cancel()
    while not job.done:
        assert time.monotonic() - started < HANG
        job.drain(block=0.05)
    assert time.monotonic() - started < 5, "cancel waits for the host"
    assert job.join(5) and until(lambda: emu.trickle_open == 0, 5), "the connection was not closed"
    assert job.outcome.error.code == "cancelled"
    resumable(job, tmp_path / "results", status="submitted")


def test_a_declared_length_over_the_limit_is_refused_before_reading(emu, tmp_path):
    emu.faults.declared_length = 5 * 1024**3
    job = run(request(emu, tmp_path / "results"))
    failure(job, r"^The result is larger than the download limit set in the preferences")
    assert until(lambda: emu.trickle_open == 0)
    resumable(job, tmp_path / "results")


# --- 5. redirects -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target, scheme", [("http://example.invalid/x.glb", "http"),
                                           ("file:///etc/passwd", "file"), ("ftp://example.invalid/x.glb", "ftp")])
def test_a_redirect_off_https_elsewhere_is_refused_without_connecting(emu, tmp_path, target, scheme):
    emu.faults.redirect = target
    with Recorder(tmp_path, paths=("/etc/passwd",)) as seen:
        job = run(request(emu, tmp_path / "results"))
    failure(job, rf"address that is not https://.*\(got {scheme}://\)")
    assert "example.invalid" not in seen.resolved, "it looked the host up"
    assert "/etc/passwd" not in seen.opened
    assert [r.status for r in emu.file_requests] == [302], "fetched again after a refusal"
    resumable(job, tmp_path / "results")


@pytest.mark.parametrize("hops", [3, 5])
def test_redirect_chains_on_the_file_host_are_followed(emu, tmp_path, hops):
    emu.faults.redirect_chain = hops
    job = run(request(emu, tmp_path / "results"))
    assert job.outcome.kind == "done", job.outcome.error
    assert job.outcome.results[0].path.read_bytes() == emu.result_bytes
    assert [r.status for r in emu.file_requests] == [302] * hops + [200]
    assert_no_key_on_the_file_host(emu)


def test_more_than_five_redirects_are_refused(emu, tmp_path):
    emu.faults.redirect_chain = 6
    job = run(request(emu, tmp_path / "results"))
    failure(job, r"^The result could not be downloaded. \(more than 5 redirects\)")
    assert [r.status for r in emu.file_requests] == [302] * 6
    resumable(job, tmp_path / "results")


def test_a_redirect_to_the_api_host_carries_no_key(emu, tmp_path):
    emu.faults.redirect = emu.api_url  # loopback too, but another host: the API's
    job = run(request(emu, tmp_path / "results"))
    failure(job, r"^The result could not be downloaded. \(HTTP 405\)")
    [stolen] = [r for r in emu.requests if r.method == "GET"]
    assert "authorization" not in stolen.headers and KEY not in str(stolen.headers) and KEY not in stolen.path
    assert_no_key_on_the_file_host(emu)


def assert_no_key_on_the_file_host(emu) -> None:
    assert emu.file_requests
    for rec in emu.file_requests:
        assert "authorization" not in rec.headers, rec.headers
        assert KEY not in str(dict(rec.headers)) and KEY not in rec.path


# --- 8. resultIndex: repeated, absurd -----------------------------------------------------------------


def distinct_results(emu, monkeypatch) -> dict[int, bytes]:
    """Each generation its own GLB (a different vertex count), so that an overwritten file shows. The factory
    is taken away after the test (the emulator's reset() leaves it)."""
    made: dict[int, bytes] = {}

    def factory(task: dict, index: int) -> bytes:
        positions, tris, colors = glb.ellipsoid(segments=8 + 4 * index, rings=6)
        made[index] = glb.make_glb(positions, tris, colors)
        return made[index]

    monkeypatch.setattr(emu, "result_factory", factory)
    return made


@pytest.mark.parametrize("form, count", [("duplicate", 3), ("huge", 4), ("absent", 3)])
def test_every_result_gets_its_own_file_whatever_its_result_index(emu, tmp_path, monkeypatch, form, count):
    assert form != "huge" or count == len(HUGE_RESULT_INDEXES)
    emu.style.result_index = form
    made = distinct_results(emu, monkeypatch)
    job = run(request(emu, tmp_path / "results", number_results=count))
    assert job.outcome.kind == "done", job.outcome.error
    paths = [r.path for r in job.outcome.results]
    assert [p.name for p in paths] == [f"object_{n}.glb" for n in range(count)]
    assert sorted(p.read_bytes() for p in paths) == sorted(made.values()), "a result overwrote another"
    assert all(0 <= r.index < 2**16 for r in job.outcome.results)
    record = Journal(tmp_path / "results").tasks()[job.task_uuid]
    assert record.status == "downloaded" and len(record.files) == count
