"""Engine: hooks, training and validation loops, optimizer wrappers and constructors."""
from .hooks import (MeanTeacherHook, MultiTaskVisualizationHook, ParamReportHook,
                    SafeCheckpointHook, SavePredictionsHook, TROAHook)
from .loops import UDAIterBasedTrainLoop, ValLoop
from .optimizers import (BF16OptimWrapper, FrozenTrunkOptimWrapperConstructor,
                         UDAOptimWrapperConstructor)

__all__ = ['MeanTeacherHook', 'MultiTaskVisualizationHook', 'ParamReportHook',
           'SafeCheckpointHook', 'SavePredictionsHook', 'TROAHook', 'UDAIterBasedTrainLoop',
           'ValLoop', 'BF16OptimWrapper', 'FrozenTrunkOptimWrapperConstructor',
           'UDAOptimWrapperConstructor']
