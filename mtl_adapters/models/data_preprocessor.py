"""Batching: mmengine's image normalisation and padding, plus every task's ground truth padded
with its own ignore value."""
from typing import Sequence

import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor

from mtl_adapters.registry import MODELS
from mtl_adapters.tasks import build_tasks


@MODELS.register_module()
class MultiTaskDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` (channel conversion, ``(img - mean) / std``, images
    padded bottom/right with 0 to the largest size in the batch rounded up to
    ``size_divisor``), plus: every sample gets ``pad_shape`` / ``batch_input_shape`` (the padded
    size) and, in training, every task's ground truth is padded the same way with
    ``task.ignore_value`` (255 for labels, 0 for depth and normals, -1 for edges), so padding
    never counts in a loss. ``tasks`` is filled in by the model from its own task list.

    Args:
        tasks: task configs or built tasks (their ``ignore_value`` pads their ground truth).
        mean / std: per-channel normalisation, in the input's channel order after conversion.
        size_divisor: padded height and width are multiples of it (mmseg's name for
            mmengine's ``pad_size_divisor``).
        bgr_to_rgb / rgb_to_bgr: swap the channels first (the datasets load RGB: both off).
        non_blocking: asynchronous host-to-device copies.
    """

    def __init__(self, tasks: Sequence, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375), size_divisor: int = 32,
                 bgr_to_rgb: bool = False, rgb_to_bgr: bool = False,
                 non_blocking: bool = False):
        super().__init__(mean=mean, std=std, pad_size_divisor=size_divisor, pad_value=0,
                         bgr_to_rgb=bgr_to_rgb, rgb_to_bgr=rgb_to_bgr,
                         non_blocking=non_blocking)
        self.tasks = build_tasks(tasks)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalised, padded ``inputs`` (B, 3, H, W); samples with the padded shape and, in
        training, ground truth padded to (H, W) with each task's ignore value."""
        data = super().forward(data, training)
        samples = data['data_samples']
        if samples is None:
            return data
        h, w = data['inputs'].shape[-2:]
        for sample in samples:
            sample.set_metainfo(dict(pad_shape=(h, w), batch_input_shape=(h, w)))
            if not training:
                continue
            for name, task in self.tasks.items():
                gt = sample.get_gt(name)
                if gt is not None and gt.shape[-2:] != (h, w):
                    pad = (0, w - gt.shape[-1], 0, h - gt.shape[-2])
                    sample.set_gt(name, F.pad(gt, pad, value=task.ignore_value))
        return data
