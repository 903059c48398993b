"""Optimizer wrapper constructors."""
from .multitask_optim_constructor import MultiTaskOptimWrapperConstructor

__all__ = ['MultiTaskOptimWrapperConstructor']
