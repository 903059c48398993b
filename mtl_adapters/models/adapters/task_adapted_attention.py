"""Task-Adapted Attention (TAA): Swin-V2 window attention with a task-modulated logit bias.

For window tokens i, j and head h (N = window area), with the pretrained timm weights:

    logits_t[h, i, j] = tau_h * cos(q_i, k_j) + B_rel[h, i, j] + A'_t[h, i, j] + M_shift[i, j]
    A'_t[h, i, j]    = (1 + gamma_t[h, j]) * A[h, i, j] + beta_t[h, j]
    [gamma_t, beta_t] = W_film theta_hat_t + b_film      (both (H_A, N); W_film, b_film = 0 at init)
    out = proj(softmax(logits_t) v)

tau_h = exp(min(logit_scale_h, log 100)) and B_rel = 16 sigmoid(cpb_mlp(coords)) are timm's; the
pretrained attention runs as timm's ``WindowAttention.forward`` cut in two where A'_t is added
(``timm_swinv2.window_attention_logits`` / ``window_attention_output``).
A (H_A x N x N, H_A = heads, or 1 when ``shared_across_heads``) is zero-initialised. The paper
leaves the FiLM granularity open; a scalar beta per head would cancel in the softmax, so beta
(and gamma) are per head and per *key* token, which keeps a task-dependent key bias meaningful.
At init A' = 0 and the attention is exactly timm's.

With ``attn_impl='sdpa'`` the same logits run through PyTorch's fused attention: B_rel, A'_t and
the shift mask summed into one float mask (``timm_swinv2.attention_bias`` /
``fused_window_attention``), equal to the explicit form up to float rounding.
"""
from typing import Optional

import torch
import torch.nn as nn
from timm.models.swin_transformer_v2 import WindowAttention
from torch import Tensor

from .timm_swinv2 import (attention_bias, check_attn_impl, fused_window_attention, window_qkv,
                          window_attention_logits, window_attention_output)


class TaskAdaptedAttention(nn.Module):
    """The learnable pieces of TAA (A and its FiLM) applied around a pretrained WindowAttention.

    ``attn_impl``: ``'explicit'`` (timm's operations, bit for bit) or ``'sdpa'`` (fused).
    """

    def __init__(self, num_heads: int, window_area: int, cond_dim: int,
                 shared_across_heads: bool = False, attn_impl: str = 'explicit'):
        super().__init__()
        self.attn_impl = check_attn_impl(attn_impl)
        self.num_heads = num_heads
        self.window_area = window_area
        bias_heads = 1 if shared_across_heads else num_heads
        self.bias_heads = bias_heads
        self.task_bias = nn.Parameter(torch.zeros(bias_heads, window_area, window_area))
        self.film = nn.Linear(cond_dim, 2 * bias_heads * window_area)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def modulated_bias(self, cond: Tensor) -> Tensor:
        """cond (T, cond_dim) -> A'_t of shape (T, H_A, N, N)."""
        num_tasks = cond.shape[0]
        gamma, beta = self.film(cond).view(num_tasks, 2, self.bias_heads, 1,
                                           self.window_area).unbind(1)   # (T, H_A, 1, N)
        return (1 + gamma) * self.task_bias + beta                        # (T, H_A, N, N)

    def forward(self, attn: WindowAttention, x: Tensor, cond: Tensor,
                mask: Optional[Tensor] = None) -> Tensor:
        """timm's window attention ``attn`` with A'_t added to the logits.

        x: (T*B*nW, N, C) windows, task-major (all windows of task 0's images first);
        cond: (T, cond_dim); mask: (nW, N, N) shift mask or None. Returns (T*B*nW, N, C).
        """
        if self.attn_impl == 'sdpa':
            q, k, v = window_qkv(attn, x)
            bias = attention_bias(attn, mask, self.modulated_bias(cond))  # (T, nW, nH, N, N)
            return attn.proj_drop(attn.proj(fused_window_attention(attn, q, k, v, bias)))
        num_tasks = cond.shape[0]
        logits, v = window_attention_logits(attn, x)                    # (BW, nH, N, N)
        bw, num_heads, n, _ = logits.shape
        # task bias: (T, H_A, N, N) broadcast over the images and windows of each task
        bias = self.modulated_bias(cond).unsqueeze(1)                    # (T, 1, H_A, N, N)
        logits = (logits.view(num_tasks, -1, num_heads, n, n) + bias).view(bw, num_heads, n, n)
        return window_attention_output(attn, logits, v, mask)
