"""The task interface: everything the package knows about one dense task lives in its Task class.

A task defines, in one place: its output channels, the canonical in-memory form of its ground
truth (each dataset's file decodes its own files to it: the on-disk formats live in
``mtl_adapters/datasets/``, never here), its pad / ignore value and validity mask, how
geometric transforms treat it (interpolation, what a horizontal flip does to the values), its
loss, its metric (accumulate per-sample statistics, reduce over the dataset), how raw network
outputs become predictions, and how to colour it for pictures.
Nothing else in the package branches on a task's name.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from mtl_adapters.registry import MODELS

#: the in-plane matrix of a horizontal flip (see ``BaseTask.reorient_values``)
HFLIP = np.array([[-1, 0], [0, 1]])


class BaseTask:
    """Base class of a dense prediction task; subclasses fill in the class attributes."""

    #: key used in every dict keyed by task (losses, outputs, metrics, configs)
    name: str = ''
    #: one-letter code used in benchmark names (S-D-N-E)
    abbrev: str = ''
    #: value written where there is no ground truth (padding, invalid pixels)
    ignore_value: float = 0.0
    #: 'nearest' for labels, 'linear' for continuous maps
    interpolation: str = 'linear'
    #: 'classification' or 'regression' (e.g. uncertainty weighting's likelihood)
    likelihood: str = 'regression'
    #: metric names and whether larger is better (used by the multi-task score)
    metric_directions: Dict[str, bool] = {}
    #: the ``metric_cfg`` options the task accepts, with their defaults (filled in at build)
    metric_defaults: Dict[str, Any] = {}

    def __init__(self, loss: Optional[dict] = None, loss_weight: float = 1.0,
                 metric_cfg: Optional[dict] = None):
        self.loss_cfg = dict(loss or self.default_loss())
        self.loss_cfg.setdefault('loss_weight', loss_weight)
        self.metric_cfg = dict(metric_cfg or {})
        self._check_metric_keys()
        for key, value in self.metric_defaults.items():
            self.metric_cfg.setdefault(key, value)

    # --------------------------------------------------------------- options
    def metric_keys(self) -> List[str]:
        """Every ``metric_cfg`` key this task accepts (default: ``metric_defaults``)."""
        return list(self.metric_defaults)

    def _check_metric_keys(self) -> None:
        """An unknown ``metric_cfg`` key (a typo) is an error naming it, the known keys and
        the closest one: an ignored option would silently change what is measured."""
        known = self.metric_keys()
        for key in self.metric_cfg:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise KeyError(f'{type(self).__name__} metric_cfg: unknown key {key!r}{hint}; '
                           f'it accepts {known or "no keys"}')

    def options(self) -> Dict[str, Any]:
        """What the task was configured with, as comparable values: two tasks with equal
        options behave the same (the model's and the dataset's copy must agree,
        :func:`mtl_adapters.tasks.check_model_data_tasks`)."""
        return dict(type=type(self).__name__, loss=_plain(self.loss_cfg),
                    metric_cfg=_plain(self.metric_cfg))

    # ----------------------------------------------------------------- shape
    @property
    def out_channels(self) -> int:
        """Number of channels the task head must produce."""
        raise NotImplementedError

    @property
    def gt_channels(self) -> int:
        """Number of channels of the canonical ground truth (1 for labels)."""
        return 1

    # ------------------------------------------------------------ ground truth
    def reorient_values(self, value: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Fix the values of a map whose pixels were just moved by an in-plane orthogonal map.

        ``matrix`` (2x2, in image axes: x to the right, y down) takes a pixel's offset from the
        image centre before the transform to its offset after it (a horizontal flip is
        ``diag(-1, 1)``, a counter-clockwise quarter turn ``[[0, 1], [-1, 0]]``). Maps whose
        values carry no image-plane direction (labels, depth, edges) keep their values: the
        default. A task whose values are directions (normals) overrides this.
        """
        return value

    def hflip_values(self, value: np.ndarray) -> np.ndarray:
        """Fix the values of a map whose pixels were just mirrored horizontally."""
        return self.reorient_values(value, HFLIP)

    def to_tensor(self, value: np.ndarray) -> Tensor:
        """Canonical HxW[xC] numpy ground truth -> (C, H, W) tensor."""
        arr = value[..., None] if value.ndim == 2 else value
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    def valid_mask(self, gt: Tensor) -> Tensor:
        """(B, C, H, W) ground truth -> (B, 1, H, W) bool mask of pixels that count."""
        raise NotImplementedError

    def valid_mask_np(self, value: np.ndarray) -> np.ndarray:
        """Canonical HxW[xC] numpy ground truth -> HxW bool mask of pixels that count."""
        return self.valid_mask(self.to_tensor(value)[None])[0, 0].numpy()

    def clean_resampled(self, value: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """After resampling a map together with its validity mask: pixels whose neighbourhood
        held any invalid (or padded) pixel become ``ignore_value`` (bilinear resampling must
        not blend real values with the invalid sentinel into fake measurements)."""
        value = value.copy()
        value[~valid] = self.ignore_value
        return value

    def resize(self, value: np.ndarray, size) -> np.ndarray:
        """Resize a canonical map to ``size`` (H, W) with the task's interpolation, keeping
        invalid pixels out of the interpolated values."""
        import cv2
        interp = cv2.INTER_NEAREST if self.interpolation == 'nearest' else cv2.INTER_LINEAR
        h, w = size
        out = cv2.resize(value, (w, h), interpolation=interp)
        valid = cv2.resize(self.valid_mask_np(value).astype(np.float32), (w, h),
                           interpolation=interp)
        return self.clean_resampled(out, valid > 1 - 1e-3)

    def random_gt(self, size, generator: Optional[torch.Generator] = None) -> Tensor:
        """A random but valid (gt_channels, H, W) ground truth (benchmarks, smoke tests)."""
        raise NotImplementedError

    # -------------------------------------------------------------- training
    def default_loss(self) -> dict:
        """Config of the default loss (docs/methods.md#tasks-and-their-losses)."""
        raise NotImplementedError

    def build_loss(self) -> torch.nn.Module:
        """Build the loss module from ``loss_cfg``."""
        return MODELS.build(self.loss_cfg)

    def postprocess(self, logits: Tensor) -> Tensor:
        """Raw head output (B, out_channels, H, W) -> prediction in ground-truth units."""
        return logits

    # ------------------------------------------------------------- evaluation
    def metric_stats(self, pred: Tensor, gt: Tensor) -> dict:
        """Sufficient statistics of one sample: pred, gt are (C, H, W) on the same grid."""
        raise NotImplementedError

    def reduce_metrics(self, stats: List[dict]) -> Dict[str, float]:
        """Combine per-sample statistics over a dataset into the task's metrics."""
        raise NotImplementedError

    # ----------------------------------------------------------------- files
    def save_prediction(self, value: np.ndarray, stem):
        """Write a canonical prediction as a lossless PNG next to ``stem`` (a path without
        extension): by default the Taskonomy encoding, ``<stem>_<task>.png``."""
        from pathlib import Path

        from mtl_adapters.formats.taskonomy import encode_taskonomy
        from mtl_adapters.utils import write_png
        path = Path(stem).with_name(f'{Path(stem).name}_{self.name}.png')
        write_png(path, encode_taskonomy(self, value))
        return path

    # ---------------------------------------------------------- visualisation
    def colorize(self, value: np.ndarray, reference: Optional[np.ndarray] = None) -> np.ndarray:
        """Canonical map (HxW[xC]) -> HxWx3 uint8 RGB picture; ``reference`` fixes the scale."""
        raise NotImplementedError

    def legend(self, reference: Optional[np.ndarray] = None,
               maps: Sequence[np.ndarray] = ()) -> List[tuple]:
        """What :meth:`colorize` 's colours mean, as ``[(HxWx3 uint8 swatch or bar, text)]``
        for a picture's legend; ``reference`` is the map that fixed the scale, ``maps`` every
        map drawn with it. The default: no legend."""
        return []

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name={self.name!r})'


def _plain(value):
    """Config values -> plain comparable ones (tuples and lists alike, dicts as dicts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build_tasks(cfgs: Sequence) -> Dict[str, BaseTask]:
    """Build an ordered ``{name: task}`` dict from task configs, names or built tasks."""
    from mtl_adapters.registry import TASKS
    tasks: Dict[str, BaseTask] = {}
    for cfg in cfgs:
        if isinstance(cfg, BaseTask):
            task = cfg
        elif isinstance(cfg, str):
            task = TASKS.build(dict(type=cfg))
        else:
            task = TASKS.build(dict(cfg))
        if task.name in tasks:
            raise ValueError(f'task {task.name!r} is listed twice in {list(cfgs)}')
        tasks[task.name] = task
    if not tasks:
        raise ValueError('`tasks` is empty: list at least one task, e.g. '
                         "[dict(type='SemanticTask', num_classes=17), dict(type='DepthTask')]")
    return tasks
