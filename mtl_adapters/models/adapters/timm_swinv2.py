"""Where the adapters meet timm's Swin-V2 (``timm.models.swin_transformer_v2``, timm 1.0.x).

Reused from timm as they are: ``window_partition``, ``window_reverse`` and the block's shift-mask
builder ``SwinTransformerV2Block.get_attn_mask``. timm exposes no function for the pre-softmax
logits of its ``WindowAttention`` (the relative-position bias is computed inside its
``forward``), and TAA must add its task bias there, so :func:`window_attention_logits` and
:func:`window_attention_output` are timm's ``WindowAttention.forward`` cut in two at that point.
They are the only code that reads ``WindowAttention`` internals; a test checks that together they
equal timm's forward bit for bit.

:func:`check_supported_block` runs when an adapter block is built and refuses every timm block or
attention option those pieces do not reproduce, naming the option and its value.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer_v2 import (SwinTransformerV2Block, WindowAttention,
                                             window_partition, window_reverse)
from torch import Tensor

__all__ = ['check_supported_block', 'window_attention_logits', 'window_attention_output',
           'window_partition', 'window_reverse']


def check_supported_block(block: nn.Module) -> None:
    """Raise if ``block`` is not a timm ``SwinTransformerV2Block`` the adapter block reproduces.

    Supported: any window / shift size (as timm resolved them, so ``always_partition`` either
    way), ``pretrained_window_size``, ``qkv_bias`` on or off, ``mlp_ratio``, ``act_layer``,
    dropout and drop-path rates (the adapter block calls the block's own modules).
    Refused: ``qkv_bias_separate=True`` (the adapters add the q/k/v bias inside the linear, as
    timm's default path does), ``dynamic_mask=False`` (the adapters build the shift mask from
    each input's padded size, as timm does with ``dynamic_mask=True``; a static mask fits one
    input size only) and a ``norm_layer`` other than ``nn.LayerNorm`` with weight and bias (the
    task-scaled norms re-scale exactly that).
    """
    for module, cls in ((block, SwinTransformerV2Block),
                        (getattr(block, 'attn', None), WindowAttention)):
        if type(module) is not cls:
            got = type(module)
            raise TypeError(
                f'adapter blocks wrap timm {cls.__module__}.{cls.__name__}, got '
                f'{got.__module__}.{got.__qualname__}')
    refused: List[str] = []
    if block.attn.qkv_bias_separate:
        refused.append('WindowAttention option qkv_bias_separate=True: the adapters add the '
                       'q/k/v bias inside the qkv linear (timm\'s default, '
                       'qkv_bias_separate=False)')
    if not block.dynamic_mask:
        refused.append(
            'SwinTransformerV2Block option dynamic_mask=False: the adapters build the shift '
            'mask from each input\'s size (dynamic_mask=True), this block has a fixed mask for '
            f'input_resolution={tuple(block.input_resolution)}; build the trunk with '
            'strict_img_size=False (create_swinv2 does)')
    bad_norms = [name for name in ('norm1', 'norm2')
                 if type(getattr(block, name)) is not nn.LayerNorm
                 or getattr(block, name).weight is None or getattr(block, name).bias is None]
    if bad_norms:
        norm = getattr(block, bad_norms[0])
        desc = type(norm).__name__ + ('' if type(norm) is not nn.LayerNorm
                                      else ' without weight/bias')
        refused.append(f'SwinTransformerV2Block option norm_layer={desc} '
                       f'({", ".join(bad_norms)}): the task-scaled norms wrap a plain '
                       'nn.LayerNorm with weight and bias')
    if refused:
        raise ValueError('timm Swin-V2 block not supported by the adapter block:\n  '
                         + '\n  '.join(refused))


def window_attention_logits(attn: WindowAttention, x: Tensor) -> Tuple[Tensor, Tensor]:
    """timm's ``WindowAttention.forward`` up to the shift mask: x (BW, N, C) windows ->
    (logits (BW, nH, N, N) = tau_h cos(q_i, k_j) + B_rel[h, i, j], values v (BW, nH, N, C/nH)).
    """
    # reads WindowAttention's weights and buffers as timm 1.0.x lays them out (see module doc)
    bw, n, _ = x.shape
    num_heads = attn.num_heads
    if attn.q_bias is None:
        qkv = attn.qkv(x)
    else:
        qkv_bias = torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))   # k_bias: zero buffer
        qkv = F.linear(x, attn.qkv.weight, qkv_bias)
    q, k, v = qkv.reshape(bw, n, 3, num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    logits = logits * attn.logit_scale.clamp(max=math.log(1. / 0.01)).exp()
    rel = attn.cpb_mlp(attn.relative_coords_table).view(-1, num_heads)
    rel = rel[attn.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    return logits + (16 * torch.sigmoid(rel)).unsqueeze(0), v


def window_attention_output(attn: WindowAttention, logits: Tensor, v: Tensor,
                            mask: Optional[Tensor] = None) -> Tensor:
    """The rest of timm's ``WindowAttention.forward``: logits (BW, nH, N, N) + shift mask
    (nW, N, N) -> softmax -> dropout -> weighted values -> projection: (BW, N, C)."""
    bw, num_heads, n, _ = logits.shape
    if mask is not None:
        num_win = mask.shape[0]
        logits = logits.view(-1, num_win, num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        logits = logits.view(-1, num_heads, n, n)
    weights = attn.attn_drop(attn.softmax(logits))
    out = (weights @ v).transpose(1, 2).reshape(bw, n, -1)
    return attn.proj_drop(attn.proj(out))
