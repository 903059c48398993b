"""MultiTaskDataPreprocessor: mmengine's image normalisation and padding, per-task label padding.

The reference below is the batching rule written out by hand (what the preprocessor did before
it became a subclass of mmengine's ``ImgDataPreprocessor``); the preprocessor must match it
exactly."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor

from conftest import TEST_TASKS
from mtl_adapters.models import MultiTaskDataPreprocessor
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def reference(images, gts, tasks, divisor, training, bgr_to_rgb=False):
    """Expected (inputs, per-sample padded gts, padded (h, w))."""
    h = math.ceil(max(i.shape[-2] for i in images) / divisor) * divisor
    w = math.ceil(max(i.shape[-1] for i in images) / divisor) * divisor
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    batch, padded = [], []
    for img, gt in zip(images, gts):
        img = img[[2, 1, 0]] if bgr_to_rgb else img
        img = (img.float() - mean) / std
        batch.append(F.pad(img, (0, w - img.shape[-1], 0, h - img.shape[-2]), value=0.0))
        padded.append({n: F.pad(g, (0, w - g.shape[-1], 0, h - g.shape[-2]),
                                value=tasks[n].ignore_value) if training else g
                       for n, g in gt.items()})
    return torch.stack(batch), padded, (h, w)


def make_batch(sizes, tasks, seed=0):
    """uint8 images of ``sizes`` and samples holding every task's ground truth."""
    g = torch.Generator().manual_seed(seed)
    images, gts, samples = [], [], []
    for h, w in sizes:
        images.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        gt = {n: torch.rand((t.gt_channels, h, w), generator=g) for n, t in tasks.items()}
        sample = MultiTaskDataSample(metainfo=dict(img_shape=(h, w)))
        for n, v in gt.items():
            sample.set_gt(n, v.clone())
        gts.append(gt)
        samples.append(sample)
    return images, gts, samples


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('divisor,bgr_to_rgb', [(32, False), (7, True), (1, False)])
def test_matches_the_batching_rule(training, divisor, bgr_to_rgb):
    tasks = build_tasks(TEST_TASKS)
    pre = MultiTaskDataPreprocessor(tasks=TEST_TASKS, size_divisor=divisor,
                                    bgr_to_rgb=bgr_to_rgb)
    assert isinstance(pre, ImgDataPreprocessor)
    images, gts, samples = make_batch([(30, 45), (33, 20), (17, 64)], tasks)
    out = pre(dict(inputs=[i.clone() for i in images], data_samples=samples), training)
    inputs, padded, hw = reference(images, gts, tasks, divisor, training, bgr_to_rgb)
    assert out['inputs'].dtype == torch.float32
    assert torch.equal(out['inputs'], inputs)
    for sample, expect in zip(out['data_samples'], padded):
        assert sample.metainfo['pad_shape'] == hw == sample.metainfo['batch_input_shape']
        for name, value in expect.items():
            assert torch.equal(sample.get_gt(name), value), name


def test_pad_values_are_the_tasks_ignore_values():
    tasks = build_tasks(TEST_TASKS)
    pre = MultiTaskDataPreprocessor(tasks=list(tasks.values()), size_divisor=32)
    images, _, samples = make_batch([(10, 12)], tasks)
    sample = pre(dict(inputs=images, data_samples=samples), True)['data_samples'][0]
    for name, task in tasks.items():
        gt = sample.get_gt(name)
        assert gt.shape[-2:] == (32, 32)
        assert torch.all(gt[..., 10:, :] == task.ignore_value)
        assert torch.all(gt[..., :, 12:] == task.ignore_value)
    assert {t.ignore_value for t in tasks.values()} >= {255, 0, -1}   # labels, depth, edges


def test_stacked_batch_and_no_samples():
    """A (B, 3, H, W) tensor (default collate) and a batch without data samples."""
    tasks = build_tasks(TEST_TASKS)
    pre = MultiTaskDataPreprocessor(tasks=TEST_TASKS)
    images, _, _ = make_batch([(40, 50), (40, 50)], tasks)
    out = pre(dict(inputs=torch.stack(images)), False)
    expect, _, _ = reference(images, [{}, {}], tasks, 32, False)
    assert out['data_samples'] is None and torch.equal(out['inputs'], expect)


def test_built_by_the_model_with_its_tasks():
    from conftest import tiny_model_cfg
    from mtl_adapters.registry import MODELS
    model = MODELS.build(tiny_model_cfg())
    pre = model.data_preprocessor
    assert isinstance(pre, MultiTaskDataPreprocessor)
    assert list(pre.tasks) == list(model.tasks) and pre.pad_size_divisor == 32
    assert not any(k.startswith('data_preprocessor') for k in model.state_dict())
