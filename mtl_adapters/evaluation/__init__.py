"""Evaluation: the multi-task metric and the multi-task score Δm."""
from .delta_m import delta_m, load_baseline
from .metrics import MultiTaskMetric, format_metrics_table, metrics_for_json

__all__ = ['MultiTaskMetric', 'format_metrics_table', 'delta_m', 'load_baseline',
           'metrics_for_json']
