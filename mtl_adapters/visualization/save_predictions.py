"""Per-image prediction files: one lossless PNG per task, readable without this package.

Formats (the suffix after the image stem says what the pixels mean):

each task writes its own (``task.save_prediction``):

- labels ``<stem>_<task>.png``: palette PNG (PIL 'P' mode), pixel = class id, colours from
  the task palette, 255 (ignore) black;
- depth ``<stem>_<task>_mm.png`` (or ``_cm`` when the task's ``max_depth`` exceeds 65.535 m):
  16-bit PNG in millimetres (centimetres), 0 = no value;
- normals ``<stem>_<task>.png``: 8-bit RGB, n = rgb / 255 * 2 - 1 (the task's encoding);
- edges ``<stem>_<task>.png``: 16-bit PNG, value = edge strength * 65535 (the task's units);
- any other task: its Taskonomy encoding (``datasets.taskonomy.encode_taskonomy``) as PNG.

Written by ``tools/infer.py``, by ``tools/test.py --out-dir`` (through
:class:`~mtl_adapters.engine.hooks.SavePredictionsHook`) and by ``tools/demo.py``.
"""
from pathlib import Path
from typing import Dict, Mapping, Sequence, Union

import numpy as np

from mtl_adapters.tasks import BaseTask, build_tasks
from mtl_adapters.tasks.depth import DEPTH_UNITS
from mtl_adapters.tasks.semantic import write_label_png  # noqa: F401 (re-exported)

from .grid import to_hwc


def save_task_prediction(task: BaseTask, value, stem: Union[str, Path]) -> Path:
    """Write one task's prediction ((C, H, W) tensor or canonical array) next to ``stem``
    (a path without extension) in the task's own format; returns the file written."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    return task.save_prediction(to_hwc(value), stem)


def save_predictions(preds: Mapping[str, object],
                     tasks: Union[Mapping[str, BaseTask], Sequence],
                     stem: Union[str, Path]) -> Dict[str, Path]:
    """Write every task's prediction of one image; ``{task: path}``."""
    task_dict = dict(tasks) if isinstance(tasks, Mapping) else build_tasks(tasks)
    return {name: save_task_prediction(task_dict[name], value, stem)
            for name, value in preds.items() if name in task_dict}


def read_depth_png(path: Union[str, Path]) -> np.ndarray:
    """Read a depth PNG written here back to metres (unit taken from the file name)."""
    from mtl_adapters.utils import read_image
    path = Path(path)
    unit = path.stem.rsplit('_', 1)[-1]
    if unit not in DEPTH_UNITS:
        raise ValueError(f'{path}: depth file names end in _mm.png or _cm.png')
    return read_image(path).astype(np.float64) / DEPTH_UNITS[unit]


def sample_stem(sample, index: int) -> str:
    """File stem of a data sample: its dataset's ``sample_key`` when the dataset gives one
    (image names that repeat across scenes, variations and cameras, as in Virtual KITTI 2),
    else ``<parent folder>/<image name>`` when it has an ``img_path`` (Taskonomy names
    repeat across buildings), else ``sample_<index>``."""
    key = sample.metainfo.get('sample_key') if hasattr(sample, 'metainfo') else None
    if key:
        return str(key)
    img_path = sample.metainfo.get('img_path') if hasattr(sample, 'metainfo') else None
    if not img_path:
        return f'sample_{index:06d}'
    p = Path(img_path)
    return f'{p.parent.name}/{p.stem}' if p.parent.name else p.stem
