"""Surface normals (N): unit vectors in the camera frame, zero vector = no measurement."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_adapters.registry import TASKS

from .base_task import BaseTask

#: histogram resolution of angular errors (degrees) used for the median
ANGLE_BIN = 0.01
ANGLE_BINS = int(round(180 / ANGLE_BIN))
#: sign of n_z of a surface facing the camera in the project's convention (see NormalTask)
CAMERA_FACING_Z = -1.0


@TASKS.register_module()
class NormalTask(BaseTask):
    """Surface normal estimation: L1 on unit normals by default; angular error metrics.

    Convention (project-wide, every dataset's decoder maps its files onto it): unit vectors in
    the camera frame with x to the right of the image, y down and z away from the camera
    along the optical axis (OpenCV camera frame), pointing out of the surface towards the
    side the camera sees, so ``n . X < 0`` at the surface point X and n_z < 0 for a surface
    seen head-on; the zero vector = no normal. A floor seen by a level camera is (0, -1, 0), a
    ceiling (0, 1, 0), a wall on the left of the picture (1, 0, 0), a wall facing the camera
    (0, 0, -1). A horizontal flip negates n_x, a vertical one n_y; a quarter turn or
    transposition of the image turns (n_x, n_y) with it (``reorient_values``).

    Pictures (``colorize``) and saved predictions map n to RGB as ``(n + 1) / 2 * 255``, which
    is Taskonomy's published normal encoding as it is: a wall facing the camera is
    (128, 128, 0), a floor (128, 0, 128), a ceiling (128, 255, 128), a wall on the left
    (255, 128, 128), as in Taskonomy's own pictures (``formats/taskonomy.py``).
    """

    name = 'normal'
    abbrev = 'N'
    ignore_value = 0.0
    interpolation = 'linear'
    metric_directions = {'mean': False, 'median': False, 'rmse': False,
                         '11.25': True, '22.5': True, '30': True}

    @property
    def out_channels(self) -> int:
        return 3

    @property
    def gt_channels(self) -> int:
        return 3

    def reorient_values(self, value: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The (n_x, n_y) of every pixel go through ``matrix`` as the pixel offsets did (a
        quarter turn of the image is the camera turned about its optical axis, a mirrored
        image the mirrored scene); n_z is unchanged."""
        matrix = np.asarray(matrix)
        value = value.copy()
        value[..., :2] = value[..., :2] @ matrix.T.astype(value.dtype)
        return value

    def clean_resampled(self, value: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Interpolated normals are shorter than 1: renormalise, then blank invalid pixels."""
        norm = np.linalg.norm(value, axis=-1, keepdims=True)
        value = np.where(norm > 1e-6, value / np.maximum(norm, 1e-6), 0.0).astype(value.dtype)
        return super().clean_resampled(value, valid)

    def valid_mask(self, gt: Tensor) -> Tensor:
        return gt.norm(dim=-3, keepdim=True) > 0.5

    def random_gt(self, size, generator=None) -> Tensor:
        return F.normalize(torch.randn((3, *size), generator=generator), dim=0)

    def default_loss(self) -> dict:
        return dict(type='NormalL1Loss')

    def postprocess(self, logits: Tensor) -> Tensor:
        return F.normalize(logits, dim=1)

    def metric_stats(self, pred: Tensor, gt: Tensor) -> dict:
        mask = self.valid_mask(gt)[0]  # (H, W)
        p = F.normalize(pred.double(), dim=0).permute(1, 2, 0)[mask]  # (N, 3)
        g = F.normalize(gt.double(), dim=0).permute(1, 2, 0)[mask]  # (N, 3)
        cos = (p * g).sum(-1).clamp(-1, 1)
        angle = torch.rad2deg(torch.acos(cos))  # (N,) degrees
        # sparse histogram of the angles (bins of ANGLE_BIN degrees) for the dataset median
        idx = torch.floor(angle / ANGLE_BIN).long().clamp(0, ANGLE_BINS - 1)
        bins, counts = torch.unique(idx, return_counts=True)
        return dict(n=int(mask.sum()), sum=float(angle.sum()), sq=float((angle ** 2).sum()),
                    t11=int((angle < 11.25).sum()), t22=int((angle < 22.5).sum()),
                    t30=int((angle < 30).sum()), bins=bins.numpy().astype(np.int32),
                    counts=counts.numpy().astype(np.int64))

    def reduce_metrics(self, stats: List[dict]) -> Dict[str, float]:
        n = sum(s['n'] for s in stats)
        if n == 0:
            return {k: float('nan') for k in self.metric_directions}
        hist = np.zeros(ANGLE_BINS, np.int64)
        for s in stats:
            np.add.at(hist, s['bins'], s['counts'])
        median_bin = int(np.searchsorted(np.cumsum(hist), (n + 1) // 2))
        return {'mean': sum(s['sum'] for s in stats) / n,
                'median': (median_bin + 0.5) * ANGLE_BIN,
                'rmse': (sum(s['sq'] for s in stats) / n) ** 0.5,
                '11.25': 100 * sum(s['t11'] for s in stats) / n,
                '22.5': 100 * sum(s['t22'] for s in stats) / n,
                '30': 100 * sum(s['t30'] for s in stats) / n}

    def colorize(self, value: np.ndarray, reference: Optional[np.ndarray] = None) -> np.ndarray:
        rgb = np.clip(np.round((value + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)
        rgb[np.linalg.norm(value, axis=-1) < 0.5] = 0
        return rgb

    def legend(self, reference=None, maps=()) -> list:
        """A sphere seen by the camera, coloured as its normals would be: the colour of each
        direction a visible surface can face."""
        side = 24
        v, u = np.mgrid[-1:1:side * 1j, -1:1:side * 1j]
        inside = u ** 2 + v ** 2 <= 1
        # a visible surface faces the camera: its n_z has the sign of the project's convention
        nz = CAMERA_FACING_Z * np.sqrt(np.clip(1 - u ** 2 - v ** 2, 0, 1))
        sphere = np.stack([u, v, nz], -1).astype(np.float32) * inside[..., None]
        return [(self.colorize(sphere), 'surface direction (a sphere seen by the camera)')]
