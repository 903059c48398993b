"""Hooks."""
from .param_report_hook import ParamReportHook
from .troa_hook import TROAHook
from .visualization_hook import MultiTaskVisualizationHook

__all__ = ['MultiTaskVisualizationHook', 'ParamReportHook', 'TROAHook']
