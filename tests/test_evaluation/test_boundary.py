"""The boundary benchmark (ODS F, OIS F, AP) on hand-made cases whose answer is known, its
parts against independent references (skimage's thinning, an assignment solver), its use
through EdgeTask/MultiTaskMetric and its speed benchmark's plumbing; and the two depth
conventions (pooled / per image) against numbers computed by hand."""
import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.morphology import thin as skimage_thin

from mtl_adapters.evaluation import MultiTaskMetric
from mtl_adapters.tasks.boundary import (SCORE_KEYS, area_pr, average_precision,
                                         boundary_counts, boundary_scores, evaluate_boundaries,
                                         make_thresholds, thin)
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import DepthTask, EdgeTask

# 60x80 images: diagonal 100 px, so max_dist=0.03 is a tolerance of exactly 3 px
H, W = 60, 80
TOL3 = 0.03


def _lines(*specs, value=1.0, shape=(H, W)):
    """A float map with 1-px segments: ('v', col, row0, row1) or ('h', row, col0, col1)."""
    out = np.zeros(shape, np.float64)
    for spec in specs:
        kind, at, a, b = spec[:4]
        v = spec[4] if len(spec) > 4 else value
        if kind == 'v':
            out[a:b, at] = v
        else:
            out[at, a:b] = v
    return out


def _scores(preds, gts, **kw):
    kw.setdefault('max_dist', TOL3)
    thresholds = kw.pop('thresholds', 9)
    counts = [boundary_counts(p, g, thresholds=thresholds, **kw) for p, g in zip(preds, gts)]
    return boundary_scores(counts, thresholds), counts


# ----------------------------------------------------------------------------- thinning
def test_thinning_equals_skimage_thin():
    rng = np.random.default_rng(0)
    cases = [rng.random((rng.integers(1, 30), rng.integers(1, 30))) < rng.uniform(0.05, 0.95)
             for _ in range(60)]
    # thick blobs and bands on larger images: many subiterations, sparse and dense passes
    for k in range(4):
        seeds = rng.random((90, 120)) < 0.004
        cases.append(ndimage.binary_dilation(seeds, iterations=2 + 3 * k))
    cases.append(np.ones((40, 50), bool))
    band = np.zeros((50, 70), bool)
    band[10:30, 5:65] = True
    cases.append(band)
    for case in cases:
        assert np.array_equal(thin(case), skimage_thin(case))
    line = _lines(('v', 20, 5, 50)) > 0  # a 1-px line is already thin (endpoints stay)
    assert np.array_equal(thin(line), line)


def test_thresholds():
    np.testing.assert_allclose(make_thresholds(3), [0.25, 0.5, 0.75])
    np.testing.assert_allclose(make_thresholds(99)[[0, -1]], [0.01, 0.99])
    np.testing.assert_allclose(make_thresholds(4, max_value=0.2), [0.04, 0.08, 0.12, 0.16])
    np.testing.assert_allclose(make_thresholds([0.7, 0.2]), [0.2, 0.7])
    with pytest.raises(ValueError):
        make_thresholds(0)


# ------------------------------------------------------------------ hand-made cases
def test_identical_maps_give_one():
    gt = _lines(('v', 20, 5, 50), ('h', 40, 30, 75), ('v', 60, 2, 30))
    res, counts = _scores([gt], [gt])
    assert res['odsF'] == res['oisF'] == res['AP_polyline'] == 100.0
    # the benchmark's AP needs two distinct recalls: a hard (binary) map has one, so AP 0
    assert res['AP'] == 0.0
    n = int((gt > 0).sum())
    assert counts[0]['sumR'].tolist() == [n] * 9 and counts[0]['cntP'].tolist() == [n] * 9


@pytest.mark.parametrize('shift, expected', [(1, 100.0), (2, 100.0), (3, 100.0), (4, 0.0),
                                             (-6, 0.0)])
