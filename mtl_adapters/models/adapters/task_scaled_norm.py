"""Task-Scaled Norm (TSN): a pretrained LayerNorm whose scale and shift are modulated per task.

    TSN_t(a) = (a - mu) / sigma * gamma' * (1 + dgamma_t) + beta' + dbeta_t,
    [dgamma_t, dbeta_t] = W_tsn theta_hat_t + b_tsn        (W_tsn, b_tsn zero-initialised)

gamma', beta' are the weight and bias of the pretrained LayerNorm (kept where they are, in the
timm block, so checkpoint keys stay timm's); at init dgamma = dbeta = 0 and TSN_t is exactly
the pretrained LayerNorm.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class TaskScaledNorm(nn.Module):
    """The task-conditioned part of a TSN: a zero-initialised linear cond -> (dgamma, dbeta)."""

    def __init__(self, dim: int, cond_dim: int):
        super().__init__()
        self.dim = dim
        self.film = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, cond: Tensor, norm: nn.LayerNorm) -> Tensor:
        """x: (T*B, ..., C) task-major; cond: (T, cond_dim); norm: the pretrained LayerNorm."""
        num_tasks = cond.shape[0]
        shape = x.shape
        y = F.layer_norm(x, norm.normalized_shape, None, None, norm.eps)
        dgamma, dbeta = self.film(cond).chunk(2, dim=-1)          # (T, C) each
        scale = norm.weight * (1 + dgamma)                        # (T, C)
        shift = norm.bias + dbeta                                 # (T, C)
        y = y.reshape(num_tasks, -1, shape[-1])                   # (T, B*..., C)
        y = torch.addcmul(shift[:, None], y, scale[:, None])
        return y.reshape(shape)
