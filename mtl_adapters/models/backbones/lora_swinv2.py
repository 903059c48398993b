"""Task-conditioned LoRA on a frozen timm Swin-V2, in the spirit of MTLoRA (Agiza et al.,
"MTLoRA: Low-Rank Adaptation Approach for Efficient Multi-Task Learning", CVPR 2024), all tasks
in one (T*B) batch.

LoRA (Hu et al., ICLR 2022) adds a low-rank update to a frozen linear map W. Here every target
projection of every LoRA block (attention ``qkv`` and ``proj``, MLP ``fc1`` and ``fc2``; the
blocks default to the adapter encoder's, ``DEFAULT_ADAPTER_BLOCKS``) gets a task-agnostic
update shared by all tasks and one task-specific update per task (MTLoRA's TA-LoRA and TS-LoRA):

    y_t = W x + b + (alpha / r_s) B_s A_s x + (alpha / r_t) B_t A_t x      (x from task t)

A (r x in) is initialised as nn.Linear's weight (Kaiming-uniform, a = sqrt(5), as LoRA's
reference code), B (out x r) at zero, so at init every update is exactly 0 and the encoder is
the frozen ``SwinV2Encoder`` bit for bit (tested; ranks 0 remove an update entirely). Both
updates of a projection run as one batched product per task, [B_s B_t] [A_s; A_t] x.
Blocks before the first LoRA block run once (trunk, ``no_grad``); from there the (T*B)
task-major batch runs on, its rows of task t through task t's updates. MTLoRA puts its
task-specific modules at the end of each stage only and shares the rest; ``lora_blocks`` and
``rank_task=0`` give such splits (one encoder config per placement).

Trainable parameters, over LoRA blocks l (width C_l, MLP hidden h C_l) and the four targets
(in + out = 4C, 2C, (1 + h)C, (1 + h)C):

    (r_s + T r_t) * sum_l (8 + 2h) C_l        (= 16 (r_s + T r_t) sum_l C_l for h = 4)

Bit-exactness of the zero update: the delta is a product with B = 0, i.e. exactly 0, and
``W x + b + 0`` is ``W x + b``; the frozen projections are computed with timm's own operations
(``peft_common.window_attention`` / ``mlp_forward``).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtl_adapters.models.adapters import check_supported_block
from mtl_adapters.models.adapters.timm_swinv2 import (block_forward, mlp_forward,
                                                      window_attention)
from mtl_adapters.registry import MODELS

from .peft_common import TaskBranchSwinV2Encoder, position_key

#: the projections of a Swin-V2 block LoRA can update
LORA_TARGETS = ('qkv', 'proj', 'fc1', 'fc2')


class LowRank(nn.Module):
    """One low-rank update (alpha / r) B A of an (out x in) weight: A Kaiming-uniform, B 0."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float):
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / rank


