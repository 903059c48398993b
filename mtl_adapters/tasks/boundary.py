"""Boundary precision / recall: ODS F, OIS F and AP as the BSDS and NYUD benchmarks define them.

Pure NumPy/SciPy with no other import of the package: it lives beside the task that reports it
(``EdgeTask``), below ``evaluation`` and ``datasets``, so that task needs no upward import.

Written from the published definition (Martin, Fowlkes & Malik, *Learning to detect natural
image boundaries using local brightness, color, and texture cues*, PAMI 2004; Arbelaez et al.,
*Contour detection and hierarchical image segmentation*, PAMI 2011), in NumPy/SciPy only. The
per-image counts come from the papers alone; the dataset scores follow the benchmark's scripts,
whose definitions were read and re-derived (no code copied).

Per image and per threshold ``t`` (``thresholds``: an int N means N values uniformly spaced
strictly inside ``(0, max_value)``, ``max_value * k / (N + 1)`` for k = 1..N, as the 99
thresholds of BSDS on probability maps; a list is used sorted):

1. the prediction is binarised, ``pred >= t``, and thinned to 1-pixel width
   (:mod:`~mtl_adapters.tasks.thinning`: Guo & Hall's parallel thinning, the algorithm
   of MATLAB's ``bwmorph(..., 'thin', Inf)`` that the benchmark applies);
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
denominator is 0; ``F = 2PR / (P + R)``, 0 when ``P + R = 0``), reported in percent. The
defaults are the benchmark's own definitions, those of BSDS500's ``collect_eval_bdry.m``
(Arbelaez et al. 2011) and of ``edgesEvalDir.m`` (Dollar & Zitnick's structured-edge toolbox,
the script of the NYUD edge protocol, "identical to boundaryBench"), read and re-derived here:

* **odsF** (optimal dataset scale; odsP, odsR, odsT): the counts are summed over all images per
  threshold; P and R (and t) are interpolated linearly between consecutive thresholds, 100
  evenly spaced points per interval ends included (MATLAB's ``linspace(0, 1)``), and odsF is
  the largest F along that polyline (the first such point in threshold order).
* **oisF** (optimal image scale; oisP, oisR): each image gets its own best threshold (its
  largest F over the thresholds, no interpolation; the lowest such threshold on ties, so an
  image without ground-truth boundary contributes at the lowest threshold); the counts of every
  image at its threshold are summed and oisF is the F of these sums.
* **AP** (the benchmark's ``Area_PR``): the dataset points (R(t), P(t)) of *every* threshold
  (those predicting nothing are (0, 0)); one point per distinct recall, the one of the lowest
  threshold (MATLAB's ``unique`` and ``np.unique`` keep the first occurrence); precision
  interpolated linearly in recall at r = 0, 0.01, ..., 1 (101 values), 0 outside the recalls
  reached; AP = 0.01 x their sum (0 with fewer than two distinct recalls). So the curve falls
  linearly to 0 below the smallest recall rather than staying at its precision.

Two other definitions, under their own names (``boundary_scores`` returns them too):

* **odsF_sampled**: the largest F at the evaluated thresholds themselves (no interpolation;
  <= odsF, by little with 99 thresholds).
* **AP_polyline**: the area under the PR polyline of the thresholds that predict any pixel,
  recall on the x axis (at equal recall the highest precision), extended at constant precision
  from the smallest recall down to 0 and 0 beyond the largest, so a perfect detector gets
  100. It is the exact area of the measured curve; the benchmark's AP differs from it (by
  several points on some prediction maps; mostly its fall to (0, 0) below the smallest
  recall and its choice of the lowest threshold's point at a repeated recall).

pyEdgeEval (``calculate_metrics``, a Python port) differs from the MATLAB scripts only in its
sampling: 101 points per interval for odsF and recall 0 .. 0.99 (100 values) for its ``AUC``
(= Area_PR); its ``AP`` is a different, 100-point interpolated average precision.

:func:`boundary_counts` gives one image's counts, :func:`boundary_scores` the scores of a set,
:func:`evaluate_boundaries` both, over worker processes; ``EdgeTask(metric_cfg=dict(
boundary=True))`` reports them through ``MultiTaskMetric``.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .thinning import thin, thin_indices

#: counts of ``boundary_counts``, in this order
COUNT_KEYS = ('cntP', 'sumP', 'cntR', 'sumR')


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
            pred_idx = thin_indices(pred.shape, order[start:])
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
    """``AP_polyline``: area under the precision-recall polyline (module docstring), in
    [0, 1]; the points in any order."""
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


def area_pr(recall: np.ndarray, precision: np.ndarray) -> float:
    """The benchmark's AP (``Area_PR``, module docstring), in [0, 1]. ``recall`` and
    ``precision`` are given per threshold, in increasing threshold order (at a repeated recall
    the first point counts)."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    distinct, first = np.unique(recall, return_index=True)  # sorted; first occurrences
    if distinct.size < 2:
        return 0.0
    grid = np.arange(101) / 100.0
    sampled = np.interp(grid, distinct, precision[first], left=0.0, right=0.0)
    return float(sampled.sum() * 0.01)