def test_shift_within_tolerance_matches_beyond_does_not(shift, expected):
    """Tolerance 3 px, inclusive: a line moved sideways by up to 3 px is found, by 4 not."""
    gt = _lines(('v', 30, 10, 50))
    pred = np.roll(gt, shift, axis=1)
    res, _ = _scores([pred], [gt])
    assert res['odsF'] == pytest.approx(expected)
    assert res['oisF'] == pytest.approx(expected)


def test_missing_boundary_lowers_recall_by_its_share():
    gt = _lines(('v', 20, 10, 50), ('v', 60, 10, 30))  # 40 + 20 pixels
    pred = _lines(('v', 20, 10, 50))                     # the 20-px line is missed
    res, counts = _scores([pred], [gt])
    c = counts[0]
    assert c['cntR'][0] == 40 and c['sumR'][0] == 60 and c['cntP'][0] == c['sumP'][0] == 40
    p, r = 1.0, 40 / 60
    f = 2 * p * r / (p + r)
    assert res['odsF'] == pytest.approx(100 * f) and res['odsR'] == pytest.approx(100 * r)
    assert res['odsP'] == pytest.approx(100.0)


def test_spurious_boundary_lowers_precision_by_its_share():
    gt = _lines(('v', 20, 10, 50))
    pred = _lines(('v', 20, 10, 50), ('v', 60, 10, 40))  # 30 extra pixels far from any gt
    res, counts = _scores([pred], [gt])
    assert counts[0]['cntP'][0] == 40 and counts[0]['sumP'][0] == 70
    p, r = 40 / 70, 1.0
    assert res['odsP'] == pytest.approx(100 * p) and res['odsR'] == pytest.approx(100.0)
    assert res['odsF'] == pytest.approx(100 * 2 * p * r / (p + r))


def test_matching_is_one_to_one():
    """Two predicted lines 1 px either side of one ground-truth line: only one is matched."""
    gt = _lines(('v', 30, 10, 50))
    pred = _lines(('v', 29, 10, 50), ('v', 31, 10, 50))
    _, counts = _scores([pred], [gt])
    assert counts[0]['cntP'][0] == 40 and counts[0]['sumP'][0] == 80
    assert counts[0]['cntR'][0] == 40


def test_matching_is_maximum_not_greedy():
    """Nearest-first matching pairs a with c and leaves b unmatched; the maximum pairs a-d,
    b-c (tolerance 3 px)."""
    gt = np.zeros((H, W))
    gt[30, 40] = gt[30, 43] = 1          # c, d
    pred = np.zeros((H, W))
    pred[30, 41] = pred[30, 38] = 1      # a (1 from c, 2 from d), b (2 from c, 5 from d)
    _, counts = _scores([pred], [gt])
    assert counts[0]['cntP'][0] == 2 and counts[0]['cntR'][0] == 2


def test_counts_equal_an_assignment_solver_on_random_maps():
    """Matched counts = the maximum matching found by linear_sum_assignment on 0/1 costs."""
    rng = np.random.default_rng(3)
    for k in range(6):
        gt = rng.random((30, 40)) < 0.08
        pred = rng.random((30, 40))
        c = boundary_counts(pred, gt.astype(float), thresholds=[0.5, 0.9], max_dist=0.05)
        tol = 0.05 * math.hypot(30, 40)
        g = np.argwhere(thin(gt))
        for t, cnt in zip((0.5, 0.9), c['cntP']):
            p = np.argwhere(thin(pred >= t))
            d = np.hypot(*(p[:, None, :] - g[None, :, :]).transpose(2, 0, 1))
            allowed = d <= tol
            rows, cols = linear_sum_assignment(~allowed)  # cost 0 for allowed pairs
            assert cnt == allowed[rows, cols].sum()


