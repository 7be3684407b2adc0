"""`blender --command sam3d batch …`: the asset library from the command line (the same batch as the panel's)."""

from __future__ import annotations

import argparse
import gc
import math
from pathlib import Path

import bpy

from ...client import Sam3dError
from ...client.engines import ENGINES
from ..machinery.checks import why_offline
from .allocator import steady_allocator
from .batch import Options, estimate_text, prepare, run

_handle = None  # Blender's handle of the registered command


def cli(argv: list[str]) -> int:
    """`blender --command sam3d batch DIR -o LIBRARY [--max-cost USD] [--size M] [--triangles N] [--bake RES]
    [--shard K/N] [--caption] [--engine ID]`"""
    parser = argparse.ArgumentParser(prog="blender --command sam3d")
    sub = parser.add_subparsers(dest="command", required=True)
    batch = sub.add_parser("batch", help="photos and masks of a folder → an asset library (a folder of .blend files)")
    batch.add_argument("directory")
    batch.add_argument("-o", "--output", required=True, help="the library folder")
    batch.add_argument("--max-cost", type=float, default=0.0, help="refuse items past this many USD")
    batch.add_argument("--size", type=float, default=0.0, help="longest side of each asset (0: keep)")
    batch.add_argument("--triangles", type=int, default=0, help="triangle budget per asset (0: keep)")
    batch.add_argument("--bake", type=int, default=0, help="bake colours into a texture this many pixels a side")
    batch.add_argument("--shard", default="1/1", help="K/N: build only the K-th of N shares of the items")
    batch.add_argument("--caption", action="store_true",
                       help="caption each item (paid, about $0.002 each): names, descriptions and tags from it")
    batch.add_argument("--engine", default="sam3d", choices=[e.lower() for e in ENGINES],
                       help="the engine that makes each asset (README: what each is good for and costs)")
    args = parser.parse_args(argv)
    try:
        k, n = (int(v) for v in args.shard.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        print(f"sam3d: --shard takes K/N with 1 ≤ K ≤ N (got {args.shard!r})")
        return 2
    if not (math.isfinite(args.max_cost) and args.max_cost >= 0 and math.isfinite(args.size) and args.size >= 0):
        print("sam3d: --max-cost and --size take a number of 0 or more (0: none)")
        return 2
    reason = why_offline(bpy.context)
    if reason:  # the user's choice stands: Blender's own --online-mode allows it for this run
        hint = " (or run Blender with --online-mode)" if not bpy.app.online_access else ""
        print(f"sam3d: {reason}{hint}")
        return 2

    def say(kind: set[str], text: str) -> None:
        print(f"sam3d: {text}", flush=True)

    options = Options(args.size, args.triangles, args.bake, args.max_cost, (k, n), caption=args.caption,
                      engine=args.engine.upper())
    try:
        done = prepare(Path(args.directory), Path(args.output).absolute(), options)
    except Sam3dError as exc:
        print(f"sam3d: {exc}")
        return 2
    print(f"sam3d: {estimate_text(done)}", flush=True)
    steady_allocator()  # this process exists for the batch: its allocator may be tuned for it
    gc.freeze()  # and what it holds now (Blender's modules, the add-ons) is never garbage: each asset's collection
    try:         # walks only what came since, not every object of the process
        run(bpy.context, done, say)
    finally:
        gc.unfreeze()  # Blender 4.2 crashes at exit if its objects are still frozen then
    for item in done.items:
        print(f"sam3d: {item.status:8} {item.name}" + (f": {item.reason}" if item.reason else ""), flush=True)
    counts = done.counts()
    print(f"sam3d: {counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped, "
          f"${done.cost():.4f}; report {done.report_path}", flush=True)
    return 1 if counts["failed"] else 0


def register() -> None:
    global _handle
    _handle = bpy.utils.register_cli_command("sam3d", cli)  # type: ignore[func-returns-value]  # a handle


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
