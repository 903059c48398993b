"""The authors' release's training step, re-implemented for speed comparisons (IVRL/VTAGML,
``script/model/swin_transformer_parallel.py`` and ``script/train_taskonomy.py``, studied, not
copied; built here from timm's Swin (v1) blocks and this project's ``depth_to_space``).

What one release step runs, at T tasks and batch B (and what this module reproduces):

* data: every image repeated T times, sample-major, with task ids ``0..T-1`` -> B*T images;
* encoder, ONCE on all B*T images (the encoder per task): a Swin-S (embed 96, depths 2-2-18-2,
  window 7, 224^2, drop-path 0.2, explicit attention, train mode). The trunk is frozen except
  its patch embedding, its final norm and the "conditioned" blocks (stage 2, blocks 12-17),
  so the backward runs through the whole trunk. After EVERY block an adapter (a bottleneck
  conditioned by a task embedding of size window^3 = 343) updates a second stream,
  ``h = up(down(FiLM(emb_transf(e), x + h)))`` (no activation), merged at each stage change by
  its own patch merging. Conditioned blocks add a task-adapted attention bias (TAA: a FiLM of a
  (window^2 x window) matrix made block-diagonal, one per image, in a per-image loop) to the
  attention logits. The decoders read the final norm of the adapter stream, and as U-Net skips
  the trunk stream at the entry of stages 0-2;
* decoders, one per task on its B images (selected with a boolean mask): Swin-Unet with the
  encoder's widths mirrored: expand x2 (Linear C -> 2C, LayerNorm 2C, depth-to-space), then per
  level concat skip + Linear(2D -> D), 2 Swin blocks (dropout 0.6), expand; LayerNorm; expand
  x4 (Linear D -> 16 D, LayerNorm 16 D, depth-to-space); 1x1 conv (no bias) to the task's
  channels (18 / 1 / 3 / 1);
* losses: cross-entropy (ignore index 0) for segmentation; every other task the release's
  ``else`` branch: berHu between ``sigmoid(out) * 65535 + 1`` and ``65536 / (gt + 1)`` with
  its threshold read back to the host (``.item()``); AdamW (lr 2e-5, betas 0.9/0.98).

Left out: the per-step metrics the release logs (IoU, depth RMSE), and its ``qk_scale=True``
quirk (logit scale 1 instead of head_dim^-0.5: a constant, no cost). Parameter counts:
:func:`release_num_params` (51.0 M trainable at S-D-N-E, the release's size).
"""
import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer import PatchMerging, SwinTransformer, SwinTransformerBlock
from torch import Tensor

from mtl_adapters.models.decoders.swin_decoder import depth_to_space

#: the release's size (Swin-S, 224^2) and its task channels for S-D-N-E
RELEASE_SIZE = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), window_size=7,
                    img_size=224, conditioned={2: tuple(range(12, 18))})
RELEASE_TASK_CHANNELS = (18, 1, 3, 1)


def _block_params(dim: int, heads: int, window: int) -> int:
    """One Swin (v1) block: 2 norms 4d, qkv 3d^2 + 3d, proj d^2 + d, MLP 8d^2 + 5d, bias table
    (2w - 1)^2 heads."""
    return 12 * dim * dim + 13 * dim + (2 * window - 1) ** 2 * heads


