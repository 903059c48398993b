"""Engine: hooks."""
from .hooks import MultiTaskVisualizationHook, ParamReportHook, TROAHook

__all__ = ['MultiTaskVisualizationHook', 'ParamReportHook', 'TROAHook']
