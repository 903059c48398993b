"""Optimizer wrapper constructors and wrappers."""
from .bf16_optim_wrapper import BF16OptimWrapper
from .frozen_trunk_optim_constructor import (FrozenTrunkOptimWrapperConstructor,
                                             merge_param_groups)
from .uda_optim_constructor import UDAOptimWrapperConstructor

__all__ = ['BF16OptimWrapper', 'FrozenTrunkOptimWrapperConstructor', 'merge_param_groups',
           'UDAOptimWrapperConstructor']
