"""Procedural indoor scenes with physically consistent S/D/N/E targets, in Taskonomy's format.

A small vectorised NumPy ray caster (no GPU, no downloads) renders closed box rooms (floor,
four walls, ceiling) furnished with boxes (tables, cabinets), spheres (balls) and vertical
cylinders (vases, pillars), textured procedurally (checker / stripes / value noise / grid /
dots / waves, box-filtered over the pixel footprint so they do not alias) and lit by point and
directional lights (Lambertian, ambient term, hard shadows cast by the furniture), seen by a
pinhole camera standing in the room.

Every target comes from the same ray hits as the picture:

* depth: z-depth in metres (the ray parameter of ``K^-1 [u, v, 1]`` rays, i.e. distance along
  the optical axis, as Taskonomy's ``depth_zbuffer``); the room is closed, so every pixel hits
  something and depth is valid everywhere;
* normal: the analytic surface normal rotated into the OpenCV camera frame (x right, y down,
  z forward) and turned to face the camera (``n . ray < 0``);
* seg: the class of the object hit, train ids in the order of ``SYNTHETIC_CLASSES``;
* edge: Taskonomy's texture edges of the rendered RGB (``texture_edges``).

Randomness: a *scene* (room layout and furniture) is drawn from ``(scene_seed, 0)``, its
appearance (materials, lights) from ``(scene_seed, 1)`` with the distributions of the chosen
``style`` and each *view* (camera pose) from ``(scene_seed, 2, view)``. The style only changes
appearance, so ``style='alt'`` is a second domain with the same geometry distribution (the same
seed even gives the very same geometry and camera: paired images). ``generate`` writes
``num_scenes`` scenes as Taskonomy "buildings" with one "point" per view (view index 0).
"""
from __future__ import annotations

import colorsys
import json
import math
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mtl_adapters.tasks.edge import texture_edges

#: the fixed class list; train id k is the k-th name (stored as k + 1 in segment_semantic)
SYNTHETIC_CLASSES = ('floor', 'wall', 'ceiling', 'table', 'cabinet', 'ball', 'vase', 'pillar')
FLOOR, WALL, CEILING, TABLE, CABINET, BALL, VASE, PILLAR = range(len(SYNTHETIC_CLASSES))
#: appearance styles: 'alt' is a second domain (palette, textures, lighting) for DG studies
STYLES = ('default', 'alt')
#: horizontal field of view of the pinhole camera (degrees); square pixels
HFOV_DEG = 60.0
#: default image size (H, W) of ``generate``
DEFAULT_SIZE = (256, 256)
#: default split of the scenes: 25/5/5 of 35 buildings, like Taskonomy's tiny split
DEFAULT_SPLITS = (0.7, 0.15, 0.15)

_SPLIT_NAMES = ('train', 'val', 'test')
_T_MIN = 1e-6  # smallest accepted ray parameter
_SHADOW_BIAS = 1e-4  # metres along the normal before casting shadow rays
_GAMMA = 2.2

Size = Union[int, Sequence[int]]


# --------------------------------------------------------------------------- small helpers
def _rng(*key: int) -> np.random.Generator:
    """Independent random stream for an integer key (stable across platforms)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in key])))


def scene_seed(seed: int, scene: int) -> int:
    """Seed of scene ``scene`` of a dataset generated with ``seed`` (what ``generate`` uses)."""
    return int(np.random.SeedSequence([int(seed), int(scene), 7919]).generate_state(1)[0])


def _as_size(size: Size) -> Tuple[int, int]:
    """An int or (H, W) -> (H, W) of positive ints."""
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f'size must be an int or (H, W) with both >= 8, got {size}')
    return size


def camera_intrinsics(size: Size, hfov_deg: float = HFOV_DEG) -> np.ndarray:
    """3x3 intrinsics of the renderer's pinhole camera (square pixels, centred principal point)."""
    H, W = _as_size(size)
    f = 0.5 * W / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]])


def _rot_z(yaw: float) -> np.ndarray:
    """3x3 rotation about the world's vertical (z) axis."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (N, 3) arrays (or one of them (3,))."""
    return np.einsum('...i,...i->...', a, b)


