"""Optimizer wrapper constructors."""
from .frozen_trunk_optim_constructor import (FrozenTrunkOptimWrapperConstructor,
                                             merge_param_groups)
from .uda_optim_constructor import UDAOptimWrapperConstructor

__all__ = ['FrozenTrunkOptimWrapperConstructor', 'merge_param_groups',
           'UDAOptimWrapperConstructor']
