"""Helpers shared by the benchmarks."""
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Union

if TYPE_CHECKING:                   # the CPU-only benchmarks (render, boundary) import no torch
    import torch


def random_samples(model, batch: int, size, device='cpu',
                   generator: Optional['torch.Generator'] = None) -> List:
    """Data samples with random but valid targets (``task.random_gt``) for every task."""
    from mtl_adapters.structures import MultiTaskDataSample
    samples = []
    for _ in range(batch):
        sample = MultiTaskDataSample(metainfo=dict(img_shape=tuple(size)))
        for name, task in model.tasks.items():
            sample.set_gt(name, task.random_gt(tuple(size), generator=generator).to(device))
        samples.append(sample)
    return samples


def write_json(path: Union[str, Path], result, **kwargs) -> Path:
    """Write a benchmark's result as indented strict JSON (``utils.write_json``: atomic,
    parent folders made, NaN refused; ``kwargs`` as there) and say where."""
    from mtl_adapters.utils.io import write_json as write_strict_json
    out = write_strict_json(path, result, **kwargs)
    print(f'wrote {out}')
    return out
