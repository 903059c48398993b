"""Decoders: one per task, from the encoder's stage features to the task's outputs."""
from .light_head import LightHead
from .swin_decoder import (DecoderStage, PatchExpand, SwinDecoder, depth_to_space,
                           swin_block_num_params, swin_decoder_num_params)

__all__ = ['SwinDecoder', 'DecoderStage', 'PatchExpand', 'depth_to_space', 'LightHead',
           'swin_block_num_params', 'swin_decoder_num_params']
