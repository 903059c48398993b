"""Engine: hooks and the optimizer wrapper constructor."""
from .hooks import MultiTaskVisualizationHook, ParamReportHook, TROAHook
from .optimizers import MultiTaskOptimWrapperConstructor

__all__ = ['MultiTaskVisualizationHook', 'ParamReportHook', 'TROAHook',
           'MultiTaskOptimWrapperConstructor']
