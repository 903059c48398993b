"""Pixel losses of the dense tasks."""
from .pixel_losses import (BerHuLoss, CrossEntropyLoss, MaskedL1Loss, NormalCosineLoss,
                           NormalL1Loss, SILogLoss)

__all__ = ['CrossEntropyLoss', 'BerHuLoss', 'MaskedL1Loss', 'SILogLoss', 'NormalL1Loss',
           'NormalCosineLoss']
