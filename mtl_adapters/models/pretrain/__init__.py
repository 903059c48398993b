"""Trunk pretraining models (``tools/pretrain.py``): train a Swin-V2 trunk and write it as a
trunk file (``models/backbones/embedded_trunk.py``)."""
from .supervised import SupervisedTrunkPretrainModel

__all__ = ['SupervisedTrunkPretrainModel']
