"""Binary thinning to 1-pixel-wide curves, as the boundary benchmark applies it
(:mod:`mtl_adapters.tasks.boundary`): the two-subiteration parallel thinning of Guo & Hall
(as compared by Lam, Lee & Suen 1992), the algorithm of MATLAB's ``bwmorph(..., 'thin', Inf)``,
written from its published conditions and tested pixel-identical to
``skimage.morphology.thin``."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

#: offsets (dy, dx) of the 8 neighbours x1..x8 of Guo-Hall thinning: E, NE, N, NW, W, SW, S, SE
#: (counter-clockwise from east; rows grow downwards); bit i-1 of a neighbourhood code is x_i
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _thinning_luts() -> Tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two subiterations, indexed by the 8-bit neighbourhood code.

    A pixel p with neighbours x1..x8 (x9 = x1) is deleted when (G1) its crossing number
    ``X_H(p) = #{i in 1..4 : x_{2i-1} = 0 and (x_{2i} or x_{2i+1})}`` is 1, (G2)
    ``2 <= min(n1, n2) <= 3`` with ``n1 = sum_k (x_{2k-1} or x_{2k})`` and
    ``n2 = sum_k (x_{2k} or x_{2k+1})``, and (G3) ``(x2 or x3 or not x8) and x1`` is false in
    the first subiteration, (G3') ``(x6 or x7 or not x4) and x5`` is false in the second.
    """
    codes = np.arange(256)
    x = [None] + [(codes >> i) & 1 for i in range(8)]  # x[1..8]
    x.append(x[1])                                       # x9 = x1
    crossing = sum((x[2 * i - 1] == 0) & ((x[2 * i] | x[2 * i + 1]) == 1) for i in range(1, 5))
    n1 = sum(x[2 * k - 1] | x[2 * k] for k in range(1, 5))
    n2 = sum(x[2 * k] | x[2 * k + 1] for k in range(1, 5))
    base = (crossing == 1) & (np.minimum(n1, n2) >= 2) & (np.minimum(n1, n2) <= 3)
    first = base & ~(((x[2] | x[3] | (1 - x[8])) & x[1]) == 1)
    second = base & ~(((x[6] | x[7] | (1 - x[4])) & x[5]) == 1)
    return first, second


_LUTS = _thinning_luts()


def thin(mask: np.ndarray) -> np.ndarray:
    """Thin a binary map to 1-pixel-wide curves (Guo-Hall two-subiteration parallel thinning).

    The same result as ``skimage.morphology.thin(mask)`` (and MATLAB's ``bwmorph(mask, 'thin',
    Inf)``), but a subiteration only revisits the pixels whose neighbourhood changed in the two
    previous subiterations (a pixel that a rule kept stays kept by that rule until its
    neighbourhood changes; interior pixels are never deleted), so a thick region costs about
    its number of deleted pixels instead of the image area times the number of iterations.
    Subiterations with many candidates are evaluated densely over the whole image instead.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f'thin: expected a 2-D map, got shape {mask.shape}')
    out = np.zeros(mask.shape, dtype=bool)
    out.ravel()[thin_indices(mask.shape, np.flatnonzero(mask))] = True
    return out


def thin_indices(shape: Tuple[int, int], fg: np.ndarray) -> np.ndarray:
    """:func:`thin` of the map whose set pixels are the flat indices ``fg`` (distinct) ->
    the flat indices of the thinned map (unordered). Costs O(len(fg)) when ``fg`` is small."""
    h, w = shape
    wp = w + 2
    padded = np.zeros((h + 2, wp), dtype=bool)
    img = padded.ravel()  # a view: flat indices address the padded image
    y, x = np.divmod(np.asarray(fg, dtype=np.int64), w)
    fg = (y + 1) * wp + (x + 1)
    img[fg] = True
    offsets = np.array([dy * wp + dx for dy, dx in _NEIGHBOURS], dtype=np.int64)
    dense_above = max(64, h * w // 3)  # candidates beyond which a dense pass is cheaper
    stamp = np.zeros(img.size, dtype=np.int64)
    flags = np.zeros_like(padded)

    def dense_codes() -> np.ndarray:
        code = np.zeros((h, w), dtype=np.uint8)
        for bit, (dy, dx) in enumerate(_NEIGHBOURS):
            code |= padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w].view(np.uint8) << bit
        return code

    def unique(idx: np.ndarray) -> np.ndarray:
        """``idx`` without repeats, in O(n) (the last occurrence of each value is kept)."""
        order = np.arange(idx.size)
        stamp[idx] = order
        return idx[stamp[idx] == order]

    cand = None if fg.size > dense_above else fg  # None: every pixel (a dense pass)
    deleted: List[np.ndarray] = []
    border = None
    step = 0
    while True:
        lut = _LUTS[step % 2]
        if cand is None:
            code = dense_codes()
            np.logical_and(lut[code], padded[1:-1, 1:-1], out=flags[1:-1, 1:-1])
            gone = np.flatnonzero(flags)
            if step == 0:  # pixels with a background neighbour
                np.logical_and(code != 255, padded[1:-1, 1:-1], out=flags[1:-1, 1:-1])
                border = np.flatnonzero(flags)
        else:
            code = np.zeros(cand.size, dtype=np.uint8)
            for bit, off in enumerate(offsets):
                code |= img[cand + off].view(np.uint8) << bit
            gone = cand[lut[code]]
            if step == 0:
                border = cand[code != 255]
        img[gone] = False
        deleted.append(gone)
        if step >= 1 and deleted[-1].size == 0 and deleted[-2].size == 0:
            break
        step += 1
        # next candidates: pixels whose neighbourhood changed since that rule last saw them
        # (deletions of the last two subiterations); the second rule also sees the border
        recent = np.concatenate(deleted[-2:])
        if recent.size * 3 > dense_above:
            cand = None
        else:
            near = (recent[:, None] + offsets[None, :]).ravel()
            if step == 1:
                near = np.concatenate([near, border])
            near = unique(near)
            cand = near[img[near]]
            if cand.size > dense_above:
                cand = None
        if len(deleted) > 2:
            deleted.pop(0)
    kept = fg[img[fg]]
    y, x = np.divmod(kept, wp)
    return (y - 1) * w + (x - 1)
