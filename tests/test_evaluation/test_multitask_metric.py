"""MultiTaskMetric against independent references: mmseg's IoUMetric, NumPy depth and edge
metrics, exact normal angles of known rotations, and the signs of Δm."""
import json
import math

import numpy as np
import pytest
import torch
from mmseg.evaluation.metrics import IoUMetric

from mtl_adapters.evaluation import MultiTaskMetric, delta_m, format_metrics_table
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import DepthTask, EdgeTask, NormalTask, SemanticTask
from mtl_adapters.tasks.normal import ANGLE_BIN


def _samples(task, preds, gts):
    """Data samples with ``pred_<task>`` / ``gt_<task>`` (C, H, W) tensors."""
    out = []
    for p, g in zip(preds, gts):
        s = MultiTaskDataSample()
        s.set_pred(task, torch.as_tensor(p))
        s.set_gt(task, torch.as_tensor(g))
        out.append(s)
    return out


def _evaluate(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_miou_equals_mmseg_iou_metric():
    rng = np.random.RandomState(0)
    num_classes = 6
    gts, preds = [], []
    for _ in range(4):
        gt = rng.randint(0, num_classes - 1, (1, 24, 40))  # class 5 never in the ground truth
        gt[0, :3] = 255
        pred = np.where(rng.rand(1, 24, 40) < 0.6, gt, rng.randint(0, num_classes, (1, 24, 40)))
        pred[pred == 255] = 0
        gts.append(gt), preds.append(pred)
    names = [f'c{i}' for i in range(num_classes)]
    ours = _evaluate(MultiTaskMetric([dict(type='SemanticTask', num_classes=num_classes,
                                           class_names=names)]), _samples('seg', preds, gts))

    ref = IoUMetric(ignore_index=255, iou_metrics=['mIoU'])
    ref.dataset_meta = dict(classes=names)
    ref.process({}, [dict(pred_sem_seg=dict(data=torch.as_tensor(p)),
                          gt_sem_seg=dict(data=torch.as_tensor(g))) for p, g in zip(preds, gts)])
    theirs = ref.compute_metrics(ref.results)
    assert abs(ours['seg/mIoU'] - theirs['mIoU']) < 0.006  # mmseg rounds to 2 decimals
    assert abs(ours['seg/aAcc'] - theirs['aAcc']) < 0.006
    # per-class IoU from a plain confusion matrix
    g = np.concatenate([x.ravel() for x in gts])
    p = np.concatenate([x.ravel() for x in preds])
    keep = g != 255
    conf = np.bincount(g[keep] * num_classes + p[keep], minlength=num_classes ** 2)
    conf = conf.reshape(num_classes, num_classes)
    for c in range(num_classes - 1):
        iou = conf[c, c] / (conf[c].sum() + conf[:, c].sum() - conf[c, c]) * 100
        assert ours[f'seg/IoU.c{c}'] == pytest.approx(iou, abs=1e-4)
    # the class absent from the ground truth has IoU 0 (predicted) and still counts in mIoU
    assert ours['seg/IoU.c5'] == 0.0


def _numpy_depth(pred, gt, lo, hi, crop):
    """Reference depth metrics of one image -> (sums dict, n)."""
    mask = (gt > 0) & (gt >= lo) & (gt <= hi)
    if crop is not None:
        h, w = gt.shape
        c = np.zeros_like(mask)
        c[int(crop[0] * h):int(crop[1] * h), int(crop[2] * w):int(crop[3] * w)] = True
        mask &= c
    g = gt[mask].astype(np.float64)
    p = np.clip(pred[mask].astype(np.float64), lo, hi)
    r = np.maximum(p / g, g / p)
    return dict(sq=((p - g) ** 2).sum(), abs_rel=(np.abs(p - g) / g).sum(),
                sq_rel=((p - g) ** 2 / g).sum(),
                log10=np.abs(np.log10(p) - np.log10(g)).sum(),
                d1=(r < 1.25).sum(), d2=(r < 1.25 ** 2).sum(), d3=(r < 1.25 ** 3).sum()), mask.sum()


def _finish(s, n):
    return dict(rmse=math.sqrt(s['sq'] / n), abs_rel=s['abs_rel'] / n, sq_rel=s['sq_rel'] / n,
                log10=s['log10'] / n, d1=100 * s['d1'] / n, d2=100 * s['d2'] / n,
                d3=100 * s['d3'] / n)


@pytest.mark.parametrize('per_image', [False, True])
def test_depth_metrics_equal_numpy(per_image):
    rng = np.random.RandomState(1)
    lo, hi, crop = 0.5, 8.0, (0.1, 0.9, 0.05, 0.95)
    gts, preds = [], []
    for k in range(3):
        gt = rng.uniform(0.2, 10.0, (20 + 4 * k, 30)).astype(np.float32)  # some out of range
        gt[rng.rand(*gt.shape) < 0.2] = 0  # no measurement
        pred = (gt * rng.uniform(0.6, 1.5, gt.shape) + rng.normal(0, 0.3, gt.shape))
        gts.append(gt), preds.append(pred.astype(np.float32))
    metric = MultiTaskMetric([dict(type='DepthTask', metric_cfg=dict(
        min_depth=lo, max_depth=hi, crop=crop, per_image=per_image))])
    ours = _evaluate(metric, _samples('depth', [p[None] for p in preds],
                                      [g[None] for g in gts]))
    per = [_numpy_depth(p, g, lo, hi, crop) for p, g in zip(preds, gts)]
    if per_image:
        each = [_finish(s, n) for s, n in per]
        ref = {k: np.mean([e[k] for e in each]) for k in each[0]}
    else:
        ref = _finish({k: sum(s[k] for s, _ in per) for k in per[0][0]}, sum(n for _, n in per))
    for key, value in ref.items():
        assert ours[f'depth/{key}'] == pytest.approx(value, rel=1e-9), key
    assert set(ours) == {f'depth/{k}' for k in DepthTask.metric_directions}


def _rotate(normals, degrees, rng):
    """Rotate each unit normal by exactly ``degrees`` about an axis perpendicular to it."""
    k = np.cross(normals, rng.normal(size=normals.shape))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    t = np.deg2rad(degrees)
    return normals * np.cos(t) + np.cross(k, normals) * np.sin(t)


@pytest.mark.parametrize('degrees', [10.0, 20.0])
def test_normal_angles_of_known_rotations(degrees):
    rng = np.random.RandomState(2)
    gts, preds = [], []
    for _ in range(2):
        n = rng.normal(size=(16, 24, 3))
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        pred = _rotate(n, degrees, rng)
        n[:2] = 0  # invalid ground truth: not evaluated
        gts.append(n.transpose(2, 0, 1).astype(np.float32))
        preds.append(pred.transpose(2, 0, 1).astype(np.float32))
    ours = _evaluate(MultiTaskMetric(['NormalTask']), _samples('normal', preds, gts))
    assert ours['normal/mean'] == pytest.approx(degrees, abs=1e-3)  # float32 inputs
    assert ours['normal/rmse'] == pytest.approx(degrees, abs=1e-3)
    assert abs(ours['normal/median'] - degrees) <= ANGLE_BIN
    assert ours['normal/11.25'] == (100.0 if degrees < 11.25 else 0.0)
    assert ours['normal/22.5'] == 100.0 and ours['normal/30'] == 100.0


def test_normal_median_over_images():
    rng = np.random.RandomState(3)
    n = rng.normal(size=(8, 8, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    gt = torch.as_tensor(n.transpose(2, 0, 1))
    preds = [torch.as_tensor(_rotate(n, d, rng).transpose(2, 0, 1)) for d in (10, 10, 40)]
    ours = _evaluate(MultiTaskMetric(['NormalTask']), _samples('normal', preds, [gt] * 3))
    assert ours['normal/mean'] == pytest.approx(20.0, abs=1e-6)
    assert abs(ours['normal/median'] - 10.0) <= ANGLE_BIN
    assert ours['normal/30'] == pytest.approx(200 / 3)


def test_edge_l1_in_fixed_units_ignores_padding():
    rng = np.random.RandomState(4)
    gt = rng.uniform(0, 0.3, (1, 10, 12)).astype(np.float32)
    gt[..., -3:] = EdgeTask.ignore_value
    pred = rng.uniform(-0.1, 1.2, (1, 10, 12)).astype(np.float32)
    ours = _evaluate(MultiTaskMetric(['EdgeTask']), _samples('edge', [pred], [gt]))
    keep = gt >= 0
    ref = np.abs(np.clip(pred, 0, 1)[keep] - gt[keep]).mean()
    assert ours['edge/l1'] == pytest.approx(ref, rel=1e-6)


def test_delta_m_signs_follow_directions():
    directions = {'seg/mIoU': True, 'depth/rmse': False}
    base = {'seg/mIoU': 40.0, 'depth/rmse': 0.5}
    assert delta_m({'seg/mIoU': 44.0, 'depth/rmse': 0.5}, base, directions) == pytest.approx(5.0)
    assert delta_m({'seg/mIoU': 40.0, 'depth/rmse': 0.4}, base, directions) == pytest.approx(10.0)
    assert delta_m({'seg/mIoU': 36.0, 'depth/rmse': 0.5}, base, directions) == pytest.approx(-5.0)
    assert delta_m({'seg/mIoU': 40.0, 'depth/rmse': 0.6}, base, directions) == pytest.approx(-10.0)
    # only the baseline's metrics count
    assert delta_m({'seg/mIoU': 44.0, 'depth/rmse': 9.9}, {'seg/mIoU': 40.0},
                   directions) == pytest.approx(10.0)
    with pytest.raises(KeyError, match='depth/rmse'):
        delta_m({'seg/mIoU': 1.0}, base, directions)
    with pytest.raises(ValueError, match='seg/mIoU'):
        delta_m({'seg/mIoU': 1.0}, {'seg/mIoU': 0.0}, directions)


def test_metric_reports_delta_m_from_baseline_file(tmp_path):
    gt = torch.full((1, 8, 8), 2.0)
    pred = torch.full((1, 8, 8), 2.2)
    seg = torch.zeros((1, 8, 8), dtype=torch.long)
    sample = MultiTaskDataSample()
    sample.set_gt('depth', gt), sample.set_pred('depth', pred)
    sample.set_gt('seg', seg), sample.set_pred('seg', seg)
    baseline = {'depth/rmse': 0.25, 'depth/d1': 100.0, 'seg/mIoU': 80.0}
    path = tmp_path / 'baseline.json'
    path.write_text(json.dumps(baseline))
    metric = MultiTaskMetric([dict(type='SemanticTask', num_classes=2), 'DepthTask'],
                             baseline_file=str(path))
    res = _evaluate(metric, [sample])
    assert res['depth/rmse'] == pytest.approx(0.2)
    assert res['seg/mIoU'] == pytest.approx(100.0)  # class 1 absent everywhere: NaN, skipped
    # rmse 0.2 vs 0.25 (lower better): +20; d1 equal: 0; mIoU 100 vs 80: +25
    assert res['mtl/delta_m'] == pytest.approx((20 + 0 + 25) / 3)
    table = format_metrics_table(res)
    for word in ('task', 'seg', 'depth', 'mtl', 'rmse', 'delta_m', 'IoU'):
        assert word in table
    with pytest.raises(KeyError, match='normal/mean'):
        MultiTaskMetric(['DepthTask'], baseline={'normal/mean': 20.0})


def test_directions_cover_every_reported_metric():
    for task in (SemanticTask(num_classes=3), DepthTask(), NormalTask(), EdgeTask()):
        assert all(isinstance(v, bool) for v in task.metric_directions.values())
    metric = MultiTaskMetric([dict(type='SemanticTask', num_classes=3), 'DepthTask',
                              'NormalTask', 'EdgeTask'])
    assert metric.directions['depth/rmse'] is False and metric.directions['seg/mIoU'] is True


def test_undefined_metrics_are_warned_by_name_and_null_for_json():
    """Depth without one valid pixel and labels all ignore: no score, a warning naming each
    metric, and null (not NaN) for the JSON."""
    from mtl_adapters.evaluation import metrics_for_json
    metric = MultiTaskMetric([dict(type='SemanticTask', num_classes=3), dict(type='DepthTask')])
    seg = _samples('seg', [torch.zeros(1, 4, 4, dtype=torch.long)],
                   [torch.full((1, 4, 4), 255)])
    depth = _samples('depth', [torch.ones(1, 4, 4)], [torch.zeros(1, 4, 4)])
    for s, d in zip(seg, depth):
        s.set_pred('depth', d.get_pred('depth'))
        s.set_gt('depth', d.get_gt('depth'))
    with pytest.warns(UserWarning, match=r"undefined metrics.*'seg/mIoU', 'seg/aAcc'.*"
                                         r"'depth/rmse'.*no valid ground-truth pixel"):
        metrics = _evaluate(metric, seg)
    saved = json.loads(json.dumps(metrics_for_json(metrics), allow_nan=False))
    assert saved['seg/mIoU'] is None and saved['depth/rmse'] is None
