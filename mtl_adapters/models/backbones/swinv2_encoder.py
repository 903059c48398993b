"""A frozen timm Swin-V2 encoder that returns its four stage outputs (NCHW), computed once.

Any ``swinv2_*`` timm name works; ``model_kwargs`` override the architecture (the CPU demo and
the tests use narrow models). Pretrained weights come from a local file (``.safetensors``,
``.pth`` or ``.bin`` as published for timm); nothing is downloaded.

A trunk built *without* pretrained weights is made a stand-in for a trained one
(:func:`init_respostnorm_like_trained`): timm starts every res-post-norm LayerNorm at weight 0,
bias 0 (``_init_respostnorm``, a from-scratch training trick that makes every block the identity),
and a frozen trunk never leaves that state. Then every trunk block passes nothing, and every
adapter piece that scales by the pretrained norm's weight (the task-scaled norms, hence the
task-adapted attention inside them) gets exactly zero gradient forever. Trained Swin-V2 norms are
non-zero, so the random trunk gets LayerNorm's own default (weight 1, bias 0). The fix belongs
here, at trunk creation, and not in the adapter maths: the adapters must scale by the pretrained
norm as the method defines (identity at init is unchanged: it holds for any trunk weights), and
a CPU demo, benchmark or test on a random trunk must exercise the same gradient paths as a run on
real weights. A *loaded* trunk whose norms are all zero is refused by the adapter encoder.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import timm
import torch
from mmengine.model import BaseModule
from torch import Tensor

from mtl_adapters.registry import MODELS


def init_respostnorm_like_trained(swin: torch.nn.Module) -> None:
    """Give every block's res-post-norm LayerNorm (``norm1``, ``norm2``) weight 1 and bias 0.

    Undoes timm's zero init of these norms for trunks that will never be trained (see the
    module docstring): a random frozen trunk then has non-trivial blocks, like a trained one.
    """
    with torch.no_grad():
        for stage in swin.layers:
            for blk in stage.blocks:
                for norm in (blk.norm1, blk.norm2):
                    norm.weight.fill_(1.0)
                    norm.bias.zero_()


def create_swinv2(model_name: str, pretrained: Optional[str], img_size, model_kwargs=None):
    """Build a timm Swin-V2 without a classifier, weights from the local file ``pretrained``
    (or random, with its res-post norms made trained-like: ``init_respostnorm_like_trained``)."""
    if not model_name.startswith('swinv2'):
        raise ValueError(f'model_name must be a timm swinv2_* model, got {model_name!r}')
    if model_name not in timm.list_models('swinv2*'):
        raise ValueError(f'timm has no model {model_name!r}; choose one of '
                         f'{timm.list_models("swinv2*")}')
    kwargs = dict(img_size=img_size, num_classes=0, strict_img_size=False, **(model_kwargs or {}))
    if pretrained:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f'pretrained weights not found: {path}. Download the timm checkpoint of '
                f'{model_name!r} (e.g. model.safetensors from the Hugging Face repo '
                f'"timm/{model_name}.<tag>") on a machine with internet, copy it here, and '
                'set model.encoder.pretrained to its path (or None for random init).')
        return timm.create_model(model_name, pretrained=True,
                                 pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
    swin = timm.create_model(model_name, pretrained=False, **kwargs)
    init_respostnorm_like_trained(swin)
    return swin


@MODELS.register_module()
class SwinV2Encoder(BaseModule):
    """Frozen Swin-V2 trunk: image -> four NCHW stage outputs, shared by every task.

    ``forward(img, task_names)`` returns ``{task: features}``; here every task gets the same
    list (the trunk runs once). The adapter encoder keeps this interface and returns
    task-specific deep features.
    """

    def __init__(self, model_name: str = 'swinv2_tiny_window8_256',
                 pretrained: Optional[str] = None, img_size: Sequence[int] = (256, 256),
                 model_kwargs: Optional[dict] = None, frozen: bool = True, init_cfg=None):
        super().__init__(init_cfg)
        self.swin = create_swinv2(model_name, pretrained, tuple(img_size), model_kwargs)
        self.frozen = frozen
        embed = self.swin.embed_dim
        self.out_channels: List[int] = [embed * 2 ** i for i in range(len(self.swin.layers))]
        patch = self.swin.patch_embed.patch_size[0]
        #: input sides must be multiples of this (patch size x all patch mergings)
        self.size_divisor = patch * 2 ** (len(self.swin.layers) - 1)
        if frozen:
            self.swin.requires_grad_(False)
            self.swin.eval()

    def init_weights(self):
        """Keep timm's (pretrained or random) weights: mmengine must not re-initialise them."""

    def train(self, mode: bool = True):
        """A frozen trunk stays in eval mode (no dropout / drop-path)."""
        super().train(mode)
        if self.frozen:
            self.swin.eval()
        return self

    def stage_features(self, img: Tensor) -> List[Tensor]:
        """(B, 3, H, W) -> four (B, C_i, H / 2^(i+2), W / 2^(i+2)) stage outputs."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.swin.forward_intermediates(img, intermediates_only=True)

    def forward(self, img: Tensor, task_names: Sequence[str]) -> Dict[str, List[Tensor]]:
        """Trunk once; every task shares the same features."""
        feats = self.stage_features(img)
        return {t: feats for t in task_names}
