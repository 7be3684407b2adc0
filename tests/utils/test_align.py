"""Refine's fit (utils/align.py: numpy only, no Blender): a known object, meshed twice at different densities as
two engines would, one copy turned, scaled and moved; the fit must find that transform again."""

from __future__ import annotations

import numpy as np
import pytest

from utils import align


def blob(segments: int, rings: int) -> tuple[np.ndarray, np.ndarray]:
    """A lopsided closed surface (no symmetry a fit could confuse): an egg with a bump, as (points, triangles)."""
    theta = np.pi * np.arange(1, rings) / rings
    phi = 2 * np.pi * np.arange(segments) / segments
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    unit = np.concatenate([[[0, 1, 0]], unit, [[0, -1, 0]]])
    bump = 0.6 * np.exp(-((unit - np.array([0.6, 0.5, 0.62])) ** 2).sum(1) / 0.1)
    egg = 1 + 0.35 * unit[:, 1] + bump
    points = unit * egg[:, None] * np.array([1.0, 0.7, 0.45])
    bottom, tris = len(points) - 1, []

    def at(r: int, k: int) -> int:
        return 1 + r * segments + k % segments

    for k in range(segments):
        tris.append((0, at(0, k + 1), at(0, k)))
        tris.append((bottom, at(rings - 2, k), at(rings - 2, k + 1)))
        for r in range(rings - 2):
            tris += [(at(r, k), at(r, k + 1), at(r + 1, k)), (at(r, k + 1), at(r + 1, k + 1), at(r + 1, k))]
    return points, np.array(tris)


def turned(seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_fit_finds_the_turn_scale_and_offset_of_a_remeshed_copy(seed):
    """Within 2° of the rotation, 2 % of the scale, 1 % of the size for the offset; the error under 2 % (two
    samplings of one surface lie about 1.3 % of its size apart at 1500 samples)."""
    source_points, source_tris = blob(48, 24)  # the engine's mesh, in its own frame
    target_points, target_tris = blob(30, 15)  # SAM 3D's mesh of the same object, coarser…
    rotation, scale, offset = turned(seed), 2.7, np.array([3.0, -1.5, 0.8])
    target_points = target_points @ (rotation * scale).T + offset  # …where the photo put it
    source = align.surface_samples(source_points, source_tris, seed=1)
    target = align.surface_samples(target_points, target_tris, seed=2)
    found = align.fit(source, target)
    size = np.linalg.norm(target_points.max(0) - target_points.min(0))
    print(f"seed {seed}: {angle_between(found.rotation, rotation):.2f}°, scale {found.scale:.3f}, "
          f"offset off by {np.linalg.norm(found.offset - offset) / size:.4f}, error {found.error:.4f}")
    assert angle_between(found.rotation, rotation) < 2.0
    assert abs(found.scale / scale - 1) < 0.02
    assert np.linalg.norm(found.offset - offset) < 0.01 * size
    assert found.error < 0.02
    assert np.allclose(found.matrix()[:3, :3] @ source_points[0] + found.matrix()[:3, 3],
                       found.apply(source_points[:1])[0])


def test_a_different_object_fits_with_a_large_error():
    """The error tells a person the fit is poor: a box laid on the blob is off by several per cent."""
    blob_points, blob_tris = blob(30, 15)
    corners = np.array(list(np.ndindex(2, 2, 2)), float) * 2 - 1
    box_tris = np.array([(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
                         (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)])
    found = align.fit(align.surface_samples(corners, box_tris), align.surface_samples(blob_points, blob_tris))
    assert found.error > 0.04, found.error


def test_every_cube_turn_is_a_distinct_rotation():
    turns = align.cube_turns()
    assert len(turns) == 24
    assert all(np.allclose(t @ t.T, np.eye(3)) and np.isclose(np.linalg.det(t), 1) for t in turns)
    assert len({t.tobytes() for t in turns}) == 24


def test_meshes_without_size_are_refused_with_a_sentence():
    flat = np.zeros((10, 3))
    points, tris = blob(12, 6)
    with pytest.raises(ValueError, match="no size"):
        align.fit(align.surface_samples(points, tris), flat)
    with pytest.raises(ValueError, match="no surface"):
        align.surface_samples(flat, np.array([(0, 1, 2)]))
    with pytest.raises(ValueError, match="too few"):
        align.fit(points[:3], points)