class TaskLoRA(nn.Module):
    """The LoRA updates of one frozen linear map: shared (``shared``) + one per task
    (``tasks[t]``); either may be absent (rank 0).

    ``forward(x, task_names)``: x (T*n, ..., in), task-major over ``task_names`` -> the update
    (T*n, ..., out) for each row's task.
    """

    def __init__(self, in_features: int, out_features: int, task_names: Sequence[str],
                 rank_shared: int, rank_task: int, alpha: float):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.shared = LowRank(in_features, out_features, rank_shared, alpha) \
            if rank_shared else None
        self.tasks = nn.ModuleDict({t: LowRank(in_features, out_features, rank_task, alpha)
                                    for t in (task_names if rank_task else ())})

    def factors(self, task_names: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """Per task t, A_t' = [A_s; A_t] (T, R, in) and B_t' = [s_s B_s, s_t B_t] (T, out, R)."""
        num = len(task_names)
        a_parts, b_parts = [], []
        if self.shared is not None:
            s = self.shared
            a_parts.append(s.lora_A.expand(num, -1, -1))
            b_parts.append((s.lora_B * s.scaling).expand(num, -1, -1))
        if len(self.tasks):
            own = [self.tasks[t] for t in task_names]
            a_parts.append(torch.stack([m.lora_A for m in own]))
            b_parts.append(torch.stack([m.lora_B * m.scaling for m in own]))
        return torch.cat(a_parts, 1), torch.cat(b_parts, 2)

    def forward(self, x: Tensor, task_names: Sequence[str]) -> Tensor:
        a, b = self.factors(task_names)
        rows = x.reshape(len(task_names), -1, self.in_features)                # (T, n, in)
        delta = torch.bmm(torch.bmm(rows, a.transpose(1, 2)), b.transpose(1, 2))
        return delta.reshape(*x.shape[:-1], self.out_features)


@MODELS.register_module()
class LoRASwinV2Encoder(TaskBranchSwinV2Encoder):
    """Frozen Swin-V2 trunk (run once) + shared and task-specific LoRA in the LoRA blocks.

    ``forward(img, task_names=None, affinity=None)`` -> ``{task: [4 NCHW features]}``;
    ``affinity`` is ignored (no task embeddings).

    Args:
        task_names: the model's tasks, in order (filled in by ``MultiTaskModel``).
        lora_blocks: ``{stage: 'all' | block indices}`` of the blocks with LoRA; None: the
            adapter encoder's default (last four blocks of stage 3, all of stage 4).
        rank_shared: rank r_s of the task-agnostic update (0: none).
        rank_task: rank r_t of each task's own update (0: none).
        alpha: LoRA's alpha; each update is scaled by alpha / its rank.
        targets: which of ``LORA_TARGETS`` get updates.
        model_name, pretrained, img_size, model_kwargs, frozen: as ``SwinV2Encoder`` (frozen
            must be True).
    """

    method_name = 'lora'

    def __init__(self, task_names: Sequence[str], lora_blocks: Optional[Dict] = None,
                 rank_shared: int = 8, rank_task: int = 4, alpha: float = 8.0,
                 targets: Sequence[str] = LORA_TARGETS,
                 model_name: str = 'swinv2_tiny_window8_256', pretrained: Optional[str] = None,
                 img_size: Sequence[int] = (256, 256), model_kwargs: Optional[dict] = None,
                 frozen: bool = True, init_cfg=None):
        super().__init__(task_names, lora_blocks, model_name, pretrained, img_size,
                         model_kwargs, frozen, init_cfg)
        unknown = [t for t in targets if t not in LORA_TARGETS]
        if unknown or not targets:
            raise ValueError(f'targets must be a non-empty subset of {LORA_TARGETS}, got '
                             f'{list(targets)}')
        if min(rank_shared, rank_task) < 0:
            raise ValueError(f'ranks must be >= 0, got rank_shared={rank_shared}, '
                             f'rank_task={rank_task}')
        self.rank_shared, self.rank_task, self.alpha = int(rank_shared), int(rank_task), alpha
        self.targets = tuple(t for t in LORA_TARGETS if t in targets)
        #: {'<stage>_<block>': {target: TaskLoRA}}
        self.lora = nn.ModuleDict()
        for stage, b in self.tuned_positions:
            blk = self.swin.layers[stage].blocks[b]
            check_supported_block(blk)
            dim, hidden = blk.dim, blk.mlp.fc1.out_features
            shapes = dict(qkv=(dim, 3 * dim), proj=(dim, dim), fc1=(dim, hidden),
                          fc2=(hidden, dim))
            self.lora[position_key(stage, b)] = nn.ModuleDict({
                name: TaskLoRA(*shapes[name], self.task_names, self.rank_shared,
                               self.rank_task, alpha)
                for name in (self.targets if self.rank_shared or self.rank_task else ())})

    # -------------------------------------------------------------- bookkeeping
    def adapter_named_parameters(self) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of every LoRA factor, shared and per task."""
        return [(f'lora.{n}', p) for n, p in self.lora.named_parameters()]

    def task_named_parameters(self, task: str) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of ``task``'s own LoRA factors (A_t, B_t of every target)."""
        self.check_task(task)
        return [(f'lora.{n}', p) for n, p in self.lora.named_parameters()
                if f'.tasks.{task}.' in f'.{n}']

    # ------------------------------------------------------------------ forward
    def branch_block(self, stage: int, index: int, x: Tensor,
                     task_names: Sequence[str]) -> Tensor:
        """LoRA block on x (T*B, H, W, C), task-major: timm's block with each target
        projection's output plus its update for the row's task."""
        blk = self.swin.layers[stage].blocks[index]
        updates = self.lora[position_key(stage, index)]

        def delta(name):
            if name not in updates:
                return None
            return lambda inp: updates[name](inp, task_names)

        def attend(windows, mask):
            return window_attention(blk.attn, windows, mask, qkv_delta=delta('qkv'),
                                    proj_delta=delta('proj'))

        return block_forward(blk, x, attend,
                             lambda h: mlp_forward(blk.mlp, h, delta('fc1'), delta('fc2')))
