"""Confidence-filtered pseudo-labels from the mean teacher on unlabelled target images.

:func:`make_pseudo_labels` turns the teacher's outputs on a batch of (preprocessed) target
images into ground-truth-like tensors, one per task, in that task's ground-truth units and
shape ``(B, task.gt_channels, H, W)``. Pixels the teacher is not confident about hold the task's
``ignore_value``, so ``task.valid_mask(gt)`` drops them and the student's ordinary loss
``losses[name](out, gt, task.valid_mask(gt))`` trains on the rest unchanged.

What "confident" means, per kind of task (``task.likelihood``):

* **classification** (segmentation): the teacher's softmax probability of its arg-max class on
  the image is at least ``threshold`` (default 0.9), the usual pixel-wise confidence filter of
  self-training for segmentation. The label is that arg-max class.
* **regression** (depth, normals, edges): a regression head has no calibrated confidence (a
  variance head would change the model), so we measure the teacher's **self-consistency**:
  it also predicts the horizontally flipped image, that prediction is flipped back (pixels
  mirrored, then the task's own :meth:`~mtl_adapters.tasks.BaseTask.hflip_values`, which for
  normals negates the x component), and a pixel is trusted where the two predictions agree
  within a per-task tolerance in the task's units. We chose the flip as the default because it
  is exact and lossless (no resampling), leaves every task's labels known (unchanged, or with a
  sign the task itself defines, so a new task needs no code here), and assumes nothing about the
  target domain's colours: whatever the two views disagree on comes from the teacher's
  uncertainty, not from the perturbation. A colour perturbation (``mode='colour'``: contrast and
  brightness changed about each image's mean, deterministic, so every DDP rank computes the same
  labels) is available, alone or combined with the flip (``mode=('flip', 'colour')``: all views
  must agree). ``mode='none'`` keeps every pixel the task itself would accept. Independently, a
  fixed trust region ``value_range=(lo, hi)`` keeps only predictions inside that range (e.g.
  depth inside the metric range).
  Agreement measures (``measure``, with ``tolerance`` in the task's units):
  ``'relative'`` ``max(a/b, b/a) - 1 <= tolerance`` (depth: its errors grow with distance, the
  same ratio as the delta < 1.25 metrics; default 0.1), ``'angle'`` between the two unit vectors
  in degrees (normals, as their metrics; default 11.25), ``'absolute'`` ``|a - b|`` (edges: a
  bounded Sobel magnitude with full-contrast steps near 0.18; default 0.02). Multi-channel maps
  must agree in every channel.
  The pseudo-label value is the teacher's prediction on the **unperturbed** image; the other
  views only decide trust (averaging values is task-specific, e.g. normals would need
  re-normalising, and trusted pixels agree within the tolerance anyway).

Every pixel the task's own ``valid_mask`` would reject (depth <= 0, a zero normal, a negative
edge, a non-finite value) and, with ``image_sizes``, every pixel of the batch padding is also
ignored. All views run through the teacher in one batched ``forward_tasks`` call (the frozen trunk
runs once per call, on ``(1 + views) * B`` images), under ``torch.no_grad`` and in eval mode.

Configuration (``cfg``; :func:`resolve_pseudo_label_cfg` checks it and fills in defaults):
``classification=dict(threshold=...)`` and ``regression=dict(mode=..., ...)`` apply to every
task of that kind, a task name (``depth=dict(tolerance=0.05)``) overrides for one task. A
regression task without built-in defaults (:data:`AGREEMENT_DEFAULTS`, or a
``pseudo_label_agreement`` dict attribute on the task class) must be given ``measure`` and
``tolerance``.
"""
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: defaults per kind of task (``task.likelihood``)
KIND_DEFAULTS = {
    'classification': dict(threshold=0.9),
    'regression': dict(mode='flip', value_range=None, contrast=0.8, brightness=0.2),
}
#: agreement measure and tolerance (in the task's units) of the built-in regression tasks
AGREEMENT_DEFAULTS = {
    'depth': dict(measure='relative', tolerance=0.1),
    'normal': dict(measure='angle', tolerance=11.25),
    'edge': dict(measure='absolute', tolerance=0.02),
}
#: options each kind accepts
KIND_KEYS = {
    'classification': ('threshold',),
    'regression': ('mode', 'measure', 'tolerance', 'value_range', 'contrast', 'brightness'),
}
VIEWS = ('flip', 'colour')
MEASURES = ('relative', 'angle', 'absolute')


