"""What every Swin-V2 encoder shares: the timm trunk, its stage widths, the size divisor, weights
kept as built and a frozen trunk kept in eval mode.

Any ``swinv2_*`` timm name works; ``model_kwargs`` override the architecture (the CPU demo and
the tests use narrow models). Pretrained weights come from a local file (``.safetensors``,
``.pth`` or ``.bin`` as published for timm) or a trunk file (``embedded_trunk``: a shipped trunk
by name, ``'embedded://<name>'``, or a file ``tools/pretrain.py`` wrote, loaded strictly, a
shipped one sha256-checked); nothing is downloaded.

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

from .embedded_trunk import EMBEDDED_PREFIX, is_trunk_file, load_trunk


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
    """Build a timm Swin-V2 without a classifier, weights from ``pretrained``: a shipped trunk
    (``'embedded://<name>'``), a trunk file or a timm checkpoint (local paths), or None: random,
    with its res-post norms made trained-like (``init_respostnorm_like_trained``).

    The trunk accepts any input size (``strict_img_size=False``, so timm builds the shift masks
    from each input's size)."""
    if not model_name.startswith('swinv2'):
        raise ValueError(f'model_name must be a timm swinv2_* model, got {model_name!r}')
    choices = [m for m in timm.list_models('swinv2*') if not m.startswith('swinv2_cr')]
    if model_name.startswith('swinv2_cr'):
        raise ValueError(f'{model_name!r} is timm\'s other Swin-V2 implementation '
                         f'(swin_transformer_v2_cr), which the encoders do not use; choose one '
                         f'of {choices}')
    if model_name not in choices:
        raise ValueError(f'timm has no model {model_name!r}; choose one of {choices}')
    kwargs = dict(img_size=img_size, num_classes=0, strict_img_size=False, **(model_kwargs or {}))
    if pretrained and (str(pretrained).startswith(EMBEDDED_PREFIX) or is_trunk_file(
            Path(pretrained).expanduser())):
        swin = timm.create_model(model_name, pretrained=False, **kwargs)
        load_trunk(swin, str(pretrained))
        return swin
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


class BaseSwinV2Encoder(BaseModule):
    """A timm Swin-V2 trunk (``self.swin``) and what every encoder built on it shares.

    Owns the trunk creation (:func:`create_swinv2`), ``out_channels`` (the four stage widths),
    ``size_divisor``, ``init_weights`` (keeps timm's weights) and ``train`` (a frozen trunk stays
    in eval mode). Subclasses implement ``forward(img, task_names=None, affinity=None)`` ->
    ``{task: [4 NCHW stage features]}``; ``affinity`` is the (T, T) task-mixing matrix over the
    encoder's tasks (None: identity), which an encoder without task conditioning ignores.

    Args:
        model_name: a timm ``swinv2_*`` model name.
        pretrained: ``'embedded://<name>'`` (a shipped trunk), a local weights file (trunk file
            or timm checkpoint), or None for a random trunk with trained-like norms.
        img_size: the size timm plans the windows for (any input size is accepted).
        model_kwargs: timm architecture overrides (``embed_dim``, ``depths``, ...).
        frozen: the trunk's weights get no gradient and its modules stay in eval mode.
    """

    def __init__(self, model_name: str = 'swinv2_tiny_window8_256',
                 pretrained: Optional[str] = None, img_size: Sequence[int] = (256, 256),
                 model_kwargs: Optional[dict] = None, frozen: bool = True, init_cfg=None):
        super().__init__(init_cfg)
        self.swin = create_swinv2(model_name, pretrained, tuple(img_size), model_kwargs)
        self.frozen = frozen
        num_stages = len(self.swin.layers)
        #: channels of the four NCHW stage outputs
        self.out_channels: List[int] = [self.swin.embed_dim * 2 ** i for i in range(num_stages)]
        patch = self.swin.patch_embed.patch_size[0]
        #: input sides must be multiples of this (patch size x all patch mergings)
        self.size_divisor = patch * 2 ** (num_stages - 1)
        if frozen:
            self.swin.requires_grad_(False)
            self.swin.eval()

    def init_weights(self):
        """Keep timm's (pretrained or random) weights and any adapter's identity init: mmengine
        must not re-initialise them."""

    def train(self, mode: bool = True):
        """A frozen trunk stays in eval mode (no dropout / drop-path); the rest follows ``mode``
        (subclasses put their own trainable modules inside the trunk back to ``mode``)."""
        super().train(mode)
        if self.frozen:
            self.swin.eval()
        return self

    def forward(self, img: Tensor, task_names: Optional[Sequence[str]] = None,
                affinity: Optional[Tensor] = None) -> Dict[str, List[Tensor]]:
        """(B, 3, H, W) -> ``{task: [4 NCHW stage features]}``."""
        raise NotImplementedError
