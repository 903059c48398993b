"""Task-weighting methods: small classes over per-task losses / gradient matrices."""
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
