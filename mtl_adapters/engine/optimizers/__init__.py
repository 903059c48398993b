"""Optimizer wrapper constructors."""
from .frozen_trunk_optim_constructor import (FrozenTrunkOptimWrapperConstructor,
                                             merge_param_groups)

__all__ = ['FrozenTrunkOptimWrapperConstructor', 'merge_param_groups']
