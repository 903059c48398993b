"""Decoders."""
from .swin_decoder import ConvTaskHead, DecoderStage, PatchExpand, SwinDecoder, depth_to_space

__all__ = ['SwinDecoder', 'DecoderStage', 'PatchExpand', 'ConvTaskHead', 'depth_to_space']
