"""`python -m tests.emulator --port 8765` (from the repository root): the emulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

try:
    from .api import Emulator
except ImportError:  # run as python tests/emulator: the package, from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.emulator import Emulator


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Emulate the Runware REST API on loopback.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--files-port", type=int, default=0)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--glb", help="GLB file to serve as every result (default: a generated mesh)")
    parser.add_argument("--processing", type=float, default=3.0, help="seconds per task")
    parser.add_argument("--progress", action="store_true", help="report an integer progress while processing")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    emu = Emulator(args.key, args.processing, args.glb, verbose=args.verbose, tls=args.tls)
    emu.style.include_progress = args.progress
    emu.start(args.port, args.files_port)
    print(emu.api_url, flush=True)
    print(f"files on {emu.files_url}; key {args.key!r}; Ctrl-C to stop", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    emu.stop()


if __name__ == "__main__":
    main()
