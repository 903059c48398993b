"""Task heads: the last layers of a decoder, mapping its features to a task's outputs."""
from .conv_task_head import ConvTaskHead

__all__ = ['ConvTaskHead']