def _best_interpolated(ts, p, r):
    """Largest F along P, R (and t) interpolated linearly between consecutive thresholds,
    100 points per interval ends included; the first maximum in threshold order."""
    if ts.size == 1:
        f = 2 * p[0] * r[0] / (p[0] + r[0]) if p[0] + r[0] > 0 else 0.0
        return f, p[0], r[0], ts[0]
    d = np.linspace(0.0, 1.0, 100)[None, :]
    pi = p[:-1, None] * (1 - d) + p[1:, None] * d
    ri = r[:-1, None] * (1 - d) + r[1:, None] * d
    ti = ts[:-1, None] * (1 - d) + ts[1:, None] * d
    fi = np.divide(2 * pi * ri, pi + ri, out=np.zeros_like(pi), where=(pi + ri) > 0)
    k = int(np.argmax(fi))
    return fi.flat[k], pi.flat[k], ri.flat[k], ti.flat[k]


#: the scores of :func:`boundary_scores` (module docstring); odsT in prediction units
SCORE_KEYS = ('odsF', 'odsP', 'odsR', 'odsT', 'oisF', 'oisP', 'oisR', 'AP', 'odsF_sampled',
              'AP_polyline')


def boundary_scores(counts: Iterable[Dict[str, Sequence[int]]],
                    thresholds: Union[int, Sequence[float]] = 99,
                    max_value: float = 1.0) -> Dict[str, float]:
    """The dataset scores :data:`SCORE_KEYS` (percent, but odsT) from the per-image counts of
    :func:`boundary_counts`: the benchmark's odsF/P/R/T, oisF/P/R and AP, and the
    alternatives odsF_sampled and AP_polyline (module docstring)."""
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
        return {k: float('nan') for k in SCORE_KEYS}
    c = {k: np.stack(v) for k, v in stacked.items()}  # (images, thresholds)
    total = {k: v.sum(axis=0) for k, v in c.items()}
    p, r, f = _prf(total['cntP'], total['sumP'], total['cntR'], total['sumR'])
    ods = _best_interpolated(ts, p, r)
    _, _, f_img = _prf(c['cntP'], c['sumP'], c['cntR'], c['sumR'])
    pick = np.argmax(f_img, axis=1)  # first (lowest) best threshold of each image
    rows = np.arange(pick.size)
    op, orr, of = _prf(*(c[k][rows, pick].sum() for k in COUNT_KEYS))
    defined = total['sumP'] > 0
    return dict(odsF=100 * float(ods[0]), odsP=100 * float(ods[1]), odsR=100 * float(ods[2]),
                odsT=float(ods[3]), oisF=100 * float(of), oisP=100 * float(op),
                oisR=100 * float(orr), AP=100 * area_pr(r, p),
                odsF_sampled=100 * float(f.max()),
                AP_polyline=100 * average_precision(r[defined], p[defined]))


def _counts_job(args):
    pred, gt, kwargs = args
    return boundary_counts(pred, gt, **kwargs)


def evaluate_boundaries(preds: Iterable[np.ndarray], gts: Iterable, workers: int = 1,
                        **kwargs) -> Dict[str, float]:
    """The scores of a whole set: :func:`boundary_counts` per image (``workers`` processes),
    then :func:`boundary_scores`. ``kwargs`` go to :func:`boundary_counts`."""
    jobs = ((p, g, kwargs) for p, g in zip(preds, gts))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            counts = list(pool.map(_counts_job, jobs, chunksize=4))
    else:
        counts = [_counts_job(j) for j in jobs]
    return boundary_scores(counts, kwargs.get('thresholds', 99), kwargs.get('max_value', 1.0))
