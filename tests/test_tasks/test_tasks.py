"""Task definitions: Taskonomy encodings, masks, losses, flips."""
import numpy as np
import pytest
import torch

from mtl_adapters.datasets.taskonomy import decode_taskonomy, encode_taskonomy
from mtl_adapters.registry import TASKS
from mtl_adapters.tasks import build_tasks


def test_semantic_taskonomy_quirks():
    task = TASKS.build(dict(type='SemanticTask', num_classes=17))
    raw = np.array([[0, 1, 2, 17]], np.uint8)       # uncertain, background, first, last
    assert decode_taskonomy(task, raw).tolist() == [[255, 0, 1, 16]]
    bad = np.array([[0, 1, 2, 17, 18]], np.uint8)   # 18: beyond the 17 classes
    with pytest.raises(ValueError, match=r'class values \[18\]'):
        decode_taskonomy(task, bad)
    lenient = TASKS.build(dict(type='SemanticTask', num_classes=17, out_of_range_ignore=True))
    assert decode_taskonomy(lenient, bad).tolist() == [[255, 0, 1, 16, 255]]
    label = np.array([[255, 0, 16]], np.uint8)
    assert encode_taskonomy(task, label).tolist() == [[0, 1, 17]]


def test_depth_taskonomy_units_and_invalid():
    task = TASKS.build(dict(type='DepthTask'))
    raw = np.array([[512, 1024, 65535, 256]], np.uint16)
    np.testing.assert_allclose(decode_taskonomy(task, raw), [[1.0, 2.0, 0.0, 0.5]])
    depth = np.array([[1.0, 0.0, np.nan, 3.3]], np.float32)
    enc = encode_taskonomy(task, depth)
    assert enc.dtype == np.uint16 and enc.tolist() == [[512, 65535, 65535, 1690]]


def test_normal_round_trip_and_flip():
    task = TASKS.build(dict(type='NormalTask'))
    n = np.array([[[0.6, 0.0, -0.8], [0.0, 0.0, 0.0]]], np.float32)
    dec = decode_taskonomy(task, encode_taskonomy(task, n))
    np.testing.assert_allclose(dec[0, 0], n[0, 0], atol=6e-3)
    assert np.linalg.norm(dec[0, 1]) == 0   # invalid stays invalid
    np.testing.assert_allclose(task.hflip_values(n)[0, 0], [-0.6, 0.0, -0.8])


def test_edge_round_trip():
    task = TASKS.build(dict(type='EdgeTask'))
    e = np.array([[0.0, 0.1, 1.0]], np.float32)
    np.testing.assert_allclose(decode_taskonomy(task, encode_taskonomy(task, e)), e, atol=1e-5)


def test_tasks_hold_no_taskonomy_format():
    """The Taskonomy encodings live in datasets/taskonomy.py (a table keyed by task class): no
    task class defines its own; a subclass reads its parent's entry; an unknown one is named."""
    from mtl_adapters.datasets.taskonomy import taskonomy_format
    from mtl_adapters.tasks import DepthTask, EdgeTask, NormalTask, SemanticTask
    for cls in (SemanticTask, DepthTask, NormalTask, EdgeTask):
        assert not [k for k in vars(cls) if 'taskonomy' in k.lower()], cls

    class CoarseSemantic(SemanticTask):
        name = 'coarse'

    assert taskonomy_format(CoarseSemantic(num_classes=3)).domain == 'segmentsemantic'

    from mtl_adapters.tasks import BaseTask

    class Albedo(BaseTask):
        name = 'albedo'

        def default_loss(self):
            return dict(type='MaskedL1Loss')

    with pytest.raises(ValueError, match=r"Albedo \('albedo'\) has no Taskonomy format"):
        taskonomy_format(Albedo())


