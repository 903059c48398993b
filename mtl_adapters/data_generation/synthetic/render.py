"""The ray caster of the synthetic scenes: intersections, surfaces, shading and ``render_view``.

Rays of the pinhole camera are intersected with the closed room and its furniture; the hits
give depth, normals, classes and texture coordinates, then Lambertian shading with hard shadows
gives the picture.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mtl_adapters.tasks.edge import texture_edges

from .layout import (CEILING, FLOOR, WALL, Size, _as_size, _rot_z, _sample_camera,
                     _sample_layout, camera_intrinsics)
from .textures import _GAMMA, STYLES, _sample_appearance, _texture

_T_MIN = 1e-6  # smallest accepted ray parameter
_SHADOW_BIAS = 1e-4  # metres along the normal before casting shadow rays


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (N, 3) arrays (or one of them (3,))."""
    return np.einsum('...i,...i->...', a, b)


# ----------------------------------------------------------------------- ray intersection
def _safe_dir(D: np.ndarray) -> np.ndarray:
    """Replace exact zeros in ray directions by a tiny value of the same sign convention."""
    return np.where(D == 0, 1e-12, D)


def _hit_room(origin: np.ndarray, D: np.ndarray, room: np.ndarray) -> np.ndarray:
    """(N,) exit parameter of rays starting inside the box [0, room]."""
    Ds = _safe_dir(D)
    t = np.where(Ds > 0, (room - origin) / Ds, -origin / Ds)  # (N, 3) per-axis exit
    return t.min(axis=-1)


def _hit_object(origin: np.ndarray, D: np.ndarray, obj: dict) -> np.ndarray:
    """(N,) nearest hit parameter (> _T_MIN) of rays origin + t D with one object; inf = miss."""
    kind = obj['kind']
    if kind == 'box':
        rot = _rot_z(obj['yaw'])
        Ol = (origin - obj['center']) @ rot  # (N, 3) local frame (rot^T applied to row vectors)
        Dl = _safe_dir(D @ rot)
        t1, t2 = (-obj['half'] - Ol) / Dl, (obj['half'] - Ol) / Dl
        t_near = np.minimum(t1, t2).max(axis=-1)
        t_far = np.maximum(t1, t2).min(axis=-1)
        return np.where((t_near <= t_far) & (t_near > _T_MIN), t_near, np.inf)
    if kind == 'sphere':
        oc = origin - obj['center']
        a, b = _dot(D, D), _dot(oc, D)
        disc = b * b - a * (_dot(oc, oc) - obj['radius'] ** 2)
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a
        return np.where((disc >= 0) & (t > _T_MIN), t, np.inf)
    # vertical cylinder: side wall, then the two caps
    cx, cy = obj['center']
    r, z0, z1 = obj['radius'], obj['z0'], obj['z1']
    ox, oy, oz = origin[..., 0] - cx, origin[..., 1] - cy, origin[..., 2]
    dx, dy, dz = D[..., 0], D[..., 1], D[..., 2]
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    disc = b * b - a * (ox * ox + oy * oy - r * r)
    with np.errstate(divide='ignore', invalid='ignore'):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / np.maximum(a, 1e-300)
    z_side = oz + t_side * dz
    best = np.where((a > 1e-12) & (disc >= 0) & (t_side > _T_MIN) & (z_side >= z0) & (z_side <= z1),
                    t_side, np.inf)
    dzs = np.where(dz == 0, 1e-12, dz)
    for zc in (z0, z1):
        t = (zc - oz) / dzs
        inside = (ox + t * dx) ** 2 + (oy + t * dy) ** 2 <= r * r
        best = np.where(inside & (t > _T_MIN) & (t < best), t, best)
    return best


