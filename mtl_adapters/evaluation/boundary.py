"""Boundary precision / recall: ODS F, OIS F and AP as the BSDS and NYUD benchmarks define them.

Written from the published definition (Martin, Fowlkes & Malik, *Learning to detect natural
image boundaries using local brightness, color, and texture cues*, PAMI 2004; Arbelaez et al.,
*Contour detection and hierarchical image segmentation*, PAMI 2011), in NumPy/SciPy only; no
code of the original benchmark was read or used.

Per image and per threshold ``t`` (``thresholds``: an int N means N values uniformly spaced
strictly inside ``(0, max_value)``, ``max_value * k / (N + 1)`` for k = 1..N, as the 99
thresholds of BSDS on probability maps; a list is used sorted):

1. the prediction is binarised, ``pred >= t``, and thinned to 1-pixel width (:func:`thin`:
   the two-subiteration parallel thinning of Guo & Hall, as compared by Lam, Lee & Suen 1992,
   the algorithm of MATLAB's ``bwmorph(..., 'thin', Inf)`` that the benchmark applies; here
   written from its published conditions, tested pixel-identical to
   ``skimage.morphology.thin``);
2. the ground-truth boundary is ``gt > gt_threshold`` (ground truth in [0, 1]; 0.5 for binary
   boundary maps), thinned the same way when ``thin_gt`` (the default);
3. predicted and ground-truth boundary pixels are matched one to one, a pair being allowed when
   their Euclidean distance is at most ``max_dist * diagonal`` pixels (inclusive; ``diagonal``
   = ``sqrt(H^2 + W^2)`` of the evaluated region, i.e. of the bounding box of the valid
   pixels; ``max_dist`` 0.0075 for BSDS, 0.011 for NYUD), by an **exact maximum-cardinality
   bipartite matching** on the graph of allowed pairs (a unit-capacity maximum flow, Dinic's
   algorithm, O(E sqrt(V)) like Hopcroft-Karp; candidate pairs from a k-d tree);
4. the counts ``cntP`` (matched predicted pixels), ``sumP`` (predicted pixels), ``cntR``
   (matched ground-truth pixels) and ``sumR`` (ground-truth pixels) are kept per threshold.
   With several annotators (a list of ground-truth maps, as BSDS has) a predicted pixel counts
   as matched when it matches any annotator, and ``cntR``/``sumR`` sum over the annotators.

The original benchmark computes the correspondence as a *minimum-cost* bipartite assignment
(Martin et al. 2004): pairs within the tolerance cost their distance, and a pixel may instead
be left unmatched as an "outlier" at a high fixed cost. Since leaving two pixels unmatched
costs far more than any allowed distance, that assignment has (up to the approximations of its
solver) maximum cardinality, with ties broken by the smallest total distance. The counts depend
only on the cardinality, so they agree; ours ignores distances altogether (it never trades a
match for shorter distances) and needs no integer cost scaling.

Dataset scores, from the counts (``P = cntP / sumP``, ``R = cntR / sumR``, 0 when the
denominator is 0; ``F = 2PR / (P + R)``, 0 when ``P + R = 0``), reported in percent:

* **ODS F** (optimal dataset scale): the counts are summed over all images per threshold, and
  ODS F is the largest F over the thresholds (the lowest such threshold is ``odsT``). With
  ``interpolate=True`` P and R are also interpolated linearly between consecutive thresholds
  (100 points per interval) and the best F along that polyline is taken (the benchmark's
  scripts are reported to do this); it can only raise ODS F, by little with 99 thresholds.
* **OIS F** (optimal image scale): each image gets its own best threshold (the largest per-image
  F; the lowest such threshold on ties, so an image without any ground-truth boundary, whose F
  is 0 everywhere, contributes at the lowest threshold), then the counts of every image at its
  threshold are summed and OIS F is the F of these sums (not the mean of per-image F's).
* **AP**: the area under the dataset precision-recall curve, recall on the x axis: the points
  ``(R(t), P(t))`` of the thresholds that predict any pixel, in order of recall (the highest
  precision where recalls are equal), joined by straight lines, extended at constant precision
  from the smallest recall down to recall 0 and with precision 0 beyond the largest recall, so
  a perfect detector gets 100. (Versions that sample the curve at recall 0, 0.01, ..., 1 or
  count empty predictions as P = 0 differ from this by a little.)

:func:`boundary_counts` gives one image's counts, :func:`boundary_scores` the scores of a set,
:func:`evaluate_boundaries` both, over worker processes; ``EdgeTask(metric_cfg=dict(
boundary=True))`` reports them through ``MultiTaskMetric``.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

#: offsets (dy, dx) of the 8 neighbours x1..x8 of Guo-Hall thinning: E, NE, N, NW, W, SW, S, SE
#: (counter-clockwise from east; rows grow downwards); bit i-1 of a neighbourhood code is x_i
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
#: counts of ``boundary_counts``, in this order
COUNT_KEYS = ('cntP', 'sumP', 'cntR', 'sumR')


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
    out.ravel()[_thin_indices(mask.shape, np.flatnonzero(mask))] = True
    return out


def _thin_indices(shape: Tuple[int, int], fg: np.ndarray) -> np.ndarray:
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


def make_thresholds(thresholds: Union[int, Sequence[float]] = 99,
                    max_value: float = 1.0) -> np.ndarray:
    """An int N -> ``max_value * k / (N + 1)`` for k = 1..N; a sequence -> itself, sorted."""
    if isinstance(thresholds, (int, np.integer)):
        if thresholds < 1:
            raise ValueError(f'thresholds: need at least 1, got {thresholds}')
        n = int(thresholds)
        return max_value * np.arange(1, n + 1, dtype=np.float64) / (n + 1)
    out = np.sort(np.asarray(list(thresholds), dtype=np.float64))
    if out.ndim != 1 or out.size == 0:
        raise ValueError(f'thresholds: expected an int or a non-empty list, got {thresholds!r}')
    return out


class _GroundTruthIndex:
    """One ground-truth boundary map, prepared for repeated matching against predictions."""

    def __init__(self, gt_b: np.ndarray, tol: float):
        from scipy import ndimage
        from scipy.spatial import cKDTree
        self.tol = tol
        points = np.argwhere(gt_b)
        self.n = len(points)
        self.tree = cKDTree(points) if self.n else None
        # pixels farther than the tolerance from every ground-truth pixel can match nothing
        self.near = (ndimage.distance_transform_edt(~gt_b) <= tol) if self.n else \
            np.zeros_like(gt_b)
        self._last = (None, None)

    def match(self, pred_idx: np.ndarray, width: int) -> Tuple[np.ndarray, int]:
        """Maximum matching of the predicted pixels ``pred_idx`` (flat indices of an image
        ``width`` wide) -> (flat indices of the matched ones, number of matches)."""
        from scipy.spatial import cKDTree
        near = np.sort(pred_idx[self.near.ravel()[pred_idx]])
        if near.size == 0:
            return near, 0
        if self._last[0] is not None and np.array_equal(near, self._last[0]):
            return self._last[1]  # only pixels out of reach changed: the same matching
        y, x = np.divmod(near, width)
        pairs = cKDTree(np.stack([y, x], axis=1)).sparse_distance_matrix(
            self.tree, self.tol, output_type='ndarray')  # every pair within the tolerance
        matched = _max_matching(pairs['i'], pairs['j'], near.size, self.n)
        result = (near[matched], int(matched.sum()))
        self._last = (near, result)
        return result


def _max_matching(rows: np.ndarray, cols: np.ndarray, n_left: int, n_right: int) -> np.ndarray:
    """Bool mask of the left vertices covered by a maximum-cardinality matching of the
    bipartite graph with edges ``rows[i] - cols[i]``.

    Solved as a unit-capacity maximum flow (source -> left -> right -> sink) with Dinic's
    algorithm (``scipy.sparse.csgraph.maximum_flow``), O(E sqrt(V)) like Hopcroft-Karp.
    (``scipy.sparse.csgraph.maximum_bipartite_matching`` is avoided: its depth-first search does
    not remember dead ends and takes exponential time on the layered graphs that nearby curves
    make, scipy issue #26147.)
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow
    if rows.size == 0:
        return np.zeros(n_left, dtype=bool)
    src, sink = n_left + n_right, n_left + n_right + 1
    tail = np.concatenate([np.full(n_left, src), rows, n_left + np.arange(n_right)])
    head = np.concatenate([np.arange(n_left), n_left + cols, np.full(n_right, sink)])
    graph = csr_matrix((np.ones(tail.size, dtype=np.int32), (tail, head)),
                       shape=(sink + 1, sink + 1))
    flow = maximum_flow(graph, src, sink, method='dinic').flow
    return flow[[src]].toarray()[0, :n_left] > 0


def _as_list(gt) -> List[np.ndarray]:
    if isinstance(gt, np.ndarray) and gt.ndim == 2:
        return [gt]
    if isinstance(gt, np.ndarray) and gt.ndim == 3:
        return list(gt)
    return [np.asarray(g) for g in gt]


def boundary_counts(pred: np.ndarray, gt, thresholds: Union[int, Sequence[float]] = 99,
                    max_dist: float = 0.0075, gt_threshold: float = 0.5, thin_gt: bool = True,
                    valid: Optional[np.ndarray] = None, max_value: float = 1.0
                    ) -> Dict[str, np.ndarray]:
    """Per-threshold counts of one image: ``{'cntP', 'sumP', 'cntR', 'sumR'}`` int64 arrays.

    Args:
        pred: (H, W) predicted boundary strength (binarised as ``pred >= t``).
        gt: (H, W) ground truth (boundary where ``gt > gt_threshold``), or a list of them (one
            per annotator).
        thresholds: an int N (N thresholds uniformly spaced in (0, max_value)) or the values.
        max_dist: matching tolerance as a fraction of the image diagonal.
        valid: (H, W) bool, pixels to evaluate (elsewhere neither map has a boundary); the
            diagonal is that of the bounding box of the valid pixels.
    """
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f'boundary_counts: expected an (H, W) prediction, got {pred.shape}')
    gts = _as_list(gt)
    for g in gts:
        if g.shape != pred.shape:
            raise ValueError(f'boundary_counts: ground truth {g.shape} and prediction '
                             f'{pred.shape} differ in size')
    ts = make_thresholds(thresholds, max_value)
    out = {k: np.zeros(ts.size, dtype=np.int64) for k in COUNT_KEYS}
    if valid is None:
        valid = np.ones(pred.shape, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        return out
    ys, xs = np.nonzero(valid.any(axis=1))[0], np.nonzero(valid.any(axis=0))[0]
    diagonal = float(np.hypot(ys[-1] - ys[0] + 1, xs[-1] - xs[0] + 1))
    tol = max_dist * diagonal
    pred = np.where(valid & np.isfinite(pred), pred, -np.inf)

    index = []
    for g in gts:
        g_b = (np.nan_to_num(np.asarray(g, dtype=np.float64), nan=-np.inf) > gt_threshold)
        g_b &= valid
        index.append(_GroundTruthIndex(thin(g_b) if thin_gt else g_b, tol))
    sum_r = sum(i.n for i in index)

    flat = pred.ravel()
    order = np.argsort(flat, kind='stable')
    starts = np.searchsorted(flat[order], ts, side='left')  # pixels >= t: order[start:]
    last_start, last = -1, None
    for k, start in enumerate(starts):
        if start != last_start:  # nested maps: the same start means the same map
            last_start = int(start)
            pred_idx = _thin_indices(pred.shape, order[start:])
            matched_any = np.zeros(flat.size, dtype=bool)
            cnt_r = 0
            for gi in index:
                matched, n = gi.match(pred_idx, pred.shape[1])
                matched_any[matched] = True
                cnt_r += n
            last = (int(matched_any.sum()), int(pred_idx.size), cnt_r)
        out['cntP'][k], out['sumP'][k], out['cntR'][k] = last
        out['sumR'][k] = sum_r
    return out


def _prf(cnt_p, sum_p, cnt_r, sum_r):
    """Precision, recall, F (arrays) with the benchmark's 0-for-0/0 conventions."""
    cnt_p, sum_p, cnt_r, sum_r = (np.asarray(v, dtype=np.float64)
                                  for v in (cnt_p, sum_p, cnt_r, sum_r))
    p = np.divide(cnt_p, sum_p, out=np.zeros_like(cnt_p), where=sum_p > 0)
    r = np.divide(cnt_r, sum_r, out=np.zeros_like(cnt_r), where=sum_r > 0)
    f = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return p, r, f


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision-recall polyline (see the module docstring), in [0, 1]."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if recall.size == 0:
        return 0.0
    order = np.lexsort((-precision, recall))           # by recall, best precision first
    r, p = recall[order], precision[order]
    first = np.ones(r.size, dtype=bool)
    first[1:] = r[1:] != r[:-1]
    r, p = r[first], p[first]
    area = r[0] * p[0]                                  # constant precision down to recall 0
    area += float(np.sum((r[1:] - r[:-1]) * (p[1:] + p[:-1]) / 2))
    return float(area)


def _best_interpolated(ts, p, r):
    """Largest F along P, R (and t) interpolated linearly between consecutive thresholds."""
    d = np.linspace(0.0, 1.0, 100)[None, :]
    pi = p[:-1, None] * (1 - d) + p[1:, None] * d
    ri = r[:-1, None] * (1 - d) + r[1:, None] * d
    ti = ts[:-1, None] * (1 - d) + ts[1:, None] * d
    fi = np.divide(2 * pi * ri, pi + ri, out=np.zeros_like(pi), where=(pi + ri) > 0)
    k = int(np.argmax(fi))
    return fi.flat[k], pi.flat[k], ri.flat[k], ti.flat[k]


def boundary_scores(counts: Iterable[Dict[str, Sequence[int]]],
                    thresholds: Union[int, Sequence[float]] = 99, max_value: float = 1.0,
                    interpolate: bool = False) -> Dict[str, float]:
    """ODS/OIS/AP (percent) from the per-image counts of :func:`boundary_counts`.

    Returns ``odsF, odsP, odsR, odsT, oisF, oisP, oisR, AP`` (odsT in prediction units).
    """
    ts = make_thresholds(thresholds, max_value)
    stacked = {k: [] for k in COUNT_KEYS}
    for c in counts:
        for k in COUNT_KEYS:
            v = np.asarray(c[k], dtype=np.int64)
            if v.shape != ts.shape:
                raise ValueError(f'boundary_scores: counts for {v.size} thresholds, expected '
                                 f'{ts.size}')
            stacked[k].append(v)
    if not stacked['cntP']:
        return {k: float('nan') for k in ('odsF', 'odsP', 'odsR', 'odsT', 'oisF', 'oisP',
                                          'oisR', 'AP')}
    c = {k: np.stack(v) for k, v in stacked.items()}  # (images, thresholds)
    total = {k: v.sum(axis=0) for k, v in c.items()}
    p, r, f = _prf(total['cntP'], total['sumP'], total['cntR'], total['sumR'])
    best = int(np.argmax(f))
    ods = (f[best], p[best], r[best], ts[best])
    if interpolate and ts.size > 1:
        cand = _best_interpolated(ts, p, r)
        if cand[0] > ods[0]:
            ods = cand
    _, _, f_img = _prf(c['cntP'], c['sumP'], c['cntR'], c['sumR'])
    pick = np.argmax(f_img, axis=1)  # first (lowest) best threshold of each image
    rows = np.arange(pick.size)
    op, orr, of = _prf(*(c[k][rows, pick].sum() for k in COUNT_KEYS))
    defined = total['sumP'] > 0
    ap = average_precision(r[defined], p[defined])
    return dict(odsF=100 * float(ods[0]), odsP=100 * float(ods[1]), odsR=100 * float(ods[2]),
                odsT=float(ods[3]), oisF=100 * float(of), oisP=100 * float(op),
                oisR=100 * float(orr), AP=100 * ap)


def _counts_job(args):
    pred, gt, kwargs = args
    return boundary_counts(pred, gt, **kwargs)


def evaluate_boundaries(preds: Iterable[np.ndarray], gts: Iterable, workers: int = 1,
                        interpolate: bool = False, **kwargs) -> Dict[str, float]:
    """ODS/OIS/AP of a whole set: :func:`boundary_counts` per image (``workers`` processes),
    then :func:`boundary_scores`. ``kwargs`` go to :func:`boundary_counts`."""
    jobs = ((p, g, kwargs) for p, g in zip(preds, gts))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            counts = list(pool.map(_counts_job, jobs, chunksize=4))
    else:
        counts = [_counts_job(j) for j in jobs]
    return boundary_scores(counts, kwargs.get('thresholds', 99), kwargs.get('max_value', 1.0),
                           interpolate=interpolate)
