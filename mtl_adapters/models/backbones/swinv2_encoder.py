"""The frozen baseline encoder: a timm Swin-V2 whose four stage outputs (NCHW), computed once,
are shared by every task (trunk creation: ``base_encoder``)."""
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from mtl_adapters.registry import MODELS

from .base_encoder import BaseSwinV2Encoder


@MODELS.register_module()
class SwinV2Encoder(BaseSwinV2Encoder):
    """Frozen Swin-V2 trunk: image -> four NCHW stage outputs, shared by every task.

    ``forward(img, task_names, affinity=None)`` returns ``{task: features}``; here every task
    gets the same list (the trunk runs once). It has no task conditioning, so ``affinity`` (the
    task-mixing matrix the model passes to every encoder alike) is accepted and ignored. The
    adapter encoder keeps this interface and returns task-specific deep features.

    Args: those of :class:`BaseSwinV2Encoder` (``frozen=False`` trains the trunk).
    """

    def stage_features(self, img: Tensor) -> List[Tensor]:
        """(B, 3, H, W) -> four (B, C_i, H / 2^(i+2), W / 2^(i+2)) stage outputs."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.swin.forward_intermediates(img, intermediates_only=True)

    def forward(self, img: Tensor, task_names: Optional[Sequence[str]] = None,
                affinity: Optional[Tensor] = None) -> Dict[str, List[Tensor]]:
        """Trunk once; every task in ``task_names`` shares the same features. ``affinity`` is
        ignored (no task conditioning)."""
        if task_names is None:
            raise ValueError('SwinV2Encoder keeps no task list: pass task_names (the model '
                             'passes its tasks)')
        feats = self.stage_features(img)
        return {t: feats for t in task_names}
