"""Models: encoders, adapters, decoders, heads, losses, the multi-task model."""
from .backbones import SwinV2Encoder
from .data_preprocessor import MultiTaskDataPreprocessor
from .heads import LightHead
from .losses import (BerHuLoss, CrossEntropyLoss, MaskedL1Loss, NormalCosineLoss,
                     NormalL1Loss, SILogLoss)
from .multitask_model import MultiTaskModel

__all__ = ['SwinV2Encoder', 'MultiTaskDataPreprocessor', 'LightHead', 'MultiTaskModel',
           'BerHuLoss', 'CrossEntropyLoss', 'MaskedL1Loss', 'NormalCosineLoss', 'NormalL1Loss',
           'SILogLoss']
