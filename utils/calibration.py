"""The camera intrinsics SAM 3D assumed, recovered from its posed results and their masks (numpy only).

Runware returns posed meshes in SAM 3D's camera frame (OpenGL axes: camera at the origin looking down −Z,
+Y up) but not the focal length behind them. Every object of a photo went through the same pinhole, so the
focal length (and the principal point) that projects every object onto its own mask is the one to give the
photo's camera. A point (x, y, z), z < 0, of an image W×H lands at

    u = cx·W + focal·W·(x / −z),    v = cy·H − focal·W·(y / −z)      (pixels, v down)

so, for any intrinsics, an object's projection is its silhouette in the *normalized image plane*
(X = x/−z, Y = y/−z) scaled by focal·W and shifted by the principal point. `fit_camera` rasterizes that
silhouette once per object, then scores each candidate (focal, cx, cy) with one nearest lookup of the
raster at the mask's pixel centres, and maximises the mean silhouette IoU over the objects: a log-spaced
sweep of the focal length (principal point at the centre, and at the least-squares match of the
centroids), then a pattern search (Hooke–Jeeves) of (log focal, cx, cy) from the best few sweep maxima.

No bpy and no mathutils here: Blender-side code feeds it arrays, and tests run it anywhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

NEAR = 1e-6  # points with z ≥ −NEAR are behind the camera: triangles are clipped at z = −NEAR
PP_RANGE = (0.25, 0.75)  # where a free principal point may go, as fractions of the width and height
RASTER_PX = 256  # an object's normalized-plane silhouette, pixels along the longer side of its box
SWEEP = 48  # focal lengths of the coarse sweep (log-spaced over focal_range)
STARTS = 3  # sweep maxima refined


@dataclass
class Posed:
    """One posed object: its mesh in the camera frame and its mask (top row first, True = object)."""

    points: np.ndarray  # (n, 3) float: vertex positions in the camera frame; visible points have z < 0
    triangles: np.ndarray  # (m, 3) int: indices into points
    mask: np.ndarray  # (h, w) bool: the object's mask at a low resolution, same aspect as the photo


@dataclass
class Fit:
    """The intrinsics that best project every object onto its mask."""

    focal: float  # in units of the image width: 35 mm on a 36 mm sensor = 35/36
    cx: float  # principal point, fraction of the width (0.5 = centre)
    cy: float  # principal point, fraction of the height (0.5 = centre, top = 0)
    ious: list[float] = field(default_factory=list)  # silhouette IoU per object at this fit
    seconds: float = 0.0  # wall time of the fit, rasterization included

    def lens(self, sensor: float = 36.0) -> float:
        """The focal length in mm for a sensor `sensor` mm wide (the image's width)."""
        return self.focal * sensor


# --- masks ---------------------------------------------------------------------------------------------


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean images of one shape (0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def lowres_mask(mask: np.ndarray, max_width: int = 160) -> np.ndarray:
    """A full-size mask box-downsampled to at most `max_width` pixels wide, same aspect (height rounded):
    a pixel is True when at least half of the area it covers is. Narrower masks come back as they are."""
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError("the mask must be 2-D (h, w)")
    h, w = m.shape
    if w <= max_width:
        return m.copy()
    out_w = max(1, int(max_width))
    out_h = max(1, round(h * out_w / w))
    # Integral image: exact box sums over fractional boxes, since it is bilinear between its grid points.
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = np.cumsum(np.cumsum(m, axis=0, dtype=np.float64), axis=1)
    integral = _lerp_axis(_lerp_axis(integral, np.linspace(0.0, w, out_w + 1), 1), np.linspace(0.0, h, out_h + 1), 0)
    box = integral[1:, 1:] - integral[:-1, 1:] - integral[1:, :-1] + integral[:-1, :-1]
    return box >= 0.5 * (w / out_w) * (h / out_h) * (1 - 1e-9)


def _lerp_axis(a: np.ndarray, at: np.ndarray, axis: int) -> np.ndarray:
    """`a` linearly interpolated at fractional indices `at` along `axis`."""
    n = a.shape[axis]
    i0 = np.clip(np.floor(at).astype(np.intp), 0, n - 2)
    t = at - i0
    lo, hi = np.take(a, i0, axis=axis), np.take(a, i0 + 1, axis=axis)
    shape = [1] * a.ndim
    shape[axis] = len(at)
    t = t.reshape(shape)
    return lo * (1 - t) + hi * t


# --- projection and rasterization ----------------------------------------------------------------------


def _normalized_triangles(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Triangles in the normalized image plane (X = x/−z, Y = y/−z, Y up) as a (2, 3, k) array (coordinate,
    corner, triangle: each row contiguous), clipped at z = −NEAR: a triangle with one vertex behind becomes
    two, with two behind one, with three behind none."""
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    tris = np.asarray(triangles, np.intp).reshape(-1, 3)
    if not len(tris):
        return np.zeros((2, 3, 0))
    if tris.min() < 0 or tris.max() >= len(pts):
        raise ValueError("triangle indices out of range")
    finite = np.isfinite(pts).all(axis=1)
    front = finite & (pts[:, 2] < -NEAR)
    depth = np.where(front, -pts[:, 2], 1.0)
    state = front[tris]
    whole = state.all(axis=1)
    corners = tris[whole].T  # (3, m)
    parts = [np.stack([(pts[:, 0] / depth)[corners], (pts[:, 1] / depth)[corners]])]
    rest = tris[~whole & finite[tris].all(axis=1) & state.any(axis=1)]  # crossing z = −NEAR: clip
    if len(rest):
        parts.append(_clipped(pts[rest]).transpose(2, 1, 0))
    return np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]


def _clipped(v: np.ndarray) -> np.ndarray:
    """Triangles (k, 3, 3) with one or two vertices behind z = −NEAR, clipped there and projected: one
    vertex behind leaves a quad (two triangles), two behind leave one triangle. Windings are kept."""
    behind = v[..., 2] >= -NEAR
    count = behind.sum(axis=1)
    rolls = np.arange(3)

    def rolled(sel: np.ndarray, first: np.ndarray) -> np.ndarray:  # vertex `first` first
        return v[sel][np.arange(np.count_nonzero(sel))[:, None], (first[:, None] + rolls) % 3]

    def cut(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # the point of segment ab at z = −NEAR
        t = (-NEAR - a[:, 2]) / (b[:, 2] - a[:, 2])
        return a + t[:, None] * (b - a)

    parts = [np.zeros((0, 3, 3))]
    one = count == 1
    if one.any():  # A behind, B and C in front: the quad (AB, B, C, AC)
        r = rolled(one, np.argmax(behind[one], axis=1))
        ab, ac = cut(r[:, 0], r[:, 1]), cut(r[:, 0], r[:, 2])
        parts += [np.stack([ab, r[:, 1], r[:, 2]], 1), np.stack([ab, r[:, 2], ac], 1)]
    two = count == 2
    if two.any():  # A in front, B and C behind: the triangle (A, AB, AC)
        r = rolled(two, np.argmin(behind[two], axis=1))
        parts.append(np.stack([r[:, 0], cut(r[:, 0], r[:, 1]), cut(r[:, 0], r[:, 2])], 1))
    w = np.concatenate(parts)
    depth = np.maximum(-w[..., 2], NEAR)
    return np.stack([w[..., 0] / depth, w[..., 1] / depth], axis=-1)


def _rasterize(tri: np.ndarray, w: int, h: int) -> np.ndarray:
    """(h, w) bool: the pixels whose centre ((j + 0.5, i + 0.5) for column j, row i) lies in any triangle
    of `tri` ((2, 3, m): x then y of each corner, pixels, x right, y down; edges inclusive; either winding).

    Exact point-in-triangle tests over each triangle's box of pixel centres (clipped to the image),
    vectorized per group of triangles whose boxes have the same (binned) size: the sub-pixel triangles of a
    dense mesh test one to four centres each, a large triangle its whole box."""
    out = np.zeros((h, w), bool)
    if not tri.shape[2] or w <= 0 or h <= 0:
        return out
    (xa, xb, xc), (ya, yb, yc) = tri
    area = (xb - xa) * (yc - ya) - (xc - xa) * (yb - ya)
    lo_x, hi_x = np.minimum(np.minimum(xa, xb), xc), np.maximum(np.maximum(xa, xb), xc)
    lo_y, hi_y = np.minimum(np.minimum(ya, yb), yc), np.maximum(np.maximum(ya, yb), yc)
    j0 = np.ceil(np.clip(lo_x, 0.0, w + 1.0) - 0.5)  # the box of pixel centres inside the image
    j1 = np.floor(np.clip(hi_x, -1.0, w - 0.5) - 0.5)
    i0 = np.ceil(np.clip(lo_y, 0.0, h + 1.0) - 0.5)
    i1 = np.floor(np.clip(hi_y, -1.0, h - 0.5) - 0.5)
    keep = np.flatnonzero((j1 >= j0) & (i1 >= i0) & (np.abs(area) > 1e-12 * (1 + (hi_x - lo_x) * (hi_y - lo_y))))
    if not len(keep):
        return out
    j0, i0, area = j0[keep], i0[keep], area[keep]
    nx = (j1[keep] - j0).astype(np.int64) + 1
    ny = (i1[keep] - i0).astype(np.int64) + 1
    # Edge functions relative to the box's first pixel centre, signed so that inside is ≥ 0 whatever the
    # winding, with a tolerance of 1e-9 in barycentric terms (a centre on a shared edge is inside).
    sign, tol = np.sign(area), 1e-9 * np.abs(area)
    lx = [v[keep] - (j0 + 0.5) for v in (xa, xb, xc)]
    ly = [v[keep] - (i0 + 0.5) for v in (ya, yb, yc)]
    edges = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        ea, eb = (ly[a] - ly[b]) * sign, (lx[b] - lx[a]) * sign
        edges.append((ea, eb, tol - ea * lx[a] - eb * ly[a]))
    j0, i0 = j0.astype(np.int64), i0.astype(np.int64)
    small = (nx <= 4) & (ny <= 4)
    key = np.where(small, nx * 8 + ny, 0)  # a group per box size, 1×1 to 4×4
    groups = np.flatnonzero(np.bincount(key))
    for k in groups[groups > 0]:
        members = np.flatnonzero(key == k)
        gx, gy = divmod(int(k), 8)
        oy, ox = np.divmod(np.arange(gx * gy), gx)
        fx, fy = ox.astype(np.float64), oy.astype(np.float64)
        inside = None
        for ea, eb, ec in edges:
            test = ec[members, None] + ea[members, None] * fx + eb[members, None] * fy >= 0
            inside = test if inside is None else inside & test
        assert inside is not None
        tri_at, offset = np.nonzero(inside)
        out[i0[members[tri_at]] + oy[offset], j0[members[tri_at]] + ox[offset]] = True
    large = np.flatnonzero(~small)
    if len(large):
        out |= _scanlines(large, edges, j0, i0, nx, ny, w, h)
    return out


def _scanlines(large: np.ndarray, edges: list, j0: np.ndarray, i0: np.ndarray, nx: np.ndarray,
               ny: np.ndarray, w: int, h: int) -> np.ndarray:
    """The larger triangles' pixels, one span per row: on the row of centres y, the edge function
    a·x + b·y + c ≥ 0 bounds x from below when a > 0, from above when a < 0 (and holds or not when a = 0);
    the spans are summed into a difference image, so the cost follows the rows, not the area."""
    counts = ny[large]
    tri = np.repeat(large, counts)
    local_y = (np.arange(len(tri)) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.float64)
    lo = np.zeros(len(tri))
    hi = (nx[tri] - 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for ea, eb, ec in edges:
            a, rest = ea[tri], eb[tri] * local_y + ec[tri]
            bound = -rest / a
            lo = np.where(a > 0, np.maximum(lo, bound), lo)
            hi = np.where(a < 0, np.minimum(hi, bound), hi)
            hi = np.where((a == 0) & (rest < 0), -1.0, hi)
    first, last = np.ceil(lo), np.floor(hi)
    keep = np.flatnonzero(last >= first)
    tri, row = tri[keep], (i0[tri[keep]] + local_y[keep]).astype(np.int64)
    start = j0[tri] + first[keep].astype(np.int64)
    stop = j0[tri] + last[keep].astype(np.int64) + 1
    size = h * (w + 1)
    diff = (np.bincount(row * (w + 1) + start, minlength=size)
            - np.bincount(row * (w + 1) + stop, minlength=size))
    return np.cumsum(diff.reshape(h, w + 1), axis=1)[:, :w] > 0


def silhouette(obj_points: np.ndarray, triangles: np.ndarray, focal: float, cx: float, cy: float,
               w: int, h: int) -> np.ndarray:
    """(h, w) bool, top row first: the pixels whose centre the mesh covers through the pinhole (focal in
    units of the width, principal point as fractions of width and height). Clipped at z = −NEAR."""
    x, y = _normalized_triangles(obj_points, triangles)
    return _rasterize(np.stack([cx * w + focal * w * x, cy * h - focal * w * y]), int(w), int(h))


# --- the fit -------------------------------------------------------------------------------------------


class _Target:
    """One object ready to be scored: its silhouette rasterized once in the normalized plane, its mask."""

    def __init__(self, obj: Posed, window: tuple[float, float, float, float], raster_px: int) -> None:
        self.mask = np.asarray(obj.mask).astype(bool)
        if self.mask.ndim != 2:
            raise ValueError("every mask must be 2-D (h, w)")
        self.h, self.w = self.mask.shape
        self.area = int(np.count_nonzero(self.mask))
        rows, cols = np.nonzero(self.mask)
        self.centroid = (cols.mean() + 0.5, rows.mean() + 0.5) if self.area else (0.0, 0.0)
        x, y = _normalized_triangles(obj.points, obj.triangles)
        wx0, wx1, wy0, wy1 = window
        self.empty = True
        if x.size:
            x0, x1 = max(x.min(), wx0), min(x.max(), wx1)
            y0, y1 = max(y.min(), wy0), min(y.max(), wy1)
            if x1 > x0 and y1 > y0:
                self.pitch = float(max(x1 - x0, y1 - y0) / raster_px)
                self.x0, self.y1 = float(x0), float(y1)
                self.rw = max(1, math.ceil((x1 - x0) / self.pitch))
                self.rh = max(1, math.ceil((y1 - y0) / self.pitch))
                raster = _rasterize(np.stack([(x - x0) / self.pitch, (y1 - y) / self.pitch]), self.rw, self.rh)
                if raster.any():
                    self.empty = False
                    self.raster = raster
                    r, c = np.nonzero(raster)
                    self.xc = x0 + (c.mean() + 0.5) * self.pitch  # silhouette centroid, normalized plane
                    self.yc = y1 - (r.mean() + 0.5) * self.pitch
        self.uj = np.arange(self.w) + 0.5
        self.vi = np.arange(self.h) + 0.5

    def score(self, focal: float, cx: float, cy: float) -> float:
        """Silhouette IoU through (focal, cx, cy): the raster sampled (nearest) at the mask's pixel centres,
        over the columns and rows where it lands (elsewhere the projection is empty)."""
        if self.empty:
            return 0.0
        s, u0, v0 = focal * self.w, cx * self.w, cy * self.h
        # Column j samples raster column floor(((j + ½ − u0)/s − x0)/pitch), row i raster row
        # floor((y1 − (v0 − i − ½)/s)/pitch): both increasing, so the hits are one range of each.
        ja = max(math.ceil(u0 + s * self.x0 - 0.5), 0)
        jb = min(math.ceil(u0 + s * (self.x0 + self.rw * self.pitch) - 0.5), self.w)
        ia = max(math.ceil(v0 - s * self.y1 - 0.5), 0)
        ib = min(math.ceil(v0 - s * (self.y1 - self.rh * self.pitch) - 0.5), self.h)
        if ja >= jb or ia >= ib:
            return 0.0
        cols = ((self.uj[ja:jb] - u0) * (1 / (s * self.pitch)) - self.x0 / self.pitch).astype(np.intp)
        rows = ((self.vi[ia:ib] - v0) * (1 / (s * self.pitch)) + self.y1 / self.pitch).astype(np.intp)
        np.clip(cols, 0, self.rw - 1, out=cols)  # rounding at the ends of the ranges
        np.clip(rows, 0, self.rh - 1, out=rows)
        sub = self.raster[rows[:, None], cols]
        inter = np.count_nonzero(sub & self.mask[ia:ib, ja:jb])
        union = np.count_nonzero(sub) + self.area - inter
        return inter / union if union else 0.0


def _pattern_search(fun: Callable[[np.ndarray], float], x: np.ndarray, step: np.ndarray, least: np.ndarray,
                    lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
    """Hooke–Jeeves maximisation within [lo, hi]: compass moves, pattern moves along what worked, the
    steps halved when nothing improves, until every step is below `least`."""

    def explore(base: np.ndarray, value: float) -> tuple[np.ndarray, float]:
        for d in range(len(base)):
            for sign in (1.0, -1.0):
                trial = base.copy()
                trial[d] = np.clip(base[d] + sign * step[d], lo[d], hi[d])
                if trial[d] == base[d]:
                    continue
                v = fun(trial)
                if v > value:
                    base, value = trial, v
                    break
        return base, value

    best = fun(x)
    step = step.astype(np.float64).copy()
    while (step >= least).any():
        moved, value = explore(x, best)
        if value <= best:
            step *= 0.5
            continue
        while value > best:  # pattern moves: keep going the way that worked
            previous, x, best = x, moved, value
            ahead = np.clip(x + (x - previous), lo, hi)
            moved, value = explore(ahead, fun(ahead))
    return x, best


def fit_camera(objects: Sequence[Posed], *, free_principal_point: bool = True,
               focal_range: tuple[float, float] = (0.3, 6.0), raster_px: int = RASTER_PX) -> Fit:
    """The pinhole (focal in units of the image width, principal point as fractions of width and height)
    that maximises the mean silhouette IoU of every posed object with its own mask.

    With `free_principal_point` False the principal point stays at the centre. Objects whose mask is empty
    take no part in the fit (their IoU is reported as 0). Raises ValueError when no object has both a mask
    and something in front of the camera."""
    started = time.perf_counter()
    if not objects:
        raise ValueError("no objects to fit")
    f_lo, f_hi = float(focal_range[0]), float(focal_range[1])
    if not 0 < f_lo < f_hi:
        raise ValueError("focal_range must be (low, high) with 0 < low < high")
    pp_lo, pp_hi = PP_RANGE if free_principal_point else (0.5, 0.5)
    # The normalized-plane window any candidate can see (plus a margin): clipped rasters stay sharp even
    # when a mesh reaches behind the camera.
    aspect = max(np.asarray(o.mask).shape[0] / max(np.asarray(o.mask).shape[1], 1) for o in objects)
    reach = 1.05 / f_lo
    window = (-pp_hi * reach, (1 - pp_lo) * reach, -(1 - pp_lo) * aspect * reach, pp_hi * aspect * reach)
    targets = [_Target(o, window, raster_px) for o in objects]
    used = [t for t in targets if t.area and not t.empty]
    if not used:
        raise ValueError("no object has both a non-empty mask and a visible mesh")

    def objective(f: float, cx: float, cy: float) -> float:  # the mean IoU
        return sum(t.score(f, cx, cy) for t in used) / len(used)

    def centroid_pp(f: float) -> tuple[float, float]:
        """The principal point that best matches the silhouettes' centroids to the masks' (median)."""
        cx = np.median([(t.centroid[0] - f * t.w * t.xc) / t.w for t in used])
        cy = np.median([(t.centroid[1] + f * t.w * t.yc) / t.h for t in used])
        return float(np.clip(cx, pp_lo, pp_hi)), float(np.clip(cy, pp_lo, pp_hi))

    # Coarse sweep of the focal length.
    focals = np.geomspace(f_lo, f_hi, SWEEP)
    sweep: list[tuple[float, float, float, float]] = []  # (score, focal, cx, cy), best principal point
    for f in focals:
        candidates = [(0.5, 0.5)] + ([centroid_pp(f)] if free_principal_point else [])
        sweep.append(max((objective(f, *pp), f, *pp) for pp in candidates))
    scores = np.array([s[0] for s in sweep])
    padded = np.concatenate([[-1.0], scores, [-1.0]])
    maxima = np.flatnonzero((scores >= padded[:-2]) & (scores >= padded[2:]))
    peaks: list[int] = []
    for k in sorted(maxima.tolist(), key=lambda k: -scores[k]):  # best first, one per hill
        if len(peaks) < STARTS and all(abs(k - p) > 1 for p in peaks):
            peaks.append(k)

    # Local refinement of (log focal, cx, cy) from each peak.
    ratio = math.log(f_hi / f_lo) / (SWEEP - 1)
    lo = np.array([math.log(f_lo), pp_lo, pp_lo])
    hi = np.array([math.log(f_hi), pp_hi, pp_hi])
    dims = 3 if free_principal_point else 1

    def fun(p: np.ndarray) -> float:
        return objective(math.exp(p[0]), *(p[1:] if dims == 3 else (0.5, 0.5)))

    best: tuple[float, np.ndarray] | None = None
    for k in peaks:
        _, f, cx, cy = sweep[k]
        start = np.array([math.log(f), cx, cy])[:dims]
        x, value = _pattern_search(fun, start, np.array([ratio, 0.04, 0.04])[:dims],
                                   np.array([2e-4, 2e-4, 2e-4])[:dims], lo[:dims], hi[:dims])
        if best is None or value > best[0]:
            best = (value, x)
    assert best is not None
    x = best[1]
    focal = math.exp(x[0])
    cx, cy = (float(x[1]), float(x[2])) if dims == 3 else (0.5, 0.5)
    ious = [t.score(focal, cx, cy) for t in targets]
    return Fit(focal=focal, cx=cx, cy=cy, ious=[float(v) for v in ious], seconds=time.perf_counter() - started)

