"""Running a block without it moving the process's global random generators."""
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


@contextmanager
def isolated_rng() -> Iterator[None]:
    """Run the block on copies of the global generators: afterwards Python's ``random``,
    numpy's and torch's (CPU and every initialised CUDA device) continue exactly where they
    were before it, whatever the block drew.

    Validation runs inside the training process (always with ``num_workers=0``: the
    dataloader's transforms run there too; with workers still the loader's base seed): without
    this, every validation would shift what the next training augmentations and dropout draw,
    so configuring (or re-scheduling) validation would change the training itself.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
