"""Output-space discriminators for unsupervised domain adaptation, one per task.

The adversarial strategy (AdaptSegNet, Tsai et al. CVPR 2018; ADVENT, Vu et al. CVPR 2019)
aligns the two domains where the tasks agree most across domains: in their outputs. A small
fully-convolutional discriminator per task learns to tell source outputs (label 0) from target
outputs (label 1); the student is trained on target images to make its outputs look like
source ones to that discriminator.

What a discriminator sees (:func:`discriminator_input`), chosen from what the task is, never
from its name:

* a classification task (``task.likelihood == 'classification'``, the segmentation): ADVENT's
  weighted self-information map ``I = -p * log p / log C`` (B, C, H, W), ``p`` the softmax: a
  confident prediction is near 0 everywhere, an unsure one is not, and target images are the
  unsure ones;
* a regression task (depth, normals, edges): the prediction in ground-truth units
  (``task.postprocess``: unit normals, metres, edge strength) through a signed logarithm
  ``sign(x) * log(1 + |x|)``: unchanged near 0 (normals, edges), compressing depths of tens of
  metres to a few units, so every discriminator's first convolution sees inputs of order 1.
"""
import math
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mtl_adapters.registry import MODELS


def weighted_self_information(logits: Tensor) -> Tensor:
    """(B, C, H, W) logits -> (B, C, H, W) ``-p log p / log C`` (ADVENT's discriminator input;
    its sum over channels is the normalised entropy, in [0, 1])."""
    log_p = F.log_softmax(logits, dim=1)
    return -log_p.exp() * log_p / math.log(max(logits.shape[1], 2))


def signed_log(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)``: the identity near 0, logarithmic for large magnitudes."""
    return torch.sign(x) * torch.log1p(x.abs())


def discriminator_input(task, raw: Tensor) -> Tensor:
    """Raw head output (B, out_channels, H, W) of ``task`` -> what its discriminator sees
    (same shape; see the module docstring)."""
    if task.likelihood == 'classification':
        return weighted_self_information(raw)
    return signed_log(task.postprocess(raw))


@MODELS.register_module()
class OutputDiscriminator(nn.Module):
    """Fully-convolutional domain classifier on a task's output map (AdaptSegNet / ADVENT).

    ``num_convs`` 4x4 convolutions of stride 2 (``channels``, 2x, 4x, 8x ..., then one output
    channel), LeakyReLU between them: a (B, in_channels, H, W) map becomes (B, 1, H / 2^n,
    W / 2^n) logits, one domain decision per patch (source 0, target 1).

    Args:
        in_channels: the task's output channels (filled in by the UDA model).
        channels: width of the first convolution, doubled at each following one.
        num_convs: number of stride-2 convolutions, the output one included (ADVENT: 5).
        max_channels: cap on the width.
        negative_slope: LeakyReLU slope.
    """

    def __init__(self, in_channels: int, channels: int = 64, num_convs: int = 5,
                 max_channels: int = 512, negative_slope: float = 0.2):
        super().__init__()
        if num_convs < 2:
            raise ValueError(f'OutputDiscriminator.num_convs must be >= 2, got {num_convs}')
        layers, width = [], in_channels
        for i in range(num_convs - 1):
            out = min(channels * 2 ** i, max_channels)
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1),
                       nn.LeakyReLU(negative_slope, inplace=True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=2, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, 1, H / 2^num_convs, W / 2^num_convs) logits."""
        return self.layers(x)


class TaskDiscriminators(nn.Module):
    """One :class:`OutputDiscriminator` (or any ``MODELS`` config) per task, applied to raw
    task outputs through :func:`discriminator_input`.

    One module with a forward of its own, so that under DDP the discriminators are wrapped on
    their own (``UDADistributedDataParallel``) and take source and target outputs in one call.

    Args:
        tasks: ``{name: task}`` of the adapted tasks (kept by reference, not as modules).
        discriminator: config shared by every task (``in_channels`` filled in), or
            ``{task: config}``.
    """

    def __init__(self, tasks: Dict[str, object], discriminator: dict):
        super().__init__()
        self.tasks = dict(tasks)
        per_task = (discriminator if 'type' not in discriminator
                    else {name: discriminator for name in self.tasks})
        missing = [n for n in self.tasks if n not in per_task]
        unknown = sorted(set(per_task) - set(self.tasks))
        if missing or unknown:
            raise KeyError('model.uda_cfg.adversarial.discriminator: give one config (with '
                           f'`type`) or one per task {list(self.tasks)}; missing {missing}, '
                           f'unknown {unknown}')
        self.nets = nn.ModuleDict({
            name: MODELS.build(dict(per_task[name], in_channels=task.out_channels))
            for name, task in self.tasks.items()})

    def forward(self, *outputs: Dict[str, Tensor]):
        """Each ``{task: (B, C, H, W)}`` raw outputs -> ``{task: (B, 1, h, w)}`` logits; a
        list of them when given several dicts (source and target in one call)."""
        logits = [{name: self.nets[name](discriminator_input(self.tasks[name], out))
                   for name, out in group.items()} for group in outputs]
        return logits[0] if len(logits) == 1 else logits
