"""Inside the stage's root (its own Python): start a virtual display, run one command on it, stop the display.

    python3 launch.py [--size 1600x1000] -- COMMAND [ARG…]

Xvfb picks a free display itself (-displayfd), so several runs can share the root. The command's exit status
is this script's; the display goes away with it, whatever happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    size = "1600x1000"
    if argv[:1] == ["--size"]:
        size, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size}x24", "-nolisten", "tcp",
                             "-noreset"], pass_fds=(write,), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        display = pipe.readline().strip()
    if not display:
        print("launch.py: Xvfb did not start", file=sys.stderr)
        return 3
    child = None
    try:
        child = subprocess.Popen(argv, env={**os.environ, "DISPLAY": f":{display}"})
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        return child.wait()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
        xvfb.terminate()
        xvfb.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
