"""Closed-form checks of the camera geometry: stereo disparity -> depth, plane -> one normal.

Cityscapes' disparity files store ``p = 256 d + 1`` (``p = 0`` invalid, cityscapesScripts
README); depth is ``baseline * fx / d``. A plane seen by a pinhole camera has inverse depth
(so disparity) affine in the pixel coordinates, which gives exact references: its normals are
one constant vector, at the original resolution and after area-resampling the disparity to a
working grid whose intrinsics are scaled with ``scale_intrinsics``.
"""
import numpy as np
import pytest

from mtl_adapters.datasets.cityscapes import disparity_to_depth
from mtl_adapters.datasets.geometry import (depth_from_disparity, intrinsics_matrix,
                                            normals_from_depth, scale_intrinsics, unproject)

#: a 256x128 window (from row 448, column 960) of Cityscapes' 2048x1024 camera (aachen): the
#: real focal length, so the 1/256 px disparity steps weigh as much as in the real files
FULL = (128, 256)
K_FULL = intrinsics_matrix(2262.52, 2265.3017905988554, 1096.98 - 960, 513.137 - 448)
BASELINE = 0.209313
#: a plane n . X = c facing the camera (c < 0), tilted about all three axes
PLANE_N = np.array([0.35, -0.55, -0.76]) / np.linalg.norm([0.35, -0.55, -0.76])
PLANE_C = -1.5


def plane_depth(K, size, n=PLANE_N, c=PLANE_C):
    """z-depth of the plane ``n . X = c`` at every pixel (X = z K^-1 [u, v, 1])."""
    rays = unproject(np.ones(size), K)                 # z = 1 rays
    return c / (rays @ n)


