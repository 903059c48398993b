"""Hooks."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .mean_teacher_hook import MeanTeacherHook
from .param_report_hook import ParamReportHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .save_predictions_hook import SavePredictionsHook
from .task_check_hook import TaskCheckHook
from .troa_hook import TROAHook
from .visualization_hook import MultiTaskVisualizationHook

__all__ = ['AtomicCheckpointHook', 'MeanTeacherHook', 'MultiTaskVisualizationHook',
           'ParamReportHook', 'SafeCheckpointHook', 'SavePredictionsHook', 'TaskCheckHook',
           'TROAHook']
