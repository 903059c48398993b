"""Hooks."""
from .param_report_hook import ParamReportHook
from .visualization_hook import MultiTaskVisualizationHook

__all__ = ['MultiTaskVisualizationHook', 'ParamReportHook']
