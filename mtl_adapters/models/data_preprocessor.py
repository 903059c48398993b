"""Batching: normalise images, pad images and every task's ground truth with its own value."""
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from mtl_adapters.registry import MODELS
from mtl_adapters.tasks import build_tasks


@MODELS.register_module()
class MultiTaskDataPreprocessor(BaseDataPreprocessor):
    """Stack (3, H, W) uint8 images into a normalised float batch padded (bottom/right) to the
    largest size in the batch rounded up to ``size_divisor``. In training every task's ground
    truth is padded the same way with ``task.ignore_value`` (255 for labels, 0 for depth and
    normals, -1 for edges), so padding never counts in a loss. ``tasks`` is filled in by the
    model from its own task list.
    """

    def __init__(self, tasks: Sequence, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375), size_divisor: int = 32,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.tasks = build_tasks(tasks)
        self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)
        self.size_divisor = size_divisor

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        h = max(img.shape[-2] for img in inputs)
        w = max(img.shape[-1] for img in inputs)
        h = math.ceil(h / self.size_divisor) * self.size_divisor
        w = math.ceil(w / self.size_divisor) * self.size_divisor
        batch = []
        for i, img in enumerate(inputs):
            img = (img.float() - self.mean) / self.std
            pad = (0, w - img.shape[-1], 0, h - img.shape[-2])
            batch.append(F.pad(img, pad, value=0.0))
            if samples is None:
                continue
            samples[i].set_metainfo(dict(pad_shape=(h, w), batch_input_shape=(h, w)))
            if training:
                for name, task in self.tasks.items():
                    gt = samples[i].get_gt(name)
                    if gt is not None and gt.shape[-2:] != (h, w):
                        gt_pad = (0, w - gt.shape[-1], 0, h - gt.shape[-2])
                        samples[i].set_gt(name, F.pad(gt, gt_pad, value=task.ignore_value))
        return dict(inputs=torch.stack(batch), data_samples=samples)
