"""Packing a transformed sample into ``inputs`` + :class:`MultiTaskDataSample`."""
from typing import Optional, Sequence

import numpy as np
import torch

from mtl_adapters.registry import TRANSFORMS
from mtl_adapters.structures import MultiTaskDataSample
from .base import TaskTransform


@TRANSFORMS.register_module()
class PackMultiTaskInputs(TaskTransform):
    """``img`` -> (3, H, W) uint8 tensor; ``gt[task]`` -> ``data_sample.gt_<task>`` (C, H, W).

    Args:
        meta_keys: keys of the results copied into the sample's metainfo.
        tasks: only outside a dataset (see ``TaskTransform``).
    """

    def __init__(self, meta_keys=('img_path', 'ori_shape', 'img_shape', 'flip', 'building',
                                  'sample_key'),
                 tasks: Optional[Sequence] = None):
        super().__init__(tasks)
        self.meta_keys = meta_keys

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img'].transpose(2, 0, 1))
        sample = MultiTaskDataSample()
        gts = results.get('gt', {})
        tasks = self.tasks_of(results) if gts else {}
        for name, value in gts.items():
            sample.set_gt(name, tasks[name].to_tensor(value))
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=torch.from_numpy(img), data_samples=sample)