def _surface(obj: Optional[dict], P: np.ndarray, room: np.ndarray, mat_scales: Sequence[float]):
    """Hit points (M, 3) on one primitive -> normals (M, 3), texture uv (M, 2), part (M,), cls (M,).

    ``obj`` None is the room (parts: 0 floor, 1 ceiling, 2-5 walls x=0, x=lx, y=0, y=ly).
    ``mat_scales`` gives texture periods so that wrap-around coordinates stay seamless.
    """
    M = len(P)
    part = np.zeros(M, dtype=np.int64)
    if obj is None:
        dist = np.stack([P[:, 2], room[2] - P[:, 2], P[:, 0], room[0] - P[:, 0],
                         P[:, 1], room[1] - P[:, 1]], axis=-1)  # (M, 6)
        part = dist.argmin(axis=-1)
        normals = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]],
                           dtype=np.float64)[part]
        uv = np.where((part < 2)[:, None], P[:, [0, 1]],
                      np.where((part < 4)[:, None], P[:, [1, 2]], P[:, [0, 2]]))
        cls = np.array([FLOOR, CEILING, WALL, WALL, WALL, WALL])[part]
        return normals, uv, part, cls
    cls = np.full(M, obj['cls'])
    kind = obj['kind']
    if kind == 'box':
        rot = _rot_z(obj['yaw'])
        Pl = (P - obj['center']) @ rot  # (M, 3) local
        axis = (np.abs(Pl) / obj['half']).argmax(axis=-1)
        nl = np.zeros_like(Pl)
        nl[np.arange(M), axis] = np.sign(Pl[np.arange(M), axis])
        uv = np.where((axis == 0)[:, None], Pl[:, [1, 2]],
                      np.where((axis == 1)[:, None], Pl[:, [0, 2]], Pl[:, [0, 1]]))
        return nl @ rot.T, uv, axis, cls
    if kind == 'sphere':
        n = (P - obj['center']) / obj['radius']
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        r_eff = _seamless_radius(obj['radius'], mat_scales[0])
        uv = np.stack([np.arctan2(n[:, 1], n[:, 0]) * r_eff,
                       np.arccos(np.clip(n[:, 2], -1, 1)) * obj['radius']], axis=-1)
        return n, uv, part, cls
    cx, cy = obj['center']
    dx, dy = P[:, 0] - cx, P[:, 1] - cy
    rho = np.hypot(dx, dy)
    dist = np.stack([np.abs(rho - obj['radius']), np.abs(P[:, 2] - obj['z1']),
                     np.abs(P[:, 2] - obj['z0'])], axis=-1)
    part = dist.argmin(axis=-1)  # 0 side, 1 top, 2 bottom
    side = np.stack([dx, dy, np.zeros(M)], axis=-1) / np.maximum(rho, 1e-12)[:, None]
    normals = np.where((part == 0)[:, None], side,
                       np.where((part == 1)[:, None], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]))
    r_eff = _seamless_radius(obj['radius'], mat_scales[0])
    uv = np.where((part == 0)[:, None], np.stack([np.arctan2(dy, dx) * r_eff, P[:, 2]], axis=-1),
                  np.stack([dx, dy], axis=-1))
    return normals, uv, part, cls


def _seamless_radius(radius: float, period: float) -> float:
    """Radius to multiply an azimuth by so a texture of ``period`` wraps without a seam."""
    n = max(2, round(2 * math.pi * radius / period))
    return n * period / (2 * math.pi)


# ------------------------------------------------------------------------------ rendering
def _bounding_sphere(obj: dict) -> Tuple[np.ndarray, float]:
    """Centre (3,) and radius of a sphere enclosing an object (for culling rays)."""
    if obj['kind'] == 'box':
        return obj['center'], float(np.linalg.norm(obj['half']))
    if obj['kind'] == 'sphere':
        return obj['center'], float(obj['radius'])
    half_h = 0.5 * (obj['z1'] - obj['z0'])
    centre = np.array([obj['center'][0], obj['center'][1], obj['z0'] + half_h])
    return centre, math.hypot(obj['radius'], half_h)


def _cone_candidates(V: np.ndarray, v_norm: np.ndarray, apex: np.ndarray, obj: dict):
    """(M,) mask of rays from ``apex`` along V (M, 3) that may meet ``obj``; None = all may."""
    centre, radius = _bounding_sphere(obj)
    w = centre - apex
    w_norm = float(np.linalg.norm(w))
    if w_norm <= radius * 1.0001:
        return None
    cos_max = math.sqrt(1.0 - (radius / w_norm) ** 2)
    return V @ w >= v_norm * (w_norm * cos_max * (1 - 1e-9))


def _hit_candidates(origin: np.ndarray, D: np.ndarray, obj: dict, cand) -> np.ndarray:
    """(N,) hit parameters of ``_hit_object`` evaluated only where ``cand`` (inf elsewhere)."""
    if cand is None:
        return _hit_object(origin, D, obj)
    t = np.full(len(D), np.inf)
    idx = np.nonzero(cand)[0]
    if idx.size:
        t[idx] = _hit_object(origin if origin.ndim == 1 else origin[idx], D[idx], obj)
    return t


def _shadowed(P: np.ndarray, light: dict, objects: List[dict]) -> np.ndarray:
    """(M,) True where furniture blocks the light from the points P (M, 3).

    Rays are first culled with each object's bounding sphere (a cone from a point light, a
    cylinder along a directional light), then intersected exactly.
    """
    hit = np.zeros(len(P), dtype=bool)
    if light['kind'] == 'point':
        V = P - light['pos']  # (M, 3) light -> point
        dist = np.linalg.norm(V, axis=-1)
        for obj in objects:
            _, radius = _bounding_sphere(obj)
            cand = _cone_candidates(V, dist, light['pos'], obj)
            near = dist > np.linalg.norm(_bounding_sphere(obj)[0] - light['pos']) - radius
            cand = near if cand is None else cand & near
            idx = np.nonzero(cand & ~hit)[0]
            if idx.size:
                hit[idx] = _hit_object(P[idx], -V[idx], obj) < 1.0  # segment point -> light
        return hit
    L = -np.asarray(light['dir'], dtype=np.float64)  # towards the light
    u1 = np.cross(L, [1.0, 0.0, 0.0] if abs(L[0]) < 0.9 else [0.0, 1.0, 0.0])
    u1 /= np.linalg.norm(u1)
    u2 = np.cross(L, u1)
    a, b, along = P @ u1, P @ u2, P @ L  # (M,) coordinates across and along the light
    for obj in objects:
        centre, radius = _bounding_sphere(obj)
        cand = ((a - centre @ u1) ** 2 + (b - centre @ u2) ** 2 <= radius * radius * (1 + 1e-9))
        cand &= centre @ L + radius > along
        idx = np.nonzero(cand & ~hit)[0]
        if idx.size:
            hit[idx] = np.isfinite(_hit_object(P[idx], np.broadcast_to(L, (idx.size, 3)), obj))
    return hit


