"""The baseline's light decoder: a small FPN-style fusion of the four stage outputs.

A whole per-task decoder (stage features in, task outputs out), hence in ``decoders/``; its
registry name ``LightHead`` is kept, so existing configs keep working.
"""
from typing import List, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mtl_adapters.registry import MODELS


@MODELS.register_module()
class LightHead(BaseModule):
    """Project every stage to ``channels`` (1x1), upsample to 1/4, sum, refine (3x3), predict,
    upsample to the input size. A few hundred thousand parameters per task."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, channels: int = 64,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fuse = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.GroupNorm(8 if channels % 8 == 0 else 1, channels),
                                  nn.GELU())
        self.predict = nn.Conv2d(channels, out_channels, 1)

    def forward(self, feats: List[Tensor], out_size: Tuple[int, int]) -> Tensor:
        """Stage features -> (B, out_channels, *out_size)."""
        size = feats[0].shape[-2:]
        x = sum(F.interpolate(lat(f), size=size, mode='bilinear', align_corners=False)
                if f.shape[-2:] != size else lat(f) for lat, f in zip(self.lateral, feats))
        x = self.predict(self.fuse(x))   # (B, out_channels, H/4, W/4)
        return F.interpolate(x, size=out_size, mode='bilinear', align_corners=False)
