"""Where the adapters meet timm's Swin-V2 (``timm.models.swin_transformer_v2``, timm 1.0.x).

Reused from timm as they are: ``window_partition``, ``window_reverse`` and the block's shift-mask
builder ``SwinTransformerV2Block.get_attn_mask``. timm exposes no function for the pre-softmax
logits of its ``WindowAttention`` (the relative-position bias is computed inside its
``forward``), and TAA must add its task bias there, so :func:`window_attention_logits` and
:func:`window_attention_output` are timm's ``WindowAttention.forward`` cut in two at that point.
This module is the only code that reads ``WindowAttention`` internals; a test checks that the two
halves together equal timm's forward bit for bit.

The parameter-efficient encoders (``models/backbones``: memory, LoRA, VPT) need q, k, v and
the projections themselves, so the same internals are also exposed in pieces here:
:func:`window_qkv`, :func:`logit_scale`, :func:`relative_position_bias` (which
:func:`window_attention_logits` is built from), :func:`window_attention` (timm's forward with
optional LoRA updates and memory keys/values), :func:`shifted_window_attention` (the block's
``_attn``), :func:`mlp_forward` and :func:`block_forward`. With no extras each is timm's own
computation bit for bit (tested).

:func:`check_supported_block` runs when an adapter block is built and refuses every timm block or
attention option those pieces do not reproduce, naming the option and its value.

Two implementations of the attention core (``attn_impl``, chosen per encoder and decoder):

* ``'explicit'``: timm's operations in timm's order, normalise -> matmul -> x tau -> + B_rel
  (+ A'_t) (+ shift mask) -> softmax -> matmul: bit for bit timm's forward (tested);
* ``'sdpa'``: PyTorch's fused ``scaled_dot_product_attention``. The cosine logits are folded
  into q (``q' = tau_h * q / |q|``, ``k' = k / |k|``, SDPA scale 1, so ``q' k'^T = tau_h cos``)
  and every additive term (B_rel, the task bias A'_t, the shift mask) is summed into ONE float
  mask (:func:`attention_bias`). Equal to the explicit form up to float rounding (a test
  bounds the fp32 difference, with and without shift and task bias). The layout is the 4-D
  one PyTorch's fused GPU kernels accept (the memory-efficient kernel takes a float mask);
  which kernel a GPU runs, and how fast, is not measured yet. On CPU a mask that needs a
  gradient (always the case while training: A'_t in the adapters, B_rel in the decoders)
  makes PyTorch use its composite ("math") implementation, measured 5-11 % slower than the
  explicit form per training step of the demo model (indicative, shared CPU); without
  gradients (inference) the CPU flash kernel runs. Default: ``'explicit'``.
"""
import math
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer_v2 import (SwinTransformerV2Block, WindowAttention,
                                             window_partition, window_reverse)
from torch import Tensor

__all__ = ['check_supported_block', 'window_attention_logits', 'window_attention_output',
           'window_partition', 'window_reverse', 'Delta', 'window_qkv', 'logit_scale',
           'relative_position_bias', 'window_attention', 'shifted_window_attention',
           'mlp_forward', 'block_forward', 'ATTN_IMPLS', 'check_attn_impl', 'attention_bias',
           'fused_window_attention']

#: the attention implementations (see the module docstring)
ATTN_IMPLS = ('explicit', 'sdpa')


def check_attn_impl(impl: str, key: str = 'attn_impl') -> str:
    """Return ``impl`` if it is one of :data:`ATTN_IMPLS`, else raise naming the config key."""
    if impl not in ATTN_IMPLS:
        raise ValueError(f'{key}={impl!r}: choose one of {ATTN_IMPLS} (\'sdpa\': PyTorch\'s '
                         'fused scaled_dot_product_attention, \'explicit\': timm\'s operations '
                         'bit for bit)')
    return impl


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
    q, k, v = window_qkv(attn, x)
    logits = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) \
        * logit_scale(attn)
    return logits + relative_position_bias(attn).unsqueeze(0), v


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


#: a function of a projection's input giving an additive update of its output
Delta = Callable[[Tensor], Tensor]


