"""Engine: hooks, training loops, optimizer wrappers and constructors."""
from .hooks import (MeanTeacherHook, MultiTaskVisualizationHook, ParamReportHook,
                    SafeCheckpointHook, SavePredictionsHook, TaskCheckHook, TROAHook)
from .loops import UDAIterBasedTrainLoop
from .optimizers import (BF16OptimWrapper, FrozenTrunkOptimWrapperConstructor,
                         UDAOptimWrapperConstructor)

__all__ = ['MeanTeacherHook', 'MultiTaskVisualizationHook', 'ParamReportHook',
           'SafeCheckpointHook', 'SavePredictionsHook', 'TaskCheckHook', 'TROAHook',
           'UDAIterBasedTrainLoop',
           'BF16OptimWrapper', 'FrozenTrunkOptimWrapperConstructor', 'UDAOptimWrapperConstructor']
