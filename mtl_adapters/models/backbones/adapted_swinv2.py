"""A frozen timm Swin-V2 with task-conditioned adapter blocks in its deep stages.

Layout (Swin-V2-B, default ``adapter_blocks={2: (-4, -3, -2, -1), 3: 'all'}``)::

    image -> trunk (frozen, no_grad, ONCE per image):
               patch_embed, stage 0, stage 1, stage 2 blocks before the first adapter
          -> replicate to (T*B) task-major -> branch (per task, batched):
               remaining stage-2 blocks (adapter blocks), patch merging, stage-3 adapter blocks

Conditioning: learnable task embeddings theta_j (T x d) and the task-mixing matrix W (T x T,
TROA's affinity), passed with every call and read by reference (the encoder keeps no copy;
None is the identity):

    theta_hat_t = sum_j W[t, j] theta_j

Every adapter block (see ``mtl_adapters.models.adapters.adapter_block``) is shared by all tasks
and conditioned on theta_hat_t through TAA (attention-logit bias A'_t), TSN (LayerNorm scale and
shift) and the adapter-input TSN; bottleneck adapters are chained by skips, including across the
stage-2 -> 3 patch merging (2x2 space-to-depth + linear). With the adapter parameters at init the
four stage outputs equal the plain timm encoder's for every task.

Outputs per task: ``[stage0, stage1, stage2_t, stage3_t]`` NCHW; the frozen-stage features are the
same tensor objects for every task.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mtl_adapters.models.adapters import ADAPTER_MODULE_NAMES, AdapterBlock, SkipMerge
from mtl_adapters.models.adapters.timm_swinv2 import check_attn_impl
from mtl_adapters.registry import MODELS

from .base_encoder import BaseSwinV2Encoder

DEFAULT_ADAPTER_BLOCKS = {2: (-4, -3, -2, -1), 3: 'all'}


class TrunkOutput(NamedTuple):
    """What the frozen trunk hands to the task branch."""
    #: NCHW outputs of the stages that are entirely frozen (shared decoder skips)
    shared_feats: List[Tensor]
    #: (B, H, W, C) tensor entering the first adapter block
    x: Tensor


def run_frozen_trunk(swin: nn.Module, img: Tensor, first_branch: Tuple[int, int]) -> TrunkOutput:
    """The part of a Swin-V2 before the task branch, once per image under ``no_grad``:
    (B, 3, H, W) -> the stage features it completes and the map entering block
    ``first_branch = (stage, block)``. Shared by every encoder with a (T*B) task branch."""
    stage0, block0 = first_branch
    with torch.no_grad():
        x = swin.patch_embed(img)                                       # (B, H/4, W/4, C0)
        shared = []
        for i in range(stage0):
            x = swin.layers[i](x)
            shared.append(x.permute(0, 3, 1, 2).contiguous())            # (B, C_i, h, w)
        stage = swin.layers[stage0]
        x = stage.downsample(x)
        for blk in stage.blocks[:block0]:
            x = blk(x)
    return TrunkOutput(shared, x)


def split_task_features(task_feats: Sequence[Tensor], task_names: Sequence[str],
                        shared_feats: Sequence[Tensor]) -> Dict[str, List[Tensor]]:
    """(T*B, C, h, w) task-major branch features -> ``{task: shared stage features + its own
    chunk of every branch stage}``."""
    batch = task_feats[0].shape[0] // len(task_names)
    return {name: list(shared_feats) + [f[t * batch:(t + 1) * batch].contiguous()
                                        for f in task_feats]
            for t, name in enumerate(task_names)}


def resolve_adapter_blocks(spec: Dict, depths: Sequence[int]) -> List[Tuple[int, int]]:
    """``{stage: 'all' | indices}`` (negative indices allowed) -> sorted (stage, block) pairs."""
    pairs = set()
    for stage, blocks in dict(spec).items():
        stage = int(stage)
        if not 0 <= stage < len(depths):
            raise ValueError(f'adapter_blocks: stage {stage} out of range; the encoder has '
                             f'{len(depths)} stages (0-based)')
        depth = depths[stage]
        idx = range(depth) if blocks == 'all' else blocks
        for b in idx:
            b = int(b)
            if not -depth <= b < depth:
                raise ValueError(f'adapter_blocks: block {b} of stage {stage} out of range '
                                 f'(stage has {depth} blocks)')
            pairs.add((stage, b % depth))
    if not pairs:
        raise ValueError('adapter_blocks selects no block; e.g. {2: (-4, -3, -2, -1), 3: "all"}')
    return sorted(pairs)


def check_norms_alive(swin: nn.Module, positions: Sequence[Tuple[int, int]],
                      source: Optional[str]) -> None:
    """Refuse a trunk whose res-post norms (wrapped by the task-scaled norms) are all zero.

    TSN multiplies by the pretrained norm's weight, so an all-zero weight makes the task-adapted
    attention and the TSN scale receive no gradient, ever. That is what a timm model saved
    before any training looks like (timm zero-inits these norms), never a trained checkpoint.
    """
    for stage, b in positions:
        blk = swin.layers[stage].blocks[b]
        for name in ('norm1', 'norm2'):
            if not getattr(blk, name).weight.detach().abs().max() > 0:
                raise ValueError(
                    f'trunk block layers.{stage}.blocks.{b}.{name} has an all-zero weight '
                    f'(weights from {source or "random init"}): the task-scaled norm around it '
                    'would pass no signal and its task-adapted attention would never learn. '
                    'This is an untrained timm Swin-V2 (timm zero-inits its res-post norms); '
                    'point model.encoder.pretrained at a trained checkpoint, or set it to None '
                    'for a random trunk with trained-like norms.')


def _drop_legacy_affinity(module, state_dict, prefix, *args) -> None:
    """load_state_dict pre-hook: checkpoints written before the encoder read W by reference
    hold ``<prefix>affinity``, a legacy copy of TROA's W (which lives in the model's
    ``weighting.affinity``); drop it so that strict loading still works."""
    state_dict.pop(prefix + 'affinity', None)


@MODELS.register_module()
class AdaptedSwinV2Encoder(BaseSwinV2Encoder):
    """Frozen Swin-V2 trunk (run once) + task-conditioned adapter blocks (run per task).

    ``forward(img, task_names=None, affinity=None)``: ``affinity`` is the (T, T) task-mixing
    matrix W over all of the encoder's tasks (``self.task_names``, in that order; row t mixes
    the embeddings for task t), whichever tasks the call runs. It is read at every call (the
    encoder keeps no copy) and gets no gradient. None is the identity: every task its own
    embedding.

    Args:
        model_name, pretrained, img_size, model_kwargs: as ``SwinV2Encoder``.
        task_names: the model's tasks, in order (filled in by ``MultiTaskModel``).
        adapter_blocks: ``{stage: 'all' | block indices}`` (0-based stages, negative indices ok).
        embed_dim: size d of the task embeddings theta_j.
        reduction: adapter bottleneck width r = C // reduction.
        shared_attn_bias: one TAA matrix for all heads of a block.
        train_adapted_blocks: also train the pretrained weights of the adapter blocks.
        frozen: must be True: the trunk is frozen and always runs under no_grad.
        attn_impl: the adapter blocks' window attention: ``'explicit'`` (timm's operations, bit
            for bit) or ``'sdpa'`` (PyTorch's fused attention, one additive mask; see
            ``adapters/timm_swinv2.py``). The frozen trunk runs timm's own blocks either way.
    """

    needs_task_names = True

    #: the method's name in the parameter report
    method_name = 'adapters'

    def __init__(self, task_names: Sequence[str], model_name: str = 'swinv2_tiny_window8_256',
                 pretrained: Optional[str] = None, img_size: Sequence[int] = (256, 256),
                 model_kwargs: Optional[dict] = None,
                 adapter_blocks: Optional[Dict] = None, embed_dim: int = 64,
                 reduction: int = 4, shared_attn_bias: bool = False,
                 train_adapted_blocks: bool = False, frozen: bool = True,
                 attn_impl: str = 'explicit', init_cfg=None):
        if not frozen:
            raise NotImplementedError('AdaptedSwinV2Encoder keeps the trunk frozen; use '
                                      'train_adapted_blocks=True to tune the adapted blocks')
        check_attn_impl(attn_impl, 'model.encoder.attn_impl')
        task_names = list(task_names)
        if not task_names:
            raise ValueError('AdaptedSwinV2Encoder needs task_names (MultiTaskModel fills them)')
        super().__init__(model_name, pretrained, img_size, model_kwargs, frozen, init_cfg)
        self.task_names: List[str] = task_names
        self.train_adapted_blocks = train_adapted_blocks
        layers = self.swin.layers
        depths = [len(stage.blocks) for stage in layers]
        self.adapter_positions = resolve_adapter_blocks(
            adapter_blocks if adapter_blocks is not None else DEFAULT_ADAPTER_BLOCKS, depths)
        self.first_adapter = self.adapter_positions[0]
        # task embeddings theta (T, d); W comes with every call
        self.task_embeddings = nn.Parameter(torch.randn(len(task_names), embed_dim) * 0.02)
        check_norms_alive(self.swin, self.adapter_positions, pretrained)
        # inject adapter blocks in place of the chosen timm blocks (LoRA-style, by name)
        for stage, b in self.adapter_positions:
            blocks = layers[stage].blocks
            blocks[b] = AdapterBlock(blocks[b], embed_dim, reduction, shared_attn_bias,
                                     attn_impl=attn_impl)
        # skip projections across patch merging inside the branch: key = stage entering
        self.skip_merges = nn.ModuleDict()
        prev = None
        for stage, b in self.adapter_positions:
            blk = layers[stage].blocks[b]
            if prev is not None and prev[0] != stage:
                if stage != prev[0] + 1:
                    raise ValueError('adapter_blocks: adapted stages must be consecutive')
                prev_dim = layers[prev[0]].blocks[prev[1]].bottleneck_dim
                self.skip_merges[str(stage)] = SkipMerge(prev_dim, blk.bottleneck_dim)
            prev = (stage, b)
        for _, module in self.adapter_named_modules():
            module.requires_grad_(True)
        if train_adapted_blocks:
            for stage, b in self.adapter_positions:
                for m in layers[stage].blocks[b].pretrained_modules():
                    m.requires_grad_(True)
        self.train(self.training)
        # old checkpoints: drop the legacy copy of TROA's W (it lives in weighting.affinity)
        self.register_load_state_dict_pre_hook(_drop_legacy_affinity)
        #: (T*B, H, W, C) tensor that entered the first adapter block in the last ``adapt``
        self.branch_input: Optional[Tensor] = None

    # -------------------------------------------------------------- bookkeeping
    def train(self, mode: bool = True):
        """Pretrained parts stay in eval mode (no drop-path); adapters follow ``mode``."""
        super().train(mode)
        for _, module in self.adapter_named_modules():
            module.train(mode)
        return self

    def adapter_named_modules(self) -> List[Tuple[str, nn.Module]]:
        """(name, module) of every module the adapters add (not the task embeddings)."""
        out = [(f'skip_merges.{k}', m) for k, m in self.skip_merges.items()]
        for stage, b in self.adapter_positions:
            blk = self.swin.layers[stage].blocks[b]
            out += [(f'swin.layers.{stage}.blocks.{b}.{n}', getattr(blk, n))
                    for n in ADAPTER_MODULE_NAMES]
        return out

    def adapter_named_parameters(self) -> List[Tuple[str, nn.Parameter]]:
        """(name, parameter) of everything the adapter method adds (shared by all tasks)."""
        out = [('task_embeddings', self.task_embeddings)]
        for prefix, module in self.adapter_named_modules():
            out += [(f'{prefix}.{n}', p) for n, p in module.named_parameters()]
        return out

    def conditioning(self, task_names: Sequence[str],
                     affinity: Optional[Tensor] = None) -> Tensor:
        """theta_hat for the given tasks, (T_sel, d): row t is sum_j W[t, j] theta_j.

        ``affinity``: W, (T, T) over all of the encoder's ``task_names`` in their order, used
        detached (no gradient reaches it); None is the identity (theta_t itself).
        """
        try:
            idx = [self.task_names.index(t) for t in task_names]
        except ValueError as err:
            raise KeyError(f'unknown task in {list(task_names)}; encoder tasks are '
                           f'{self.task_names}') from err
        if affinity is None:
            return self.task_embeddings[idx]
        num_tasks = len(self.task_names)
        weights = torch.as_tensor(affinity).detach()
        if weights.shape != (num_tasks, num_tasks):
            raise ValueError(f'affinity must be ({num_tasks}, {num_tasks}) over the encoder\'s '
                             f'tasks {self.task_names}, got {tuple(weights.shape)}')
        weights = weights.to(device=self.task_embeddings.device, dtype=self.task_embeddings.dtype)
        return weights[idx] @ self.task_embeddings

    # ------------------------------------------------------------------ forward
    def _pad(self, img: Tensor) -> Tensor:
        """Zero-pad (bottom/right) to a multiple of ``size_divisor``."""
        h, w = img.shape[-2:]
        d = self.size_divisor
        return F.pad(img, (0, (d - w % d) % d, 0, (d - h % d) % d))

    def trunk(self, img: Tensor) -> TrunkOutput:
        """Frozen part, once per image under no_grad: (B, 3, H, W) -> ``TrunkOutput``."""
        return run_frozen_trunk(self.swin, self._pad(img), self.first_adapter)

    def adapt(self, trunk_out: TrunkOutput, task_names: Sequence[str],
              return_branch_input: bool = False, affinity: Optional[Tensor] = None):
        """Task branch, all tasks batched as (T*B): -> ``{task: [4 NCHW features]}``.

        ``affinity``: the task-mixing matrix W (see ``conditioning``; None: identity). With
        ``return_branch_input`` also returns the (T*B, H, W, C) leaf tensor entering the first
        adapter block (requires grad): chunk t of its gradient is task t's gradient.
        """
        task_names = list(task_names)
        num_tasks = len(task_names)
        cond = self.conditioning(task_names, affinity)                   # (T, d)
        x = trunk_out.x.repeat(num_tasks, 1, 1, 1)                       # (T*B, H, W, C)
        if return_branch_input:
            x = x.detach().requires_grad_(True)
        self.branch_input = x
        branch_input = x
        stage0, block0 = self.first_adapter
        skip = None
        task_feats = []
        for i in range(stage0, len(self.swin.layers)):
            stage = self.swin.layers[i]
            if i > stage0:
                x = stage.downsample(x)                                  # (T*B, H/2, W/2, 2C)
                if skip is not None:
                    skip = self.skip_merges[str(i)](skip) if str(i) in self.skip_merges \
                        else None
            for blk in stage.blocks[block0 if i == stage0 else 0:]:
                if isinstance(getattr(blk, 'module', blk), AdapterBlock):   # FSDP unit too
                    x, skip = blk(x, cond, skip)
                else:
                    x = blk(x)
            task_feats.append(x.permute(0, 3, 1, 2))                     # (T*B, C_i, h, w)
        out = split_task_features(task_feats, task_names, trunk_out.shared_feats)
        if return_branch_input:
            return out, branch_input
        return out

    def forward(self, img: Tensor, task_names: Optional[Sequence[str]] = None,
                affinity: Optional[Tensor] = None) -> Dict[str, List[Tensor]]:
        """(B, 3, H, W) -> ``{task: [4 NCHW stage features]}`` (trunk once, branch per task);
        ``task_names`` default to all of the encoder's, ``affinity`` as in ``conditioning``."""
        return self.adapt(self.trunk(img), task_names or self.task_names, affinity=affinity)
