"""Encoders."""
from .adapted_swinv2 import AdaptedSwinV2Encoder, TrunkOutput, resolve_adapter_blocks
from .base_encoder import BaseSwinV2Encoder, create_swinv2, init_respostnorm_like_trained
from .swinv2_encoder import SwinV2Encoder

__all__ = ['BaseSwinV2Encoder', 'SwinV2Encoder', 'create_swinv2',
           'init_respostnorm_like_trained', 'AdaptedSwinV2Encoder', 'TrunkOutput',
           'resolve_adapter_blocks']
