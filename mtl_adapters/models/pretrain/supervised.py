"""Supervised multi-task trunk pretraining: the whole trunk trained end to end with light heads
on S-D-N-E of a scene corpus disjoint from the one studied (configs/pretrain/).

It is the multi-task model with two constraints and one addition: the encoder must train its
trunk (``FullFineTuneSwinV2Encoder``; a frozen trunk would learn nothing), it must have a plain
timm trunk (no adapter or other PEFT piece inside, so the exported keys are timm's) and
:meth:`export_trunk` writes that trunk as a trunk file, which any encoder's ``pretrained`` then
loads strictly.
"""
from typing import Optional

import torch

from mtl_adapters.registry import MODELS

from ..backbones.embedded_trunk import save_trunk
from ..backbones.peft_common import FullFineTuneSwinV2Encoder
from ..multitask_model import MultiTaskModel


@MODELS.register_module()
class SupervisedTrunkPretrainModel(MultiTaskModel):
    """:class:`MultiTaskModel` whose encoder is a fully trained plain trunk, exportable.

    Args: those of :class:`MultiTaskModel`; ``encoder`` must build a
    ``FullFineTuneSwinV2Encoder`` (its ``model_name`` / ``model_kwargs`` are recorded in the
    exported file).
    """

    def __init__(self, tasks, encoder: dict, decoder: dict, **kwargs):
        super().__init__(tasks, encoder, decoder, **kwargs)
        if not isinstance(self.encoder, FullFineTuneSwinV2Encoder):
            raise TypeError(
                f'trunk pretraining trains the whole trunk: model.encoder.type must be '
                f'FullFineTuneSwinV2Encoder, got {type(self.encoder).__name__}')
        self.trunk_name = encoder['model_name']
        self.trunk_kwargs = dict(encoder.get('model_kwargs') or {})

    def export_trunk(self, path, dtype: Optional[torch.dtype] = torch.float16) -> str:
        """Write the trunk (timm keys, ``dtype`` storage) to the trunk file ``path``; returns
        its sha256."""
        return save_trunk(self.encoder.swin, path, self.trunk_name, self.trunk_kwargs, dtype)
