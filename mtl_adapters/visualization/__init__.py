"""Visualisation: prediction grids and per-image prediction files."""
from .grid import make_comparison_grid, make_prediction_grid, make_side_by_side, to_hwc
from .save_predictions import (read_depth_png, save_predictions, save_task_prediction,
                               write_label_png)

__all__ = ['make_prediction_grid', 'make_comparison_grid', 'make_side_by_side', 'to_hwc',
           'save_predictions',
           'save_task_prediction', 'write_label_png', 'read_depth_png']
