"""Helpers shared by the benchmarks."""
import json
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


def write_json(path: Union[str, Path], result) -> Path:
    """Write a benchmark's result as indented JSON (parent folders made) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {out}')
    return out
