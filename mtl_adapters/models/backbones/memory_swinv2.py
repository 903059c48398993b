"""Learnable memory (Sandler et al., "Fine-tuning Image Transformers using Learnable Memory",
CVPR 2022) on a frozen timm Swin-V2, one memory per task, all tasks in one (T*B) batch.

Every memory block (default: the adapter encoder's blocks, ``DEFAULT_ADAPTER_BLOCKS``) gets m
learnable tokens per task, M_t^l in R^{m x C}, initialised N(0, 0.02^2) as in the paper. They
are appended to the keys and values only: the block's own (frozen) qkv projection gives
k_mem = W_k M_t, v_mem = W_v M_t + b_v; their outputs are never computed (the paper drops
them), so the block's output keeps its token count. Swin-V2 is res-post-norm (no norm before
the attention), so the tokens enter the projection as they are. In Swin every window of a
sample of task t sees the same m memory tokens of task t, with

    logits[i, j]   = tau_h cos(q_i, k_j) + B_rel[h, i, j] + shift_mask[i, j]   (window tokens)
    logits[i, N+j] = tau_h cos(q_i, k_mem_j)        (no position bias, no shift mask)

and the softmax over the N + m keys (``peft_common.window_attention``). Blocks before the first
memory block run once (trunk, ``no_grad``); from there the (T*B) task-major batch runs on.

**Attention masking** (the paper's Sec. 3.2, for several tasks in one forward): the keys of
all tasks' memories, concatenated, would be visible to every query; the mask lets the queries
of a task's samples see only that task's memory. That mask is block-diagonal over
(task's samples) x (task's memory), so only its unmasked blocks are computed: each task's
windows attend to their own m memory keys. Nothing of task s enters task t's computation,
hence adding, changing or removing task s's memory leaves task t's outputs bit-identical
(tested), and **model concatenation** holds: memories tuned in separate encoders (one per
task, same frozen trunk) combine with :meth:`MemorySwinV2Encoder.concatenate` into one encoder
whose output for every task equals that task's own encoder's (``torch.equal``, tested).

With ``num_memory_tokens=0`` (no memory) the encoder is the frozen ``SwinV2Encoder`` exactly.
Trainable parameters: ``T * m * sum_l C_l`` (C_l the width of memory block l).
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtl_adapters.models.adapters import check_supported_block
from mtl_adapters.models.adapters.timm_swinv2 import (block_forward, window_attention,
                                                      window_qkv)
from mtl_adapters.registry import MODELS

from .peft_common import TaskBranchSwinV2Encoder, position_key


@MODELS.register_module()
class MemorySwinV2Encoder(TaskBranchSwinV2Encoder):
    """Frozen Swin-V2 trunk (run once) + per-task learnable memory tokens in the memory blocks.

    ``forward(img, task_names=None, affinity=None)`` -> ``{task: [4 NCHW features]}``;
    ``affinity`` is ignored (no task embeddings).

    Args:
        task_names: the model's tasks, in order (filled in by ``MultiTaskModel``).
        memory_blocks: ``{stage: 'all' | block indices}`` of the blocks with memory; None: the
            adapter encoder's default. ``{0: 'all', 1: 'all', 2: 'all', 3: 'all'}`` is the
            paper's every layer (then only the patch embedding runs once).
        num_memory_tokens: m, memory tokens per block and task (0: no memory).
        init_std: standard deviation of the memory's normal init (the paper's 0.02).
        model_name, pretrained, img_size, model_kwargs, frozen: as ``SwinV2Encoder`` (frozen
            must be True).
    """

    method_name = 'memory'

    def __init__(self, task_names: Sequence[str], memory_blocks: Optional[Dict] = None,
                 num_memory_tokens: int = 4, init_std: float = 0.02,
                 model_name: str = 'swinv2_tiny_window8_256', pretrained: Optional[str] = None,
                 img_size: Sequence[int] = (256, 256), model_kwargs: Optional[dict] = None,
                 frozen: bool = True, init_cfg=None):
        super().__init__(task_names, memory_blocks, model_name, pretrained, img_size,
                         model_kwargs, frozen, init_cfg)
        if int(num_memory_tokens) < 0:
            raise ValueError(f'num_memory_tokens must be >= 0, got {num_memory_tokens}')
        self.num_memory_tokens = int(num_memory_tokens)
        self.init_std = init_std
        #: {'<stage>_<block>': {task: (m, C) memory}}
        self.memory = nn.ModuleDict()
        for stage, b in self.tuned_positions:
            blk = self.swin.layers[stage].blocks[b]
            check_supported_block(blk)
            self.memory[position_key(stage, b)] = nn.ParameterDict({
                t: nn.Parameter(torch.randn(self.num_memory_tokens, blk.dim) * init_std)
                for t in (self.task_names if self.num_memory_tokens else ())})

    # -------------------------------------------------------------- bookkeeping
    def adapter_named_parameters(self) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of every task's memory in every memory block."""
        return [(f'memory.{n}', p) for n, p in self.memory.named_parameters()]

    def task_named_parameters(self, task: str) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of ``task``'s memory tokens (m x C per memory block)."""
        self.check_task(task)
        return [(f'memory.{key}.{task}', mem[task]) for key, mem in self.memory.items()
                if task in mem]

    def memory_kv(self, stage: int, index: int,
                  task_names: Sequence[str]) -> Optional[Tuple[Tensor, Tensor]]:
        """Keys and values (each (T, nH, m, C / nH)) of the memory of block
        ``layers[stage].blocks[index]`` for ``task_names``, through the block's frozen qkv
        projection; None if the block holds none (m = 0).

        Each task's memory is projected on its own, so task t's keys and values do not depend
        on which other tasks run (a product over fewer rows may round differently).
        """
        mems = self.memory[position_key(stage, index)]
        held = [t in mems for t in task_names]
        if not any(held):
            return None
        if not all(held):
            raise KeyError(f'block {stage}.{index} holds memory for {list(mems)}, not for all '
                           f'of {list(task_names)}')
        attn = self.swin.layers[stage].blocks[index].attn
        kv = [window_qkv(attn, mems[t][None])[1:] for t in task_names]
        return torch.cat([k for k, _ in kv]), torch.cat([v for _, v in kv])

    # ------------------------------------------------------------------ forward
    def branch_block(self, stage: int, index: int, x: Tensor,
                     task_names: Sequence[str]) -> Tensor:
        """Memory block on x (T*B, H, W, C), task-major: each task's windows also attend to
        that task's memory keys/values (``peft_common.window_attention``)."""
        blk = self.swin.layers[stage].blocks[index]
        memory_kv = self.memory_kv(stage, index, task_names)
        if memory_kv is None:
            return blk(x)                                    # no memory: timm's block
        return block_forward(blk, x, lambda windows, mask: window_attention(
            blk.attn, windows, mask, memory_kv=memory_kv))

    # ------------------------------------------------------------ concatenation
    @classmethod
    def concatenate(cls, encoders: Sequence['MemorySwinV2Encoder']) -> 'MemorySwinV2Encoder':
        """One encoder holding the tasks and memories of ``encoders`` (the paper's model
        concatenation), whose output for each task equals that task's own encoder's.

        The encoders must share the frozen trunk (equal state, bit for bit), the memory blocks
        and m, and hold different tasks. The result is a new module (copies of the memories);
        its task order is the encoders' in the given order.
        """
        encoders = list(encoders)
        if not encoders or not all(isinstance(e, MemorySwinV2Encoder) for e in encoders):
            raise TypeError('concatenate takes a non-empty sequence of MemorySwinV2Encoder, got '
                            f'{[type(e).__name__ for e in encoders]}')
        first = encoders[0]
        trunk = first.swin.state_dict()
        seen = list(first.task_names)
        for i, enc in enumerate(encoders[1:], 1):
            if (enc.tuned_positions, enc.num_memory_tokens) != (first.tuned_positions,
                                                                first.num_memory_tokens):
                raise ValueError(
                    f'encoder {i} has memory blocks {enc.tuned_positions} with m = '
                    f'{enc.num_memory_tokens}, encoder 0 {first.tuned_positions} with m = '
                    f'{first.num_memory_tokens}: concatenated memories must sit in the same '
                    'blocks with the same size')
            other = enc.swin.state_dict()
            differ = [k for k, v in trunk.items()
                      if k not in other or other[k].shape != v.shape or not torch.equal(
                          other[k], v)]
            if differ or set(other) != set(trunk):
                raise ValueError(f'encoder {i} has another trunk than encoder 0 (differs in '
                                 f'{differ[:3] or sorted(set(other) ^ set(trunk))[:3]}): '
                                 'memories tuned on different frozen trunks cannot be combined')
            dup = [t for t in enc.task_names if t in seen]
            if dup:
                raise ValueError(f'encoder {i} holds tasks {dup} that an earlier encoder holds; '
                                 'each task must come from one encoder')
            seen += enc.task_names
        first.branch_input = None                      # a cache of the last forward
        combined = copy.deepcopy(first)
        for enc in encoders[1:]:
            for key, mems in enc.memory.items():
                for t in enc.task_names:
                    if t in mems:
                        combined.memory[key][t] = nn.Parameter(
                            mems[t].detach().clone(), requires_grad=mems[t].requires_grad)
        combined.task_names = seen
        return combined
