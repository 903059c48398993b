"""Scene geometry of the synthetic generator: classes, random streams, room layouts, cameras.

Everything here is drawn from the scene's ``(scene_seed, 0)`` stream (room and furniture) or its
``(scene_seed, 2, view)`` streams (camera poses); the pinhole camera's intrinsics live here too.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple, Union

import numpy as np

#: the fixed class list; train id k is the k-th name (stored as k + 1 in segment_semantic)
SYNTHETIC_CLASSES = ('floor', 'wall', 'ceiling', 'table', 'cabinet', 'ball', 'vase', 'pillar')
FLOOR, WALL, CEILING, TABLE, CABINET, BALL, VASE, PILLAR = range(len(SYNTHETIC_CLASSES))
#: horizontal field of view of the pinhole camera (degrees); square pixels
HFOV_DEG = 60.0

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


def _footprint_radius(obj: dict) -> float:
    """Radius of a circle around an object's floor footprint."""
    if obj['kind'] == 'box':
        return float(math.hypot(obj['half'][0], obj['half'][1]))
    return float(obj['radius'])


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