@pytest.mark.parametrize('name', ['SemanticTask', 'DepthTask', 'NormalTask', 'EdgeTask'])
def test_loss_ignores_invalid_pixels_and_is_zero_when_exact(name):
    task = TASKS.build(dict(type=name))
    loss = task.build_loss()
    torch.manual_seed(0)
    if name == 'SemanticTask':
        gt = torch.randint(0, task.num_classes, (2, 1, 8, 8))
        perfect = torch.nn.functional.one_hot(gt[:, 0], task.num_classes).permute(0, 3, 1, 2)
        perfect = perfect.float() * 50
    elif name == 'NormalTask':
        gt = torch.nn.functional.normalize(torch.randn(2, 3, 8, 8), dim=1)
        perfect = gt * 2.0            # the loss normalises the prediction
    else:
        gt = torch.rand(2, 1, 8, 8) + 0.1
        perfect = gt.clone()
    assert float(loss(perfect, gt, task.valid_mask(gt))) == pytest.approx(0, abs=1e-4)
    # corrupting only pixels marked invalid does not change the loss
    padded = gt.clone()
    padded[..., :2, :] = task.ignore_value
    wrong = perfect.clone()
    wrong[..., :2, :] = -perfect[..., :2, :] + 3
    valid = task.valid_mask(padded)
    assert not valid[..., :2, :].any()
    assert float(loss(wrong, padded, valid)) == pytest.approx(0, abs=1e-4)
    # an all-invalid batch still gives a finite zero with a gradient path
    out = perfect.clone().requires_grad_(True)
    empty = torch.full_like(gt, task.ignore_value)
    value = loss(out, empty, task.valid_mask(empty))
    value.backward()
    assert float(value.detach()) == 0 and out.grad is not None


def test_build_tasks_rejects_duplicates_and_empty():
    with pytest.raises(ValueError, match='twice'):
        build_tasks(['DepthTask', 'DepthTask'])
    with pytest.raises(ValueError, match='empty'):
        build_tasks([])
    with pytest.raises(KeyError):
        build_tasks(['NoSuchTask'])


@pytest.mark.parametrize('name', ['SemanticTask', 'DepthTask', 'NormalTask', 'EdgeTask'])
def test_random_gt_is_valid_everywhere(name):
    task = TASKS.build(dict(type=name))
    gt = task.random_gt((6, 7), generator=torch.Generator().manual_seed(0))
    assert tuple(gt.shape) == (task.gt_channels, 6, 7)
    assert task.valid_mask(gt[None]).all()


@pytest.mark.parametrize('cfg, key, close', [
    (dict(type='DepthTask', metric_cfg=dict(max_detph=10.0)), 'max_detph', 'max_depth'),
    (dict(type='EdgeTask', metric_cfg=dict(boundary=True, maxDist=0.01)), 'maxDist', 'max_dist'),
    (dict(type='SemanticTask', metric_cfg=dict(per_image=True)), 'per_image', None),
    (dict(type='NormalTask', metric_cfg=dict(threshold=11.25)), 'threshold', None),
])
def test_unknown_metric_option_is_refused_by_every_task(cfg, key, close):
    """One check in BaseTask for all tasks: the unknown key, the accepted ones, a suggestion."""
    with pytest.raises(KeyError) as err:
        TASKS.build(cfg)
    message = str(err.value)
    assert repr(key) in message and 'accepts' in message
    assert (f'did you mean {close!r}' in message) if close else 'did you mean' not in message


def test_semantic_num_classes_fits_the_8bit_ground_truth():
    """Class ids are stored as uint8 with 255 = unlabelled: more than 255 classes would wrap
    ids 256.. onto classes 0.. (and 255 onto "unlabelled")."""
    assert TASKS.build(dict(type='SemanticTask', num_classes=255)).num_classes == 255
    with pytest.raises(ValueError, match='num_classes=300, expected 1..255'):
        TASKS.build(dict(type='SemanticTask', num_classes=300))


def test_semantic_values_above_255_are_never_unlabelled_or_wrapped():
    """A 16-bit label file is checked at its full bit depth: 256 is not train id 255
    ("unlabelled"), 258 is not class 1; both are out of range (an error naming the values)
    unless out_of_range_ignore."""
    task = TASKS.build(dict(type='SemanticTask', num_classes=17))
    raw = np.array([[0, 1, 17, 256, 258]], np.uint16)
    with pytest.raises(ValueError, match=r'class values \[256, 258\] \(2 pixels\)'):
        decode_taskonomy(task, raw)
    lenient = TASKS.build(dict(type='SemanticTask', num_classes=17, out_of_range_ignore=True))
    assert decode_taskonomy(lenient, raw).tolist() == [[255, 0, 16, 255, 255]]
