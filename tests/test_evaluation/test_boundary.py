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
from mtl_adapters.evaluation.boundary import (average_precision, boundary_counts,
                                              boundary_scores, evaluate_boundaries,
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
    interpolate = kw.pop('interpolate', False)
    counts = [boundary_counts(p, g, thresholds=thresholds, **kw) for p, g in zip(preds, gts)]
    return boundary_scores(counts, thresholds, interpolate=interpolate), counts


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
    assert res['odsF'] == res['oisF'] == res['AP'] == 100.0
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
    assert res['oisF'] == pytest.approx(80.0)
    # PR points (1, 2/3), (1/2, 1) [best precision at recall 1/2], extended to recall 0
    assert res['AP'] == pytest.approx(100 * (0.5 * 1 + 0.5 * (1 + 2 / 3) / 2))


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
    assert boundary_scores([c], [0.25, 0.75])['odsF'] == pytest.approx(200 / 3)
    res = boundary_scores([c], [0.25, 0.75], interpolate=True)
    assert res['odsF'] == pytest.approx(75.0, abs=0.01)
    assert 0.25 < res['odsT'] < 0.75


def test_average_precision_by_hand():
    assert average_precision([0.2, 0.6, 1.0], [1.0, 0.8, 0.5]) == pytest.approx(
        0.2 * 1.0 + 0.4 * 0.9 + 0.4 * 0.65)
    # order does not matter; at equal recall the best precision counts; beyond max recall 0
    assert average_precision([0.6, 0.6, 0.2], [0.1, 0.8, 1.0]) == pytest.approx(
        0.2 + 0.4 * 0.9)
    assert average_precision([], []) == 0.0


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
