"""Decoders: one per task, from the encoder's stage features to the task's outputs."""
from .light_head import LightHead
from .swin_decoder import DecoderStage, PatchExpand, SwinDecoder, depth_to_space

__all__ = ['SwinDecoder', 'DecoderStage', 'PatchExpand', 'depth_to_space', 'LightHead']
