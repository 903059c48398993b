"""Models: encoders, adapters, decoders, heads, losses, the multi-task model, trunk
pretraining."""
from .backbones import AdaptedSwinV2Encoder, SwinV2Encoder
from .data_preprocessor import MultiTaskDataPreprocessor
from .decoders import LightHead, SwinDecoder
from .heads import ConvTaskHead
from .losses import (BerHuLoss, CrossEntropyLoss, MaskedL1Loss, NormalCosineLoss,
                     NormalL1Loss, SILogLoss)
from .multitask_model import MultiTaskModel
from .param_report import format_param_report, parameter_report
from .pretrain import SupervisedTrunkPretrainModel
from .uda import OutputDiscriminator, UDADistributedDataParallel, UDAMultiTaskModel

__all__ = ['SwinV2Encoder', 'MultiTaskDataPreprocessor', 'LightHead', 'MultiTaskModel',
           'BerHuLoss', 'CrossEntropyLoss', 'MaskedL1Loss', 'NormalCosineLoss', 'NormalL1Loss',
           'SILogLoss', 'AdaptedSwinV2Encoder', 'SwinDecoder', 'ConvTaskHead',
           'parameter_report', 'format_param_report', 'OutputDiscriminator',
           'UDADistributedDataParallel', 'UDAMultiTaskModel', 'SupervisedTrunkPretrainModel']
