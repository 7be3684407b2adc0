"""Fit one mesh onto another: the rotation, uniform scale and offset that lay an engine's mesh (in its own frame)
over the SAM 3D mesh of the same object, for Refine. Pure numpy, never bpy.

Two meshings of one object share their surface, not their vertices: both are sampled on their surface (area
weighted), centred and scaled to the same spread, then their principal axes give a first guess. The axes fix the
answer only up to a flip or a quarter turn (a symmetric object, an engine that turned it), so each of the 24
turns of a cube is tried, a few rounds of ICP each (nearest points, then Umeyama's similarity fit), and the best
few are refined further. The error is the root mean square distance of the fitted samples to the target's,
both ways, as a fraction of the target's size."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

SAMPLES = 1500  # surface samples per mesh: enough for a pose within a degree, a fit in about 0.35 s
CHUNK = 512  # source points per block of the nearest-point search (CHUNK × SAMPLES ranks at a time)


@dataclass(frozen=True)
class Fit:
    rotation: np.ndarray  # (3, 3), a proper rotation
    scale: float
    offset: np.ndarray  # (3,)
    error: float  # RMS distance after the fit, as a fraction of the target's size (its bounding diagonal)

    def matrix(self) -> np.ndarray:
        """The 4 × 4 matrix that takes the source's points onto the target."""
        m = np.eye(4)
        m[:3, :3] = self.rotation * self.scale
        m[:3, 3] = self.offset
        return m

    def apply(self, points: np.ndarray) -> np.ndarray:
        return points @ (self.rotation * self.scale).T + self.offset


def surface_samples(points: np.ndarray, triangles: np.ndarray, count: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """`count` points spread over the triangles in proportion to their area (a mesh's vertices crowd where it
    is detailed; its surface does not). Without triangles, the points themselves, thinned."""
    points = np.asarray(points, np.float64)
    rng = np.random.default_rng(seed)
    if len(triangles) == 0:
        return points[rng.choice(len(points), min(count, len(points)), replace=False)]
    a, b, c = (points[triangles[:, k]] for k in range(3))
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    if not area.sum() > 0:
        raise ValueError("the mesh has no surface")
    chosen = rng.choice(len(area), count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return a[chosen] + u[:, None] * (b[chosen] - a[chosen]) + v[:, None] * (c[chosen] - a[chosen])


def nearest(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each source point, the index of its nearest target point and the squared distance to it. The search
    ranks |t|² − 2 s·t (|s|² is the same for every t) in float32 about the target's centre, where that precision
    is ample; the distances are then exact, from the pairs found. Most of Refine's fit is spent here."""
    centre = target.mean(0)
    ahead = (-2.0 * (target - centre).T).astype(np.float32)
    t2 = ((target - centre) ** 2).sum(1).astype(np.float32)
    moved = (source - centre).astype(np.float32)
    index = np.empty(len(source), np.int64)
    for start in range(0, len(source), CHUNK):
        ranks = moved[start:start + CHUNK] @ ahead
        ranks += t2
        index[start:start + CHUNK] = ranks.argmin(1)
    return index, ((source - target[index]) ** 2).sum(1)


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Umeyama's least-squares rotation, uniform scale and offset taking paired `source` points to `target`."""
    ms, mt = source.mean(0), target.mean(0)
    s, t = source - ms, target - mt
    u, sigma, vt = np.linalg.svd(t.T @ s / len(s))
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1
    rotation = u @ d @ vt
    variance = (s ** 2).sum() / len(s)
    scale = float((sigma * np.diag(d)).sum() / variance) if variance > 0 else 1.0
    return rotation, scale, mt - scale * rotation @ ms


def cube_turns() -> list[np.ndarray]:
    """The 24 rotations that map the axes onto the axes (signed permutations with determinant +1)."""
    turns = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), order] = signs
            if np.linalg.det(m) > 0:
                turns.append(m)
    return turns


def _axes(points: np.ndarray) -> np.ndarray:
    """Principal axes as columns, the widest first."""
    values, vectors = np.linalg.eigh(np.cov(points.T))
    return vectors[:, ::-1]


def _icp(source: np.ndarray, target: np.ndarray, rotation: np.ndarray, scale: float, offset: np.ndarray,
         rounds: int) -> tuple[np.ndarray, float, np.ndarray, float]:
    last = None
    for _ in range(rounds):
        moved = source @ (rotation * scale).T + offset
        index, _ = nearest(moved, target)
        if last is not None and np.array_equal(index, last):
            break  # the same pairs again: the same fit again
        rotation, scale, offset = similarity(source, target[index])
        last = index
    moved = source @ (rotation * scale).T + offset
    there = nearest(moved, target)[1].mean()
    back = nearest(target, moved)[1].mean()  # both ways: a fit shrunk into one part of the target is not good
    return rotation, scale, offset, float(np.sqrt((there + back) / 2))


def fit(source: np.ndarray, target: np.ndarray, keep: int = 3, first_rounds: int = 4,
        final_rounds: int = 25) -> Fit:
    """The similarity taking the `source` samples onto the `target` samples (both (n, 3), e.g. from
    `surface_samples`): every cube turn of the principal axes tried, the `keep` best refined."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if len(source) < 4 or len(target) < 4:
        raise ValueError("a mesh has too few points to fit")
    size = float(np.linalg.norm(target.max(0) - target.min(0)))
    if not size > 0:
        raise ValueError("the target mesh has no size")
    ms, mt = source.mean(0), target.mean(0)
    spread = np.sqrt(((source - ms) ** 2).sum(1).mean())
    if not spread > 0:
        raise ValueError("the source mesh has no size")
    scale0 = np.sqrt(((target - mt) ** 2).sum(1).mean()) / spread
    a_s, a_t = _axes(source), _axes(target)
    tried = []
    for turn in cube_turns():
        rotation = a_t @ turn @ a_s.T
        if np.linalg.det(rotation) < 0:  # the eigenvectors' handedness: flip one so the guess is a rotation
            rotation = a_t @ turn @ np.diag([1, 1, -1]) @ a_s.T
        offset = mt - scale0 * rotation @ ms
        tried.append(_icp(source[::4], target[::4], rotation, scale0, offset, first_rounds))  # a quarter: a guess
    tried.sort(key=lambda r: r[3])
    best = min((_icp(source, target, r, s, o, final_rounds) for r, s, o, _ in tried[:keep]), key=lambda r: r[3])
    rotation, scale, offset, rms = best
    return Fit(rotation=rotation, scale=scale, offset=offset, error=rms / size)
