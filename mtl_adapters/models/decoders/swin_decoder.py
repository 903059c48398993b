"""Per-task Swin-V2 U-Net decoder (Swin-Unet style) ending in the conv task head
(:class:`~mtl_adapters.models.heads.ConvTaskHead`).

Decoder stage k = 0..3 works at stride 32 / 2^k (1/32, 1/16, 1/8, 1/4) with width D_k
(default: the encoder's widths mirrored, C3, C2, C1, C0) and ``depths[k]`` timm
``SwinTransformerV2Block``s with the encoder's head counts mirrored::

    x = Linear(C3 -> D0)(f3)                          (identity when C3 == D0)
    stage k: x = Blocks_k(x)
             x = PatchExpand(x)  (k < 3): Linear(D_k -> 4 D_{k+1}), 2x2 depth-to-space, LN
             x = Linear([x, f_{2-k}] -> D_{k+1})     U-Net skip: concat + linear
    final:   x = Linear(D3 -> 16 Cf), 4x4 depth-to-space, LN      (full resolution, Cf channels)
    head:    Conv3x3(Cf, Cf) - GroupNorm - GELU - Conv1x1(Cf, out_channels)

With mirrored widths PatchExpand is the usual Linear(C -> 2C) + rearrange to 2H x 2W x C/2.
Everything runs channels-last (NHWC) until the head; windows are batched by timm (no Python
loop over windows); a window larger than the feature map is clipped at build time or padded at
run time exactly as in timm. The output is cropped to ``out_size`` (inputs padded upstream).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from timm.layers import trunc_normal_
from timm.models.swin_transformer_v2 import SwinTransformerV2Block
from torch import Tensor

from mtl_adapters.models.heads import ConvTaskHead
from mtl_adapters.registry import MODELS


def depth_to_space(x: Tensor, factor: int) -> Tensor:
    """(B, H, W, f*f*C) -> (B, f*H, f*W, C), channels-last pixel shuffle."""
    b, h, w, c = x.shape
    x = x.view(b, h, w, factor, factor, c // (factor * factor))
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h * factor, w * factor, -1)


class PatchExpand(nn.Module):
    """Linear(C_in -> f^2 C_out) + depth-to-space by f + LayerNorm: the inverse of patch merging."""

    def __init__(self, in_dim: int, out_dim: int, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.expand = nn.Linear(in_dim, factor * factor * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C_in) -> (B, f H, f W, C_out)."""
        return self.norm(depth_to_space(self.expand(x), self.factor))


class DecoderStage(nn.Module):
    """``depth`` Swin-V2 blocks (alternating shift) at one resolution, channels-last."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int,
                 resolution: Tuple[int, int], mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerV2Block(dim, resolution, num_heads, window_size=window_size,
                                   shift_size=0 if i % 2 == 0 else window_size // 2,
                                   dynamic_mask=True, mlp_ratio=mlp_ratio,
                                   drop_path=drop_path)
            for i in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        for blk in self.blocks:
            x = blk(x)
        return x


@MODELS.register_module()
class SwinDecoder(BaseModule):
    """One task's Swin-V2 decoder: four stages of Swin blocks, x2 expansions, U-Net skips.

    Args:
        in_channels: encoder stage widths (filled in by ``MultiTaskModel``).
        out_channels: task output channels (filled in).
        embed_dims: decoder widths at 1/32, 1/16, 1/8, 1/4 (default: encoder widths mirrored).
        depths: Swin blocks per decoder stage.
        num_heads: heads per decoder stage (default: encoder heads mirrored, width / 32).
        window_size: attention window (the encoder's).
        img_size: the size the windows are planned for (the encoder's ``img_size``).
        head_channels: channels at full resolution, fed to the conv task head.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int,
                 embed_dims: Optional[Sequence[int]] = None, depths: Sequence[int] = (2, 2, 2, 2),
                 num_heads: Optional[Sequence[int]] = None, window_size: int = 8,
                 img_size: Sequence[int] = (256, 256), head_channels: int = 32,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0, init_cfg=None):
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        if len(in_channels) != 4:
            raise ValueError(f'SwinDecoder expects 4 encoder stages, got in_channels={in_channels}')
        dims = list(embed_dims) if embed_dims is not None else in_channels[::-1]
        if num_heads is None:
            num_heads = [max(1, d // 32) for d in dims]
        self.embed_dims = dims
        self.stem = (nn.Identity() if dims[0] == in_channels[3]
                     else nn.Linear(in_channels[3], dims[0]))
        self.stages = nn.ModuleList()
        self.expands = nn.ModuleList()
        self.fuses = nn.ModuleList()
        dpr = torch.linspace(drop_path_rate, 0, len(dims)).tolist()
        for k, dim in enumerate(dims):
            stride = 32 // 2 ** k
            res = (max(1, img_size[0] // stride), max(1, img_size[1] // stride))
            self.stages.append(DecoderStage(dim, depths[k], num_heads[k], window_size, res,
                                            mlp_ratio, dpr[k]))
            if k < len(dims) - 1:
                self.expands.append(PatchExpand(dim, dims[k + 1], 2))
                self.fuses.append(nn.Linear(dims[k + 1] + in_channels[2 - k], dims[k + 1]))
        self.final_expand = PatchExpand(dims[-1], head_channels, 4)
        self.head = ConvTaskHead(head_channels, out_channels)
        self.apply(self._init_linear)

    @staticmethod
    def _init_linear(m: nn.Module) -> None:
        """timm's Swin init for linear layers."""
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, feats: List[Tensor], out_size: Tuple[int, int]) -> Tensor:
        """Four NCHW stage features -> (B, out_channels, *out_size)."""
        skips = [f.permute(0, 2, 3, 1) for f in feats]                  # NHWC views
        x = self.stem(skips[3])                                          # (B, h/32, w/32, D0)
        for k, stage in enumerate(self.stages):
            x = stage(x)
            if k < len(self.stages) - 1:
                skip = skips[2 - k]
                x = self.expands[k](x)[:, :skip.shape[1], :skip.shape[2]]  # (B, 2h, 2w, D_k+1)
                x = self.fuses[k](torch.cat([x, skip], dim=-1))
        x = self.final_expand(x)                                         # (B, H', W', Cf)
        x = x.permute(0, 3, 1, 2)                                        # (B, Cf, H', W')
        h, w = out_size
        if x.shape[-2] >= h and x.shape[-1] >= w:
            x = x[..., :h, :w]
        else:
            x = F.interpolate(x, size=(h, w), mode='bilinear', align_corners=False)
        return self.head(x.contiguous(memory_format=torch.channels_last))
