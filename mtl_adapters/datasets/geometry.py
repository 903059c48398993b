"""Camera geometry helpers: intrinsics, stereo depth, unprojection, surface normals from depth.

Convention (project-wide, docs/datasets.md#conventions and ``NormalTask``): OpenCV camera
frame, x to the right of the image, y down, z forward along the optical axis; depth is
z-depth (the z coordinate of the 3D point, what Taskonomy's ``depth_zbuffer`` stores), in
metres, 0 = invalid; pixel centres sit at integer coordinates, so pixel ``(v, u)`` looks along
``K^-1 [u, v, 1]``; a unit normal that faces the camera has ``n . X < 0`` (so ``n_z < 0`` for a
surface seen head-on); the zero vector marks pixels without a normal.
"""
from __future__ import annotations

import numpy as np

#: default threshold on the relative second difference of inverse depth (see normals_from_depth)
DEFAULT_MAX_CURVATURE = 0.05


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of an image resized by ``sx`` (width) and ``sy`` (height), as cv2.resize does.

    cv2.resize aligns pixel areas (corners), so with pixel centres at integer coordinates a
    point at ``u`` moves to ``(u + 0.5) * sx - 0.5``; focal lengths and skew scale linearly.
    """
    K = np.array(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f'scale_intrinsics: K must be 3x3, got shape {K.shape}')
    out = K.copy()
    out[0, 0] = K[0, 0] * sx
    out[0, 1] = K[0, 1] * sx
    out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    out[1, 1] = K[1, 1] * sy
    out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return out


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3x3 pinhole intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (float64, no skew)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def depth_from_disparity(disparity: np.ndarray, baseline: float, focal: float) -> np.ndarray:
    """Rectified-stereo disparity (pixels) -> z-depth ``baseline * focal / disparity`` (float32).

    ``focal`` is the horizontal focal length in pixels of the grid the disparity is measured
    on, ``baseline`` the stereo baseline in metres; pixels with a disparity that is not
    finite and positive get depth 0 (invalid).
    """
    disparity = np.asarray(disparity, dtype=np.float64)
    if not (np.isfinite(baseline) and baseline > 0 and np.isfinite(focal) and focal > 0):
        raise ValueError(f'depth_from_disparity: baseline ({baseline}) and focal ({focal}) '
                         'must be finite and positive')
    valid = np.isfinite(disparity) & (disparity > 0)
    depth = np.zeros(disparity.shape, dtype=np.float64)
    depth[valid] = baseline * focal / disparity[valid]
    return depth.astype(np.float32)


def unproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """HxW z-depth + 3x3 intrinsics -> HxWx3 camera-frame points (float64)."""
    depth = np.asarray(depth, dtype=np.float64)
    H, W = depth.shape
    K_inv = np.linalg.inv(np.asarray(K, dtype=np.float64))
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)  # (H, W, 3) homogeneous pixels
    rays = pix @ K_inv.T  # (H, W, 3) with z = 1 for an upper-triangular K
    return rays / rays[..., 2:3] * depth[..., None]  # (H, W, 3) points with z = depth


def normals_from_depth(depth: np.ndarray, K: np.ndarray,
                       max_curvature: float = DEFAULT_MAX_CURVATURE) -> np.ndarray:
    """HxW z-depth (metres) + 3x3 K -> HxWx3 float32 unit normals facing the camera, 0 = none.

    Unprojects every pixel with ``K``, crosses the central differences along u and v and
    normalises. A pixel gets no normal (zero vector) on the 1-pixel image border, where it or
    one of its four neighbours has no valid depth, and at depth discontinuities and creases:
    inverse depth is affine in (u, v) on a plane, so its second difference along u or v,
    relative to the pixel's own inverse depth, above ``max_curvature`` marks an edge.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f'normals_from_depth: depth must be HxW, got shape {depth.shape}')
    H, W = depth.shape
    normals = np.zeros((H, W, 3), dtype=np.float32)
    if H < 3 or W < 3:
        return normals
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, 0.0)
    P = unproject(z, K)  # (H, W, 3)

    du = P[1:-1, 2:] - P[1:-1, :-2]  # (H-2, W-2, 3) central difference along u
    dv = P[2:, 1:-1] - P[:-2, 1:-1]  # (H-2, W-2, 3) central difference along v
    n = np.cross(du, dv)  # (H-2, W-2, 3)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = n / np.maximum(norm, 1e-300)
    centre = P[1:-1, 1:-1]
    n = np.where(np.sum(n * centre, axis=-1, keepdims=True) > 0, -n, n)  # face the camera

    ok = (valid[1:-1, 1:-1] & valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1]
          & valid[:-2, 1:-1] & (norm[..., 0] > 0))
    inv = np.where(valid, 1.0 / np.where(valid, z, 1.0), 0.0)  # (H, W) inverse depth
    inv_c = inv[1:-1, 1:-1]
    curv_u = np.abs(inv[1:-1, 2:] - 2 * inv_c + inv[1:-1, :-2])
    curv_v = np.abs(inv[2:, 1:-1] - 2 * inv_c + inv[:-2, 1:-1])
    ok &= np.maximum(curv_u, curv_v) <= max_curvature * inv_c
    normals[1:-1, 1:-1] = np.where(ok[..., None], n, 0.0)
    return normals
