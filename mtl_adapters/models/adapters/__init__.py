"""Adapters: task-adapted attention, task-scaled norm, the adapter block."""
from .adapter_block import ADAPTER_MODULE_NAMES, AdapterBlock, SkipMerge, shift_window_mask
from .task_adapted_attention import TaskAdaptedAttention
from .task_scaled_norm import TaskScaledNorm

__all__ = ['AdapterBlock', 'SkipMerge', 'TaskAdaptedAttention', 'TaskScaledNorm',
           'ADAPTER_MODULE_NAMES', 'shift_window_mask']
