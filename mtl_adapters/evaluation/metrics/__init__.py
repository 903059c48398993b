"""Metrics."""
from .multitask_metric import (DELTA_M_KEY, MultiTaskMetric, format_metrics_table,
                               metrics_for_json, warn_undefined_metrics)

__all__ = ['MultiTaskMetric', 'format_metrics_table', 'DELTA_M_KEY', 'metrics_for_json',
           'warn_undefined_metrics']