# ------------------------------------------------------------------------------- the scene
def _sample_layout(seed: int) -> dict:
    """Room extents and furniture of scene ``seed`` (world frame: z up, floor at z = 0)."""
    rng = _rng(seed, 0)
    lx, ly = rng.uniform(4.0, 8.0, size=2)
    hz = rng.uniform(2.5, 3.3)
    objects: List[dict] = []
    footprints: List[Tuple[float, float, float]] = []  # (x, y, radius) of floor objects

    def free(x: float, y: float, r: float) -> bool:
        """Whether a floor circle (x, y, r) keeps 10 cm from every placed footprint."""
        return all(math.hypot(x - fx, y - fy) >= r + fr + 0.1 for fx, fy, fr in footprints)

    def place_box(hx: float, hy: float, against_wall: bool):
        """(x, y, yaw) of a free spot for a box of half extents (hx, hy), or None."""
        for _ in range(40):
            if against_wall:
                wall = int(rng.integers(4))
                yaw = (math.pi / 2, -math.pi / 2, 0.0, math.pi)[wall]
                ex, ey = (hy, hx) if wall < 2 else (hx, hy)  # world half extents
                gap = 0.02  # keep faces off the wall planes
                if wall < 2:
                    x = (gap + ex, lx - gap - ex)[wall]
                    y = rng.uniform(ey + gap, ly - ey - gap)
                else:
                    x = rng.uniform(ex + gap, lx - ex - gap)
                    y = (gap + ey, ly - gap - ey)[wall - 2]
            else:
                yaw = rng.uniform(0, math.pi)
                c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
                ex, ey = c * hx + s * hy, s * hx + c * hy
                x = rng.uniform(ex + 0.05, lx - ex - 0.05)
                y = rng.uniform(ey + 0.05, ly - ey - 0.05)
            r = math.hypot(hx, hy)
            if free(x, y, r):
                footprints.append((x, y, r))
                return x, y, yaw
        return None

    def place_round(r: float):
        """(x, y) of a free spot for a round object of radius r, or None."""
        for _ in range(40):
            x = rng.uniform(r + 0.05, lx - r - 0.05)
            y = rng.uniform(r + 0.05, ly - r - 0.05)
            if free(x, y, r):
                footprints.append((x, y, r))
                return x, y
        return None

    counts = dict(cabinet=int(rng.integers(0, 5)), table=int(rng.integers(0, 4)),
                  pillar=int(rng.choice(3, p=[0.45, 0.4, 0.15])),
                  ball=int(rng.integers(0, 4)), vase=int(rng.integers(0, 4)))
    if sum(counts.values()) < 3:
        counts['table'] += 1
        counts['cabinet'] += 1
    for _ in range(counts['cabinet']):
        hx, hy = rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.32)
        h = rng.uniform(1.2, min(2.1, hz - 0.3))
        pos = place_box(hx, hy, against_wall=rng.random() < 0.75)
        if pos:
            objects.append(dict(kind='box', cls=CABINET, center=np.array([pos[0], pos[1], h / 2]),
                                half=np.array([hx, hy, h / 2]), yaw=pos[2]))
    for _ in range(counts['table']):
        hx, hy, h = rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.5), rng.uniform(0.65, 0.8)
        pos = place_box(hx, hy, against_wall=rng.random() < 0.2)
        if not pos:
            continue
        objects.append(dict(kind='box', cls=TABLE, center=np.array([pos[0], pos[1], h / 2]),
                            half=np.array([hx, hy, h / 2]), yaw=pos[2]))
        rot, items = _rot_z(pos[2]), []
        for _ in range(int(rng.integers(0, 3))):  # small things standing on the table
            is_ball = rng.random() < 0.5
            r = rng.uniform(0.06, 0.14) if is_ball else rng.uniform(0.05, 0.1)
            for _ in range(10):
                ix = rng.uniform(-hx + r + 0.02, hx - r - 0.02)  # in the table's frame
                iy = rng.uniform(-hy + r + 0.02, hy - r - 0.02)
                if all(math.hypot(ix - a, iy - b) >= r + rb + 0.03 for a, b, rb in items):
                    items.append((ix, iy, r))
                    wx, wy, _ = rot @ np.array([ix, iy, 0.0]) + np.array([pos[0], pos[1], 0.0])
                    if is_ball:
                        objects.append(dict(kind='sphere', cls=BALL,
                                            center=np.array([wx, wy, h + r]), radius=r))
                    else:
                        objects.append(dict(kind='cylinder', cls=VASE, center=np.array([wx, wy]),
                                            radius=r, z0=h, z1=h + rng.uniform(0.15, 0.35)))
                    break
    for _ in range(counts['pillar']):
        r = rng.uniform(0.15, 0.35)
        pos = place_round(r)
        if pos:
            objects.append(dict(kind='cylinder', cls=PILLAR, center=np.array(pos), radius=r,
                                z0=0.0, z1=hz))
    for _ in range(counts['ball']):
        r = rng.uniform(0.12, 0.35)
        pos = place_round(r)
        if pos:
            objects.append(dict(kind='sphere', cls=BALL, center=np.array([pos[0], pos[1], r]),
                                radius=r))
    for _ in range(counts['vase']):
        r = rng.uniform(0.08, 0.18)
        pos = place_round(r)
        if pos:
            objects.append(dict(kind='cylinder', cls=VASE, center=np.array(pos), radius=r,
                                z0=0.0, z1=rng.uniform(0.25, 0.6)))
    return dict(room=np.array([lx, ly, hz]), objects=objects, footprints=footprints)


