"""What a checkpoint is checked against before the Runner loads or resumes it.

Called by :class:`~mtl_adapters.engine.hooks.SafeCheckpointHook` (``after_load_checkpoint``,
before any weight or optimiser state is copied):

* ``load_from`` is strict: every model tensor must be in the checkpoint with its shape and the
  checkpoint may hold nothing else; ``load_from_partial = True`` (``--load-partial``) loads what
  matches and logs what was skipped and what stays as initialised.
* ``--resume`` needs the checkpoint of the same model *and* optimiser: a difference is an error
  naming the tensors, the optimiser groups and the lines of the ``model`` config that differ
  (instead of a traceback deep in the optimiser).
* a resume on another dataset warns, naming the metainfo keys that differ (mmengine's own
  warning, which fired on every resume, is silenced when nothing differs).
* ``resume_lr_from_config = True`` (``--resume-lr``): the restored optimiser and schedulers take
  their learning rates from the config instead of the checkpoint.
"""
import ast
import copy
import difflib
import re
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from mmengine.optim import OptimWrapperDict

from mtl_adapters.utils.checkpoint import plain_dataset_meta

#: how mmengine's Runner renames checkpoint keys before loading (``revise_keys``)
_REVISE = re.compile(r'^module\.')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model or optimiser the config builds."""


def revised_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The checkpoint's state dict with the keys the Runner will load (``module.`` dropped)."""
    state = checkpoint.get('state_dict', checkpoint)
    return {_REVISE.sub('', k): v for k, v in state.items()}


def group_keys(keys: Iterable[str], limit: int = 8) -> str:
    """``decoders.normal (12 tensors), weighting.affinity`` : keys grouped by their first two
    components (a task's decoder, the encoder's stage), at most ``limit`` groups."""
    groups: Dict[str, int] = defaultdict(int)
    for key in keys:
        groups['.'.join(key.split('.')[:2])] += 1
    parts = [g if n == 1 else f'{g} ({n} tensors)' for g, n in sorted(groups.items())]
    return ', '.join(parts[:limit]) + (f', ... ({len(parts)} groups)' if len(parts) > limit
                                       else '')


def shape_mismatches(model: torch.nn.Module, state: Dict[str, torch.Tensor]) -> List[str]:
    """``key: checkpoint (a, b) vs model (c, d)`` for every tensor both hold with other shapes
    (a class count, a channel width, a task count)."""
    own = model.state_dict()
    return [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in state.items()
            if k in own and torch.is_tensor(v) and tuple(v.shape) != tuple(own[k].shape)]


def key_differences(missing: Iterable[str], unexpected: Iterable[str]) -> List[str]:
    """Missing/unexpected keys as readable lines (BatchNorm's ``num_batches_tracked`` aside)."""
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    out = []
    if missing:
        out.append(f'in the model, not in the checkpoint: {group_keys(missing)}')
    if unexpected:
        out.append(f'in the checkpoint, not in the model: {group_keys(unexpected)}')
    return out


def _wrappers(optim_wrapper, saved: dict) -> List[Tuple[str, object, Optional[dict]]]:
    """``[(name, wrapper, its saved state)]``: one entry per optimiser."""
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [(name, w, saved.get(name)) for name, w in optim_wrapper.items()]
    return [('', optim_wrapper, saved)]


def optimizer_differences(optim_wrapper, saved: dict) -> List[str]:
    """How the saved optimiser state differs from the optimiser the config built: missing
    optimisers, the number of parameter groups, the parameters in each group."""
    out = []
    if isinstance(optim_wrapper, OptimWrapperDict):
        extra = sorted(set(saved) - set(optim_wrapper.optim_wrappers))
        if extra:
            out.append(f'optimisers in the checkpoint, not in the config: {extra}')
    for name, wrapper, state in _wrappers(optim_wrapper, saved):
        label = f'optimiser {name!r}' if name else 'optimiser'
        if state is None or 'param_groups' not in state:
            out.append(f'{label}: not in the checkpoint')
            continue
        ours = [len(g['params']) for g in wrapper.optimizer.param_groups]
        theirs = [len(g['params']) for g in state['param_groups']]
        if ours != theirs:
            out.append(f'{label}: parameters per group: checkpoint {theirs} vs config {ours} '
                       '(other trainable parameters: model.train_tasks, frozen modules, '
                       'paramwise_cfg?)')
    return out


