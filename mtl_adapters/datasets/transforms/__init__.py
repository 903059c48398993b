"""Data transforms: loading, joint augmentation, packing."""
from .albu import MultiTaskAlbu
from .formatting import PackMultiTaskInputs
from .loading import LoadMultiTaskImageAndAnnotations

__all__ = ['LoadMultiTaskImageAndAnnotations', 'MultiTaskAlbu', 'PackMultiTaskInputs']