def _object_top(obj: dict) -> float:
    """Height of the highest point of an object."""
    if obj['kind'] == 'box':
        return float(obj['center'][2] + obj['half'][2])
    if obj['kind'] == 'sphere':
        return float(obj['center'][2] + obj['radius'])
    return float(obj['z1'])


def _object_middle(obj: dict) -> np.ndarray:
    """A point in the middle of an object (a camera target)."""
    if obj['kind'] == 'cylinder':
        mid = 0.5 * (obj['z0'] + min(obj['z1'], 1.6))
        return np.array([obj['center'][0], obj['center'][1], mid])
    return np.array(obj['center'], dtype=np.float64)


def _sample_camera(layout: dict, seed: int, view: int) -> Tuple[np.ndarray, np.ndarray]:
    """Camera centre (3,) and world-from-camera rotation (3, 3) of one view (OpenCV axes)."""
    rng = _rng(seed, 2, view)
    lx, ly, hz = layout['room']
    best, best_clear = None, -np.inf
    for _ in range(100):
        x, y = rng.uniform(0.45, lx - 0.45), rng.uniform(0.45, ly - 0.45)
        clear = min((math.hypot(x - fx, y - fy) - fr for fx, fy, fr in layout['footprints']),
                    default=np.inf)
        if clear > best_clear:
            best, best_clear = (x, y), clear
        if clear > 0.35:
            break
    z = rng.uniform(1.0, min(1.7, hz - 0.4))
    eye = np.array([best[0], best[1], z])
    for _ in range(10):
        if layout['objects'] and rng.random() < 0.6:
            target = _object_middle(layout['objects'][int(rng.integers(len(layout['objects'])))])
        else:
            target = np.array([rng.uniform(0, lx), rng.uniform(0, ly), rng.uniform(0.3, 1.6)])
        if np.linalg.norm((target - eye)[:2]) > 1.0:
            break
    delta = target - eye
    yaw = math.atan2(delta[1], delta[0]) + rng.normal(0, 0.25)
    pitch = math.atan2(delta[2], math.hypot(delta[0], delta[1])) + rng.normal(0, 0.15)
    pitch = float(np.clip(pitch, -0.6, 0.4))
    roll = float(np.clip(rng.normal(0, 0.03), -0.08, 0.08))
    fwd = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw),
                    math.sin(pitch)])
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return eye, np.stack([right, down, fwd], axis=1)  # columns: camera x, y, z in world


