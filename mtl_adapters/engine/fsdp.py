"""FSDP for the multi-task models (``configs/_base_/fsdp.py``): the auto-wrap policy,
mmengine's FSDP strategy with resume fixed for current torch, and the checks ``tools/train.py``
runs before building anything (``is_fsdp``, ``check_fsdp``).

An FSDP unit gathers its parameters only when its own ``forward`` runs. Our encoders run the
Swin trunk piece by piece (``stage.downsample(x)``, ``stage.blocks[:k]``) and the decoders run
their timm blocks through ``block_forward`` (fused attention), so a unit must be a module that
is always *called*: a trunk block, an adapter block, a decoder stage. torch's size-based policy does
not know this and may make a container (the Swin trunk, a stage) a unit whose children are then
called with their parameters still sharded ("mat2 must be a matrix, got 1-D tensor"). This
policy wraps the outermost modules of the named classes, never a module inside one (a decoder
stage's timm blocks are not called through their own forward); everything else (patch
embedding, patch merging, skip projections, heads, task embeddings) stays in the root unit.
"""
import inspect
import weakref
from typing import Sequence

import torch.nn as nn
from mmengine._strategy import FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

#: encoder trunk blocks (timm), adapter blocks (with the trunk parts they adopt) and decoder
#: stages: each is called as a whole
DEFAULT_UNITS = ('SwinTransformerV2Block', 'AdapterBlock', 'DecoderStage')

#: modules inside a unit being wrapped: FSDP's recursion visits a unit's children before it
#: wraps the unit, and the callable-policy interface gives no parent, so the unit marks them
_INSIDE_UNIT: 'weakref.WeakSet[nn.Module]' = weakref.WeakSet()


def block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                      module_names: Sequence[str] = DEFAULT_UNITS) -> bool:
    """``auto_wrap_policy`` for FSDP: a module whose class name is in ``module_names`` is one
    unit with all its submodules, unless it lies inside such a unit. FSDP asks with
    ``recurse=True`` whether to descend into a module, then (after its children) with
    ``recurse=False`` whether to wrap it."""
    if module in _INSIDE_UNIT:
        return False                                  # part of an enclosing unit
    is_unit = type(module).__name__ in module_names
    if recurse:
        if is_unit:
            _INSIDE_UNIT.update(m for m in module.modules() if m is not module)
        return True
    return is_unit


class MultiTaskFSDPStrategy(FSDPStrategy):
    """mmengine's ``FSDPStrategy`` with resume fixed for torch >= 2.1: mmengine 0.10 calls
    ``FSDP.optim_state_dict_to_load(state_dict, model, optimizer)``, the argument order of
    torch 2.0; torch 2.1 made it ``(model, optim, optim_state_dict)``, so ``--resume`` failed
    ("unhashable type: 'dict'"). Named by its import path in configs/_base_/fsdp.py."""

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Optimizer state saved by :meth:`optim_state_dict` -> this rank's sharded state."""
        optim_state_dict = FSDP.optim_state_dict_to_load(
            self.model, self.optim_wrapper.optimizer, state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)


def is_fsdp(cfg) -> bool:
    """Whether the config trains with mmengine's ``FSDPStrategy`` or a subclass
    (configs/_base_/fsdp.py)."""
    from mmengine.registry import STRATEGIES
    kind = (cfg.get('strategy') or {}).get('type')
    if isinstance(kind, str):
        kind = STRATEGIES.get(kind)
    return isinstance(kind, type) and issubclass(kind, FSDPStrategy)


def check_fsdp(cfg) -> None:
    """Refuse, before anything is built, what FSDP cannot run.

    FSDP needs one process per device (``--launcher pytorch``). Weighting methods that take
    per-task gradients on the shared parameters (``requires_grads``: PCGrad, GradNorm; TROA with
    ``gradient_mode='params'``) cannot: under FSDP those parameters are views into sharded flat
    parameters, swapped for plain tensors inside the forward, so ``model.shared_parameters()``
    would find none and the method would silently act as uniform weighting. TROA's
    ``'representation'`` mode takes its gradients on an activation and works.
    """
    if not is_fsdp(cfg):
        return
    if cfg.launcher == 'none':
        raise ValueError(f'{cfg.filename}: FSDP (configs/_base_/fsdp.py) shards '
                         'the model across processes; start it with torchrun --nproc_per_node N '
                         'tools/train.py CONFIG --launcher pytorch')
    from mtl_adapters.registry import WEIGHTINGS
    weighting = dict(cfg.model.get('weighting') or dict(type='UniformWeighting'))
    kind = weighting['type']
    cls = WEIGHTINGS.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        return                          # an unknown name: the model's build reports it
    name = getattr(cls, '__name__', kind)
    default_mode = inspect.signature(cls).parameters.get('gradient_mode')
    mode = weighting.get('gradient_mode', getattr(default_mode, 'default', None))
    if getattr(cls, 'requires_grads', False) or mode == 'params':
        raise ValueError(
            f'{cfg.filename}: model.weighting.type={name!r} needs the full shared parameters '
            '(per-task gradients on model.shared_parameters()), which FSDP shards; use DDP '
            "(drop configs/_base_/fsdp.py) or uniform/uncertainty weighting, or TROA with "
            "model.weighting.gradient_mode='representation', with FSDP")
