"""Helpers shared by the benchmarks."""
from typing import List, Optional

import torch


def random_samples(model, batch: int, size, device='cpu',
                   generator: Optional[torch.Generator] = None) -> List:
    """Data samples with random but valid targets (``task.random_gt``) for every task."""
    from mtl_adapters.structures import MultiTaskDataSample
    samples = []
    for _ in range(batch):
        sample = MultiTaskDataSample(metainfo=dict(img_shape=tuple(size)))
        for name, task in model.tasks.items():
            sample.set_gt(name, task.random_gt(tuple(size), generator=generator).to(device))
        samples.append(sample)
    return samples
