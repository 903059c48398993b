"""Engine: hooks, training and validation loops, optimizer wrappers and constructors."""
from .hooks import (AtomicCheckpointHook, MeanTeacherHook, MultiTaskVisualizationHook,
                    ParamReportHook, SafeCheckpointHook, SavePredictionsHook, TaskCheckHook,
                    TROAHook)
from .loops import UDAIterBasedTrainLoop, ValLoop
from .optimizers import (BF16OptimWrapper, FrozenTrunkOptimWrapperConstructor,
                         UDAOptimWrapperConstructor)

__all__ = ['AtomicCheckpointHook', 'MeanTeacherHook', 'MultiTaskVisualizationHook',
           'ParamReportHook', 'SafeCheckpointHook', 'SavePredictionsHook', 'TaskCheckHook',
           'TROAHook', 'UDAIterBasedTrainLoop', 'ValLoop', 'BF16OptimWrapper',
           'FrozenTrunkOptimWrapperConstructor', 'UDAOptimWrapperConstructor']
