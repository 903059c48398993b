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

Cost is a design choice: widths (``embed_dims``), ``depths``, ``num_heads``, ``mlp_ratio`` and
``head_channels`` are config values, and :func:`swin_decoder_num_params` gives the parameter
count of any setting without building it. The "light" setting (``depths=(0, 2, 2, 2)``, no
blocks at 1/32, where the mirrored width makes them the largest: 68 % of a Swin-V2-S
decoder's parameters) is configs/_base_/models/vtagml_swinv2_*_light.py. ``attn_impl='sdpa'``
runs the blocks' window attention through PyTorch's fused attention
(``adapters/timm_swinv2.py``) and ``with_cp=True`` recomputes each block in the backward
instead of storing its activations (gradient checkpointing, mmseg's name).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from timm.layers import trunc_normal_
from timm.models.swin_transformer_v2 import SwinTransformerV2Block
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mtl_adapters.models.adapters.timm_swinv2 import (block_forward, check_attn_impl,
                                                      window_attention)
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
    """``depth`` Swin-V2 blocks (alternating shift) at one resolution, channels-last.

    ``attn_impl='explicit'`` runs timm's block forward; ``'sdpa'`` the same block with the fused
    window attention. ``with_cp``: gradient checkpointing per block while gradients are on.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int,
                 resolution: Tuple[int, int], mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 attn_impl: str = 'explicit', with_cp: bool = False):
        super().__init__()
        self.attn_impl = check_attn_impl(attn_impl, 'model.decoder.attn_impl')
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            SwinTransformerV2Block(dim, resolution, num_heads, window_size=window_size,
                                   shift_size=0 if i % 2 == 0 else window_size // 2,
                                   dynamic_mask=True, mlp_ratio=mlp_ratio,
                                   drop_path=drop_path)
            for i in range(depth))

    def _block(self, blk: SwinTransformerV2Block, x: Tensor) -> Tensor:
        """One block on (B, H, W, C) with this stage's attention implementation."""
        if self.attn_impl == 'explicit':
            return blk(x)
        return block_forward(blk, x, lambda windows, mask: window_attention(
            blk.attn, windows, mask, impl=self.attn_impl))

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        for blk in self.blocks:
            if self.with_cp and torch.is_grad_enabled():
                # non-reentrant: parameters get their gradients even if x needs none; the RNG
                # state is replayed, so drop-path draws the same paths in the recomputation
                x = checkpoint(self._block, blk, x, use_reentrant=False)
            else:
                x = self._block(blk, x)
        return x


def _resolve_widths(in_channels: Sequence[int], embed_dims: Optional[Sequence[int]],
                    num_heads: Optional[Sequence[int]]) -> Tuple[List[int], List[int]]:
    """SwinDecoder's widths (default: the encoder's mirrored) and heads (default: width / 32)."""
    in_channels = list(in_channels)
    if len(in_channels) != 4:
        raise ValueError(f'SwinDecoder expects 4 encoder stages, got in_channels={in_channels}')
    dims = list(embed_dims) if embed_dims is not None else in_channels[::-1]
    heads = list(num_heads) if num_heads is not None else [max(1, d // 32) for d in dims]
    return dims, heads


def swin_block_num_params(dim: int, num_heads: int, mlp_ratio: float = 4.0) -> int:
    """Parameters of one timm ``SwinTransformerV2Block`` (q/k/v bias on, LayerNorms):
    qkv 3d^2 + q, v biases 2d + tau nH + continuous-position MLP (2 -> 512 -> nH: 1536 + 512 nH)
    + proj d^2 + d + two norms 4d + MLP (d -> h -> d, h = int(d * mlp_ratio)): 2dh + h + d."""
    hidden = int(dim * mlp_ratio)
    return 4 * dim * dim + 2 * dim * hidden + hidden + 8 * dim + 513 * num_heads + 1536


def swin_decoder_num_params(in_channels: Sequence[int], out_channels: int,
                            embed_dims: Optional[Sequence[int]] = None,
                            depths: Sequence[int] = (2, 2, 2, 2),
                            num_heads: Optional[Sequence[int]] = None, head_channels: int = 32,
                            mlp_ratio: float = 4.0, **_ignored) -> int:
    """Trainable parameters of a ``SwinDecoder`` built with these arguments (the others, e.g.
    window and image size, change no count), without building it.

    With widths D_0..D_3 (1/32 .. 1/4), encoder widths C_0..C_3, head channels Cf and
    ``block(d, h)`` = :func:`swin_block_num_params`::

        stem     C3 D0 + D0                        (0 when C3 == D0: identity)
        blocks   sum_k depths[k] * block(D_k, heads_k)
        expand   sum_{k<3} 4 D_k D_{k+1} + 2 D_{k+1}             (bias-free linear + LayerNorm)
        fuse     sum_{k<3} (D_{k+1} + C_{2-k}) D_{k+1} + D_{k+1}
        final    16 D3 Cf + 2 Cf                                (x4 expansion + LayerNorm)
        head     9 Cf^2 + 2 Cf + Cf out + out                   (3x3 conv, GroupNorm, 1x1 conv)
    """
    enc = list(in_channels)
    dims, heads = _resolve_widths(enc, embed_dims, num_heads)
    total = 0 if dims[0] == enc[3] else enc[3] * dims[0] + dims[0]
    total += sum(n * swin_block_num_params(d, h, mlp_ratio)
                 for n, d, h in zip(depths, dims, heads))
    for k in range(3):
        d_in, d_out = dims[k], dims[k + 1]
        total += 4 * d_in * d_out + 2 * d_out
        total += (d_out + enc[2 - k]) * d_out + d_out
    cf = head_channels
    total += 16 * dims[3] * cf + 2 * cf
    total += 9 * cf * cf + 2 * cf + cf * out_channels + out_channels
    return total


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
        mlp_ratio: hidden width of the blocks' MLPs, relative to the stage width.
        attn_impl: ``'explicit'`` (timm's block forward) or ``'sdpa'`` (fused window attention).
        with_cp: gradient checkpointing of every Swin block (less memory, one more forward).

    Parameter count of any setting: :func:`swin_decoder_num_params`.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int,
                 embed_dims: Optional[Sequence[int]] = None, depths: Sequence[int] = (2, 2, 2, 2),
                 num_heads: Optional[Sequence[int]] = None, window_size: int = 8,
                 img_size: Sequence[int] = (256, 256), head_channels: int = 32,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 attn_impl: str = 'explicit', with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        dims, num_heads = _resolve_widths(in_channels, embed_dims, num_heads)
        if not len(depths) == len(num_heads) == len(dims) == 4:
            raise ValueError(f'model.decoder: depths={tuple(depths)}, num_heads='
                             f'{tuple(num_heads)} and embed_dims={tuple(dims)} need one value '
                             'per decoder stage (4: 1/32, 1/16, 1/8, 1/4)')
        check_attn_impl(attn_impl, 'model.decoder.attn_impl')
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
                                            mlp_ratio, dpr[k], attn_impl, with_cp))
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
