"""Optimizer construction for a model whose trunk is frozen.

mmengine's default constructor with a ``paramwise_cfg`` walks every parameter and logs one
warning per frozen one (hundreds for a Swin trunk). This constructor gives the optimizer the
trainable parameters only, in two groups: with the configured weight decay, and without it for
parameters whose name contains one of ``no_decay_keys`` (task embeddings and the weighting
methods' own parameters, such as uncertainty log-variances or GradNorm weights: decay would
pull them towards 0 and bias the task weighting).
"""
from typing import Optional, Sequence

from mmengine.model import is_model_wrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS

from mtl_adapters.registry import OPTIM_WRAPPER_CONSTRUCTORS

DEFAULT_NO_DECAY_KEYS = ('task_embeddings', 'weighting.')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiTaskOptimWrapperConstructor:
    """Build ``optim_wrapper_cfg`` over the trainable parameters, without decay on
    ``paramwise_cfg['no_decay_keys']`` (default: task embeddings, weighting parameters)."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        if 'optimizer' not in self.optim_wrapper_cfg:
            raise KeyError('optim_wrapper needs an `optimizer`, e.g. '
                           "optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01)")
        self.optimizer_cfg = dict(self.optim_wrapper_cfg.pop('optimizer'))
        paramwise_cfg = dict(paramwise_cfg or {})
        self.no_decay_keys: Sequence[str] = tuple(
            paramwise_cfg.pop('no_decay_keys', DEFAULT_NO_DECAY_KEYS))
        if paramwise_cfg:
            raise KeyError(f'MultiTaskOptimWrapperConstructor: unknown paramwise_cfg keys '
                           f'{sorted(paramwise_cfg)}; it understands only no_decay_keys')

    def __call__(self, model):
        """The optimizer wrapper for ``model``'s trainable parameters."""
        model = model.module if is_model_wrapper(model) else model
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if param.requires_grad:
                (no_decay if any(k in name for k in self.no_decay_keys) else decay).append(param)
        groups = [dict(params=decay)]
        if no_decay:
            groups.append(dict(params=no_decay, weight_decay=0.0))
        optimizer = OPTIMIZERS.build(dict(self.optimizer_cfg, params=groups))
        return OPTIM_WRAPPERS.build(self.optim_wrapper_cfg,
                                    default_args=dict(optimizer=optimizer))
