"""Encoders: the frozen trunk, the adapter encoder and the parameter-efficient alternatives,
all on ``BaseSwinV2Encoder``.

A new encoder is one file in this folder: every module here is imported below, so its
``@MODELS.register_module()`` runs without a line anywhere else.
"""
import importlib
import pkgutil

from .adapted_swinv2 import AdaptedSwinV2Encoder, TrunkOutput, resolve_adapter_blocks
from .base_encoder import BaseSwinV2Encoder, create_swinv2, init_respostnorm_like_trained
from .swinv2_encoder import SwinV2Encoder

__all__ = ['BaseSwinV2Encoder', 'SwinV2Encoder', 'create_swinv2',
           'init_respostnorm_like_trained', 'AdaptedSwinV2Encoder', 'TrunkOutput',
           'resolve_adapter_blocks']

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')
