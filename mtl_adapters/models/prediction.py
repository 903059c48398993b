"""Prediction helpers of the multi-task model: what makes a prediction trustworthy.

* **Batch independence.** The data preprocessor pads a batch to its largest image; Swin
  attention windows and the decoders' convolutions see that padding, so a small image's
  prediction would depend on what else is in its batch (and test metrics on the batch size).
  ``same_size_groups`` splits a batch into images of one padded size (the size the image gets
  when batched alone: its ``img_shape`` rounded up to the preprocessor's ``size_divisor``);
  each group is cropped to that size and predicted on its own.
* **Seamless sliding windows.** Overlapping windows are blended with ``window_weight``, a
  separable tent that is largest at a window's centre and smallest at its border: each
  window's share fades out towards its end instead of stopping there, so the blend is
  continuous where a window starts or ends (plain averaging jumps there by half the windows'
  disagreement).
* **Finite outputs.** ``check_finite_outputs`` refuses NaN/inf raw outputs (logits included)
  before they become predictions: the argmax of NaN logits is class 0 and a NaN depth is
  written as 0, which would look like a plausible prediction.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor


def padded_size(img_shape: Sequence[int], divisor: int,
                limit: Sequence[int]) -> Tuple[int, int]:
    """``img_shape`` (h, w) rounded up to multiples of ``divisor`` (the preprocessor's padding
    of the image batched alone), at most ``limit`` (the batch's own size)."""
    h, w = (int(v) for v in img_shape[:2])
    d = max(int(divisor or 1), 1)
    return min(-(-h // d) * d, int(limit[0])), min(-(-w // d) * d, int(limit[1]))


def same_size_groups(samples: Sequence, batch_hw: Sequence[int],
                     divisor: int) -> List[Tuple[List[int], Tuple[int, int]]]:
    """``[(indices, (h, w))]``: the batch's images grouped by the size they are padded to when
    batched alone (``padded_size`` of their ``img_shape``; no ``img_shape``: the batch's size),
    in order of first appearance."""
    groups: Dict[Tuple[int, int], List[int]] = {}
    for i, sample in enumerate(samples):
        shape = sample.metainfo.get('img_shape', tuple(batch_hw))
        groups.setdefault(padded_size(shape, divisor, batch_hw), []).append(i)
    return [(idx, size) for size, idx in groups.items()]


def window_weight(h: int, w: int, like: Tensor) -> Tensor:
    """(1, 1, h, w) blending weight of one sliding window (``like``'s device and dtype): the
    product of a tent along each axis (``min(i + 1, n - i)`` over its maximum: smallest at the
    border, 1 at the centre), never zero, so a pixel that only one window covers gets exactly
    that window's output."""
    def tent(n: int) -> Tensor:
        i = torch.arange(n, device=like.device, dtype=like.dtype)
        return torch.minimum(i + 1, n - i) / ((n + 1) // 2)
    return (tent(h)[:, None] * tent(w)[None, :])[None, None]


def check_finite_outputs(raws: Dict[str, Tensor], sample) -> None:
    """Raise ``FloatingPointError`` if any task's raw output (logits, depth, ...) of one image
    holds NaN or inf, naming the tasks and the image (one device sync per image)."""
    finite = torch.stack([torch.isfinite(r).all() for r in raws.values()])
    if bool(finite.all()):
        return
    bad = [name for name, ok in zip(raws, finite.tolist()) if not ok]
    where = sample.metainfo.get('img_path') if hasattr(sample, 'metainfo') else None
    raise FloatingPointError(
        f'non-finite raw output (NaN/inf logits) of task(s) {bad} in the prediction for '
        f'{where or "an image of the batch"}: it would become class 0 / depth 0 and look '
        'like a real prediction, so nothing is scored or written. The model is broken: check '
        'the checkpoint for NaN/inf weights (torch.load(path, weights_only=True)'
        "['state_dict']) and evaluate an earlier checkpoint of the run, or retrain with a lower "
        'learning rate (optim_wrapper.optimizer.lr).')
