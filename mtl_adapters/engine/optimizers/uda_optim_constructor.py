"""Two optimisers for adversarial UDA: one for the model, one for its discriminators.

mmengine builds an ``OptimWrapperDict`` (one wrapper per name; the Runner then steps, saves and
resumes each, and param schedulers apply per wrapper) only through a constructor of the
project's own. This one builds

* ``model``: every parameter of the model *except* the discriminators, with the constructor
  named in that part (``FrozenTrunkOptimWrapperConstructor`` by default: the frozen trunk is
  skipped, ``paramwise_cfg`` keys match the model's own parameter names);
* ``discriminator``: the parameters of ``model.discriminators``
  (``DefaultOptimWrapperConstructor`` by default).

A model without discriminators (mean teacher only) gets the ``model`` wrapper alone, and a
``discriminator`` part in the config is then left unused (one schedule base serves both
strategies). Keys next to the parts are given to every part: ``tools/train.py --amp`` sets
``type`` and ``dtype`` there, so both optimisers run mixed precision.

    optim_wrapper = dict(
        constructor='UDAOptimWrapperConstructor',
        model=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
                   paramwise_cfg=dict(custom_keys={...})),
        discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4,
                                                                 betas=(0.9, 0.99))))
"""
from contextlib import contextmanager

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

from mtl_adapters.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: the parts and the constructor each gets when its config names none
PART_CONSTRUCTORS = dict(model='FrozenTrunkOptimWrapperConstructor',
                         discriminator='DefaultOptimWrapperConstructor')


@contextmanager
def without_child(module: nn.Module, name: str):
    """``module`` with its child ``name`` taken out for the duration (names of the other
    parameters unchanged), put back afterwards."""
    child = module._modules.pop(name, None)
    try:
        yield module
    finally:
        if child is not None:
            module._modules[name] = child


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class UDAOptimWrapperConstructor:
    """``dict(constructor='UDAOptimWrapperConstructor', model=..., discriminator=...)`` ->
    ``OptimWrapperDict(model=..., discriminator=...)`` (see the module docstring).

    Args:
        optim_wrapper_cfg: ``dict(model=<optim wrapper config>, discriminator=<...>)``; each part
            may name its own ``constructor`` and ``paramwise_cfg``; other keys go to every
            part.
        paramwise_cfg: must be None (give it inside a part).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        if paramwise_cfg is not None:
            raise ValueError('optim_wrapper.paramwise_cfg: with UDAOptimWrapperConstructor put '
                             'it inside optim_wrapper.model (or .discriminator)')
        cfg = dict(optim_wrapper_cfg)
        if not isinstance(cfg.get('model'), dict):
            raise KeyError(f'optim_wrapper: UDAOptimWrapperConstructor needs the parts '
                           f'{list(PART_CONSTRUCTORS)} as dicts (model required); got '
                           f'{sorted(cfg)}')
        shared = {k: v for k, v in cfg.items() if k not in PART_CONSTRUCTORS}
        self.parts = {name: dict(cfg[name], **shared) for name in PART_CONSTRUCTORS
                      if name in cfg}

    def build_part(self, module: nn.Module, name: str):
        """One part's optimiser wrapper over ``module``."""
        part = dict(self.parts[name])
        part.setdefault('constructor', PART_CONSTRUCTORS[name])
        return build_optim_wrapper(module, part)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = model.module if hasattr(model, 'module') else model      # DDP wrappers
        discriminators = getattr(model, 'discriminators', None)
        wrappers = {}
        with without_child(model, 'discriminators'):
            wrappers['model'] = self.build_part(model, 'model')
        if discriminators is not None:
            if 'discriminator' not in self.parts:
                raise KeyError('the model has discriminators (model.uda_cfg.adversarial) but '
                               'optim_wrapper has no `discriminator` part: add '
                               "discriminator=dict(type='OptimWrapper', optimizer=dict(...))")
            wrappers['discriminator'] = self.build_part(discriminators, 'discriminator')
        elif 'discriminator' in self.parts:
            print_log('optim_wrapper.discriminator is unused: the model has no discriminators',
                      logger='current')
        return OptimWrapperDict(**wrappers)