def release_num_params(num_tasks: int, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 18, 2),
                       num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 7,
                       conditioned: Dict[int, Sequence[int]] = None,
                       task_channels: Sequence[int] = RELEASE_TASK_CHANNELS,
                       decoder_depths: Sequence[int] = (2, 2, 2, 2), **_ignored) -> int:
    """Trainable parameters of :class:`ReleaseStrategyModel` (the release's frozen-encoder
    setting), counted without building it. With C_i = embed 2^i, e = window^3::

        patch embed 48 C0 + C0 + 2 C0; task embeddings T e; final norm 2 C3
        per block of stage i: adapter e^2 + e + 2 e C_i + 2 C_i + 2 C_i (C_i // 3) + C_i // 3 + C_i
        per stage change: adapter patch merging 8 C_i^2 + 8 C_i
        per conditioned block: the block + TAA 2 e w + 2 w + w^3
        per decoder: expands, skip linears, 2 blocks per level, norm, x4 expand, 1x1 conv
    """
    conditioned = RELEASE_SIZE['conditioned'] if conditioned is None else conditioned
    dims = [embed_dim * 2 ** i for i in range(len(depths))]
    w, e = window_size, window_size ** 3
    total = 51 * dims[0] + num_tasks * e + 2 * dims[-1]
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        r = dim // 3
        total += depth * (e * e + e + 2 * e * dim + 2 * dim + 2 * dim * r + r + dim)
        if i > 0:
            total += 8 * dims[i - 1] ** 2 + 8 * dims[i - 1]
        total += len(conditioned.get(i, ())) * (_block_params(dim, num_heads[i], w)
                                                + 2 * e * w + 2 * w + w ** 3)
    dec = 2 * dims[3] * dims[3] + 4 * dims[3]                      # first expand (no skip)
    for level in (2, 1, 0):
        d = dims[level]
        dec += 2 * d * d + d                                      # skip concat linear
        dec += decoder_depths[level] * _block_params(d, num_heads[level], w)
        if level > 0:
            dec += 2 * d * d + 4 * d                              # expand d -> d / 2
    dec += 2 * dims[0] + 16 * dims[0] ** 2 + 32 * dims[0]        # norm, x4 expand
    return total + num_tasks * dec + dims[0] * sum(task_channels[:num_tasks])