def _options(key: str, value, kind: str, cfg_name: str) -> dict:
    """One entry of the config, with unknown options refused by name."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f'{cfg_name}.{key} must be a dict of options, got {value!r}')
    unknown = sorted(set(value) - set(KIND_KEYS[kind]))
    if unknown:
        raise KeyError(f'{cfg_name}.{key}: unknown option(s) {unknown} for a {kind} task; '
                       f'known: {list(KIND_KEYS[kind])}')
    return dict(value)


def _check(name: str, kind: str, opts: dict, cfg_name: str) -> dict:
    """Validate and normalise one task's resolved options."""
    where = f'{cfg_name}.{name}'
    if kind == 'classification':
        if not 0.0 <= float(opts['threshold']) <= 1.0:
            raise ValueError(f'{where}.threshold must be a probability in [0, 1], got '
                             f"{opts['threshold']!r}")
        return dict(threshold=float(opts['threshold']))
    mode = opts['mode']
    modes = () if mode in (None, 'none') else (mode,) if isinstance(mode, str) else tuple(mode)
    bad = [m for m in modes if m not in VIEWS]
    if bad:
        raise ValueError(f"{where}.mode: {bad} unknown; use 'flip', 'colour', a list of them "
                         "or 'none'")
    opts = dict(opts, mode=modes)
    if modes:
        if 'measure' not in opts or 'tolerance' not in opts:
            raise KeyError(f'{where}: task {name!r} has no default agreement measure; set '
                           f"{cfg_name}.{name}=dict(measure='relative'|'angle'|'absolute', "
                           "tolerance=...) in the task's units, or mode='none'")
        if opts['measure'] not in MEASURES:
            raise ValueError(f'{where}.measure must be one of {MEASURES}, got '
                             f"{opts['measure']!r}")
        if not float(opts['tolerance']) > 0:
            raise ValueError(f"{where}.tolerance must be > 0, got {opts['tolerance']!r}")
    if opts['value_range'] is not None:
        lo, hi = opts['value_range']
        if not lo < hi:
            raise ValueError(f'{where}.value_range must be (lo, hi) with lo < hi, got '
                             f"{opts['value_range']!r}")
    return opts


def resolve_pseudo_label_cfg(tasks: Mapping, cfg: Optional[Mapping] = None,
                             cfg_name: str = 'pseudo_label_cfg') -> Dict[str, dict]:
    """``{task: options}`` for every task in ``tasks`` ({name: task}): the kind's defaults, the
    task's agreement defaults, then ``cfg[kind]``, then ``cfg[task name]``. Unknown keys and
    options raise an error naming them (call it when the model is built to fail early)."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(KIND_KEYS) - set(tasks))
    if unknown:
        raise KeyError(f'{cfg_name}: unknown key(s) {unknown}; use {list(KIND_KEYS)} (options '
                       f'for every task of that kind) or a task name {list(tasks)}')
    resolved = {}
    for name, task in tasks.items():
        kind = 'classification' if task.likelihood == 'classification' else 'regression'
        opts = dict(KIND_DEFAULTS[kind])
        if kind == 'regression':
            opts.update(getattr(task, 'pseudo_label_agreement', None)
                        or AGREEMENT_DEFAULTS.get(task.name, {}))
        opts.update(_options(kind, cfg.get(kind), kind, cfg_name))
        opts.update(_options(name, cfg.get(name), kind, cfg_name))
        resolved[name] = _check(name, kind, opts, cfg_name)
    return resolved


def hflip_prediction(task, pred: Tensor) -> Tensor:
    """Mirror a (B, C, H, W) map in ground-truth units and fix its values as the task's
    ``hflip_values`` does (normals: x component negated). A task whose fix is a per-channel
    factor (all built-in ones) is handled on the device; any other goes through numpy."""
    flipped = pred.flip(-1)
    channels = pred.shape[1]
    probe = np.arange(1.0, channels + 1.0).reshape(1, 1, channels)        # HxWxC
    scale = np.asarray(task.hflip_values(probe.copy()), np.float64) / probe
    other = np.linspace(-2.0, 3.0, 2 * channels).reshape(1, 2, channels)
    if scale.shape == probe.shape and np.allclose(task.hflip_values(other.copy()),
                                                  other * scale):
        if np.all(scale == 1):
            return flipped
        return flipped * flipped.new_tensor(scale.reshape(1, channels, 1, 1))
    values = task.hflip_values(flipped.permute(0, 2, 3, 1).cpu().numpy())   # (B, H, W, C)
    return torch.as_tensor(np.ascontiguousarray(values)).permute(0, 3, 1, 2).to(pred)


def agreement(a: Tensor, b: Tensor, measure: str, tolerance: float) -> Tensor:
    """(B, 1, H, W) bool: where two (B, C, H, W) predictions agree within ``tolerance``."""
    if measure == 'relative':
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        ok = (lo > 0) & (hi <= lo * (1.0 + tolerance))
        return ok.all(dim=1, keepdim=True)
    if measure == 'angle':
        na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
        cos = (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1, keepdim=True)
        return (na > 1e-6) & (nb > 1e-6) & (cos >= math.cos(math.radians(tolerance)))
    if measure == 'absolute':
        return ((a - b).abs() <= tolerance).all(dim=1, keepdim=True)
    raise ValueError(f'unknown agreement measure {measure!r}; use one of {MEASURES}')


def colour_view(inputs: Tensor, contrast: float, brightness: float) -> Tensor:
    """A deterministic colour perturbation of preprocessed images: contrast scaled about each
    image's per-channel mean, then a brightness shift (both in the normalised units)."""
    mean = inputs.mean(dim=(-2, -1), keepdim=True)
    return mean + (inputs - mean) * contrast + brightness


