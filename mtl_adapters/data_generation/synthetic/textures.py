"""Appearance of the synthetic scenes: styles, materials, lights and procedural textures.

Materials and lights are drawn from the scene's ``(scene_seed, 1)`` stream with the
distributions of the chosen style; the textures (checker, stripes, value noise, grid, dots,
waves) are box-filtered over the pixel footprint so they do not alias.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np

from .layout import (BALL, CABINET, CEILING, FLOOR, PILLAR, TABLE, VASE, WALL,
                     _footprint_radius, _object_top, _rng)

#: appearance styles: 'alt' is a second domain (palette, textures, lighting) for DG studies;
#: 'shifted' a calibrated one for the claims study: the default's per-class looks moved (hues
#: turned half way round, brightness order reversed, each texture family swapped for another,
#: cool directional light), so appearance still tells the classes apart, as in a real domain
STYLES = ('default', 'alt', 'shifted')
#: display gamma: colours are sampled in sRGB and lit in linear light
_GAMMA = 2.2


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
#: the 'shifted' style's texture family for each of the default's (same probabilities)
_SHIFTED_TEX = {'stripes': 'waves', 'checker': 'grid', 'noise': 'dots', 'plain': 'plain'}


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
    if style in ('default', 'shifted'):
        h, s, v = (rng.uniform(*look[k]) for k in ('h', 's', 'v'))
        tex = _choice(rng, look['tex'])
        scale = rng.uniform(*look['scale'])
        contrast = rng.uniform(*look['contrast'])
        if style == 'shifted':
            h, s, v = h + 0.5, min(1.0, 1.2 * s + 0.15), min(0.95, max(0.12, 1.05 - v))
            tex, scale = _SHIFTED_TEX[tex], scale * 1.5
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
        if style == 'shifted':      # lit enough that the reversed brightness order shows
            ambient = rng.uniform(0.2, 0.32) * _hsv(rng.uniform(0.5, 0.7), 0.15, 1.0)
            exposure = rng.uniform(1.6, 2.1)
    return dict(room=room, objects=objects, lights=lights, ambient=ambient, exposure=exposure)


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