def render_view(seed: int, size: Size = (128, 128), style: str = 'default',
                view: int = 0) -> Dict[str, np.ndarray]:
    """Render view ``view`` of scene ``seed``: dict(rgb, depth, normal, seg, edge, K).

    rgb HxWx3 uint8; depth HxW float32 z-depth in metres (> 0 everywhere); normal HxWx3
    float32 unit vectors in the OpenCV camera frame facing the camera; seg HxW uint8 train ids
    of ``SYNTHETIC_CLASSES``; edge HxW float32 texture edges of rgb; K 3x3 float64.
    Deterministic in (seed, size, style, view).
    """
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    H, W = _as_size(size)
    K = camera_intrinsics((H, W))
    layout = _sample_layout(seed)
    look = _sample_appearance(layout, seed, style)
    eye, R = _sample_camera(layout, seed, view)
    room, objects = layout['room'], layout['objects']

    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)],
                     axis=-1).reshape(-1, 3)  # (N, 3) rays with unit z: t is z-depth
    D = d_cam @ R.T  # (N, 3) world directions
    t_best = _hit_room(eye, D, room)  # (N,) closed room: always a hit
    prim = np.full(len(D), -1)  # -1 = room, k = objects[k]
    d_norm = np.linalg.norm(D, axis=-1)
    for k, obj in enumerate(objects):
        t = _hit_candidates(eye, D, obj, _cone_candidates(D, d_norm, eye, obj))  # (N,)
        closer = t < t_best
        t_best = np.where(closer, t, t_best)
        prim[closer] = k
    P = eye + t_best[:, None] * D  # (N, 3) hit points

    normal = np.zeros_like(D)
    seg = np.zeros(len(D), dtype=np.uint8)
    albedo = np.zeros_like(D)
    d_unit = D / d_norm[:, None]
    for k in range(-1, len(objects)):
        idx = np.nonzero(prim == k)[0]
        if idx.size == 0:
            continue
        obj = None if k < 0 else objects[k]
        mats = look['room'] if k < 0 else [look['objects'][k]]
        n, uv, part, cls = _surface(obj, P[idx], room, [m['scale'] for m in mats])
        n = np.where(_dot(n, D[idx])[:, None] > 0, -n, n)  # face the camera
        normal[idx], seg[idx] = n, cls
        cos = np.maximum(np.abs(_dot(n, d_unit[idx])), 0.15)
        footprint = t_best[idx] / K[0, 0] / cos  # metres per pixel on the surface
        for p in np.unique(part):
            sel = part == p
            mat = mats[int(p)] if k < 0 else mats[0]
            albedo[idx[sel]] = _texture(mat, uv[sel], footprint[sel])

    irradiance = np.broadcast_to(look['ambient'], D.shape).copy()
    origin = P + _SHADOW_BIAS * normal
    for light in look['lights']:
        if light['kind'] == 'point':
            to_light = light['pos'] - origin  # (N, 3)
            dist = np.linalg.norm(to_light, axis=-1)
            L = to_light / dist[:, None]
            gain = light['intensity'] / (1 + (dist / 3.0) ** 2)
        else:
            L = np.broadcast_to(-light['dir'], D.shape)
            gain = np.full(len(D), light['intensity'])
        ndl = _dot(normal, L)
        lit = np.nonzero(ndl > 0)[0]
        vis = np.zeros(len(D))
        vis[lit] = ~_shadowed(origin[lit], light, objects)
        irradiance += (np.maximum(ndl, 0) * gain * vis)[:, None] * light['color']
    radiance = albedo * irradiance
    srgb = (1 - np.exp(-look['exposure'] * radiance)) ** (1 / _GAMMA)
    rgb = np.round(np.clip(srgb, 0, 1) * 255).astype(np.uint8).reshape(H, W, 3)

    normal_cam = (normal @ R).reshape(H, W, 3)  # world -> camera: R^T n, row vectors
    return dict(rgb=rgb, depth=t_best.reshape(H, W).astype(np.float32),
                normal=normal_cam.astype(np.float32), seg=seg.reshape(H, W),
                edge=texture_edges(rgb), K=K)