class ReleaseAdapter(nn.Module):
    """The per-block bottleneck of the release: FiLM of (x + h) by a transformed task embedding,
    then Linear C -> C // 3 -> C (no activation in between)."""

    def __init__(self, cond_dim: int, dim: int):
        super().__init__()
        self.emb_transf = nn.Linear(cond_dim, cond_dim)
        self.film = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.film.bias)
        self.down = nn.Linear(dim, dim // 3)
        self.up = nn.Linear(dim // 3, dim)

    def forward(self, emb: Tensor, x: Tensor) -> Tensor:
        """emb (N, e), x (N, H, W, C) -> (N, H, W, C)."""
        gamma, beta = self.film(self.emb_transf(emb))[:, None, None].chunk(2, dim=-1)
        return self.up(self.down((1 + gamma) * x + beta))


class TaskBiasAttention(nn.Module):
    """A timm Swin (v1) window attention (its modules adopted) plus the release's TAA: a per-image
    (N x N) bias, block-diagonal, added to the logits of every window and head.

    The bias is set by the owner (``self.task_bias``) before the block runs, since timm's block
    calls ``attn(windows, mask)`` with no room for it.
    """

    def __init__(self, attn: nn.Module, cond_dim: int, window: int):
        super().__init__()
        self.inner = attn
        self.blocks = window
        self.gb = nn.Linear(cond_dim, 2 * window)
        nn.init.zeros_(self.gb.bias)
        self.matrix = nn.Parameter(torch.zeros(window * window, window))
        self.task_bias = None

    def bias(self, emb: Tensor) -> Tensor:
        """(N, e) task embeddings -> (N, w^2, w^2) block-diagonal biases, one image at a time
        (the release's loop)."""
        gamma, beta = self.gb(emb)[:, None].chunk(2, dim=-1)
        films = (1 + gamma) * self.matrix + beta                      # (N, w^2, w)
        out = torch.stack([torch.block_diag(*f.chunk(self.blocks, 0)) for f in films])
        return out[:, :, :out.shape[1]]

    def forward(self, x: Tensor, mask=None) -> Tensor:
        """Explicit window attention: (N * nW, L, C) -> (N * nW, L, C)."""
        a = self.inner
        b_, n, c = x.shape
        q, k, v = a.qkv(x).reshape(b_, n, 3, a.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * a.scale) @ k.transpose(-2, -1) + a._get_rel_pos_bias()
        bias = self.task_bias
        attn = (attn.view(bias.shape[0], -1, a.num_heads, n, n) + bias[:, None, None]).view(
            b_, a.num_heads, n, n)
        if mask is not None:
            num_win = mask.shape[0]
            attn = (attn.view(-1, num_win, a.num_heads, n, n) + mask[None, :, None]).view(
                b_, a.num_heads, n, n)
        attn = a.attn_drop(attn.softmax(dim=-1))
        return a.proj_drop(a.proj((attn @ v).transpose(1, 2).reshape(b_, n, c)))


class ReleaseExpand(nn.Module):
    """Linear C -> f^2 C_out (no bias), LayerNorm over f^2 C_out, depth-to-space by f."""

    def __init__(self, dim: int, out_dim: int, factor: int):
        super().__init__()
        self.factor = factor
        self.expand = nn.Linear(dim, factor * factor * out_dim, bias=False)
        self.norm = nn.LayerNorm(factor * factor * out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(N, H, W, C) -> (N, f H, f W, C_out)."""
        return depth_to_space(self.norm(self.expand(x)), self.factor)


class ReleaseDecoder(nn.Module):
    """One task's Swin-Unet decoder of the release (see the module docstring)."""

    def __init__(self, dims: Sequence[int], num_heads: Sequence[int], window: int, grid: int,
                 out_channels: int, depths: Sequence[int], drop: float, drop_paths):
        super().__init__()
        self.first = ReleaseExpand(dims[3], dims[2], 2)
        self.fuse = nn.ModuleList()
        self.levels = nn.ModuleList()
        self.expands = nn.ModuleList()
        for level in (2, 1, 0):
            d, res = dims[level], grid // 2 ** level
            self.fuse.append(nn.Linear(2 * d, d))
            self.levels.append(nn.Sequential(*[
                SwinTransformerBlock(d, (res, res), num_heads[level], window_size=window,
                                     shift_size=0 if i % 2 == 0 else window // 2,
                                     proj_drop=drop, drop_path=drop_paths[level][i])
                for i in range(depths[level])]))
            if level > 0:
                self.expands.append(ReleaseExpand(d, d // 2, 2))
        self.norm = nn.LayerNorm(dims[0])
        self.final = ReleaseExpand(dims[0], dims[0], 4)
        self.out = nn.Conv2d(dims[0], out_channels, 1, bias=False)

    def forward(self, x: Tensor, skips: List[Tensor]) -> Tensor:
        """Adapter-stream features (N, h, w, C3) and trunk skips [stage0, stage1, stage2]."""
        x = self.first(x)
        for i, level in enumerate((2, 1, 0)):
            x = self.levels[i](self.fuse[i](torch.cat([x, skips[level]], dim=-1)))
            if level > 0:
                x = self.expands[i](x)
        x = self.final(self.norm(x))
        return self.out(x.permute(0, 3, 1, 2))


class ReleaseStrategyModel(nn.Module):
    """The release's model and training step (module docstring); random init.

    Args:
        task_channels: output channels per task (segmentation first).
        embed_dim, depths, num_heads, window_size, img_size: the Swin (v1) size.
        conditioned: ``{stage: block indices}`` with task-adapted attention (trained).
        decoder_depths: Swin blocks per decoder level (stage order).
    """

    def __init__(self, task_channels: Sequence[int] = RELEASE_TASK_CHANNELS, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 18, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, img_size: int = 224, conditioned: Dict = None,
                 decoder_depths: Sequence[int] = (2, 2, 2, 2), drop_path_rate: float = 0.2,
                 decoder_drop: float = 0.6):
        super().__init__()
        conditioned = RELEASE_SIZE['conditioned'] if conditioned is None else conditioned
        self.task_channels = list(task_channels)
        self.img_size = img_size
        self.swin = SwinTransformer(img_size=img_size, embed_dim=embed_dim, depths=tuple(depths),
                                    num_heads=tuple(num_heads), window_size=window_size,
                                    drop_path_rate=drop_path_rate, num_classes=0)
        for m in self.swin.modules():
            if hasattr(m, 'fused_attn'):
                m.fused_attn = False                 # the release computes attention explicitly
        self.swin.requires_grad_(False)
        self.swin.patch_embed.requires_grad_(True)
        self.swin.norm.requires_grad_(True)
        cond = window_size ** 3
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.task_embeddings = nn.Embedding(len(task_channels), cond)
        self.adapters = nn.ModuleList(
            nn.ModuleList(ReleaseAdapter(cond, dims[i]) for _ in range(depths[i]))
            for i in range(len(depths)))
        self.merges = nn.ModuleList(PatchMerging(dims[i], 2 * dims[i])
                                    for i in range(len(depths) - 1))
        self.taa = nn.ModuleList()
        for stage, blocks in sorted(conditioned.items()):
            for b in blocks:
                blk = self.swin.layers[stage].blocks[b]
                blk.requires_grad_(True)
                blk.attn = TaskBiasAttention(blk.attn, cond, window_size)
                self.taa.append(blk.attn)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        # decoder level i takes the drop-path rates of encoder stage i, block by block
        drop_paths = [[dpr[s + min(b, depths[i] - 1)] for b in range(decoder_depths[i])]
                      for i, s in enumerate(starts)]
        grid = img_size // 4
        self.decoders = nn.ModuleList(
            ReleaseDecoder(dims, num_heads, window_size, grid, c, decoder_depths, decoder_drop,
                           drop_paths) for c in task_channels)

    def encode(self, img: Tensor, task_ids: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """(N, 3, H, W) images with their task ids -> adapter-stream features (N, h, w, C3)
        after the final norm, and the trunk stream entering stages 0-2 (U-Net skips)."""
        emb = self.task_embeddings(task_ids)
        for attn in self.taa:
            attn.task_bias = attn.bias(emb)
        x = self.swin.patch_embed(img)
        hidden = torch.zeros_like(x)
        skips = []
        for i, stage in enumerate(self.swin.layers):
            if i > 0:
                x = stage.downsample(x)
                hidden = self.merges[i - 1](hidden)
            skips.append(x)
            for blk, adapter in zip(stage.blocks, self.adapters[i]):
                x = blk(x)
                hidden = adapter(emb, x + hidden)
        for attn in self.taa:
            attn.task_bias = None
        return self.swin.norm(hidden), skips[:3]

    def forward(self, img: Tensor, task_ids: Tensor) -> List[Tensor]:
        """B*T images (sample-major repeats) and their task ids -> per task (B, C_t, H, W)."""
        feats, skips = self.encode(img, task_ids)
        outs = []
        for t, decoder in enumerate(self.decoders[:int(task_ids.max()) + 1]):
            sel = task_ids == t
            outs.append(decoder(feats[sel], [s[sel] for s in skips]))
        return outs

    def losses(self, outs: List[Tensor], targets: List[Tensor]) -> Tensor:
        """The release's summed task losses (weights 1): CE with ignore index 0 for task 0,
        berHu on the disparity-like transform for every other task."""
        total = 0
        for t, (out, gt) in enumerate(zip(outs, targets)):
            out = out.float()
            if t == 0:
                total = total + F.cross_entropy(out.flatten(2), gt.flatten(1), ignore_index=0)
            else:
                total = total + release_berhu(torch.sigmoid(out) * 65535 + 1, 65536.0 / (gt + 1))
        return total

    def random_batch(self, batch: int, num_tasks: int, device) -> Tuple[Tensor, Tensor, list]:
        """Images repeated per task (sample-major), task ids and random targets."""
        if not 1 <= num_tasks <= len(self.task_channels):
            raise ValueError(f'num_tasks={num_tasks}: this model has {len(self.task_channels)} '
                             'task decoders; build it with more task_channels')
        size = self.img_size
        img = torch.randn(batch, 1, 3, size, size, device=device)
        img = img.expand(-1, num_tasks, -1, -1, -1).reshape(-1, 3, size, size)
        task_ids = torch.arange(num_tasks, device=device).repeat(batch)
        targets = [torch.randint(0, self.task_channels[0], (batch, size, size), device=device)]
        targets += [torch.rand(batch, c, size, size, device=device) * 100
                    for c in self.task_channels[1:num_tasks]]
        return img, task_ids, targets


def release_berhu(pred: Tensor, target: Tensor, threshold: float = 0.2,
                  mask_val: float = 1.0, eps: float = 1e-7) -> Tensor:
    """The release's berHu: pixels whose target is ``mask_val`` are left out, the threshold is
    ``threshold`` x the batch's largest error, read back to the host (a device sync)."""
    valid = (target > mask_val + eps) | (target < mask_val - eps)
    diff = (target - pred).abs() * valid
    c = threshold * diff.max().item()
    c = max(c, math.ulp(1.0))                      # an all-equal batch: no division by zero
    return torch.where(diff <= c, diff, (diff * diff + c * c) / (2 * c)).mean()
