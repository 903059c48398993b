"""Depth (D): metric depth in metres, 0 = no measurement."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from mtl_adapters.registry import TASKS

from .base_task import BaseTask

#: units of 16-bit depth prediction PNGs: file-name suffix -> units per metre
DEPTH_UNITS = {'mm': 1000.0, 'cm': 100.0}


def turbo(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB through matplotlib's turbo colour map."""
    from matplotlib import colormaps
    return (colormaps['turbo'](np.clip(x, 0, 1))[..., :3] * 255).astype(np.uint8)


@TASKS.register_module()
class DepthTask(BaseTask):
    """Depth estimation: berHu loss by default; RMSE, AbsRel, SqRel, log10, delta<1.25^k.

    ``metric_cfg``: ``min_depth``/``max_depth`` (metres; pixels outside are not evaluated and
    predictions are clamped to the range), ``crop`` ``(top, bottom, left, right)`` as fractions
    of the height/width (e.g. the Eigen crop; rows ``int(top * H):int(bottom * H)``), and
    ``per_image``, which picks one of the field's two conventions. Over the evaluated pixels
    (valid ground truth, in range, inside the crop), p = prediction and g = ground truth:

    * ``per_image=False`` (default; pooled, as the NYUD multi-task benchmarks' depth meter):
      every evaluated pixel of the whole set counts once, N = their number over the set,
      ``rmse = sqrt(sum (p - g)^2 / N)``, ``abs_rel = sum |p - g| / g / N`` (``sq_rel``,
      ``log10`` alike), ``d_j = 100 * #{max(p/g, g/p) < 1.25^j} / N``;
    * ``per_image=True`` (the monocular-depth papers' Eigen-split tables): each metric is
      computed on each image alone (its rmse is the root of that image's mean squared error)
      and the per-image values are averaged; images without an evaluated pixel are left out.
    """

    name = 'depth'
    abbrev = 'D'
    ignore_value = 0.0
    interpolation = 'linear'
    metric_directions = {'rmse': False, 'abs_rel': False, 'sq_rel': False, 'log10': False,
                         'd1': True, 'd2': True, 'd3': True}

    metric_defaults = dict(min_depth=1e-3, max_depth=128.0, per_image=False, crop=None)

    @property
    def out_channels(self) -> int:
        return 1

    def valid_mask(self, gt: Tensor) -> Tensor:
        return (gt > 0) & torch.isfinite(gt)

    def random_gt(self, size, generator=None) -> Tensor:
        lo, hi = self.metric_cfg['min_depth'], min(self.metric_cfg['max_depth'], 20.0)
        return torch.rand((1, *size), generator=generator) * (hi - lo) + lo

    def default_loss(self) -> dict:
        return dict(type='BerHuLoss')

    def _eval_mask(self, gt: Tensor) -> Tensor:
        cfg = self.metric_cfg
        mask = self.valid_mask(gt) & (gt >= cfg['min_depth']) & (gt <= cfg['max_depth'])
        if cfg['crop'] is not None:
            top, bottom, left, right = cfg['crop']
            h, w = gt.shape[-2:]
            crop = torch.zeros_like(mask)
            crop[..., int(top * h):int(bottom * h), int(left * w):int(right * w)] = True
            mask &= crop
        return mask

    def metric_stats(self, pred: Tensor, gt: Tensor) -> dict:
        mask = self._eval_mask(gt)
        g = gt[mask].double()
        p = pred[mask].double().clamp(self.metric_cfg['min_depth'], self.metric_cfg['max_depth'])
        ratio = torch.maximum(p / g, g / p)
        return dict(
            n=int(mask.sum()),
            sq=float(((p - g) ** 2).sum()),
            abs_rel=float(((p - g).abs() / g).sum()),
            sq_rel=float(((p - g) ** 2 / g).sum()),
            log10=float((torch.log10(p) - torch.log10(g)).abs().sum()),
            d1=int((ratio < 1.25).sum()), d2=int((ratio < 1.25 ** 2).sum()),
            d3=int((ratio < 1.25 ** 3).sum()))

    @staticmethod
    def _finish(s: dict) -> Dict[str, float]:
        n = max(s['n'], 1)
        return {'rmse': (s['sq'] / n) ** 0.5, 'abs_rel': s['abs_rel'] / n,
                'sq_rel': s['sq_rel'] / n, 'log10': s['log10'] / n,
                'd1': 100 * s['d1'] / n, 'd2': 100 * s['d2'] / n, 'd3': 100 * s['d3'] / n}

    def reduce_metrics(self, stats: List[dict]) -> Dict[str, float]:
        stats = [s for s in stats if s['n'] > 0]
        if not stats:
            return {k: float('nan') for k in self.metric_directions}
        if self.metric_cfg['per_image']:
            per_image = [self._finish(s) for s in stats]
            return {k: float(np.mean([m[k] for m in per_image])) for k in per_image[0]}
        return self._finish({k: sum(s[k] for s in stats) for k in stats[0]})

    def depth_unit(self) -> str:
        """'mm' when the depth range fits 16-bit millimetres, else 'cm'."""
        return 'mm' if float(self.metric_cfg['max_depth']) <= 65.535 else 'cm'

    def save_prediction(self, value: np.ndarray, stem):
        """16-bit PNG ``<stem>_<task>_mm.png`` (or ``_cm``), 0 = no value."""
        from pathlib import Path

        from mtl_adapters.utils import write_png
        unit = self.depth_unit()
        path = Path(stem).with_name(f'{Path(stem).name}_{self.name}_{unit}.png')
        depth = value[..., 0] if value.ndim == 3 else value
        depth = np.nan_to_num(np.asarray(depth, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        write_png(path, np.clip(np.round(depth * DEPTH_UNITS[unit]), 0, 65535).astype(np.uint16))
        return path

    @staticmethod
    def colour_range(reference: np.ndarray) -> tuple:
        """The depths (metres) at the two ends of the colour scale: the 2nd and 98th percentile
        of ``reference``'s valid values."""
        ref = reference[..., 0] if reference.ndim == 3 else reference
        valid_ref = ref[ref > 0]
        lo, hi = (np.percentile(valid_ref, [2, 98]) if valid_ref.size else (0.0, 1.0))
        return float(lo), float(hi)

    def colorize(self, value: np.ndarray, reference: Optional[np.ndarray] = None) -> np.ndarray:
        depth = value[..., 0] if value.ndim == 3 else value
        lo, hi = self.colour_range(depth if reference is None else reference)
        rgb = turbo((depth - lo) / max(hi - lo, 1e-6))
        rgb[~(depth > 0)] = 0
        return rgb

    def legend(self, reference=None, maps=()) -> list:
        """A turbo bar from the near to the far end of the scale, in metres; black: no value."""
        lo, hi = self.colour_range(reference if reference is not None else maps[0])
        bar = self.colorize(np.linspace(lo, hi, 64, dtype=np.float32)[None].repeat(8, 0))
        return [(bar, f'{lo:.1f} m .. {hi:.1f} m (black: no depth)')]
