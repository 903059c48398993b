"""Visual Prompt Tuning (VPT, Jia et al., ECCV 2022) on a frozen timm Swin-V2, one prompt set
per task, all tasks batched as (T*B) through the shared frozen blocks.

VPT prepends p learnable tokens ("prompts") to the token sequence of a frozen transformer and
trains only them (and the task heads). *Shallow*: prompts at the input of the first block only,
carried through the network like image tokens. *Deep*: every block b gets fresh prompts P_b
(width C_b of its stage); the prompt tokens a block outputs are dropped.

Swin has no global token sequence: attention is inside windows, and patch merging changes the
resolution and width. On Swin we follow the VPT authors' Swin variant (the paper's "VPT on
hierarchical Transformers" experiments with Swin-B, and their released code):

* **windows**: the block's p prompt tokens are broadcast into every window of its sample and
  prepended to the window's N = wh * ww image tokens. Attention runs over the N + p tokens with
  the relative-position bias and the shift mask padded by zero rows and columns for the
  prompts (prompts have no position: every token attends to them and they attend to every
  token of the window, shift or not). Logits, exactly as timm's ``WindowAttention`` plus the
  padding (``prompted_window_logits``)::

      L = tau_h cos(q_i, k_j) + pad0(16 sigmoid(B_rel))[h, i, j] + pad0(M_shift)[w, i, j]

* **one prompt set per sample**: after attention a prompt token has one output per window; the
  next step gets their mean over the sample's windows (padded windows included, as timm pads).
* **the rest of the block**: prompt tokens are tokens. The res-post-norm residuals and the MLP
  apply to them as to image tokens (``x + norm1(attn)``, ``x + norm2(mlp(x))``, timm's own
  modules).
* **patch merging** (shallow): timm's ``PatchMerging`` concatenates the 2x2 neighbours (4C)
  then applies its reduction and norm. A prompt has no neighbours: it is tiled as all four
  (``[p, p, p, p]``, 4C), i.e. it goes through the merging as a 2x2 map filled with itself
  (``merge_prompts`` calls timm's module on exactly that map). The paper's text says prompts
  are "ignored during patch merging"; its released code tiles them as here, and only shallow
  prompts ever reach a merging (deep prompts are replaced at every block).
* **outputs**: each stage's NCHW feature is its image tokens only; prompts never reach the
  decoders.

Multi-task: task t owns its prompts (a leading T axis on every prompt tensor); the patch
embedding runs once per image, every block once on the task-major (T*B) batch, sample i of
chunk t getting task t's prompts. The trunk is frozen, in eval mode, and its weights get no
gradient; the prompts are the only trainable tensors of the encoder.

Initialisation (the paper: "xavier uniform"): U(-a, a) with a = sqrt(6 / (fan_in + C0)),
fan_in = 3 * P * P the patch-embedding's input fan (P the patch size) and C0 the embedding
width: the Xavier bound of the patch embedding, whose outputs the prompts stand beside. The
same bound is used for the prompts of every stage (as the authors' code does).

Trainable values: shallow ``T * p * C0``; deep ``T * p * sum_b C_b`` over all blocks b (C_b the
width of b's stage). With ``num_prompts=0`` the encoder has no parameter of its own and its
stage outputs equal the frozen :class:`SwinV2Encoder`'s bit for bit (the same code path, with
empty prompt tensors).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer_v2 import SwinTransformerV2Block, WindowAttention
from torch import Tensor

from mtl_adapters.models.adapters.timm_swinv2 import (logit_scale, relative_position_bias,
                                                      window_attention_output, window_partition,
                                                      window_qkv, window_reverse)
from mtl_adapters.registry import MODELS

from .adapted_swinv2 import TrunkOutput, split_task_features
from .base_encoder import BaseSwinV2Encoder

#: prompts per block (per task). The paper tunes the prompt length per dataset (1 to 200) and
#: gives no single value for Swin; 10 is the low end of the range its prompt-length ablation
#: finds best (about 10 to 100), and keeps a window-8 attention (64 image tokens) at 74 keys.
DEFAULT_NUM_PROMPTS = 10


def prompted_window_logits(attn: WindowAttention, x: Tensor,
                           num_prompts: int) -> Tuple[Tensor, Tensor]:
    """timm's window-attention logits for windows whose first ``num_prompts`` tokens are
    prompts: x (BW, p + N, C) -> (logits (BW, nH, p + N, p + N), values (BW, nH, p + N, C/nH)).

    ``adapters.timm_swinv2.window_attention_logits`` (which takes exactly N = window-area
    tokens) with the relative-position bias padded by zeros on the prompt rows and columns,
    built from ``peft_common``'s pieces of timm's ``WindowAttention.forward`` (q/k/v, the
    cosine temperature, the continuous position bias); with ``num_prompts=0`` it is the same
    operations on the same values (tested bit for bit).
    """
    q, k, v = window_qkv(attn, x)
    logits = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) \
        * logit_scale(attn)
    bias = F.pad(relative_position_bias(attn), (num_prompts, 0, num_prompts, 0))
    return logits + bias.unsqueeze(0), v


def prompted_window_attention(blk: SwinTransformerV2Block, x: Tensor, prompts: Tensor,
                              return_prompts: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
    """timm's ``SwinTransformerV2Block._attn`` with prompts in every window.

    x (B, H, W, C) image tokens, prompts (B, p, C) -> (image outputs (B, H, W, C), prompt
    outputs averaged over the sample's windows (B, p, C), or None without ``return_prompts``).
    Shift, padding to the window multiple, ``window_partition``, the block's shift mask and
    ``window_reverse`` are timm's; prompt rows/columns of the bias and the mask are zero.
    """
    b, h, w, c = x.shape
    p = prompts.shape[1]
    wh, ww = blk.window_size
    has_shift = any(blk.shift_size)
    if has_shift:
        x = torch.roll(x, shifts=(-blk.shift_size[0], -blk.shift_size[1]), dims=(1, 2))
    x = F.pad(x, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
    hp, wp = x.shape[1:3]
    windows = window_partition(x, blk.window_size).view(-1, blk.window_area, c)  # (B*nW, N, C)
    num_win = windows.shape[0] // b
    tokens = torch.cat((prompts.unsqueeze(1).expand(b, num_win, p, c).reshape(b * num_win, p, c),
                        windows), dim=1)                                      # (B*nW, p+N, C)
    mask = blk.get_attn_mask(x) if blk.dynamic_mask else blk.attn_mask        # (nW, N, N)
    if mask is not None:
        mask = F.pad(mask, (p, 0, p, 0))
    logits, v = prompted_window_logits(blk.attn, tokens, p)
    out = window_attention_output(blk.attn, logits, v, mask)                  # (B*nW, p+N, C)
    out_x = window_reverse(out[:, p:].reshape(-1, wh, ww, c), blk.window_size, (hp, wp))
    out_x = out_x[:, :h, :w]
    if has_shift:
        out_x = torch.roll(out_x, shifts=blk.shift_size, dims=(1, 2))
    out_p = out[:, :p].reshape(b, num_win, p, c).mean(1) if return_prompts else None
    return out_x, out_p


def prompted_block(blk: SwinTransformerV2Block, x: Tensor, prompts: Tensor,
                   return_prompts: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
    """A timm Swin-V2 block on image tokens x (B, H, W, C) and prompt tokens (B, p, C).

    Res-post-norm as timm's ``forward``, prompts treated as tokens::

        x' = x + DP1(norm1(attn_x)),     p' = p + DP1(norm1(attn_p))
        [p'', x''] = [p', x'] + DP2(norm2(MLP([p', x'])))

    Returns (x'' (B, H, W, C), p'' (B, p, C) or None without ``return_prompts``, when the
    caller drops them: then the prompt half of the residual/MLP is not computed).
    """
    b, h, w, c = x.shape
    p = prompts.shape[1]
    attn_x, attn_p = prompted_window_attention(blk, x, prompts, return_prompts)
    x = x + blk.drop_path1(blk.norm1(attn_x))
    x = x.reshape(b, -1, c)
    if not return_prompts:
        x = x + blk.drop_path2(blk.norm2(blk.mlp(x)))
        return x.reshape(b, h, w, c), None
    prompts = prompts + blk.drop_path1(blk.norm1(attn_p))
    tokens = torch.cat((prompts, x), dim=1)
    tokens = tokens + blk.drop_path2(blk.norm2(blk.mlp(tokens)))
    return tokens[:, p:].reshape(b, h, w, c), tokens[:, :p]


def merge_prompts(merging: nn.Module, prompts: Tensor) -> Tensor:
    """Prompt tokens through timm's ``PatchMerging``: (B, p, C) -> (B, p, C_out).

    Each prompt is the 2x2 map filled with itself, so the merging's 2x2 concatenation tiles it
    4x in channels ([p, p, p, p]) before its own reduction and norm."""
    b, p, c = prompts.shape
    merged = merging(prompts.reshape(b * p, 1, 1, c).expand(b * p, 2, 2, c))  # (B*p, 1, 1, C')
    return merged.reshape(b, p, merged.shape[-1])


@MODELS.register_module()
class VPTSwinV2Encoder(BaseSwinV2Encoder):
    """Frozen timm Swin-V2 + per-task visual prompts (VPT-shallow or VPT-deep).

    ``forward(img, task_names=None, affinity=None)`` -> ``{task: [4 NCHW stage features]}``:
    patch embedding once per image, then every block once on the (T*B) task-major batch with
    each task's prompts (see the module docstring for the Swin maths). ``affinity`` (the
    weighting's task-mixing matrix) is accepted and ignored: VPT has no task embeddings to mix.

    Trainable: ``prompts.<stage>``, one tensor per stage holding every task's prompts,
    (T, blocks, p, C_stage) for deep and a single (T, 1, p, C0) for shallow (so every prompt
    tensor takes part in every forward: DDP needs no unused-parameter search).

    Args:
        task_names: the model's tasks, in order (filled in by ``MultiTaskModel``).
        model_name, pretrained, img_size, model_kwargs: the trunk, as ``SwinV2Encoder``.
        num_prompts: prompts p per task and block (0: no prompts, the frozen encoder exactly).
        deep: new prompts in every block (VPT-deep); False: at the first block only (shallow).
        frozen: must be True (VPT tunes prompts only).
    """

    needs_task_names = True
    #: no ``AdapterBlock`` anywhere (the attribute the adapter encoder's users read)
    adapter_positions: Tuple = ()

    def __init__(self, task_names: Sequence[str], model_name: str = 'swinv2_tiny_window8_256',
                 pretrained: Optional[str] = None, img_size: Sequence[int] = (256, 256),
                 model_kwargs: Optional[dict] = None, num_prompts: int = DEFAULT_NUM_PROMPTS,
                 deep: bool = True, frozen: bool = True, init_cfg=None):
        if not frozen:
            raise NotImplementedError('VPTSwinV2Encoder keeps the trunk frozen (VPT tunes the '
                                      'prompts only); set frozen=True')
        task_names = list(task_names)
        if not task_names:
            raise ValueError('VPTSwinV2Encoder needs task_names (MultiTaskModel fills them)')
        if int(num_prompts) != num_prompts or num_prompts < 0:
            raise ValueError(f'num_prompts must be an integer >= 0, got {num_prompts!r}')
        super().__init__(model_name, pretrained, img_size, model_kwargs, frozen, init_cfg)
        self.task_names: List[str] = task_names
        self.num_prompts = int(num_prompts)
        self.deep = bool(deep)
        for stage in self.swin.layers:
            for blk in stage.blocks:
                if blk.attn.qkv_bias_separate:
                    raise ValueError('VPTSwinV2Encoder: WindowAttention option '
                                     'qkv_bias_separate=True is not supported (the prompted '
                                     'attention adds the q/k/v bias inside the qkv linear, '
                                     'timm\'s default)')
        proj = self.swin.patch_embed.proj.weight                       # (C0, 3, P, P)
        #: Xavier-uniform bound of the patch embedding: sqrt(6 / (3 P^2 + C0))
        self.init_bound = math.sqrt(6.0 / (proj[0].numel() + proj.shape[0]))
        num_tasks = len(task_names)
        self.prompts = nn.ParameterList()
        if self.num_prompts:
            stages = self.swin.layers if self.deep else self.swin.layers[:1]
            for dim, stage in zip(self.out_channels, stages):
                blocks = len(stage.blocks) if self.deep else 1
                prompts = torch.empty(num_tasks, blocks, self.num_prompts, dim)
                self.prompts.append(nn.Parameter(prompts.uniform_(-self.init_bound,
                                                                  self.init_bound)))

    # -------------------------------------------------------------- bookkeeping
    @property
    def method_name(self) -> str:
        """The method's name in the parameter report."""
        return f'VPT-{"deep" if self.deep else "shallow"}, p={self.num_prompts}'

    def adapter_named_parameters(self) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of everything VPT adds: the prompts (row t of each is task t's;
        no encoder parameter is shared between tasks)."""
        return [(f'prompts.{i}', p) for i, p in enumerate(self.prompts)]

    def per_task_numel(self) -> int:
        """Trainable encoder values one task owns: p * C0 (shallow), p * sum_b C_b (deep)."""
        return sum(p[0].numel() for p in self.prompts)

    def task_index(self, task_names: Sequence[str]) -> List[int]:
        """Rows of the prompt tensors for ``task_names``."""
        try:
            return [self.task_names.index(t) for t in task_names]
        except ValueError as err:
            raise KeyError(f'unknown task in {list(task_names)}; encoder tasks are '
                           f'{self.task_names}') from err

    def block_prompts(self, stage: int, block: int, index: Sequence[int],
                      batch: int) -> Optional[Tensor]:
        """Fresh prompts entering block ``block`` of ``stage`` for the (T*B) task-major batch,
        (T*B, p, C): task ``index[t]``'s prompts for chunk t; None where the carried prompts
        continue (shallow, after the first block)."""
        if not self.deep and (stage, block) != (0, 0):
            return None
        dim = self.out_channels[stage]
        if not self.num_prompts:
            return self.swin.patch_embed.proj.weight.new_zeros(len(index) * batch, 0, dim)
        prompts = self.prompts[stage][index, block]                     # (T, p, C)
        num = prompts.shape[0]
        return prompts.unsqueeze(1).expand(num, batch, self.num_prompts, dim).reshape(
            num * batch, self.num_prompts, dim)

    # ------------------------------------------------------------------ forward
    def trunk(self, img: Tensor) -> TrunkOutput:
        """What runs once per image (no task sees it differently): the patch embedding, under
        no_grad. (B, 3, H, W) -> ``TrunkOutput([], (B, H/4, W/4, C0))``."""
        with torch.no_grad():
            return TrunkOutput([], self.swin.patch_embed(img))

    def adapt(self, trunk_out: TrunkOutput, task_names: Sequence[str],
              return_branch_input: bool = False, affinity: Optional[Tensor] = None):
        """Every block once on the (T*B) task-major batch with the tasks' prompts ->
        ``{task: [4 NCHW features]}``. With ``return_branch_input`` also returns the (T*B,
        H/4, W/4, C0) leaf entering the first block (chunk t of its gradient is task t's).
        ``affinity`` is ignored (no task embeddings)."""
        index = self.task_index(task_names)
        batch = trunk_out.x.shape[0]
        x = trunk_out.x.repeat(len(index), 1, 1, 1)                      # (T*B, h, w, C0)
        if return_branch_input:
            x = x.detach().requires_grad_(True)
        branch_input = x
        layers = self.swin.layers
        prompts = None
        feats = []
        for s, stage in enumerate(layers):
            if s > 0:
                x = stage.downsample(x)
                if prompts is not None:
                    prompts = merge_prompts(stage.downsample, prompts)
            for b, blk in enumerate(stage.blocks):
                fresh = self.block_prompts(s, b, index, batch)
                if fresh is not None:
                    prompts = fresh
                last = s == len(layers) - 1 and b == len(stage.blocks) - 1
                # deep: the next block brings its own prompts; the last block's are dropped
                x, prompts = prompted_block(blk, x, prompts,
                                            return_prompts=not (self.deep or last))
            feats.append(x.permute(0, 3, 1, 2))                         # (T*B, C_s, h, w)
        out = split_task_features(feats, task_names, ())
        return (out, branch_input) if return_branch_input else out

    def forward(self, img: Tensor, task_names: Optional[Sequence[str]] = None,
                affinity: Optional[Tensor] = None) -> Dict[str, List[Tensor]]:
        """(B, 3, H, W) -> ``{task: [4 NCHW stage features]}``; ``task_names`` default to all
        of the encoder's; ``affinity`` is ignored (VPT has no task embeddings)."""
        return self.adapt(self.trunk(img), list(task_names or self.task_names))
