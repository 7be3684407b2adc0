"""The real-window stage, from this machine's side: Debian's Blender 5.2 LTS in a root folder of its own
(tools/stage.sh), run under Xvfb (launch.py), the add-on built and installed by that Blender as a user does.

Each run is a private mount namespace (`unshare --mount`): the root sees this checkout (read-only), the test
run's temporary folder and `out/ui` at the same paths as here, so paths need no translating, and nothing stays
mounted when the run ends, however it ends. The root shares this machine's network: Blender in it reaches the
emulator on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "ui"
UNAVAILABLE = 3  # tools/stage.sh's exit status when this machine cannot hold the stage


class StageUnavailableError(RuntimeError):
    pass


def set_up() -> Path:
    """The stage's root folder, made on first use (tools/stage.sh)."""
    done = subprocess.run([str(ROOT / "tools" / "stage.sh")], capture_output=True, text=True)
    if done.returncode == UNAVAILABLE:
        raise StageUnavailableError(done.stderr.strip().splitlines()[-1])
    if done.returncode:
        raise RuntimeError(f"tools/stage.sh failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class Run:
    """One Blender process on the stage: its exit status, its output, and what its play recorded."""

    code: int
    out: str
    err: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """Python tracebacks Blender printed (a panel's draw, a timer, an operator), and the play's own."""
        text = self.out + self.err
        found = [part for part in text.split("Traceback (most recent call last):")[1:]]
        if self.facts.get("error"):
            found.append(self.facts["error"])
        return found


class Stage:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.tmp = root, tmp
        self.dist = tmp / "dist"
        self.user_template = tmp / "user-template"

    def _script(self, argv: list[str], env: dict[str, str], display: bool) -> str:
        r = shlex.quote(str(self.root))
        lines = ["set -e", f"mount -t proc proc {r}/proc", f"mount -t tmpfs tmpfs {r}/dev/shm"]
        SHOTS.mkdir(parents=True, exist_ok=True)
        for path, writable in ((ROOT, False), (self.tmp, True), (SHOTS, True)):
            inner = shlex.quote(f"{self.root}{path}")
            lines += [f"mkdir -p {inner}", f"mount --bind {shlex.quote(str(path))} {inner}"]
            if not writable:
                lines.append(f"mount -o remount,bind,ro {inner}")
        home = self.tmp / "home"
        home.mkdir(exist_ok=True)
        variables = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home),
                     "TMPDIR": str(self.tmp), **env}
        command = ["chroot", str(self.root), "env", "-i", *(f"{k}={v}" for k, v in variables.items())]
        if display:
            command += ["python3", str(ROOT / "tests" / "window" / "launch.py"), "--"]
        lines.append("exec " + shlex.join([*command, *argv]))
        return "\n".join(lines)

    def run(self, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300.0,
            display: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in the root (on a virtual display of its own unless `display` is False)."""
        script = self._script(argv, env or {}, display)
        process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            err += f"\n[stage] killed after {timeout:.0f} s"
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    # --- the add-on, as a user installs it ----------------------------------------------------------------

    def install(self) -> Path:
        """Build the zip with the stage's Blender (`blender --command extension build`), install and enable it
        into a user folder (`extension install-file -e`), and save the preferences a tester starts from: no
        splash, online access allowed. Returns the zip."""
        self.dist.mkdir(parents=True, exist_ok=True)
        built = self.run(["blender", "--command", "extension", "build", "--source-dir", str(ROOT),
                          "--output-dir", str(self.dist)], display=False)
        assert built.returncode == 0, built.stdout + built.stderr
        zips = sorted(self.dist.glob("sam3d-*.zip"))
        assert zips, built.stdout
        user = {"BLENDER_USER_RESOURCES": str(self.user_template)}
        installed = self.run(["blender", "--command", "extension", "install-file", "-r", "user_default", "-e",
                              str(zips[-1])], env=user, display=False)
        assert installed.returncode == 0 and "Installed" in installed.stdout, installed.stdout + installed.stderr
        expr = ("import bpy; p = bpy.context.preferences; p.view.show_splash = False; "
                "p.system.use_online_access = True; bpy.ops.wm.save_userpref()")
        saved = self.run(["blender", "-b", "--python-exit-code", "1", "--python-expr", expr], env=user,
                         display=False)
        assert saved.returncode == 0, saved.stdout + saved.stderr
        return zips[-1]

    def user_folder(self, name: str) -> Path:
        """A fresh copy of the installed user folder (add-on enabled, preferences saved) for one test."""
        folder = Path(tempfile.mkdtemp(prefix=f"user-{name}-", dir=self.tmp))
        shutil.copytree(self.user_template, folder, dirs_exist_ok=True, symlinks=True)
        return folder

    def play(self, target: str, *, user: Path, timeout: float = 240.0, args: list[str] | None = None,
             env: dict[str, str] | None = None, **params: Any) -> Run:
        """Start Blender with its window, play `module:function` of tests/window/plays with `params`, and return
        what happened. `args` go to Blender before the driver (e.g. a .blend to open)."""
        work = Path(tempfile.mkdtemp(prefix="play-", dir=self.tmp))
        params_path, facts_path = work / "params.json", work / "facts.json"
        params_path.write_text(json.dumps({**params, "_shots": str(SHOTS)}))
        argv = ["blender", "--enable-event-simulate", *(args or []), "--python",
                str(ROOT / "tests" / "window" / "driver.py"), "--", target, str(params_path), str(facts_path)]
        done = self.run(argv, env={"BLENDER_USER_RESOURCES": str(user), **(env or {})}, timeout=timeout)
        facts = json.loads(facts_path.read_text()) if facts_path.is_file() else {}
        err = done.stderr
        crash = self.tmp / "blender.crash.txt"  # Blender's own report when it crashed: part of what we show
        if crash.is_file():
            err += "\n[stage] Blender crashed:\n" + crash.read_text(errors="replace")
            crash.unlink()
        return Run(done.returncode, done.stdout, err, facts)
