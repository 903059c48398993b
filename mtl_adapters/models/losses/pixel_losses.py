"""Per-pixel losses of the dense tasks. Each takes ``(pred, gt, valid)``, all (B, C, H, W) with
``valid`` a (B, 1, H, W) bool mask, and returns ``loss_weight`` times a scalar. A batch with no
valid pixel gives a zero that still depends on ``pred`` (so DDP sees every parameter used).

``batch_separable`` says whether the loss is a (weighted) mean of per-pixel terms that do not
depend on the rest of the batch. Then the gradient that the batch loss sends to a subset of the
images is parallel to that subset's own loss gradient (only the mean's denominator differs), which
TROA's 'representation' mode relies on to read per-half gradients off the training backward.
BerHu (threshold from the batch maximum) and SILog (batch mean and variance) are not separable.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mtl_adapters.registry import MODELS


def _empty(pred: Tensor) -> Tensor:
    return pred.sum() * 0.0


class _PixelLoss(nn.Module):
    """Common ``loss_weight`` and the name shown in logs (``loss_<loss_name>``)."""

    loss_name = ''
    #: a mean of per-pixel terms independent of the other images (see the module docstring)
    batch_separable = True

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, gt: Tensor, valid: Tensor) -> Tensor:
        """Weighted loss over the valid pixels."""
        return self.loss_weight * self.compute(pred, gt, valid)

    def compute(self, pred: Tensor, gt: Tensor, valid: Tensor) -> Tensor:
        raise NotImplementedError


@MODELS.register_module()
class CrossEntropyLoss(_PixelLoss):
    """Cross-entropy over class logits; ``gt`` is (B, 1, H, W) train ids."""

    loss_name = 'ce'

    def __init__(self, ignore_index: int = 255, class_weight=None, **kwargs):
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        self.class_weight = class_weight

    def compute(self, pred, gt, valid):
        target = gt[:, 0].long().masked_fill(~valid[:, 0], self.ignore_index)
        if not valid.any():
            return _empty(pred)
        weight = None if self.class_weight is None else pred.new_tensor(self.class_weight)
        return F.cross_entropy(pred, target, weight=weight, ignore_index=self.ignore_index)


@MODELS.register_module()
class BerHuLoss(_PixelLoss):
    """Reverse Huber: |e| below c, (e^2 + c^2) / 2c above; c = ``threshold`` * max|e| in batch."""

    loss_name = 'berhu'
    batch_separable = False     # c comes from the whole batch

    def __init__(self, threshold: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold

    def compute(self, pred, gt, valid):
        if not valid.any():
            return _empty(pred)
        err = (pred - gt)[valid].abs()
        c = (self.threshold * err.max()).detach().clamp_min(1e-6)
        return torch.where(err <= c, err, (err ** 2 + c ** 2) / (2 * c)).mean()


@MODELS.register_module()
class MaskedL1Loss(_PixelLoss):
    """Mean absolute error over valid pixels (all channels)."""

    loss_name = 'l1'

    def compute(self, pred, gt, valid):
        if not valid.any():
            return _empty(pred)
        mask = valid.expand_as(pred)
        return (pred - gt)[mask].abs().mean()


@MODELS.register_module()
class SILogLoss(_PixelLoss):
    """Scale-invariant log loss (Eigen et al.): sqrt(mean d^2 - lambda mean(d)^2),
    d = log p - log g."""

    loss_name = 'silog'
    batch_separable = False     # batch mean and variance of the log error

    def __init__(self, variance_focus: float = 0.85, eps: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.variance_focus = variance_focus
        self.eps = eps

    def compute(self, pred, gt, valid):
        if not valid.any():
            return _empty(pred)
        d = torch.log(pred[valid].clamp_min(self.eps)) - torch.log(gt[valid])
        return torch.sqrt((d ** 2).mean() - self.variance_focus * d.mean() ** 2 + 1e-8)


@MODELS.register_module()
class NormalL1Loss(_PixelLoss):
    """L1 between the unit-normalised prediction and the unit ground-truth normal."""

    loss_name = 'l1'

    def compute(self, pred, gt, valid):
        if not valid.any():
            return _empty(pred)
        unit = F.normalize(pred, dim=1)
        return (unit - gt).abs().sum(1, keepdim=True)[valid].mean()


@MODELS.register_module()
class NormalCosineLoss(_PixelLoss):
    """1 - cos(pred, gt) over valid pixels."""

    loss_name = 'cos'

    def compute(self, pred, gt, valid):
        if not valid.any():
            return _empty(pred)
        cos = F.cosine_similarity(pred, gt, dim=1, eps=1e-6).unsqueeze(1)
        return (1 - cos)[valid].mean()