def angle_deg(a, b):
    """Angle between unit vectors (last axis), degrees."""
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def test_known_disparity_gives_known_depth():
    # p = 256 d + 1: p = 257 -> 1 px, p = 25601 -> 100 px, p = 0 invalid, p = 1 -> d = 0
    raw = np.array([[257, 25601, 0, 1], [513, 12801, 2, 65535]], np.uint16)
    fx = 2262.52
    depth = disparity_to_depth(raw, BASELINE, fx)
    bf = BASELINE * fx
    expected = np.array([[bf / 1, bf / 100, 0, 0], [bf / 2, bf / 50, bf * 256, bf / (65534 / 256)]])
    np.testing.assert_allclose(depth, expected.astype(np.float32), rtol=1e-6)
    assert depth.dtype == np.float32
    assert depth[0, 1] == pytest.approx(4.7357, abs=1e-4)        # 0.209313 * 2262.52 / 100
    capped = disparity_to_depth(raw, BASELINE, fx, max_depth=80.0)
    np.testing.assert_array_equal(capped > 0, (expected > 0) & (expected <= 80))
    # the void mask (ego vehicle etc.) makes a measured pixel invalid
    void = np.zeros(raw.shape, bool)
    void[0, 1] = True
    assert disparity_to_depth(raw, BASELINE, fx, void=void)[0, 1] == 0
    # the generic helper: non-positive and non-finite disparities are invalid
    np.testing.assert_array_equal(
        depth_from_disparity(np.array([2.0, 0.0, -1.0, np.nan, np.inf]), 0.5, 100.0),
        np.array([25.0, 0, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match='baseline'):
        depth_from_disparity(np.ones(2), 0.0, 100.0)
    with pytest.raises(ValueError, match='uint16'):
        disparity_to_depth(raw.astype(np.uint8), BASELINE, fx)


def test_working_grid_depth_is_the_area_mean_of_disparity():
    """Depth on the working grid = baseline * fx / (mean of the 2x2 disparities), invalid if
    any of the four is; the disparity stays in original-grid pixels, so fx is the original."""
    rng = np.random.RandomState(0)
    raw = rng.randint(2000, 30000, (8, 16)).astype(np.uint16)
    raw[0, 0] = 0
    raw[5, 9] = 1
    depth = disparity_to_depth(raw, BASELINE, 500.0, size=(4, 8))
    d = ((raw.astype(np.float64) - 1) / 256).reshape(4, 2, 8, 2)
    ok = (raw > 1).reshape(4, 2, 8, 2).all(axis=(1, 3))
    expected = np.where(ok, BASELINE * 500.0 / d.mean(axis=(1, 3)), 0)
    np.testing.assert_allclose(depth, expected.astype(np.float32), rtol=1e-6)
    assert depth[0, 0] == 0 and depth[2, 4] == 0 and (depth > 0).sum() == 30
    with pytest.raises(ValueError, match='aspect ratio'):
        disparity_to_depth(raw, BASELINE, 500.0, size=(4, 4))


def test_tilted_plane_has_one_normal():
    depth = plane_depth(K_FULL, FULL)
    assert (depth > 0).all()
    n = normals_from_depth(depth, K_FULL)
    inner = n[1:-1, 1:-1]
    assert angle_deg(inner, PLANE_N).max() < 1e-4
    assert np.all(n[0] == 0) and np.all(n[:, -1] == 0)       # no normal on the border


@pytest.mark.parametrize('factor', [2, 4])
def test_tilted_plane_after_resizing_with_scaled_intrinsics(factor):
    """The plane's disparity (affine) area-resampled to the working grid and inverted there,
    with the intrinsics scaled to that grid: still exactly the plane's normal. The original
    intrinsics on the working grid would tilt it."""
    work = (FULL[0] // factor, FULL[1] // factor)
    fx = K_FULL[0, 0]
    K_work = scale_intrinsics(K_FULL, 1 / factor, 1 / factor)
    disp = BASELINE * fx / plane_depth(K_FULL, FULL)

    # float disparity: the area mean of an affine map is exact
    d_work = disp.reshape(work[0], factor, work[1], factor).mean(axis=(1, 3))
    np.testing.assert_allclose(BASELINE * fx / d_work, plane_depth(K_work, work), rtol=1e-9)
    n = normals_from_depth(BASELINE * fx / d_work, K_work)[1:-1, 1:-1]
    assert angle_deg(n, PLANE_N).max() < 1e-4

    # the Cityscapes decoding of the 16-bit file: the same normal up to the 1/256 px steps.
    # They weigh against the disparity's change per pixel, baseline * |n_u| / |c| (here 0.05
    # px): a plane 1.5 m away, like the road under the camera (a plane 6 m away is within 1.3
    # degrees at factor 2: Cityscapes' stereo normals are a coarse target far away)
    raw = np.round(disp * 256 + 1).astype(np.uint16)
    depth = disparity_to_depth(raw, BASELINE, fx, size=work)
    n = normals_from_depth(depth, K_work)[1:-1, 1:-1]
    assert (np.linalg.norm(n, axis=-1) > 0.5).all()
    assert angle_deg(n, PLANE_N).max() < 0.2

    # the unscaled intrinsics on the working grid give another (wrong) plane
    wrong = normals_from_depth(depth, K_FULL)[1:-1, 1:-1]
    assert np.median(angle_deg(wrong, PLANE_N)) > 5


def test_scale_intrinsics_matches_area_resampling_of_a_plane():
    """An odd factor (3) too: cv2's INTER_AREA footprints are aligned as scale_intrinsics
    assumes (pixel centres at integer coordinates, corners aligned)."""
    import cv2
    full = (120, 240)
    depth = plane_depth(K_FULL, full)
    disp = 1.0 / depth
    work = (40, 80)
    d_work = cv2.resize(disp, (work[1], work[0]), interpolation=cv2.INTER_AREA)
    K_work = scale_intrinsics(K_FULL, 1 / 3, 1 / 3)
    np.testing.assert_allclose(1.0 / d_work, plane_depth(K_work, work), rtol=1e-7)
