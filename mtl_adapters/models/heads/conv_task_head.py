"""The task head of the Swin decoder: a light conv block at full resolution."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class ConvTaskHead(nn.Module):
    """Light task head at full resolution: 3x3 conv, GroupNorm, GELU, 1x1 conv to the outputs.

    Built by :class:`~mtl_adapters.models.decoders.SwinDecoder` as its ``head`` (so its
    parameters are ``decoders.<task>.head.*``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        groups = 8 if in_channels % 8 == 0 else 1
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(groups, in_channels)
        self.predict = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, out_channels, H, W)."""
        return self.predict(F.gelu(self.norm(self.conv(x))))
