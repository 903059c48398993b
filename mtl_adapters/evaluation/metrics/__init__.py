"""Metrics."""
from .multitask_metric import MultiTaskMetric, format_metrics_table

__all__ = ['MultiTaskMetric', 'format_metrics_table']
