"""Engine: hooks."""
from .hooks import MultiTaskVisualizationHook, ParamReportHook

__all__ = ['MultiTaskVisualizationHook', 'ParamReportHook']