def test_threshold_sweep_by_hand():
    """A strong line (0.75) and a weak one (0.35), both in the ground truth, plus a spurious
    line of 0.55; 9 thresholds 0.1 .. 0.9."""
    gt = _lines(('v', 20, 10, 50), ('v', 40, 10, 50))
    pred = _lines(('v', 20, 10, 50, 0.75), ('v', 40, 10, 50, 0.35), ('v', 70, 10, 50, 0.55))
    res, counts = _scores([pred], [gt])
    c = counts[0]
    # t <= 0.3: all three lines; 0.4-0.5: strong + spurious; 0.6-0.7: strong; > 0.7: none
    assert c['sumP'].tolist() == [120] * 3 + [80] * 2 + [40] * 2 + [0] * 2
    assert c['cntP'].tolist() == [80] * 3 + [40] * 4 + [0] * 2
    assert c['cntR'].tolist() == c['cntP'].tolist() and c['sumR'].tolist() == [80] * 9
    # F: 0.8 (P 2/3, R 1), 0.5 (P 1/2, R 1/2), 2/3 (P 1, R 1/2), 0 (nothing predicted)
    assert res['odsF'] == pytest.approx(80.0) and res['odsT'] == pytest.approx(0.1)
    assert res['oisF'] == pytest.approx(80.0) and res['odsF_sampled'] == pytest.approx(80.0)
    # AP_polyline: points (1, 2/3), (1/2, 1) [best precision at recall 1/2], extended to 0
    assert res['AP_polyline'] == pytest.approx(100 * (0.5 * 1 + 0.5 * (1 + 2 / 3) / 2))
    # AP (Area_PR): points (0, 0) [nothing predicted], (1/2, 1/2) [the lowest threshold of
    # recall 1/2], (1, 2/3); precision at recall k/100 summed: 12.75 + 29.25
    assert res['AP'] == pytest.approx(42.0)


def test_ods_and_ois_by_hand():
    """ODS: one threshold for the set; OIS: each image its own, then the counts summed."""
    a = dict(cntP=[10, 5], sumP=[10, 5], cntR=[10, 5], sumR=[10, 10])      # best at t1
    b = dict(cntP=[10, 10], sumP=[40, 10], cntR=[10, 10], sumR=[10, 10])   # best at t2
    res = boundary_scores([a, b], [0.3, 0.6])
    # ODS: t1 P 20/50 R 1 -> F 4/7; t2 P 1 R 15/20 -> F 6/7
    assert res['odsF'] == pytest.approx(100 * 6 / 7) and res['odsT'] == 0.6
    assert res['oisF'] == pytest.approx(100.0)  # a at t1 + b at t2: 20/20 and 20/20
    # an image without ground-truth boundary (F = 0 at every threshold) counts at t1
    c = dict(cntP=[0, 0], sumP=[30, 5], cntR=[0, 0], sumR=[0, 0])
    res = boundary_scores([a, b, c], [0.3, 0.6])
    p, r = 20 / 50, 1.0
    assert res['oisF'] == pytest.approx(100 * 2 * p * r / (p + r))


def test_interpolated_ods():
    """P/R between two thresholds: (P .5, R 1) and (P 1, R .5) -> F .75 near the middle."""
    c = dict(cntP=[50, 50], sumP=[100, 50], cntR=[100, 50], sumR=[100, 100])
    res = boundary_scores([c], [0.25, 0.75])
    assert res['odsF_sampled'] == pytest.approx(200 / 3)
    assert res['odsF'] == pytest.approx(75.0, abs=0.01)
    assert 0.25 < res['odsT'] < 0.75
    # one threshold: nothing to interpolate
    one = boundary_scores([dict(cntP=[50], sumP=[100], cntR=[100], sumR=[100])], [0.5])
    assert one['odsF'] == one['odsF_sampled'] == pytest.approx(100 * 2 / 3)


def test_area_pr_by_hand():
    """The benchmark's AP: the first point of each recall, linear in recall, sampled at
    0, 0.01, ..., 1, 0 outside the recalls reached."""
    # (0.2, 1) and (0.6, 0.5): at r = k/100, k = 20..60, P = 1 - (k - 20) / 80
    assert area_pr([0.6, 0.2], [0.5, 1.0]) == pytest.approx(
        0.01 * sum(1 - (k - 20) / 80 for k in range(20, 61)))
    # a repeated recall: its first point (the lowest threshold) counts, not the best one
    assert area_pr([1.0, 0.5, 0.5, 0.0], [0.5, 0.5, 1.0, 0.0]) == pytest.approx(
        0.01 * (sum(k / 100 for k in range(51)) + 50 * 0.5))
    assert area_pr([0.5, 0.5], [1.0, 1.0]) == 0.0 and area_pr([], []) == 0.0


