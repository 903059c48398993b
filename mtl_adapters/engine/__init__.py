"""Engine: hooks and the optimizer wrapper constructor."""
from .hooks import (MultiTaskVisualizationHook, ParamReportHook, SafeCheckpointHook,
                    SavePredictionsHook, TROAHook)
from .optimizers import FrozenTrunkOptimWrapperConstructor

__all__ = ['MultiTaskVisualizationHook', 'ParamReportHook', 'SafeCheckpointHook',
           'SavePredictionsHook', 'TROAHook', 'FrozenTrunkOptimWrapperConstructor']
