"""Evaluation: the multi-task metric."""
from .metrics import MultiTaskMetric, format_metrics_table

__all__ = ['MultiTaskMetric', 'format_metrics_table']
