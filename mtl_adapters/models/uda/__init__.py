"""Unsupervised domain adaptation: UDA model, discriminators, mean-teacher pseudo-labels."""
from .discriminators import (OutputDiscriminator, TaskDiscriminators, discriminator_input,
                             weighted_self_information)
from .distributed import UDADistributedDataParallel
from .pseudo_labels import make_pseudo_labels, resolve_pseudo_label_cfg
from .uda_model import UDAMultiTaskModel

__all__ = ['OutputDiscriminator', 'TaskDiscriminators', 'discriminator_input',
           'weighted_self_information', 'UDADistributedDataParallel', 'make_pseudo_labels',
           'resolve_pseudo_label_cfg', 'UDAMultiTaskModel']
