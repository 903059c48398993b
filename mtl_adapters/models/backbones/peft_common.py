"""What the parameter-efficient encoders of ``configs/peft/`` share.

* :class:`TaskBranchSwinV2Encoder`: the layout of the adapter encoder for any method that tunes
  some trunk blocks per task. The frozen trunk runs **once** per image (under ``no_grad``) up to
  the first tuned block; from there every task's copy runs as one (T*B) task-major batch
  through the remaining blocks, the tuned ones through the method's ``branch_block``. Same
  interface as ``AdaptedSwinV2Encoder``: ``trunk(img)``, ``adapt(trunk_out, task_names, ...)``,
  ``forward(img, task_names, affinity)``, ``adapter_named_parameters()``, plus
  ``task_named_parameters(task)`` (the parameters only that task uses; the parameter report
  reads it) and ``method_name`` (the method's name in the report).
* The methods' window attention and block forward (LoRA updates of the projections, memory
  keys and values, prompts) are the pieces of ``models/adapters/timm_swinv2.py``, the one place
  that reads timm's ``WindowAttention`` internals.
* :class:`FullFineTuneSwinV2Encoder`: full fine-tuning (the whole trunk trainable).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from mtl_adapters.registry import MODELS

from .adapted_swinv2 import (DEFAULT_ADAPTER_BLOCKS, TrunkOutput, resolve_adapter_blocks,
                             run_frozen_trunk, split_task_features)
from .base_encoder import BaseSwinV2Encoder
from .swinv2_encoder import SwinV2Encoder


def position_key(stage: int, block: int) -> str:
    """Module-dict key of trunk block ``layers[stage].blocks[block]``: ``'<stage>_<block>'``."""
    return f'{stage}_{block}'


class TaskBranchSwinV2Encoder(BaseSwinV2Encoder):
    """Frozen Swin-V2 trunk run once, then the tuned blocks for all tasks as a (T*B) batch.

    Subclasses choose the tuned blocks (``tuned_positions``, resolved like the adapter
    encoder's ``adapter_blocks``) and implement ``branch_block`` (one tuned block on the (T*B)
    batch), ``adapter_named_parameters`` and ``task_named_parameters``. Blocks after the first
    tuned one that are not tuned run as timm's blocks, on the (T*B) batch.

    Outputs per task: ``[stage features]`` NCHW; the stages entirely before the first tuned
    block are computed once and are the same tensor objects for every task.

    Args:
        task_names: the model's tasks, in order (filled in by ``MultiTaskModel``).
        tuned_blocks: ``{stage: 'all' | block indices}``; None: the adapter encoder's default
            (last four blocks of stage 3, all of stage 4).
        model_name, pretrained, img_size, model_kwargs: as ``SwinV2Encoder``.
        frozen: must be True: the trunk is frozen and runs under ``no_grad``.
    """

    needs_task_names = True
    #: the method's name in the parameter report
    method_name = 'peft'
    #: positions of ``AdapterBlock``s (the adapter encoder's attribute): none here
    adapter_positions: Tuple = ()

    def __init__(self, task_names: Sequence[str], tuned_blocks: Optional[Dict] = None,
                 model_name: str = 'swinv2_tiny_window8_256', pretrained: Optional[str] = None,
                 img_size: Sequence[int] = (256, 256), model_kwargs: Optional[dict] = None,
                 frozen: bool = True, init_cfg=None):
        name = type(self).__name__
        if not frozen:
            raise NotImplementedError(f'{name} keeps the trunk frozen; full fine-tuning is '
                                      'FullFineTuneSwinV2Encoder')
        task_names = list(task_names)
        if not task_names:
            raise ValueError(f'{name} needs task_names (MultiTaskModel fills them)')
        bad = [t for t in task_names if not t or '.' in t or task_names.count(t) > 1]
        if bad:
            raise ValueError(f'{name}: task names must be unique, non-empty and without "."; '
                             f'got {task_names}')
        super().__init__(model_name, pretrained, img_size, model_kwargs, frozen, init_cfg)
        self.task_names: List[str] = task_names
        depths = [len(stage.blocks) for stage in self.swin.layers]
        #: sorted (stage, block) pairs of the tuned trunk blocks
        self.tuned_positions: List[Tuple[int, int]] = resolve_adapter_blocks(
            tuned_blocks if tuned_blocks is not None else DEFAULT_ADAPTER_BLOCKS, depths)
        self.first_tuned = self.tuned_positions[0]
        #: (T*B, H, W, C) tensor that entered the first tuned block in the last ``adapt``
        self.branch_input: Optional[Tensor] = None

    # -------------------------------------------------------------- bookkeeping
    def adapter_named_parameters(self) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of everything the method adds (shared and per task)."""
        raise NotImplementedError

    def task_named_parameters(self, task: str) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of what only ``task`` uses (its share of the method)."""
        raise NotImplementedError

    def check_task(self, task: str) -> None:
        """KeyError naming the encoder's tasks for an unknown one."""
        if task not in self.task_names:
            raise KeyError(f'unknown task {task!r}; encoder tasks are {self.task_names}')

    # ------------------------------------------------------------------ forward
    def trunk(self, img: Tensor) -> TrunkOutput:
        """Frozen part, once per image under no_grad: (B, 3, H, W) -> ``TrunkOutput``.

        The image is taken as it is, as ``SwinV2Encoder`` takes it (timm pads odd maps at
        patch merging and maps to the window multiple inside the blocks; the model's data
        preprocessor pads images to ``size_divisor``), so that with zero contribution the
        features are the frozen encoder's at every input size."""
        return run_frozen_trunk(self.swin, img, self.first_tuned)

    def branch_block(self, stage: int, index: int, x: Tensor,
                     task_names: Sequence[str]) -> Tensor:
        """Tuned block ``layers[stage].blocks[index]`` on x (T*B, H, W, C), task-major."""
        raise NotImplementedError

    def adapt(self, trunk_out: TrunkOutput, task_names: Sequence[str],
              return_branch_input: bool = False, affinity: Optional[Tensor] = None):
        """Task branch, all tasks batched as (T*B): -> ``{task: [4 NCHW features]}``.

        ``affinity`` is ignored: these methods have no task embeddings to mix. With
        ``return_branch_input`` also returns the (T*B, H, W, C) leaf tensor entering the first
        tuned block (requires grad): chunk t of its gradient is task t's gradient.
        """
        task_names = list(task_names)
        for t in task_names:
            self.check_task(t)
        num_tasks = len(task_names)
        x = trunk_out.x.repeat(num_tasks, 1, 1, 1)                       # (T*B, H, W, C)
        if return_branch_input:
            x = x.detach().requires_grad_(True)
        self.branch_input = x
        branch_input = x
        tuned = set(self.tuned_positions)
        stage0, block0 = self.first_tuned
        task_feats = []
        for i in range(stage0, len(self.swin.layers)):
            stage = self.swin.layers[i]
            if i > stage0:
                x = stage.downsample(x)                                  # (T*B, H/2, W/2, 2C)
            for b in range(block0 if i == stage0 else 0, len(stage.blocks)):
                if (i, b) in tuned:
                    x = self.branch_block(i, b, x, task_names)
                else:
                    x = stage.blocks[b](x)
            task_feats.append(x.permute(0, 3, 1, 2))                     # (T*B, C_i, h, w)
        out = split_task_features(task_feats, task_names, trunk_out.shared_feats)
        if return_branch_input:
            return out, branch_input
        return out

    def forward(self, img: Tensor, task_names: Optional[Sequence[str]] = None,
                affinity: Optional[Tensor] = None) -> Dict[str, List[Tensor]]:
        """(B, 3, H, W) -> ``{task: [4 NCHW stage features]}`` (trunk once, tuned blocks as
        one (T*B) batch); ``task_names`` default to all of the encoder's; ``affinity`` (the
        task-mixing matrix the model passes to every encoder) is ignored."""
        return self.adapt(self.trunk(img), task_names or self.task_names)


@MODELS.register_module()
class FullFineTuneSwinV2Encoder(SwinV2Encoder):
    """Full fine-tuning: ``SwinV2Encoder`` with the whole trunk trainable (``frozen=False``).

    Every trunk parameter the four stage features depend on is trained, in train mode
    (timm's drop-path active). timm's final LayerNorm (``swin.norm``, which only its classifier
    reads) is not used by the stage features and stays frozen: trainable but unused it would
    get no gradient, and DDP without ``find_unused_parameters`` would refuse it. It stays in
    the module (state dicts keep timm's keys). The trunk runs once for all tasks, which share
    its features; ``affinity`` is ignored.
    """

    method_name = 'full fine-tuning'

    def __init__(self, model_name: str = 'swinv2_tiny_window8_256',
                 pretrained: Optional[str] = None, img_size: Sequence[int] = (256, 256),
                 model_kwargs: Optional[dict] = None, init_cfg=None):
        super().__init__(model_name, pretrained, img_size, model_kwargs, frozen=False,
                         init_cfg=init_cfg)
        self.swin.norm.requires_grad_(False)

    def task_named_parameters(self, task: str) -> List[Tuple[str, nn.Parameter]]:
        """No task has encoder parameters of its own: the whole trunk is shared."""
        return []