# ---------------------------------------------------------------------------- appearance
#: per-class look of the 'default' style: hue, saturation, value ranges, textures and their
#: probabilities, texture period (metres), contrast between the two colours
_DEFAULT_LOOK = {
    FLOOR: dict(h=(0.05, 0.11), s=(0.15, 0.55), v=(0.35, 0.7), scale=(0.15, 0.6),
                contrast=(0.15, 0.5),
                tex=(('stripes', 0.4), ('checker', 0.3), ('noise', 0.2), ('plain', 0.1))),
    WALL: dict(h=(0.0, 1.0), s=(0.02, 0.2), v=(0.68, 0.92), scale=(0.1, 0.5),
               contrast=(0.05, 0.25), tex=(('plain', 0.5), ('stripes', 0.25), ('noise', 0.25))),
    CEILING: dict(h=(0.08, 0.15), s=(0.0, 0.08), v=(0.85, 0.97), scale=(0.3, 0.8),
                  contrast=(0.03, 0.15), tex=(('plain', 0.5), ('noise', 0.3), ('checker', 0.2))),
    TABLE: dict(h=(0.04, 0.1), s=(0.3, 0.7), v=(0.25, 0.6), scale=(0.05, 0.2),
                contrast=(0.1, 0.4), tex=(('stripes', 0.5), ('noise', 0.3), ('plain', 0.2))),
    CABINET: dict(h=(0.0, 1.0), s=(0.0, 0.35), v=(0.3, 0.9), scale=(0.1, 0.5),
                  contrast=(0.1, 0.4),
                  tex=(('plain', 0.35), ('stripes', 0.25), ('checker', 0.2), ('noise', 0.2))),
    BALL: dict(h=(0.0, 1.0), s=(0.5, 0.9), v=(0.5, 0.95), scale=(0.08, 0.25),
               contrast=(0.3, 0.8), tex=(('checker', 0.4), ('stripes', 0.4), ('plain', 0.2))),
    VASE: dict(h=(0.0, 1.0), s=(0.2, 0.7), v=(0.3, 0.9), scale=(0.04, 0.15),
               contrast=(0.2, 0.6),
               tex=(('stripes', 0.35), ('noise', 0.25), ('checker', 0.2), ('plain', 0.2))),
    PILLAR: dict(h=(0.0, 1.0), s=(0.0, 0.1), v=(0.5, 0.85), scale=(0.1, 0.5),
                 contrast=(0.05, 0.3), tex=(('noise', 0.45), ('plain', 0.35), ('stripes', 0.2))),
}
#: the 'alt' style: vivid complementary colours, other texture families, larger contrast
_ALT_TEX = (('grid', 0.3), ('dots', 0.25), ('waves', 0.25), ('noise', 0.2))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] -> linear-light RGB (3,) (the HSV values are taken as sRGB)."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) ** _GAMMA


def _choice(rng: np.random.Generator, options) -> str:
    """Pick a name from ((name, probability), ...)."""
    names, probs = zip(*options)
    probs = np.asarray(probs, dtype=np.float64)
    return names[int(rng.choice(len(names), p=probs / probs.sum()))]


def _sample_material(rng: np.random.Generator, cls: int, style: str) -> dict:
    """Texture and colours of one surface of class ``cls`` in ``style``."""
    look = _DEFAULT_LOOK[cls]
    if style == 'default':
        h, s, v = (rng.uniform(*look[k]) for k in ('h', 's', 'v'))
        tex = _choice(rng, look['tex'])
        scale = rng.uniform(*look['scale'])
        contrast = rng.uniform(*look['contrast'])
        v2 = v * (1 - contrast) if v > 0.45 else min(1.0, v * (1 + 1.5 * contrast))
        c1, c2 = _hsv(h, s, v), _hsv(h + rng.uniform(-0.03, 0.03), min(1.0, s * 1.1), v2)
    else:
        h = rng.uniform(0, 1)
        c1 = _hsv(h, rng.uniform(0.55, 1.0), rng.uniform(0.45, 1.0))
        c2 = _hsv(h + rng.uniform(0.3, 0.7), rng.uniform(0.4, 1.0), rng.uniform(0.1, 0.6))
        tex = _choice(rng, _ALT_TEX)
        scale = rng.uniform(*look['scale']) * rng.uniform(1.0, 2.0)
    return dict(tex=tex, scale=float(scale), angle=float(rng.uniform(0, math.pi)),
                c1=c1, c2=c2, duty=float(rng.uniform(0.08, 0.2)), lattice=rng.random((32, 32)))


