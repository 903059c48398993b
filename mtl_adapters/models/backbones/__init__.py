"""Encoders."""
from .swinv2_encoder import SwinV2Encoder, create_swinv2

__all__ = ['SwinV2Encoder', 'create_swinv2']