def _benchmark_by_loops(counts, ts):
    """A transcription of the benchmark's scoring (module docstring of boundary.py), written
    as plain loops: ODS interpolated on MATLAB's linspace(0, 1) (100 points), OIS from each
    image's first best threshold, AP the Area_PR of the 101 recall samples."""
    def prf(cr, sr, cp, sp):
        r, p = cr / sr if sr else 0.0, cp / sp if sp else 0.0
        return r, p, (2 * p * r / (p + r) if p + r else 0.0)
    n = len(ts)
    tot = [[sum(c[k][i] for c in counts) for i in range(n)]
           for k in ('cntR', 'sumR', 'cntP', 'sumP')]
    rpf = [prf(*(tot[j][i] for j in range(4))) for i in range(n)]
    best = (rpf[0][2], ts[0])
    for i in range(1, n):
        for d in [j / 99 for j in range(100)]:
            r = rpf[i][0] * d + rpf[i - 1][0] * (1 - d)
            p = rpf[i][1] * d + rpf[i - 1][1] * (1 - d)
            f = 2 * p * r / (p + r) if p + r else 0.0
            if f > best[0]:
                best = (f, ts[i] * d + ts[i - 1] * (1 - d))
    sums = [0, 0, 0, 0]
    for c in counts:
        fs = [prf(c['cntR'][i], c['sumR'][i], c['cntP'][i], c['sumP'][i])[2] for i in range(n)]
        k = fs.index(max(fs))
        for j, key in enumerate(('cntR', 'sumR', 'cntP', 'sumP')):
            sums[j] += c[key][k]
    first = {}
    for r, p, _ in rpf:
        first.setdefault(r, p)
    rs = sorted(first)
    area = 0.0
    for k in range(101) if len(rs) > 1 else ():
        x = k / 100
        for a, b in zip(rs[:-1], rs[1:]):
            if a <= x <= b:
                area += first[a] + (first[b] - first[a]) * (x - a) / (b - a)
                break
    return dict(odsF=100 * best[0], odsT=best[1], oisF=100 * prf(*sums)[2], AP=area)


def test_bsds_definitions_equal_a_transcription_by_loops():
    rng = np.random.default_rng(3)
    ts = make_thresholds(15)
    for trial in range(20):
        counts = []
        for _ in range(3):
            sum_p = np.sort(rng.integers(0, 400, ts.size))[::-1].copy()
            if trial % 2:  # the highest thresholds predict nothing: points (0, 0)
                sum_p[-int(rng.integers(1, 4)):] = 0
            cnt_p = (sum_p * rng.uniform(0.2, 1.0, ts.size)).astype(int)
            sum_r = np.full(ts.size, int(rng.integers(0 if trial == 5 else 50, 300)))
            cnt_r = np.minimum(cnt_p + rng.integers(0, 20, ts.size), sum_r)
            counts.append(dict(cntP=cnt_p, sumP=sum_p, cntR=cnt_r, sumR=sum_r))
        ours = boundary_scores(counts, ts)
        ref = _benchmark_by_loops(counts, list(ts))
        for key in ('odsF', 'odsT', 'oisF'):
            assert ours[key] == pytest.approx(ref[key], abs=1e-9), (trial, key)
        assert ours['AP'] == pytest.approx(ref['AP'], abs=1e-9), trial
        assert set(ours) == set(SCORE_KEYS)


def test_average_precision_by_hand():
    assert average_precision([0.2, 0.6, 1.0], [1.0, 0.8, 0.5]) == pytest.approx(
        0.2 * 1.0 + 0.4 * 0.9 + 0.4 * 0.65)
    # order does not matter; at equal recall the best precision counts; beyond max recall 0
    assert average_precision([0.6, 0.6, 0.2], [0.1, 0.8, 1.0]) == pytest.approx(
        0.2 + 0.4 * 0.9)
    assert average_precision([], []) == 0.0


