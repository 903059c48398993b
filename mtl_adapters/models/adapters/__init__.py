"""Adapters: task-adapted attention, task-scaled norm, the adapter block."""
from .adapter_block import ADAPTER_MODULE_NAMES, AdapterBlock, SkipMerge
from .task_adapted_attention import TaskAdaptedAttention
from .task_scaled_norm import TaskScaledNorm
from .timm_swinv2 import check_supported_block

__all__ = ['AdapterBlock', 'SkipMerge', 'TaskAdaptedAttention', 'TaskScaledNorm',
           'ADAPTER_MODULE_NAMES', 'check_supported_block']
