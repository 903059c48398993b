"""DDP for adversarial UDA: the student and the discriminators, each with its own DDP.

mmengine's ``MMDistributedDataParallel.train_step`` assumes one optimiser and one loss, and
its ``MMSeparateDistributedDataParallel`` replaces every child module by a DDP wrapper (the
model's code then cannot call ``self.encoder.trunk`` or index ``self.decoders[task]``). This
wrapper keeps the model as it is and builds two DDPs over it:

* the student: this wrapper itself, a DDP over the whole model with the discriminators'
  parameters ignored (``_set_params_and_buffers_to_ignore_for_model``): its forward is the
  model's ``mode='uda_loss'`` (source loss, target forward, adversarial and pseudo-label terms
  in one call), so one backward averages the gradients of every trained parameter of the
  student over the ranks. The student's adversarial term runs the discriminators with
  detached weights, so they get no gradient there;
* the discriminators: a second ``MMDistributedDataParallel`` over ``model.discriminators``
  (kept outside the module tree, so state dicts see the model's own names only); it takes
  source and target outputs in one call and averages the discriminators' gradients.

``train_step`` hands both to ``UDAMultiTaskModel.train_step``. A model without
discriminators (mean teacher only) gets the student DDP alone. Registered in mmengine's own
``MODEL_WRAPPERS``: ``Runner.wrap_model`` looks the type up there (``MODEL_WRAPPERS.get``
does not search child registries), and ``is_model_wrapper`` then unwraps it for checkpoints.
"""
from typing import Dict

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel


@MODEL_WRAPPERS.register_module()
class UDADistributedDataParallel(MMDistributedDataParallel):
    """DDP of a ``UDAMultiTaskModel``: the student and its discriminators wrapped separately.

    Args:
        module: the UDA model.
        **kwargs: ``MMDistributedDataParallel`` / DDP arguments (``device_ids``,
            ``broadcast_buffers``, ``find_unused_parameters``, ...), used for both DDPs.
    """

    def __init__(self, module, **kwargs):
        discriminators = getattr(module, 'discriminators', None)
        if discriminators is not None:
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                module, [f'discriminators.{n}' for n, _ in
                         list(discriminators.named_parameters())
                         + list(discriminators.named_buffers())])
        super().__init__(module=module, **kwargs)
        self.__dict__['discriminators_ddp'] = None if discriminators is None else \
            MMDistributedDataParallel(module=discriminators, **kwargs)

    def train_step(self, data: dict, optim_wrapper) -> Dict[str, torch.Tensor]:
        """The model's UDA step, through the two DDPs."""
        return self.module.train_step(data, optim_wrapper, student=self,
                                      discriminators=self.__dict__['discriminators_ddp'])
