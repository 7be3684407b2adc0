"""The calibration on the real posed sample (examples/human_object): its GLB read as the scene's frame, its mask
decoded by Blender. The synthetic scenes are in tests/utils/test_calibration.py (no Blender)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.utils.test_calibration import report
from utils import calibration as cal

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIRS = [ROOT / "examples" / "human_object",
               Path(os.environ.get("SAM3D_SAMPLES", ROOT.parent / "shared" / "samples")) / "human_object"]


# --- the real sample -----------------------------------------------------------------------------------


def _sample(name: str) -> Path:
    for folder in SAMPLE_DIRS:
        if (folder / name).exists():
            return folder / name
    pytest.skip(f"sample {name} is missing")


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in the scene's frame: node matrices applied) and triangles of every mesh of a GLB."""
    from tests.glb import read_glb

    doc, binary = read_glb(path.read_bytes())
    kinds = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
    width = {"SCALAR": 1, "VEC3": 3}

    def accessor(index: int) -> np.ndarray:
        acc = doc["accessors"][index]
        view = doc["bufferViews"][acc["bufferView"]]
        n = width[acc["type"]]
        dtype = np.dtype(kinds[acc["componentType"]])
        stride = view.get("byteStride", dtype.itemsize * n)
        assert stride == dtype.itemsize * n, "interleaved buffers are not expected here"
        offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        return np.frombuffer(binary, dtype, acc["count"] * n, offset).reshape(-1, n)

    def local(node: dict) -> np.ndarray:
        if "matrix" in node:
            return np.array(node["matrix"], float).reshape(4, 4).T  # column-major
        m = np.eye(4)
        if "scale" in node or "rotation" in node or "translation" in node:
            x, y, z, w = node.get("rotation", (0, 0, 0, 1))
            rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
            m[:3, :3] = rot * np.asarray(node.get("scale", (1, 1, 1)), float)
            m[:3, 3] = node.get("translation", (0, 0, 0))
        return m

    points, tris = [], []

    def walk(index: int, parent: np.ndarray) -> None:
        node = doc["nodes"][index]
        world = parent @ local(node)
        if "mesh" in node:
            for prim in doc["meshes"][node["mesh"]]["primitives"]:
                p = accessor(prim["attributes"]["POSITION"]).astype(float)
                p = p @ world[:3, :3].T + world[:3, 3]
                t = accessor(prim["indices"]).reshape(-1, 3).astype(np.int64) + sum(len(q) for q in points)
                points.append(p)
                tris.append(t)
        for child in node.get("children", []):
            walk(child, world)

    for root in doc["scenes"][doc.get("scene", 0)]["nodes"]:
        walk(root, np.eye(4))
    return np.concatenate(points), np.concatenate(tris)


def read_mask(path: Path) -> np.ndarray:
    """(h, w) bool, top row first, of a mask PNG, decoded by Blender."""
    import bpy

    image = bpy.data.images.load(str(path))
    try:
        w, h = image.size
        pixels = np.empty(w * h * image.channels, np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(h, w, image.channels)[::-1, :, 0] > 0.5
    finally:
        bpy.data.images.remove(image)


def test_real_sample() -> None:
    """The posed sample through the fitted pinhole covers its mask about twice as well as through the
    35 mm lens (IoU 0.2): the mask is only the visible part while the mesh is whole, so ~0.5 is near the
    ceiling."""
    points, tris = read_mesh(_sample("sam3d_output_0.glb"))
    mask = read_mask(_sample("mask_0.png"))
    assert points.shape == (113_498, 3) and tris.shape == (227_278, 3) and mask.shape == (898, 1600)
    started = time.perf_counter()
    low = cal.lowres_mask(mask)
    objects = [cal.Posed(points, tris, low)]
    fit = cal.fit_camera(objects)
    seconds = time.perf_counter() - started
    fixed = cal.fit_camera(objects, free_principal_point=False)
    report("real sample, principal point free", fit)
    report("real sample, principal point at the centre", fixed)
    full = cal.iou(cal.silhouette(points, tris, fit.focal, fit.cx, fit.cy, 1600, 898), mask)
    at_35 = cal.iou(cal.silhouette(points, tris, 35 / 36, 0.5, 0.5, 1600, 898), mask)
    print(f"full-size IoU at the fit {full:.3f}, at 35 mm {at_35:.3f}; "
          f"{seconds:.3f} s with the mask's downsampling")
    assert np.mean(fit.ious) >= 0.42 and full >= 0.42
    assert np.mean(fixed.ious) >= 0.42
    assert at_35 < 0.3