def _random_boundaries(rng, h=48, w=64):
    """A ground-truth contour map (edges of random rectangles) and a noisy soft prediction."""
    gt = np.zeros((h, w), bool)
    for _ in range(4):
        y0, x0 = rng.integers(2, h // 2), rng.integers(2, w // 2)
        y1, x1 = y0 + rng.integers(6, h // 2 - 2), x0 + rng.integers(6, w // 2 - 2)
        gt[y0, x0:x1] = gt[y1, x0:x1] = True
        gt[y0:y1 + 1, x0] = gt[y0:y1 + 1, x1] = True
    shifted = np.roll(gt, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
    pred = ndimage.gaussian_filter(shifted.astype(float), 0.7) * rng.uniform(0.5, 1.5, gt.shape)
    pred += 0.25 * rng.random(gt.shape) ** 4
    return np.clip(pred / pred.max(), 0, 1), thin(gt)


def test_against_pyedgeeval():
    """A maintained implementation of the benchmark (pyEdgeEval, MIT). Scores from the same
    counts: equal, up to its sampling (101 points per ODS interval; recall 0 .. 0.99 for its
    AUC = Area_PR). Counts: within a pixel or two of its own, which come from the benchmark's
    approximate assignment solver (ours is an exact maximum matching, never fewer matches on
    the same maps) and its own thinning (differs from skimage's on a pixel or two)."""
    pytest.importorskip('pyEdgeEval')
    from pyEdgeEval.common.binary_label.calculate_metrics import calculate_metrics
    from pyEdgeEval.common.binary_label.evaluate_boundaries import \
        evaluate_boundaries_threshold
    rng = np.random.default_rng(7)
    ts = make_thresholds(19)
    ours = []
    for _ in range(4):
        pred, gt = _random_boundaries(rng)
        c = boundary_counts(pred, gt, thresholds=19, max_dist=0.0225, thin_gt=False)
        theirs = evaluate_boundaries_threshold(ts, pred, gt, max_dist=0.0225)
        for key, ref in zip(('cntR', 'sumR', 'cntP', 'sumP'), theirs):
            assert np.abs(c[key] - ref).max() <= 2, key
            assert abs(c[key].sum() - ref.sum()) <= 0.01 * ref.sum(), key
        ours.append(c)
    res = boundary_scores(ours, ts)
    _, _, ref = calculate_metrics(
        eval_single=lambda s: tuple(ours[s['i']][k] for k in ('cntR', 'sumR', 'cntP', 'sumP')),
        thresholds=list(ts), samples=[dict(name=str(i), i=i) for i in range(4)], nproc=1)
    assert res['oisF'] == pytest.approx(100 * ref['OIS_f1'], abs=1e-9)
    assert res['odsF'] == pytest.approx(100 * ref['ODS_f1'], abs=0.01)
    r = sum(c['cntR'] for c in ours) / sum(c['sumR'] for c in ours)
    assert r.max() < 1  # else their AUC leaves out the sample at recall 1
    assert res['AP'] == pytest.approx(100 * ref['AUC'], abs=1e-9)
    assert abs(res['AP'] - res['AP_polyline']) > 0.1  # the two definitions differ


def test_several_annotators_and_valid_mask():
    """BSDS style: a predicted pixel counts when it matches any annotator; recall sums over
    annotators. Pixels outside ``valid`` are ignored in both maps."""
    one = _lines(('v', 20, 10, 50))
    two = _lines(('v', 20, 10, 50), ('v', 60, 10, 30))
    pred = _lines(('v', 20, 10, 50), ('v', 60, 10, 30))
    c = boundary_counts(pred, [one, two], thresholds=3, max_dist=TOL3)
    assert c['cntP'][0] == 60 and c['sumP'][0] == 60          # the 20 px line matches `two`
    assert c['cntR'][0] == 40 + 60 and c['sumR'][0] == 40 + 60
    valid = np.ones((H, W), bool)
    valid[:, 50:] = False
    c = boundary_counts(pred, two, thresholds=3, max_dist=TOL3, valid=valid)
    assert c['sumP'][0] == c['sumR'][0] == c['cntP'][0] == 40


def test_ground_truth_threshold_and_thinning():
    """Ground truth in [0, 1]: boundary where gt > gt_threshold, thinned (a 3-px band -> its
    centre line)."""
    gt = np.zeros((H, W))
    gt[10:50, 29:32] = 0.3   # a band of weak texture edges
    gt[10:50, 30] = 0.6      # its crest
    c = boundary_counts(gt, gt, thresholds=[0.5], max_dist=TOL3, gt_threshold=0.5)
    assert c['sumR'][0] == 40
    c = boundary_counts(gt, gt, thresholds=[0.5], max_dist=TOL3, gt_threshold=0.2)
    assert c['sumR'][0] == int(thin(gt > 0.2).sum()) < 3 * 40
    c = boundary_counts(gt, gt, thresholds=[0.5], max_dist=TOL3, gt_threshold=0.2,
                        thin_gt=False)
    assert c['sumR'][0] == 3 * 40


def test_evaluate_boundaries_in_workers():
    gt = _lines(('v', 20, 10, 50))
    pred = _lines(('v', 21, 10, 50), ('v', 60, 10, 30))
    one = evaluate_boundaries([pred, gt], [gt, gt], thresholds=5, max_dist=TOL3)
    two = evaluate_boundaries([pred, gt], [gt, gt], workers=2, thresholds=5, max_dist=TOL3)
    assert one == two
    assert one['odsP'] == pytest.approx(100 * 80 / 100)


# -------------------------------------------------------------------- EdgeTask / metric
def _samples(task, preds, gts):
    out = []
    for p, g in zip(preds, gts):
        s = MultiTaskDataSample()
        s.set_pred(task, torch.as_tensor(p, dtype=torch.float32)[None])
        s.set_gt(task, torch.as_tensor(g, dtype=torch.float32)[None])
        out.append(s)
    return out


def test_edge_task_boundary_metrics_through_multitask_metric():
    cfg = dict(type='EdgeTask', metric_cfg=dict(boundary=True, max_dist=TOL3, thresholds=9))
    gt = _lines(('v', 20, 10, 50), ('v', 40, 10, 50), value=0.12)  # texture-edge units
    gt[:, -5:] = EdgeTask.ignore_value                              # padding: not evaluated
    pred = _lines(('v', 21, 10, 50), value=0.15)                    # one line found
    pred[:, -5:] = 0.19                                            # strong, but in padding
    metric = MultiTaskMetric([cfg])
    metric.process({}, _samples('edge', [pred, gt.clip(0)], [gt, gt]))
    res = metric.compute_metrics(metric.results)
    # image 1: P 1, R 1/2 at every threshold up to 0.15; image 2: perfect
    r = (40 + 80) / 160
    assert res['edge/odsF'] == pytest.approx(100 * 2 * r / (1 + r))
    assert res['edge/oisF'] == pytest.approx(res['edge/odsF'])
    assert 'edge/l1' in res and 'edge/AP' in res
    assert metric.directions['edge/odsF'] is True and metric.directions['edge/AP'] is True
    assert metric.directions['edge/l1'] is False
    task = EdgeTask(metric_cfg=dict(boundary=True))
    assert task.metric_cfg['max_value'] == 0.2 and task.metric_cfg['gt_threshold'] == 0.05


def test_edge_task_boundary_is_off_by_default_and_checks_keys():
    task = EdgeTask()
    assert task.metric_directions == {'l1': False}
    stats = task.metric_stats(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))
    assert 'boundary' not in stats and set(task.reduce_metrics([stats])) == {'l1'}
    with pytest.raises(KeyError, match='max_dist'):
        EdgeTask(metric_cfg=dict(boundary=True, maxDist=0.011))
    with pytest.raises(KeyError, match='AP_polyline'):
        EdgeTask(metric_cfg=dict(boundary=True, scores=('odsF', 'AUC')))


def test_edge_task_reports_the_chosen_definitions():
    """Default: the benchmark's odsF/oisF/AP; the alternatives by name."""
    assert EdgeTask(metric_cfg=dict(boundary=True)).metric_cfg['scores'] == ('odsF', 'oisF', 'AP')
    task = EdgeTask(metric_cfg=dict(boundary=True, max_dist=TOL3, thresholds=9, max_value=1.0,
                                    gt_threshold=0.5, scores=('AP', 'AP_polyline')))
    gt = _lines(('v', 20, 10, 50))
    pred = _lines(('v', 20, 10, 50, 0.75), ('v', 60, 10, 50, 0.35))
    stats = task.metric_stats(torch.as_tensor(pred)[None], torch.as_tensor(gt)[None])
    res = task.reduce_metrics([stats])
    ref = boundary_scores([stats['boundary']], 9)
    assert set(res) == {'l1', 'AP', 'AP_polyline'} and set(task.metric_directions) == set(res)
    assert res['AP'] == ref['AP'] != res['AP_polyline'] == ref['AP_polyline']


def test_benchmark_runs_and_writes_json(tmp_path, capsys):
    from mtl_adapters.benchmarks.boundary_speed import main
    out = tmp_path / 'b.json'
    result = main(['--num-images', '2', '--height', '48', '--width', '64', '--thresholds', '9',
                   '--workers', '1', '--out', str(out)])
    assert json.loads(out.read_text())['rows'][0]['images'] == 2
    assert result['rows'][0]['projected_nyud_test_s'] > 0
    assert 'images/s' in capsys.readouterr().out


# ------------------------------------------------------------------------------ depth
def _depth_metrics(per_image):
    """Two images with hand-chosen values, one invalid pixel each, and an empty image."""
    g1 = np.array([[1.0, 2.0, 0.0]])
    p1 = np.array([[1.5, 2.0, 7.0]])
    g2 = np.array([[4.0, 4.0, 4.0, 4.0, 0.0]])
    p2 = np.array([[4.0, 4.0, 4.0, 6.0, 1.0]])
    g3 = np.zeros((1, 2))
    p3 = np.ones((1, 2))
    metric = MultiTaskMetric([dict(type='DepthTask', metric_cfg=dict(
        min_depth=0.5, max_depth=10.0, per_image=per_image))])
    samples = []
    for p, g in ((p1, g1), (p2, g2), (p3, g3)):
        s = MultiTaskDataSample()
        s.set_pred('depth', torch.as_tensor(p[None]))
        s.set_gt('depth', torch.as_tensor(g[None]))
        samples.append(s)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_depth_pooled_by_hand():
    """Pooled over the 6 evaluated pixels: squared errors .25, 0 | 0, 0, 0, 4; relative
    errors .5, 0 | 0, 0, 0, .5; ratios 1.5 (twice) otherwise 1."""
    res = _depth_metrics(per_image=False)
    assert res['depth/rmse'] == pytest.approx(math.sqrt(4.25 / 6))
    assert res['depth/abs_rel'] == pytest.approx(1.0 / 6)
    assert res['depth/sq_rel'] == pytest.approx((0.25 / 1 + 4 / 4) / 6)
    assert res['depth/log10'] == pytest.approx(2 * math.log10(1.5) / 6)
    assert res['depth/d1'] == pytest.approx(100 * 4 / 6)
    assert res['depth/d2'] == pytest.approx(100.0) and res['depth/d3'] == pytest.approx(100.0)


def test_depth_per_image_by_hand():
    """Each image alone, then the mean over the two images that have evaluated pixels."""
    res = _depth_metrics(per_image=True)
    assert res['depth/rmse'] == pytest.approx((math.sqrt(0.25 / 2) + math.sqrt(4 / 4)) / 2)
    assert res['depth/abs_rel'] == pytest.approx((0.5 / 2 + 0.5 / 4) / 2)
    assert res['depth/sq_rel'] == pytest.approx((0.25 / 2 + 1.0 / 4) / 2)
    assert res['depth/log10'] == pytest.approx((math.log10(1.5) / 2 + math.log10(1.5) / 4) / 2)
    assert res['depth/d1'] == pytest.approx((50.0 + 75.0) / 2)
    assert res['depth/d2'] == pytest.approx(100.0)
    assert DepthTask().metric_cfg['per_image'] is False  # pooled is the default
