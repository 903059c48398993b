"""Metrics."""
from .multitask_metric import DELTA_M_KEY, MultiTaskMetric, format_metrics_table

__all__ = ['MultiTaskMetric', 'format_metrics_table', 'DELTA_M_KEY']
