"""2D texture edges (E): Taskonomy's edge_texture, a Sobel magnitude in [0, 1]."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from mtl_adapters.registry import TASKS

from .base_task import BaseTask


@TASKS.register_module()
class EdgeTask(BaseTask):
    """Texture edges: L1 loss; L1 metric in fixed units (the stored uint16 / 65535).

    Padding is marked with -1 (never a real value), so it is ignored by loss and metric.

    ``metric_cfg=dict(boundary=True, ...)`` adds the boundary benchmark's ``odsF``, ``oisF``
    and ``AP`` (percent, larger is better; :mod:`mtl_adapters.tasks.boundary` defines
    them): per image, matched/total boundary-pixel counts at every threshold, reduced over the
    dataset. Off by default (it costs about a second per 480x640 image). Options:
    ``thresholds`` (99: uniformly spaced in (0, ``max_value``), or a list), ``max_value``
    (0.2: texture edges are Sobel magnitudes, a full-contrast step peaks near 0.18),
    ``gt_threshold`` (0.05: ground-truth boundary where ``gt > gt_threshold``, then thinned;
    roughly the top tenth of a photograph's texture-edge pixels), ``thin_gt`` (True),
    ``max_dist`` (0.0075 of the image diagonal as in BSDS; NYUD uses 0.011) and ``scores``
    (the names reported, ``('odsF', 'oisF', 'AP')``: the benchmark's definitions, interpolated
    ODS and Area_PR; ``'odsF_sampled'`` and ``'AP_polyline'`` are the alternatives; any of
    ``boundary.SCORE_KEYS`` but odsT).
    For binary boundary ground truth and probability predictions use ``gt_threshold=0.5,
    max_value=1.0``.
    """

    name = 'edge'
    abbrev = 'E'
    ignore_value = -1.0
    interpolation = 'linear'
    metric_directions = {'l1': False}
    #: metric_cfg defaults of the boundary benchmark (``boundary=True``)
    boundary_defaults = dict(thresholds=99, max_value=0.2, gt_threshold=0.05, thin_gt=True,
                             max_dist=0.0075, scores=('odsF', 'oisF', 'AP'))

    metric_defaults = dict(boundary=False)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        cfg = self.metric_cfg
        if cfg['boundary']:
            from .boundary import SCORE_KEYS
            for key, value in self.boundary_defaults.items():
                cfg.setdefault(key, value)
            cfg['scores'] = tuple(cfg['scores'])
            known = [k for k in SCORE_KEYS if k != 'odsT']  # scores: larger is better
            unknown = sorted(set(cfg['scores']) - set(known))
            if unknown or not cfg['scores']:
                raise KeyError(f'EdgeTask metric_cfg.scores: unknown or no scores {unknown}; '
                               f'choose from {", ".join(known)}')
            self.metric_directions = dict(type(self).metric_directions,
                                          **{k: True for k in cfg['scores']})

    def metric_keys(self) -> List[str]:
        """``boundary`` and the boundary benchmark's options."""
        return ['boundary', *self.boundary_defaults]

    @property
    def out_channels(self) -> int:
        return 1

    def valid_mask(self, gt: Tensor) -> Tensor:
        return gt >= 0

    def random_gt(self, size, generator=None) -> Tensor:
        return torch.rand((1, *size), generator=generator) * 0.2

    def default_loss(self) -> dict:
        return dict(type='MaskedL1Loss')

    def metric_stats(self, pred: Tensor, gt: Tensor) -> dict:
        mask = self.valid_mask(gt)
        stats = dict(n=int(mask.sum()),
                     abs=float((pred.double().clamp(0, 1) - gt.double())[mask].abs().sum()))
        if self.metric_cfg['boundary']:
            from .boundary import boundary_counts
            cfg = self.metric_cfg
            counts = boundary_counts(
                pred[0].double().numpy(), gt[0].double().numpy(), valid=mask[0].numpy(),
                thresholds=cfg['thresholds'], max_value=cfg['max_value'],
                gt_threshold=cfg['gt_threshold'], thin_gt=cfg['thin_gt'],
                max_dist=cfg['max_dist'])
            stats['boundary'] = {k: v.tolist() for k, v in counts.items()}
        return stats

    def reduce_metrics(self, stats: List[dict]) -> Dict[str, float]:
        n = sum(s['n'] for s in stats)
        out = {'l1': sum(s['abs'] for s in stats) / n if n else float('nan')}
        if self.metric_cfg['boundary']:
            from mmengine.logging import print_log

            from .boundary import boundary_scores
            cfg = self.metric_cfg
            counts = [s['boundary'] for s in stats if 'boundary' in s]
            if counts and not any(c['sumR'][0] for c in counts):
                print_log(f'EdgeTask: no ground-truth boundary pixel above gt_threshold='
                          f'{cfg["gt_threshold"]} in any image: the boundary scores are 0 (set '
                          'metric_cfg.gt_threshold for the units of this ground truth)',
                          logger='current', level=30)
            scores = boundary_scores(counts, cfg['thresholds'], cfg['max_value'])
            out.update({k: scores[k] for k in cfg['scores']})
        return out

    def colorize(self, value: np.ndarray, reference: Optional[np.ndarray] = None) -> np.ndarray:
        edge = value[..., 0] if value.ndim == 3 else value
        ref = edge if reference is None else reference
        ref = ref[..., 0] if ref.ndim == 3 else ref
        valid = ref[ref >= 0]
        scale = float(np.percentile(valid, 99)) if valid.size else 1.0
        scale = scale if scale > 1e-6 else 1.0  # a blank reference: show the fixed [0, 1] range
        grey = (np.clip(edge / scale, 0, 1) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)

    def legend(self, reference=None, maps=()) -> list:
        """Black to white: no edge to the strongest edges of the reference."""
        ramp = np.linspace(0, 1, 64, dtype=np.float32)[None].repeat(8, 0)
        return [(self.colorize(ramp, ramp), 'edge strength: none .. strong')]


#: Gaussian sigma of Taskonomy's edge_texture recipe at 512 px (scaled with the image size)
TEXTURE_EDGE_SIGMA_512 = 3.0
#: luminance weights of skimage.color.rgb2gray (ITU-R BT.709)
_GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


def texture_edges(rgb: np.ndarray) -> np.ndarray:
    """Taskonomy's edge_texture of an HxWx3 (or HxW grey) image -> HxW float32 in [0, 1].

    "Canny without non-max suppression" (docs/datasets.md#conventions): grey / 255, a masked
    Gaussian of sigma 3 px at 512 px (sigma scaled by min(H, W) / 512; normalised convolution,
    so the image borders are not darkened by the zero padding), the Sobel magnitude
    ``sqrt((Sx^2 + Sy^2) / 2)`` with [1, 2, 1] / 4 smoothing (``skimage.filters.sobel``) and a
    zeroed 1-pixel border. Units are those of the stored uint16 / 65535 (``EdgeTask``).
    """
    from scipy import ndimage
    from skimage.filters import sobel

    img = np.asarray(rgb)
    dtype = img.dtype
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] >= 3:
        img = img[..., :3].astype(np.float64) @ _GREY_WEIGHTS  # (H, W)
    elif img.ndim != 2:
        raise ValueError(f'texture_edges: expected an HxWx3 or HxW image, got {img.shape}')
    if dtype == np.uint16:
        grey = img.astype(np.float64) / 65535.0
    elif dtype.kind in 'ui':
        grey = img.astype(np.float64) / 255.0
    else:
        grey = img.astype(np.float64)  # floats are taken to be in [0, 1] already
    H, W = grey.shape
    out = np.zeros((H, W), dtype=np.float32)
    if H < 3 or W < 3:
        return out
    sigma = TEXTURE_EDGE_SIGMA_512 * min(H, W) / 512.0
    num = ndimage.gaussian_filter(grey, sigma, mode='constant', cval=0.0)  # (H, W)
    den = ndimage.gaussian_filter(np.ones_like(grey), sigma, mode='constant', cval=0.0)
    mag = sobel(num / den)  # (H, W) sqrt((Sx^2 + Sy^2) / 2)
    out[1:-1, 1:-1] = np.clip(mag[1:-1, 1:-1], 0.0, 1.0)
    return out
