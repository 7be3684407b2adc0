"""Camera intrinsics from posed results and their masks (utils/calibration.py: numpy only, no Blender).

Synthetic scenes, made with numpy alone, project posed ellipsoids and boxes through a known pinhole to make
their masks; the fit must find that pinhole again. The real posed sample: tests/blender/test_calibration.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from utils import calibration as cal

W, H = 640, 360  # full-size masks of the synthetic scenes


# --- synthetic scenes ----------------------------------------------------------------------------------


def ellipsoid(radii, segments: int = 32, rings: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV ellipsoid around the origin: (points, triangles)."""
    theta = np.pi * np.arange(1, rings) / rings
    phi = 2 * np.pi * np.arange(segments) / segments
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    points = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * np.asarray(radii, float)
    bottom = len(points) - 1
    s = np.arange(segments)

    def at(r, k):  # noqa: ANN001, ANN202
        return 1 + (r - 1) * segments + k % segments

    tris = [np.stack([np.zeros(segments, int), at(1, s), at(1, s + 1)], 1)]
    for r in range(1, rings - 1):
        a, b, c, d = at(r, s), at(r + 1, s), at(r + 1, s + 1), at(r, s + 1)
        tris += [np.stack([a, b, c], 1), np.stack([a, c, d], 1)]
    tris.append(np.stack([at(rings - 1, s), np.full(segments, bottom), at(rings - 1, s + 1)], 1))
    return points, np.concatenate(tris)


def box(size) -> tuple[np.ndarray, np.ndarray]:
    """A closed box around the origin: (8 points, 12 triangles)."""
    corners = (np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * 0.5 * np.asarray(size))
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]
    return corners, np.array(tris)


def rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def scene(seed: int, focal: float, cx: float, cy: float, count: int, dense: bool = False,
          outside: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`count` posed objects (points, triangles, full-size mask) seen through (focal, cx, cy): ellipsoids
    and boxes of various sizes at various depths and image positions, the first one or two partly outside
    the frame. `dense`: the first is an ellipsoid of about 227k triangles (the real sample's density)."""
    rng = np.random.default_rng(seed)
    objects = []
    for k in range(count):
        depth = rng.uniform(1.5, 7.0)
        width = rng.uniform(0.12, 0.3)  # of the image width, on screen
        if outside and k == 0:
            u, v = rng.choice([-0.02, 1.02]), rng.uniform(0.3, 0.7)  # centre just outside: half cut off
        elif outside and k == 1:
            u, v = rng.uniform(0.3, 0.7), 0.97  # cut off at the bottom
        else:
            u, v = rng.uniform(0.15, 0.85), rng.uniform(0.2, 0.8)
        radius = width / focal * depth / 2  # in scene units at that depth
        if dense and k == 0:
            points, tris = ellipsoid(radius * np.array([1.0, 1.3, 0.8]), segments=476, rings=240)
        elif k % 2:
            points, tris = box(radius * rng.uniform(0.8, 1.6, 3))
        else:
            points, tris = ellipsoid(radius * rng.uniform(0.5, 1.2, 3))
        centre = np.array([(u - cx) / focal * depth, -(v - cy) * H / W / focal * depth, -depth])
        points = points @ rotation(rng).T + centre
        mask = cal.silhouette(points, tris, focal, cx, cy, W, H)
        assert mask.any()
        objects.append((points, tris, mask))
    return objects


def posed(objects, erode: int = 0) -> list:  # noqa: ANN001
    return [cal.Posed(points, tris, cal.lowres_mask(eroded(mask, erode) if erode else mask))
            for points, tris, mask in objects]


def eroded(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask shrunk by `pixels` (a square structuring element), as a mask of only the visible part is."""
    out = mask.copy()
    for _ in range(pixels):
        inner = out.copy()
        inner[1:] &= out[:-1]
        inner[:-1] &= out[1:]
        inner[:, 1:] &= out[:, :-1]
        inner[:, :-1] &= out[:, 1:]
        out = inner
    return out


def report(name: str, fit, truth: float | None = None) -> None:  # noqa: ANN001
    known = f" (true {truth * 36:.1f} mm)" if truth else ""
    print(f"\n{name}: focal {fit.focal * 36:.2f} mm{known}, principal point ({fit.cx:.3f}, {fit.cy:.3f}), "
          f"IoU mean {np.mean(fit.ious):.3f} min {min(fit.ious):.3f}, {fit.seconds:.3f} s")


# --- the pieces ----------------------------------------------------------------------------------------


def test_iou_and_lowres_mask() -> None:
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert cal.iou(a, b) == 0.0
    a[:2], b[1:3] = True, True
    assert cal.iou(a, b) == pytest.approx(1 / 3)
    # A rectangle in a photo-sized mask: its low-resolution box keeps its place and its area.
    full = np.zeros((898, 1600), bool)
    full[200:500, 300:1100] = True
    low = cal.lowres_mask(full)
    assert low.shape == (90, 160)
    rows, cols = np.flatnonzero(low.any(1)), np.flatnonzero(low.any(0))
    assert (cols[0], cols[-1] + 1) == (30, 110)
    assert rows[0] == pytest.approx(200 * 90 / 898, abs=1) and rows[-1] + 1 == pytest.approx(500 * 90 / 898, abs=1)
    assert cal.lowres_mask(full[:, :100]).shape == (898, 100)  # already narrow enough: unchanged


def test_silhouette_matches_the_pinhole() -> None:
    """A sphere's silhouette through the pinhole: the disc-like conic, area close to the analytic one."""
    points, tris = ellipsoid((0.5, 0.5, 0.5), segments=128, rings=64)
    points = points + [0.0, 0.0, -4.0]
    focal, cx, cy = 50 / 36, 0.5, 0.5
    mask = cal.silhouette(points, tris, focal, cx, cy, W, H)
    # A sphere of radius r at distance d, on the axis: a disc of radius f·W·r / sqrt(d² − r²).
    radius = focal * W * 0.5 / np.sqrt(16 - 0.25)
    assert mask.sum() == pytest.approx(np.pi * radius**2, rel=0.02)
    rows, cols = np.nonzero(mask)
    assert cols.mean() + 0.5 == pytest.approx(cx * W, abs=0.5) and rows.mean() + 0.5 == pytest.approx(cy * H, abs=0.5)
    # Moving the principal point moves the image, pixel for pixel.
    moved = cal.silhouette(points, tris, focal, cx + 10 / W, cy - 20 / H, W, H)
    assert np.array_equal(moved[:-20, 10:], mask[20:, :-10])


def test_points_behind_the_camera_are_clipped() -> None:
    """A mesh reaching behind the camera: clipped at the camera plane, no crash, no stray pixels."""
    points, tris = box((1.0, 1.0, 6.0))
    points = points + [1.5, 0.0, -2.0]  # from z = +1 (behind) to z = −5, off to the right
    mask = cal.silhouette(points, tris, 1.0, 0.5, 0.5, W, H)
    assert mask.any()
    assert not mask[:, : W // 2].any()  # all of it right of the centre: x > 0 everywhere
    assert not cal.silhouette(points + [0, 0, 10], tris, 1.0, 0.5, 0.5, W, H).any()  # all behind


# --- the fit -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mm", "cx", "cy", "count", "seed"), [
    (24, 0.5, 0.5, 4, 1),
    (50, 0.5, 0.5, 5, 2),
    (85, 0.5, 0.5, 3, 3),
    (50, 0.56, 0.45, 6, 4),  # off-centre principal point
])
def test_fit_recovers_a_known_camera(mm: float, cx: float, cy: float, count: int, seed: int) -> None:
    focal = mm / 36
    fit = cal.fit_camera(posed(scene(seed, focal, cx, cy, count)))
    report(f"{mm} mm, principal point ({cx}, {cy}), {count} objects", fit, focal)
    assert fit.focal == pytest.approx(focal, rel=0.05)
    assert fit.cx == pytest.approx(cx, abs=0.02) and fit.cy == pytest.approx(cy, abs=0.02)
    assert len(fit.ious) == count and min(fit.ious) >= 0.8


@pytest.mark.parametrize("mm", [24, 85])
def test_fit_with_the_principal_point_at_the_centre(mm: float) -> None:
    focal = mm / 36
    fit = cal.fit_camera(posed(scene(10 + mm, focal, 0.5, 0.5, 4)), free_principal_point=False)
    report(f"{mm} mm, principal point fixed", fit, focal)
    assert (fit.cx, fit.cy) == (0.5, 0.5)
    assert fit.focal == pytest.approx(focal, rel=0.05)
    assert min(fit.ious) >= 0.8


def test_fit_eight_objects_one_dense() -> None:
    """The timing case: 8 objects, the first with as many triangles as the real sample (printed, not
    asserted: about 0.25 s on two idle cores, rasterization included)."""
    focal = 35 / 36
    objects = scene(7, focal, 0.5, 0.5, 8, dense=True)
    assert len(objects[0][1]) > 220_000
    fit = cal.fit_camera(posed(objects))
    report("8 objects, one of 227k triangles", fit, focal)
    assert fit.focal == pytest.approx(focal, rel=0.05)
    assert min(fit.ious) >= 0.8


@pytest.mark.parametrize(("mm", "pixels"), [(24, 3), (50, 6), (85, 10)])
def test_fit_with_eroded_masks(mm: float, pixels: int) -> None:
    """Masks smaller than the silhouettes (only the visible part): the focal length still within 8 %."""
    focal = mm / 36
    fit = cal.fit_camera(posed(scene(20 + mm, focal, 0.5, 0.5, 5), erode=pixels))
    report(f"{mm} mm, masks eroded by {pixels} px of {W}", fit, focal)
    assert fit.focal == pytest.approx(focal, rel=0.08)


def test_fit_rejects_nothing_to_fit() -> None:
    with pytest.raises(ValueError):
        cal.fit_camera([])
    points, tris = box((1, 1, 1))
    with pytest.raises(ValueError):
        cal.fit_camera([cal.Posed(points + [0, 0, 5], tris, np.ones((9, 16), bool))])  # behind the camera