def _sample_appearance(layout: dict, seed: int, style: str) -> dict:
    """Materials of every surface and the lights of scene ``seed`` in ``style``."""
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    rng = _rng(seed, 1)
    lx, ly, hz = layout['room']
    wall = _sample_material(rng, WALL, style)
    walls = [wall if rng.random() < 0.7 else _sample_material(rng, WALL, style) for _ in range(4)]
    room = [_sample_material(rng, FLOOR, style), _sample_material(rng, CEILING, style)] + walls
    objects = [_sample_material(rng, obj['cls'], style) for obj in layout['objects']]

    def light_pos():
        """A point light position under the ceiling, outside tall furniture."""
        for _ in range(50):
            p = np.array([rng.uniform(0.4, lx - 0.4), rng.uniform(0.4, ly - 0.4),
                          hz - rng.uniform(0.2, 0.5)])
            if all(math.hypot(p[0] - o['center'][0], p[1] - o['center'][1])
                   > _footprint_radius(o) + 0.1 or _object_top(o) < p[2] - 0.1
                   for o in layout['objects']):  # not inside a pillar or a cabinet
                return p
        return np.array([lx / 2, ly / 2, hz - 0.05])

    def direction(elev_lo: float, elev_hi: float) -> np.ndarray:
        """Unit travel direction of a directional light coming down from the given elevations."""
        az, el = rng.uniform(0, 2 * math.pi), rng.uniform(elev_lo, elev_hi)
        return -np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])

    lights = []
    if style == 'default':
        for _ in range(int(rng.integers(1, 3))):
            lights.append(dict(kind='point', pos=light_pos(), intensity=rng.uniform(1.2, 2.0),
                               color=_hsv(rng.uniform(0.07, 0.13), rng.uniform(0.05, 0.25), 1.0)))
        if rng.random() < 0.3:
            lights.append(dict(kind='dir', dir=direction(0.4, 1.1), intensity=rng.uniform(0.2, 0.5),
                               color=np.ones(3)))
        ambient = rng.uniform(0.22, 0.38) * np.ones(3)
        exposure = rng.uniform(1.4, 1.8)
    else:
        lights.append(dict(kind='dir', dir=direction(0.2, 0.9), intensity=rng.uniform(0.9, 1.4),
                           color=_hsv(rng.uniform(0.5, 0.75), rng.uniform(0.2, 0.5), 1.0)))
        if rng.random() < 0.6:
            lights.append(dict(kind='point', pos=light_pos(), intensity=rng.uniform(0.8, 1.6),
                               color=_hsv(rng.uniform(0, 1), rng.uniform(0.4, 0.8), 1.0)))
        ambient = rng.uniform(0.06, 0.16) * _hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.5), 1.0)
        exposure = rng.uniform(1.8, 2.6)
    return dict(room=room, objects=objects, lights=lights, ambient=ambient, exposure=exposure)


def _footprint_radius(obj: dict) -> float:
    """Radius of a circle around an object's floor footprint."""
    if obj['kind'] == 'box':
        return float(math.hypot(obj['half'][0], obj['half'][1]))
    return float(obj['radius'])


# ----------------------------------------------------------------------- ray intersection
def _safe_dir(D: np.ndarray) -> np.ndarray:
    """Replace exact zeros in ray directions by a tiny value of the same sign convention."""
    return np.where(D == 0, 1e-12, D)


def _hit_room(O: np.ndarray, D: np.ndarray, room: np.ndarray) -> np.ndarray:
    """(N,) exit parameter of rays starting inside the box [0, room]."""
    Ds = _safe_dir(D)
    t = np.where(Ds > 0, (room - O) / Ds, -O / Ds)  # (N, 3) per-axis exit
    return t.min(axis=-1)


def _hit_object(O: np.ndarray, D: np.ndarray, obj: dict) -> np.ndarray:
    """(N,) nearest hit parameter (> _T_MIN) of rays O + t D with one object; inf = miss."""
    kind = obj['kind']
    if kind == 'box':
        rot = _rot_z(obj['yaw'])
        Ol = (O - obj['center']) @ rot  # (N, 3) local frame (rot^T applied to row vectors)
        Dl = _safe_dir(D @ rot)
        t1, t2 = (-obj['half'] - Ol) / Dl, (obj['half'] - Ol) / Dl
        t_near = np.minimum(t1, t2).max(axis=-1)
        t_far = np.maximum(t1, t2).min(axis=-1)
        return np.where((t_near <= t_far) & (t_near > _T_MIN), t_near, np.inf)
    if kind == 'sphere':
        oc = O - obj['center']
        a, b = _dot(D, D), _dot(oc, D)
        disc = b * b - a * (_dot(oc, oc) - obj['radius'] ** 2)
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a
        return np.where((disc >= 0) & (t > _T_MIN), t, np.inf)
    # vertical cylinder: side wall, then the two caps
    cx, cy = obj['center']
    r, z0, z1 = obj['radius'], obj['z0'], obj['z1']
    ox, oy, oz = O[..., 0] - cx, O[..., 1] - cy, O[..., 2]
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


# ------------------------------------------------------------------------------ texturing
def _square_wave(x: np.ndarray, w: np.ndarray, duty: float = 0.5) -> np.ndarray:
    """Unit-period square wave (1 on the last ``duty`` of each period) box-filtered over ``w``."""
    w = np.maximum(w, 1e-4)

    def integral(y):
        """Antiderivative of the square wave."""
        f = np.floor(y)
        return f * duty + np.maximum(y - f - (1.0 - duty), 0.0)

    return (integral(x + w / 2) - integral(x - w / 2)) / w


