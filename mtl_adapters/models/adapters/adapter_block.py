"""The adapter block: a pretrained Swin-V2 block made task-conditioned (TAA, TSN, bottleneck).

Swin-V2 blocks are res-post-norm (``x + LN(f(x))``); the task-conditioned pieces go where V2
has its norms. For task t with conditioning vector theta_hat_t (all adapter weights are shared
by the tasks; only theta_hat_t differs), input x (NHWC) and the previous adapter's bottleneck
u_prev:

    h   = x + DP1(TSN1_t(WindowAttn_TAA_t(x)))         # TSN1 wraps the pretrained norm1
    a   = h + DP2(TSN2_t(MLP(h)))                      # TSN2 wraps the pretrained norm2
    n   = TSN3_t(a)                                    # fresh LayerNorm (1, 0) + task FiLM
    u   = FF_down(n) + S(u_prev)                       # bottleneck, r = C / reduction
    y   = a + FF_up(GELU(u))                           # FF_up zero-initialised

DP1, DP2 are the block's drop-paths (the identity in eval mode, where the encoder keeps the
pretrained parts). The window attention is timm's (shift, pad, ``window_partition``, its shift
mask, ``window_reverse``; ``timm_swinv2``) with TAA adding A'_t to the logits.
S is the identity inside a stage; across patch merging it is a 2x2 space-to-depth of u_prev
(same order as timm's PatchMerging) followed by a linear 4 r_prev -> r (``SkipMerge``); the first
adapter block has no skip. The authors' pre-norm figure ends with a TSN after the adapter's sum;
in res-post-norm form the residual stream is never normalised, so that norm is the next block's
TSN1/TSN2. With the adapter parameters at init (A = 0, FiLMs = 0, FF_up = 0) y equals the
pretrained block's output exactly. The pretrained submodules keep timm's names (``attn``,
``norm1``, ``mlp``, ``norm2``), so timm checkpoints load into the adapted model unchanged.
"""
from typing import Dict, Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .task_adapted_attention import TaskAdaptedAttention
from .task_scaled_norm import TaskScaledNorm
from .timm_swinv2 import check_supported_block, shifted_window_attention

#: names of the modules an AdapterBlock adds (everything else in it is pretrained)
ADAPTER_MODULE_NAMES = ('taa', 'tsn1', 'tsn2', 'tsn3', 'adapter_norm', 'ff_down', 'ff_up')


class SkipMerge(nn.Module):
    """Carry the previous adapter's bottleneck across patch merging: 2x2 space-to-depth + linear."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(4 * in_dim, out_dim)

    def forward(self, u: Tensor) -> Tensor:
        """(N, H, W, r_in) -> (N, ceil(H/2), ceil(W/2), r_out)."""
        n, h, w, c = u.shape
        u = F.pad(u, (0, 0, 0, w % 2, 0, h % 2))
        h, w = u.shape[1:3]
        u = u.reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.proj(u)


class AdapterBlock(nn.Module):
    """A pretrained ``SwinTransformerV2Block`` plus TAA, TSN and a bottleneck adapter.

    Args:
        block: the pretrained timm block (its attn/norm1/mlp/norm2 and drop-paths are adopted,
            not copied); options the adapter block does not reproduce are refused
            (``timm_swinv2.check_supported_block``).
        cond_dim: size of the task conditioning vector theta_hat_t.
        reduction: bottleneck width r = C // reduction.
        shared_attn_bias: one TAA matrix A for all heads instead of one per head.
        attn_impl: ``'explicit'`` (timm's operations, bit for bit) or ``'sdpa'`` (PyTorch's
            fused attention with one additive mask; ``timm_swinv2``).
    """

    def __init__(self, block: nn.Module, cond_dim: int, reduction: int = 4,
                 shared_attn_bias: bool = False, attn_impl: str = 'explicit'):
        super().__init__()
        check_supported_block(block)
        # the timm block's geometry (as timm resolved it for its input_resolution) and parts
        dim = block.dim
        self.dim = dim
        self.num_heads = block.num_heads
        self.window_size = tuple(block.window_size)
        self.shift_size = tuple(block.shift_size)
        self.window_area = self.window_size[0] * self.window_size[1]
        self.bottleneck_dim = max(1, dim // reduction)
        # pretrained parts, timm names (no parameters in the drop-paths)
        self.attn = block.attn
        self.norm1 = block.norm1
        self.mlp = block.mlp
        self.norm2 = block.norm2
        self.drop_path1 = block.drop_path1
        self.drop_path2 = block.drop_path2
        # the block itself, outside the module tree (its parameters are the adopted ones, so no
        # second set of state-dict keys): only its shift-mask builder ``get_attn_mask`` is used
        self.__dict__['_timm_block'] = block
        # adapter parts
        self.taa = TaskAdaptedAttention(self.num_heads, self.window_area, cond_dim,
                                        shared_across_heads=shared_attn_bias,
                                        attn_impl=attn_impl)
        self.tsn1 = TaskScaledNorm(dim, cond_dim)
        self.tsn2 = TaskScaledNorm(dim, cond_dim)
        self.adapter_norm = nn.LayerNorm(dim)
        self.tsn3 = TaskScaledNorm(dim, cond_dim)
        self.ff_down = nn.Linear(dim, self.bottleneck_dim)
        self.ff_up = nn.Linear(self.bottleneck_dim, dim)
        nn.init.zeros_(self.ff_up.weight)
        nn.init.zeros_(self.ff_up.bias)
        self._masks: Dict[tuple, Optional[Tensor]] = {}

    def pretrained_modules(self):
        """The adopted pretrained submodules (frozen unless the adapted blocks are trained)."""
        return [self.attn, self.norm1, self.mlp, self.norm2]

    def _mask(self, padded: Tensor) -> Optional[Tensor]:
        """timm's shift mask (nW, N, N) for the padded, shifted map (cached per size), or None
        without shift."""
        key = (padded.shape[1], padded.shape[2], padded.device, padded.dtype)
        if key not in self._masks:
            if len(self._masks) >= 8:          # inference over many image sizes: stay bounded
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = self._timm_block.get_attn_mask(padded)
        return self._masks[key]

    def _window_attention(self, x: Tensor, cond: Tensor) -> Tensor:
        """Shifted-window TAA on (T*B, H, W, C): timm's ``_attn`` steps (shift, pad to the window
        multiple, partition, attention, reverse, crop, unshift; ``shifted_window_attention``)
        with TAA as the attention and the shift mask cached per size."""
        return shifted_window_attention(
            self, x, lambda windows, mask: self.taa(self.attn, windows, cond, mask),
            get_mask=self._mask)

    def forward(self, x: Tensor, cond: Tensor,
                skip: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """x: (T*B, H, W, C) task-major; cond: (T, cond_dim); skip: (T*B, H, W, r) or None.

        Returns the block output (T*B, H, W, C) and this adapter's bottleneck (T*B, H, W, r).
        """
        h = x + self.drop_path1(self.tsn1(self._window_attention(x, cond), cond, self.norm1))
        a = h + self.drop_path2(self.tsn2(self.mlp(h), cond, self.norm2))
        u = self.ff_down(self.tsn3(a, cond, self.adapter_norm))         # (T*B, H, W, r)
        if skip is not None:
            u = u + skip
        return a + self.ff_up(F.gelu(u)), u