def _model_section(cfg_text: str) -> Optional[List[str]]:
    """The source lines of the top-level ``model = ...`` of a config's text (parsed with
    ``ast``: nothing in it runs)."""
    try:
        tree = ast.parse(cfg_text)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'model'
                                                for t in node.targets):
            segment = ast.get_source_segment(cfg_text, node) or ''
            return [line.strip() for line in segment.splitlines()]
    return None


def model_config_differences(saved_cfg: Optional[str], cfg_text: str, limit: int = 12) \
        -> List[str]:
    """Lines of the ``model`` config that differ between the checkpoint's run (its
    ``meta.cfg``) and this one, as ``- checkpoint`` / ``+ config``."""
    if not saved_cfg:
        return []
    theirs, ours = _model_section(saved_cfg), _model_section(cfg_text)
    if theirs is None or ours is None:
        return []
    diff = [line for line in difflib.ndiff(theirs, ours) if line[:2] in ('- ', '+ ')]
    return diff[:limit] + ([f'... ({len(diff) - limit} more lines)'] if len(diff) > limit
                           else [])


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def dataset_meta_differences(saved: Optional[dict], current: Optional[dict]) -> List[str]:
    """The metainfo keys (classes, palette, tasks, ...) whose values differ between the
    checkpoint's training dataset and this run's (its tasks compared by class name, as they
    are saved)."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return [] if saved == current else ['dataset_meta']
    current = plain_dataset_meta(copy.deepcopy(dict(current)))
    return sorted(k for k in set(saved) | set(current)
                  if k not in saved or k not in current or not _same(saved[k], current[k]))


def rescale_resumed_lr(optim_wrapper, checkpoint: dict) -> List[str]:
    """Make the config's learning rates win over the checkpoint's (in the checkpoint, before
    the Runner restores it): per parameter group, factor = the config's base lr (the built
    optimiser's ``initial_lr``, or ``lr`` without schedulers) / the checkpoint's; the group's
    current lr is multiplied by it and its ``initial_lr`` set to the config's, and every lr
    value the lr schedulers saved (``base_values``, ``_last_value``, ``eta_min``) is scaled by
    the same factor. Returns one line per changed group."""
    saved_opt = checkpoint.get('optimizer') or {}
    schedulers = checkpoint.get('param_schedulers')
    lines = []
    for name, wrapper, state in _wrappers(optim_wrapper, saved_opt):
        if not state or 'param_groups' not in state:
            continue
        factors = []
        for i, (ours, theirs) in enumerate(zip(wrapper.optimizer.param_groups,
                                               state['param_groups'])):
            new = ours.get('initial_lr', ours['lr'])
            old = theirs.get('initial_lr', theirs['lr'])
            factor = new / old if old else 1.0
            factors.append(factor)
            theirs['lr'] *= factor
            if 'initial_lr' in theirs:
                theirs['initial_lr'] = new
            if factor != 1.0:
                lines.append(f'{name + " " if name else ""}group {i}: base lr {old:g} -> '
                             f'{new:g} (x{factor:g}), current lr now {theirs["lr"]:g}')
        own = schedulers.get(name, []) if isinstance(schedulers, dict) else (schedulers or [])
        for sched in own:
            if sched.get('param_name') != 'lr':
                continue
            for key in ('base_values', '_last_value'):
                if isinstance(sched.get(key), list):
                    sched[key] = [v * f for v, f in zip(sched[key], factors)]
            if isinstance(sched.get('eta_min'), (int, float)) and factors:
                sched['eta_min'] *= min(factors)
    return lines
