"""Task-weighting methods: small classes over per-task losses / gradient matrices.

A new method is one file in this folder: every module here is imported below, so its
``@WEIGHTINGS.register_module()`` runs without a line anywhere else (``base.py`` says which
fixed points of the training step it may implement).
"""
import importlib
import pkgutil

from .base import BaseWeighting, WeightingResult
from .gradnorm import GradNormWeighting
from .pcgrad import PCGradWeighting
from .troa import (TROAWeighting, cosine_matrix, init_affinity, mirror_descent_update,
                   valid_gradients)
from .uncertainty import UncertaintyWeighting
from .uniform import UniformWeighting

__all__ = ['BaseWeighting', 'WeightingResult', 'UniformWeighting', 'UncertaintyWeighting',
           'GradNormWeighting', 'PCGradWeighting', 'TROAWeighting', 'cosine_matrix',
           'init_affinity', 'mirror_descent_update', 'valid_gradients']

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')