def _view_keys(opts: dict) -> list:
    """The perturbed views one task's options ask for, as keys shared between tasks."""
    return [('flip',) if mode == 'flip' else ('colour', opts['contrast'], opts['brightness'])
            for mode in opts.get('mode', ())]


class _EvalMode:
    """Put a module in eval mode and restore every submodule's own flag afterwards."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.flags = [(m, m.training) for m in self.module.modules()]
        self.module.eval()

    def __exit__(self, *exc):
        for m, flag in self.flags:
            m.training = flag


def make_pseudo_labels(teacher, inputs: Tensor, task_names: Sequence[str],
                       cfg: Optional[Mapping] = None,
                       image_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                       cfg_name: str = 'pseudo_label_cfg') -> Dict[str, Tensor]:
    """Teacher outputs on target images -> ``{task: (B, gt_channels, H, W)}`` pseudo ground
    truth, untrusted pixels at ``task.ignore_value`` (rules in the module docstring).

    Args:
        teacher: a ``MultiTaskModel``-like module (``.tasks``, ``.forward_tasks``).
        inputs: preprocessed target images (B, 3, H, W).
        task_names: the tasks to label.
        cfg: confidence options (:func:`resolve_pseudo_label_cfg`).
        image_sizes: each image's unpadded (h, w); pixels beyond it are ignored.
        cfg_name: the config key named in errors.
    """
    task_names = list(task_names)
    missing = [n for n in task_names if n not in teacher.tasks]
    if missing:
        raise KeyError(f'make_pseudo_labels: the teacher has no task(s) {missing}; it has '
                       f'{list(teacher.tasks)}')
    options = resolve_pseudo_label_cfg(teacher.tasks, cfg, cfg_name)
    batch = inputs.shape[0]
    views: Dict[tuple, Tensor] = {('image',): inputs}
    for name in task_names:
        for key in _view_keys(options[name]):
            if key not in views:
                views[key] = inputs.flip(-1) if key[0] == 'flip' else colour_view(inputs, *key[1:])
    keys = list(views)
    with torch.no_grad(), _EvalMode(teacher):
        outputs = teacher.forward_tasks(torch.cat([views[k] for k in keys]), task_names)
        raw = {name: dict(zip(keys, out.split(batch))) for name, out in outputs.items()}
        padding = None
        if image_sizes is not None:
            padding = torch.ones((batch, 1) + tuple(inputs.shape[-2:]), dtype=torch.bool,
                                 device=inputs.device)
            for i, (h, w) in enumerate(image_sizes):
                padding[i, :, :h, :w] = False
        labels = {}
        for name in task_names:
            task, opts, out = teacher.tasks[name], options[name], raw[name]
            if 'threshold' in opts:                                        # classification
                conf, label = out[('image',)].float().softmax(dim=1).max(dim=1, keepdim=True)
                trusted = conf >= opts['threshold']
                value = label.long()                                       # (B, 1, H, W)
            else:
                value = task.postprocess(out[('image',)]).float()         # (B, C, H, W)
                trusted = task.valid_mask(value) & torch.isfinite(value).all(1, keepdim=True)
                for key in _view_keys(opts):
                    other = task.postprocess(out[key]).float()
                    if key[0] == 'flip':
                        other = hflip_prediction(task, other)
                    trusted &= agreement(value, other, opts['measure'],
                                         float(opts['tolerance']))
                if opts['value_range'] is not None:
                    lo, hi = opts['value_range']
                    trusted &= ((value >= lo) & (value <= hi)).all(1, keepdim=True)
            if padding is not None:
                trusted &= ~padding
            labels[name] = value.masked_fill(~trusted, task.ignore_value)
    return labels
