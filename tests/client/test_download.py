"""client/download.py: streamed to disk, size-capped, re-fetched when cut short, GLB-checked."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from client.download import check_glb, download, save_inline
from client.errors import RunwareError
from tests.glb import canonical_glb, pad_glb

API = "http://127.0.0.1/v1"  # the emulator's results are on this machine: so is the API these tests stand for


def result_url(emu) -> str:
    """Make one finished task on the emulator and return its first result URL."""
    from tests.client.test_runware import client_for, run, task

    return run(client_for(emu), task()).results[0].url


def test_streams_to_disk_without_holding_the_file_in_memory(emu, tmp_path):
    emu.faults.download_size = 40 * 1024 * 1024
    url = result_url(emu)
    download(url, tmp_path / "warm.glb", api_url=API, max_bytes=100 * 1024 * 1024)  # the emulator builds it once
    tracemalloc.start()
    try:
        path = download(url, tmp_path / "big.glb", api_url=API, max_bytes=100 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path.stat().st_size >= 40 * 1024 * 1024
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while downloading 40 MB"


def test_cut_short_is_resumed_or_refetched(emu, tmp_path):
    emu.faults.truncate_downloads = 2
    url = result_url(emu)
    path = download(url, tmp_path / "r.glb", api_url=API, max_bytes=10**8)
    check_glb(path)
    assert path.read_bytes() == emu.result_bytes
    assert not (tmp_path / "r.glb.part").exists()


def test_corrupt_is_refused_and_leaves_no_file(emu, tmp_path):
    emu.faults.corrupt_downloads = 99
    with pytest.raises(RunwareError) as info:
        download(result_url(emu), tmp_path / "r.glb", api_url=API, max_bytes=10**8, retries=1)
    assert info.value.code == "notGlb"
    assert list(tmp_path.iterdir()) == []


def test_size_cap_applies_with_and_without_content_length(emu, tmp_path):
    emu.faults.download_size = 2 * 1024 * 1024
    url = result_url(emu)
    for no_length in (False, True):
        emu.faults.no_content_length = no_length
        with pytest.raises(RunwareError) as info:
            download(url, tmp_path / "r.glb", api_url=API, max_bytes=1024 * 1024)
        assert info.value.code == "downloadTooLarge"
    assert list(tmp_path.iterdir()) == []


def test_never_sends_credentials(emu, tmp_path):
    download(result_url(emu), tmp_path / "r.glb", api_url=API, max_bytes=10**8)
    assert emu.file_requests and all("authorization" not in r.headers for r in emu.file_requests)


def test_refuses_plain_http_to_a_remote_host(tmp_path):
    with pytest.raises(RunwareError) as info:
        download("http://cdn.example.com/x.glb", tmp_path / "r.glb", api_url=API, max_bytes=10)
    assert info.value.code == "insecureResultUrl" and "API key" not in str(info.value)


def glb_file(tmp_path, data: bytes):
    path = tmp_path / "x.glb"
    path.write_bytes(data)
    return path


def test_glb_check(tmp_path):
    good = canonical_glb()
    check_glb(glb_file(tmp_path, good))
    check_glb(glb_file(tmp_path, pad_glb(good, 100_000)))
    for bad in (b"<html>oops</html>", good[:-8], b"glTF" + struct.pack("<II", 1, 12), good + b"x"):
        with pytest.raises(RunwareError) as info:
            check_glb(glb_file(tmp_path, bad))
        assert info.value.code == "notGlb"


def test_inline_result_is_checked_too(tmp_path):
    assert save_inline(canonical_glb(), tmp_path / "a.glb", max_bytes=10**6).exists()
    with pytest.raises(RunwareError):
        save_inline(b"not a glb", tmp_path / "b.glb", max_bytes=10**6)
    assert not (tmp_path / "b.glb").exists()


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read(emu, tmp_path):
    url = result_url(emu)
    emu.faults.declared_length = 2 * 1024**3  # 2 GB promised, then 64 KiB and a stall
    with pytest.raises(RunwareError) as info:
        download(url, tmp_path / "r.glb", api_url=API, max_bytes=10 * 1024 * 1024, timeout=30)
    assert info.value.code == "downloadTooLarge", "refused on the header, not after a stalled read"
    assert list(tmp_path.iterdir()) == []


def test_a_host_that_ignores_range_gives_a_whole_file_not_a_doubled_one(emu, tmp_path):
    emu.style.range_ignored = True
    emu.faults.truncate_downloads = 1  # the first transfer is cut: the second asks for the rest
    url = result_url(emu)
    path = download(url, tmp_path / "r.glb", api_url=API, max_bytes=10**8)
    assert path.read_bytes() == emu.result_bytes
    ranged = [r for r in emu.file_requests if "range" in r.headers]
    assert ranged, "the second transfer asked for the rest"


def test_a_task_folder_swapped_for_a_link_receives_nothing_and_nothing_is_read_through_it(emu, tmp_path):
    """The result folder is shared: between the job making its task folder and writing into it, anyone who can
    write there may put a link in its place. Nothing is written, renamed or read through it."""
    from client.glb_gate import inspect_glb

    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    (results / "task").symlink_to(elsewhere, target_is_directory=True)
    url = result_url(emu)
    with pytest.raises(OSError, match="not a folder"):
        download(url, results / "task" / "r.glb", api_url=API, max_bytes=10**8, root=results)
    with pytest.raises(OSError, match="not a folder"):
        save_inline(canonical_glb(), results / "task" / "r.glb", max_bytes=10**8, root=results)
    assert list(elsewhere.iterdir()) == [], "nothing written outside the result folder"
    (elsewhere / "r.glb").write_bytes(canonical_glb())
    with pytest.raises(RunwareError):
        inspect_glb(results / "task" / "r.glb", root=results)
    assert download(url, results / "real" / "r.glb", api_url=API, max_bytes=10**8, root=results).is_file()