# --------------------------------------------------------------- timm's window attention
def window_qkv(attn: WindowAttention, x: Tensor,
               qkv_delta: Optional[Delta] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """timm's q, k, v projection: x (BW, N, C) -> three (BW, nH, N, C / nH).

    ``qkv_delta(x)`` (BW, N, 3C), if given, is added to the projection's output (bias
    included), before the split into heads.
    """
    bw, n, _ = x.shape
    if attn.q_bias is None:
        qkv = attn.qkv(x)
    else:
        qkv_bias = torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))   # k_bias: zero buffer
        qkv = F.linear(x, attn.qkv.weight, qkv_bias)
    if qkv_delta is not None:
        qkv = qkv + qkv_delta(x)
    q, k, v = qkv.reshape(bw, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v


def logit_scale(attn: WindowAttention) -> Tensor:
    """Swin-V2's learnt temperature of the cosine attention, (nH, 1, 1)."""
    return attn.logit_scale.clamp(max=math.log(1. / 0.01)).exp()


def relative_position_bias(attn: WindowAttention) -> Tensor:
    """Swin-V2's continuous relative-position bias of one window, (nH, N, N)."""
    n = attn.window_size[0] * attn.window_size[1]
    rel = attn.cpb_mlp(attn.relative_coords_table).view(-1, attn.num_heads)
    rel = rel[attn.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    return 16 * torch.sigmoid(rel.contiguous())


def attention_bias(attn: WindowAttention, mask: Optional[Tensor] = None,
                   task_bias: Optional[Tensor] = None) -> Tensor:
    """Every additive logit term of a window attention as ONE float mask, for SDPA:
    B_rel (nH, N, N) + ``task_bias`` (G, nH or 1, N, N; TAA's A'_t, one per task group)
    + the shift ``mask`` (nW, N, N) -> (G, nW, nH, N, N); G = 1 without a task bias and
    nW = 1 without a shift mask (broadcast, not repeated)."""
    bias = relative_position_bias(attn)[None, None]                  # (1, 1, nH, N, N)
    if task_bias is not None:
        bias = bias + task_bias.unsqueeze(1)                         # (G, 1, nH, N, N)
    if mask is not None:
        bias = bias + mask.to(bias.dtype).unsqueeze(1)              # (G, nW, nH, N, N)
    return bias


def fused_window_attention(attn: WindowAttention, q: Tensor, k: Tensor, v: Tensor,
                           bias: Tensor) -> Tensor:
    """The attention core through ``F.scaled_dot_product_attention``: q, k, v (BW, nH, N, d)
    and ``bias`` (G, nW, nH or 1, N, N) from :func:`attention_bias` -> (BW, N, C), the input of
    the output projection.

    The windows are G equal task groups of R images of nW windows each, task-major
    (BW = G * R * nW, as the task branch and ``window_partition`` order them). The mask varies
    over task and window but not over the image, so SDPA sees batch R and G * nW * nH "heads"
    with one (1, G * nW * nH, N, N) mask broadcast over the batch (4-D, as the fused GPU
    kernels require; the mask is never repeated per image). Cosine logits: SDPA computes
    ``scale * q k^T + mask``; with ``q' = tau_h q / |q|``, ``k' = k / |k|`` and scale 1 that is
    timm's ``tau_h cos(q, k)``. The attention dropout is the block's ``attn_drop`` rate.
    """
    bw, num_heads, n, head_dim = q.shape
    groups, windows = bias.shape[:2]
    if bw % (groups * windows):
        raise ValueError(f'{bw} windows do not split into {groups} task groups of whole images '
                         f'of {windows} windows')
    images = bw // (groups * windows)
    q = F.normalize(q, dim=-1) * logit_scale(attn)
    k = F.normalize(k, dim=-1)
    bias = bias.expand(groups, windows, num_heads, n, n).reshape(1, -1, n, n)

    def fold(t: Tensor) -> Tensor:
        """(G*R*nW, nH, N, d) -> (R, G*nW*nH, N, d)."""
        t = t.reshape(groups, images, windows, num_heads, n, head_dim)
        if groups > 1:
            t = t.transpose(0, 1)
        return t.reshape(images, groups * windows * num_heads, n, head_dim)

    out = F.scaled_dot_product_attention(
        fold(q), fold(k), fold(v), attn_mask=bias.to(q.dtype), scale=1.0,
        dropout_p=attn.attn_drop.p if attn.training else 0.0)          # (R, G*nW*nH, N, d)
    out = out.view(images, groups, windows, num_heads, n, head_dim)
    out = out.permute(1, 0, 2, 4, 3, 5)                                # (G, R, nW, N, nH, d)
    return out.reshape(bw, n, num_heads * head_dim)


def window_attention(attn: WindowAttention, x: Tensor, mask: Optional[Tensor] = None,
                     qkv_delta: Optional[Delta] = None, proj_delta: Optional[Delta] = None,
                     memory_kv: Optional[Tuple[Tensor, Tensor]] = None,
                     impl: str = 'explicit') -> Tensor:
    """timm's ``WindowAttention.forward(x, mask)`` on windows x (BW, N, C) -> (BW, N, C), with

    * ``qkv_delta`` / ``proj_delta``: additive updates of the qkv and output projections,
      functions of the projection's input (LoRA);
    * ``memory_kv = (k_mem, v_mem)``, each (G, nH, m, C / nH): the windows form G equal,
      consecutive groups (task-major: group g = task g's windows) and every query of group g
      also attends to the m extra keys/values of group g, and only to those: its own memory.
      Memory logits are the same scaled cosine as the tokens' (tau_h cos(q_i, k_j)), with no
      relative-position bias (a memory token has no position) and no shift mask (it is visible
      from every window, shifted or not). The softmax runs over the N + m keys.
    * ``impl``: ``'explicit'`` (timm's operations) or ``'sdpa'`` (:func:`fused_window_attention`;
      not with ``memory_kv``).

    Explicit and without extras this is timm's forward bit for bit: the same operations in the
    same order.
    """
    bw, n, _ = x.shape
    num_heads = attn.num_heads
    q, k, v = window_qkv(attn, x, qkv_delta)
    if check_attn_impl(impl, 'impl') == 'sdpa':
        if memory_kv is not None:
            raise NotImplementedError('window_attention: memory keys/values run with '
                                      "impl='explicit' only")
        out = fused_window_attention(attn, q, k, v, attention_bias(attn, mask))
    else:
        q = F.normalize(q, dim=-1)
        scale = logit_scale(attn)
        logits = (q @ F.normalize(k, dim=-1).transpose(-2, -1)) * scale
        logits = logits + relative_position_bias(attn).unsqueeze(0)
        if mask is not None:
            num_win = mask.shape[0]
            logits = logits.view(-1, num_win, num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            logits = logits.view(-1, num_heads, n, n)
        if memory_kv is not None:
            k_mem, v_mem = memory_kv
            groups, _, m, head_dim = k_mem.shape
            if bw % groups:
                raise ValueError(f'{bw} windows do not split into {groups} memory groups')
            per_group = bw // groups
            k_hat = F.normalize(k_mem, dim=-1).transpose(-2, -1).unsqueeze(1)  # (G,1,nH,d,m)
            mem_logits = (q.view(groups, per_group, num_heads, n, head_dim) @ k_hat) * scale
            logits = torch.cat((logits, mem_logits.view(bw, num_heads, n, m)), dim=-1)
            v_mem = v_mem.unsqueeze(1).expand(groups, per_group, num_heads, m, head_dim)
            v = torch.cat((v, v_mem.reshape(bw, num_heads, m, head_dim)), dim=2)
        weights = attn.attn_drop(attn.softmax(logits))
        out = (weights @ v).transpose(1, 2).reshape(bw, n, -1)
    proj = attn.proj(out)
    if proj_delta is not None:
        proj = proj + proj_delta(out)
    return attn.proj_drop(proj)


def shifted_window_attention(block: nn.Module, x: Tensor,
                             attend: Callable[[Tensor, Optional[Tensor]], Tensor],
                             get_mask: Optional[Callable[[Tensor], Optional[Tensor]]] = None
                             ) -> Tensor:
    """timm's ``SwinTransformerV2Block._attn`` on x (N, H, W, C) with ``attend(windows, mask)``
    as the window attention: cyclic shift, pad to the window multiple, ``window_partition``,
    the shift mask for the padded map (``get_mask``, default the block's ``get_attn_mask``;
    None without shift), ``window_reverse``, crop, reverse shift. ``block`` needs only
    ``window_size`` and ``shift_size`` (and ``get_attn_mask`` without ``get_mask``)."""
    _, h, w, c = x.shape
    wh, ww = block.window_size
    has_shift = any(block.shift_size)
    if has_shift:
        x = torch.roll(x, shifts=(-block.shift_size[0], -block.shift_size[1]), dims=(1, 2))
    x = F.pad(x, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
    hp, wp = x.shape[1:3]
    windows = window_partition(x, block.window_size).view(-1, wh * ww, c)
    out = attend(windows, (get_mask or block.get_attn_mask)(x))
    out = window_reverse(out.view(-1, wh, ww, c), block.window_size, (hp, wp))
    out = out[:, :h, :w].contiguous()
    if has_shift:
        out = torch.roll(out, shifts=block.shift_size, dims=(1, 2))
    return out


def mlp_forward(mlp: nn.Module, x: Tensor, fc1_delta: Optional[Delta] = None,
                fc2_delta: Optional[Delta] = None) -> Tensor:
    """timm's ``Mlp.forward`` (fc1, act, drop1, norm, fc2, drop2) with optional additive
    updates of fc1 and fc2, functions of their inputs."""
    h = mlp.fc1(x)
    if fc1_delta is not None:
        h = h + fc1_delta(x)
    h = mlp.norm(mlp.drop1(mlp.act(h)))
    out = mlp.fc2(h)
    if fc2_delta is not None:
        out = out + fc2_delta(h)
    return mlp.drop2(out)


def block_forward(block: nn.Module, x: Tensor,
                  attend: Callable[[Tensor, Optional[Tensor]], Tensor],
                  mlp: Optional[Callable[[Tensor], Tensor]] = None) -> Tensor:
    """timm's ``SwinTransformerV2Block.forward`` (res-post-norm) on x (N, H, W, C) with
    ``attend(windows, mask)`` as its window attention and ``mlp`` (default: the block's)::

        x = x + DP1(norm1(W-MSA(x)));  x = x + DP2(norm2(MLP(x)))
    """
    b, h, w, c = x.shape
    x = x + block.drop_path1(block.norm1(shifted_window_attention(block, x, attend)))
    x = x.reshape(b, -1, c)
    x = x + block.drop_path2(block.norm2((mlp or block.mlp)(x)))
    return x.reshape(b, h, w, c)
