"""2D texture edges (E): Taskonomy's edge_texture, a Sobel magnitude in [0, 1]."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from torch import Tensor

from mtl_adapters.registry import TASKS

from .base_task import BaseTask

EDGE_SCALE = 65535.0


@TASKS.register_module()
class EdgeTask(BaseTask):
    """Texture edges: L1 loss; L1 metric in fixed units (the stored uint16 / 65535).

    Padding is marked with -1 (never a real value), so it is ignored by loss and metric.
    """

    name = 'edge'
    abbrev = 'E'
    ignore_value = -1.0
    interpolation = 'linear'
    taskonomy_folder = 'edge_texture'
    taskonomy_domain = 'edge_texture'
    metric_directions = {'l1': False}

    @property
    def out_channels(self) -> int:
        return 1

    def decode_taskonomy(self, raw: np.ndarray) -> np.ndarray:
        if raw.ndim == 3:
            raw = raw[..., 0]
        return raw.astype(np.float32) / EDGE_SCALE

    def encode_taskonomy(self, value: np.ndarray) -> np.ndarray:
        return np.clip(np.round(value * EDGE_SCALE), 0, EDGE_SCALE).astype(np.uint16)

    def valid_mask(self, gt: Tensor) -> Tensor:
        return gt >= 0

    def default_loss(self) -> dict:
        return dict(type='MaskedL1Loss')

    def metric_stats(self, pred: Tensor, gt: Tensor) -> dict:
        mask = self.valid_mask(gt)
        return dict(n=int(mask.sum()),
                    abs=float((pred.double().clamp(0, 1) - gt.double())[mask].abs().sum()))

    def reduce_metrics(self, stats: List[dict]) -> Dict[str, float]:
        n = sum(s['n'] for s in stats)
        return {'l1': sum(s['abs'] for s in stats) / n if n else float('nan')}

    def colorize(self, value: np.ndarray, reference: Optional[np.ndarray] = None) -> np.ndarray:
        edge = value[..., 0] if value.ndim == 3 else value
        ref = edge if reference is None else reference
        scale = max(float(np.percentile(ref[ref >= 0], 99)) if (ref >= 0).any() else 1.0, 1e-6)
        grey = (np.clip(edge / scale, 0, 1) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
