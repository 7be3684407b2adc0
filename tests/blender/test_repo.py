"""`make repo`: the static extension repository a studio hosts (tools/repo.py, Blender's own `server-generate`),
and a Blender that adds it as a remote repository, installs the add-on from it and takes the next release as an
update (Blender's own sync, installer and upgrade, in a process of its own)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.build import manifest
from tools.repo import generate

USER = Path(__file__).with_name("remote_repo.py")
VERSION = manifest()["version"]


def archive_of(index: Path, entry: dict) -> Path:
    """The file an index entry's `archive_url` names, resolved against the index's own URL as Blender does."""
    url = urllib.parse.urljoin(index.resolve().as_uri(), entry["archive_url"])
    assert url.startswith("file://"), url
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def listing(index: Path) -> list[dict]:
    data = json.loads(index.read_text(encoding="utf-8"))
    assert data["version"] == "v1" and data["blocklist"] == []
    return data["data"]


def next_version(version: str) -> str:
    *head, last = version.split(".")
    return ".".join([*head, str(int(last) + 1)])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("dist") / "repo").parent


def test_the_index_lists_this_version_beside_its_zip(repo: Path):
    index = repo / "index.json"
    [entry] = listing(index)
    assert (entry["id"], entry["version"], entry["name"]) == ("sam3d", VERSION, manifest()["name"])
    assert entry["blender_version_min"] == manifest()["blender_version_min"]
    archive = archive_of(index, entry)
    assert archive == repo / f"sam3d-{VERSION}.zip" and archive.is_file()
    assert entry["archive_size"] == archive.stat().st_size
    assert entry["archive_hash"] == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    with zipfile.ZipFile(archive) as zf:
        assert f'version = "{VERSION}"' in zf.read("blender_manifest.toml").decode().splitlines()
    assert f'href="./sam3d-{VERSION}.zip?repository=.%2Findex.json' in (repo / "index.html").read_text()
    assert sorted(p.name for p in repo.iterdir()) == ["index.html", "index.json", f"sam3d-{VERSION}.zip"]


@pytest.fixture
def hosted(repo: Path, tmp_path: Path) -> Path:
    """A copy of the repository's folder that this test's Blender user may see replaced by the next release."""
    return Path(shutil.copytree(repo, tmp_path / "hosted"))


@dataclass
class Web:
    url: str
    requests: list[str]


@pytest.fixture
def web(hosted: Path) -> Iterator[Web]:
    """That folder on a static web server (what a studio hosts): the URL of its index, the paths asked for."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            status = args[1] if len(args) > 1 else ""
            requests.append(f"{self.command} {urllib.parse.urlparse(self.path).path} {status}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(hosted)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Web(url=f"http://127.0.0.1:{server.server_address[1]}/index.json", requests=requests)
    finally:
        server.shutdown()
        server.server_close()


def test_blender_installs_from_the_repository_and_takes_the_next_release_as_an_update(hosted: Path, web: Web,
                                                                                     tmp_path: Path):
    # The next release, as `make repo` makes it after the version is bumped in the manifest (and only there):
    # built from the released zip's own files, into a copy of the last dist/repo/, whose old zip it replaces.
    newer = next_version(VERSION)
    source = tmp_path / "source"
    with zipfile.ZipFile(hosted / f"sam3d-{VERSION}.zip") as zf:
        zf.extractall(source)
    lines = (source / "blender_manifest.toml").read_text(encoding="utf-8").splitlines()
    assert lines.count(f'version = "{VERSION}"') == 1
    bumped = [f'version = "{newer}"' if line == f'version = "{VERSION}"' else line for line in lines]
    (source / "blender_manifest.toml").write_text("\n".join(bumped) + "\n", encoding="utf-8")
    following = tmp_path / "next"
    shutil.copytree(hosted, following)
    assert generate(following, source=source) == following / "index.json"
    [entry] = listing(following / "index.json")
    assert entry["version"] == newer and archive_of(following / "index.json", entry).is_file()
    assert not (following / f"sam3d-{VERSION}.zip").exists(), "the last release's zip is gone from the folder"

    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    command = [sys.executable, str(USER), (hosted / "index.json").as_uri(), str(hosted), str(following), web.url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    user = json.loads(done.stdout.strip().splitlines()[-1])
    installed, updated = user["install"], user["update"]
    assert installed["enabled"] and updated["enabled"], "the add-on is enabled after the install and the update"
    assert (installed["model"], updated["model"]) == ("meta:sam@3d", "meta:sam@3d-kept"), "preferences are kept"
    assert installed["module_dir"] == updated["module_dir"] == str(Path(user["repo_dir"]) / "sam3d")
    assert f'version = "{VERSION}"' in installed["installed"].splitlines()
    assert f'version = "{newer}"' in updated["installed"].splitlines()
    # The running add-on reads its version from its manifest (the User-Agent it sends Runware), never a copy.
    assert installed["user_agent"].startswith(f"sam3d-blender/{VERSION} Blender/"), installed["user_agent"]
    assert updated["user_agent"].startswith(f"sam3d-blender/{newer} Blender/"), updated["user_agent"]
    assert web.requests == ["GET /index.json 200", f"GET /sam3d-{newer}.zip 200"], "the update came from the web server"