def _value_noise(s: np.ndarray, t: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] from a periodic random lattice, at unit lattice spacing."""
    n = lattice.shape[0]
    i, j = np.floor(s), np.floor(t)
    fs, ft = s - i, t - j
    fs, ft = fs * fs * (3 - 2 * fs), ft * ft * (3 - 2 * ft)
    i0, j0 = i.astype(np.int64) % n, j.astype(np.int64) % n
    i1, j1 = (i0 + 1) % n, (j0 + 1) % n
    top = lattice[i0, j0] * (1 - fs) + lattice[i1, j0] * fs
    bottom = lattice[i0, j1] * (1 - fs) + lattice[i1, j1] * fs
    return top * (1 - ft) + bottom * ft


def _texture(mat: dict, uv: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """(M, 2) surface coordinates (metres) + (M,) pixel footprint (metres) -> (M, 3) albedo."""
    tex, scale = mat['tex'], mat['scale']
    c, s = math.cos(mat['angle']), math.sin(mat['angle'])
    a = (c * uv[:, 0] + s * uv[:, 1]) / scale  # rotated texture coordinates, in periods
    b = (-s * uv[:, 0] + c * uv[:, 1]) / scale
    w = footprint / scale  # filter width in periods
    if tex == 'plain':
        value = np.zeros(len(uv))
    elif tex == 'stripes':
        value = _square_wave(a, w)
    elif tex == 'checker':
        fa, fb = _square_wave(a, w), _square_wave(b, w)
        value = fa + fb - 2 * fa * fb  # filtered XOR of two square waves
    elif tex == 'grid':
        la, lb = _square_wave(a, w, mat['duty']), _square_wave(b, w, mat['duty'])
        value = 1 - (1 - la) * (1 - lb)
    elif tex == 'dots':
        r = np.hypot(a - np.floor(a) - 0.5, b - np.floor(b) - 0.5)
        value = np.clip((0.3 - r) / np.maximum(w, 1e-3) + 0.5, 0, 1)
        mean = math.pi * 0.09
        value = mean + (value - mean) * np.clip(1 - w, 0, 1)
    elif tex == 'waves':
        value = 0.5 + 0.5 * np.sin(2 * math.pi * (a + 0.3 * np.sin(2 * math.pi * b / 3)))
        value = 0.5 + (value - 0.5) * np.exp(-(math.pi * w) ** 2 / 2)
    elif tex == 'noise':
        lat = mat['lattice']
        n1 = _value_noise(a * 2, b * 2, lat) - 0.5
        n2 = _value_noise(a * 5 + 17.0, b * 5 + 31.0, lat) - 0.5
        value = 0.5 + 1.4 * (0.65 * n1 * np.clip(1 - 2 * w, 0, 1)
                             + 0.35 * n2 * np.clip(1 - 5 * w, 0, 1))  # fade what aliases
        value = np.clip(value, 0, 1)
    else:
        raise ValueError(f'unknown texture {tex!r}')
    return mat['c1'] + (mat['c2'] - mat['c1']) * value[:, None]


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


def _hit_candidates(O: np.ndarray, D: np.ndarray, obj: dict, cand) -> np.ndarray:
    """(N,) hit parameters of ``_hit_object`` evaluated only where ``cand`` (inf elsewhere)."""
    if cand is None:
        return _hit_object(O, D, obj)
    t = np.full(len(D), np.inf)
    idx = np.nonzero(cand)[0]
    if idx.size:
        t[idx] = _hit_object(O if O.ndim == 1 else O[idx], D[idx], obj)
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


# ----------------------------------------------------------------------- dataset writer
def scene_name(scene: int, style: str = 'default') -> str:
    """Building name of scene ``scene``: ``scene_0000`` (``alt_scene_0000`` for style 'alt')."""
    return f'scene_{scene:04d}' if style == 'default' else f'{style}_scene_{scene:04d}'


_TASKS = None


def synthetic_tasks() -> dict:
    """The four task objects whose Taskonomy encoders ``generate`` uses, keyed by task name."""
    global _TASKS
    if _TASKS is None:
        from mtl_adapters.tasks import DepthTask, EdgeTask, NormalTask, SemanticTask
        _TASKS = dict(seg=SemanticTask(num_classes=len(SYNTHETIC_CLASSES),
                                       class_names=SYNTHETIC_CLASSES),
                      depth=DepthTask(), normal=NormalTask(), edge=EdgeTask())
    return _TASKS


def view_paths(out_dir, building: str, point: int) -> Dict[str, Path]:
    """Paths of the five files of one view: 'rgb' and one per task name."""
    from mtl_adapters.datasets.taskonomy import RGB_FOLDER, taskonomy_path
    paths = {name: taskonomy_path(out_dir, t.taskonomy_folder, building, point, 0,
                                  t.taskonomy_domain) for name, t in synthetic_tasks().items()}
    paths['rgb'] = taskonomy_path(out_dir, RGB_FOLDER, building, point, 0, 'rgb')
    return paths


def _generate_view(job: tuple) -> str:
    """Render and write one view unless its five files exist; returns 'rendered' or 'skipped'."""
    from mtl_adapters.utils.io import write_png
    out_dir, building, point, seed, size, style = job
    paths = view_paths(out_dir, building, point)
    if all(p.is_file() for p in paths.values()):
        return 'skipped'
    sample = render_view(seed, size, style, view=point)
    for name, task in synthetic_tasks().items():
        write_png(paths[name], task.encode_taskonomy(sample[name]))
    write_png(paths['rgb'], sample['rgb'])  # last: the loader lists views by their RGB file
    return 'rendered'


def _refuse_stale_views(out: Path, wanted: set, num_scenes: int, views_per_scene: int) -> None:
    """Refuse a folder holding views these settings would not write (an earlier run with more
    scenes or views): the loader would read them too, while meta.json describes fewer."""
    rgb = out / 'rgb'
    if not rgb.is_dir():
        return
    stale = []
    for path in sorted(rgb.glob('*/point_*_view_0_domain_rgb.png')):
        point = int(path.name.split('_')[1])
        if (path.parent.name, point) not in wanted:
            stale.append(str(path.relative_to(out)))
    if stale:
        raise ValueError(
            f'{out} holds {len(stale)} views that {num_scenes} scenes x {views_per_scene} views '
            f'would not write (e.g. {stale[:3]}), left by an earlier run with more scenes or '
            'views; the dataset would load them too. Use another output folder, ask for at '
            'least as many scenes and views as before, or delete the folder.')


def _split_counts(num_scenes: int, splits: Sequence[float]) -> Tuple[int, int, int]:
    """Fractions (summing to 1) or explicit integer counts (summing to num_scenes) -> counts."""
    if len(splits) != 3:
        raise ValueError(f'splits must be (train, val, test), got {splits}')
    if all(isinstance(s, (int, np.integer)) for s in splits) and sum(splits) == num_scenes:
        return tuple(int(s) for s in splits)
    fr = np.asarray(splits, dtype=np.float64)
    if np.any(fr < 0) or abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f'splits {tuple(splits)}: give fractions summing to 1 or integer counts '
                         f'summing to num_scenes={num_scenes}')
    val, test = (int(round(f * num_scenes)) for f in fr[1:])
    # a split with a positive fraction gets at least one scene when there are enough scenes
    if num_scenes >= int((fr > 0).sum()):
        val, test = max(val, int(fr[1] > 0)), max(test, int(fr[2] > 0))
    train = num_scenes - val - test
    if train < int(fr[0] > 0):
        raise ValueError(f'splits {tuple(splits)} leave no training scene of {num_scenes}')
    return train, val, test


def _meta(classes, size, style, seed, K, num_scenes, views_per_scene, split_scenes) -> dict:
    """Content of meta.json (deterministic: no timestamps)."""
    tasks = synthetic_tasks()
    return dict(dataset='synthetic_scenes', format='taskonomy', classes=list(classes),
                num_classes=len(classes), seg_encoding='segment_semantic value = train id + 1',
                size=list(size), style=style, seed=int(seed), K=np.asarray(K).tolist(),
                hfov_deg=HFOV_DEG, num_scenes=num_scenes, views_per_scene=views_per_scene,
                splits={k: len(v) for k, v in split_scenes.items()},
                tasks={name: dict(folder=t.taskonomy_folder, domain=t.taskonomy_domain)
                       for name, t in tasks.items()})


def generate(out_dir, num_scenes: int = 35, views_per_scene: int = 20,
             size: Size = DEFAULT_SIZE, seed: int = 0, style: str = 'default',
             splits: Sequence[float] = DEFAULT_SPLITS, workers: Optional[int] = None,
             progress: bool = True) -> dict:
    """Write ``num_scenes`` x ``views_per_scene`` synthetic views in Taskonomy's format.

    Layout: ``<out_dir>/rgb/<scene>/point_<P>_view_0_domain_rgb.png`` and, per task,
    ``<out_dir>/<folder>/<scene>/point_<P>_view_0_domain_<domain>.png`` (the tasks'
    ``encode_taskonomy``), ``splits.csv`` (``id,train,val,test``, CR-only) and ``meta.json``.
    ``splits``: (train, val, test) fractions or integer scene counts. Resumable: views whose
    five files exist are skipped; files are written atomically. Deterministic for any
    ``workers`` (default ``min(2, os.cpu_count())``). Returns a summary dict.
    """
    from tqdm import tqdm

    from mtl_adapters.datasets.taskonomy import read_split_csv, write_split_csv
    from mtl_adapters.utils.io import atomic_write_bytes

    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    if num_scenes < 1 or views_per_scene < 1:
        raise ValueError(f'num_scenes ({num_scenes}) and views_per_scene ({views_per_scene}) '
                         'must be >= 1')
    size = _as_size(size)
    out = Path(out_dir)
    meta_path = out / 'meta.json'
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        theirs = {k: old.get(k) for k in ('size', 'style', 'seed', 'classes')}
        ours = dict(size=list(size), style=style, seed=int(seed), classes=list(SYNTHETIC_CLASSES))
        if theirs != ours:
            raise ValueError(f'{meta_path} was generated with {theirs}, not {ours}: the views '
                             'would not match. Use another output folder or delete this one.')
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    counts = _split_counts(num_scenes, splits)
    scenes = [scene_name(i, style) for i in range(num_scenes)]
    bounds = np.cumsum((0,) + counts)
    split_scenes = {name: scenes[bounds[i]:bounds[i + 1]] for i, name in enumerate(_SPLIT_NAMES)}
    jobs = [(str(out), scenes[i], p, scene_seed(seed, i), size, style)
            for i in range(num_scenes) for p in range(views_per_scene)]
    _refuse_stale_views(out, {(job[1], job[2]) for job in jobs}, num_scenes, views_per_scene)

    K = camera_intrinsics(size)
    meta = _meta(SYNTHETIC_CLASSES, size, style, seed, K, num_scenes, views_per_scene, split_scenes)
    meta_bytes = (json.dumps(meta, indent=2, sort_keys=True) + '\n').encode()
    if not meta_path.is_file() or meta_path.read_bytes() != meta_bytes:
        # first, so an interrupted run resumed with other settings is caught by the check above
        atomic_write_bytes(meta_path, meta_bytes)

    synthetic_tasks()  # import the task classes once, before any fork
    start = time.perf_counter()
    status = []
    bar = dict(total=len(jobs), disable=not progress, desc=f'synthetic {style} {size[0]}x{size[1]}',
               unit='view')
    if workers > 1:
        # a process pool that notices a dead worker (multiprocessing.Pool would wait forever
        # for the lost task): the run fails at once and, resumable, can simply be run again
        methods = mp.get_all_start_methods()
        ctx = mp.get_context('fork' if 'fork' in methods else None)
        chunk = max(1, min(16, len(jobs) // (workers * 4)))
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            try:
                for res in tqdm(pool.map(_generate_view, jobs, chunksize=chunk), **bar):
                    status.append(res)
            except BrokenProcessPool as err:
                raise RuntimeError(
                    f'a rendering worker died (killed, or out of memory) after {len(status)} '
                    f'of {len(jobs)} views; every view written so far is complete (atomic '
                    f'writes). Run the same command again to resume.') from err
    else:
        for job in tqdm(jobs, **bar):
            status.append(_generate_view(job))
    seconds = time.perf_counter() - start

    csv_path = out / 'splits.csv'
    if not csv_path.is_file() or read_split_csv(csv_path) != split_scenes:
        write_split_csv(csv_path, split_scenes)
    rendered = status.count('rendered')
    return dict(out_dir=str(out), style=style, seed=int(seed), size=list(size),
                num_scenes=num_scenes, views_per_scene=views_per_scene, num_views=len(jobs),
                rendered=rendered, skipped=status.count('skipped'), workers=workers,
                seconds=seconds, images_per_s=rendered / seconds if seconds > 0 else float('nan'),
                splits={k: len(v) for k, v in split_scenes.items()}, K=K.tolist())
