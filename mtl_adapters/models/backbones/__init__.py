"""Encoders."""
from .adapted_swinv2 import AdaptedSwinV2Encoder, TrunkOutput, resolve_adapter_blocks
from .swinv2_encoder import SwinV2Encoder, create_swinv2

__all__ = ['SwinV2Encoder', 'create_swinv2', 'AdaptedSwinV2Encoder', 'TrunkOutput',
           'resolve_adapter_blocks']
