"""Engine: hooks, training loops, optimizer wrappers and constructors."""
from .hooks import (AtomicCheckpointHook, MeanTeacherHook, MultiTaskVisualizationHook,
                    ParamReportHook, SafeCheckpointHook, SavePredictionsHook, TaskCheckHook,
                    TROAHook)
from .loops import UDAIterBasedTrainLoop
from .optimizers import (BF16OptimWrapper, FrozenTrunkOptimWrapperConstructor,
                         UDAOptimWrapperConstructor)

__all__ = ['AtomicCheckpointHook', 'MeanTeacherHook', 'MultiTaskVisualizationHook',
           'ParamReportHook', 'SafeCheckpointHook', 'SavePredictionsHook', 'TaskCheckHook',
           'TROAHook', 'UDAIterBasedTrainLoop', 'BF16OptimWrapper',
           'FrozenTrunkOptimWrapperConstructor', 'UDAOptimWrapperConstructor']
