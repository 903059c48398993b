"""Packing a transformed sample into ``inputs`` + :class:`MultiTaskDataSample`."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mtl_adapters.registry import TRANSFORMS
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks


@TRANSFORMS.register_module()
class PackMultiTaskInputs(BaseTransform):
    """``img`` -> (3, H, W) uint8 tensor; ``gt[task]`` -> ``data_sample.gt_<task>`` (C, H, W)."""

    def __init__(self, tasks: Sequence,
                 meta_keys=('img_path', 'ori_shape', 'img_shape', 'flip', 'building')):
        self.tasks = build_tasks(tasks)
        self.meta_keys = meta_keys

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img'].transpose(2, 0, 1))
        sample = MultiTaskDataSample()
        for name, value in results.get('gt', {}).items():
            sample.set_gt(name, self.tasks[name].to_tensor(value))
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=torch.from_numpy(img), data_samples=sample)
