"""bf16 mixed precision on any device: autocast to bfloat16, no loss scaling.

mmengine's ``AmpOptimWrapper`` (what ``tools/train.py --amp`` uses on a GPU, as mmseg does)
refuses to be built on a machine without a GPU/NPU/MLU/MUSA, although ``torch.autocast`` runs
bf16 on the CPU. bf16 has fp32's exponent range, so gradients do not underflow and need no loss
scaler; this wrapper is mmengine's plain ``OptimWrapper`` whose ``optim_context`` (entered by
``BaseModel.train_step`` around the data preprocessor and the loss) also autocasts to bf16 on
the model's device. ``tools/train.py --amp`` picks it where no GPU is present: CPU runs, tests,
debugging. fp16 needs loss scaling and is refused here (use ``AmpOptimWrapper`` on a GPU).
"""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mtl_adapters.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` + ``torch.autocast(<model's device>, torch.bfloat16)`` in the forward.

    Args:
        dtype: must be bfloat16 (kept as an argument so configs written for mmengine's
            ``AmpOptimWrapper(dtype='bfloat16')`` also build this one).
        **kwargs: ``OptimWrapper``'s (optimizer, accumulative_counts, clip_grad).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'optim_wrapper.dtype={dtype!r}: BF16OptimWrapper autocasts to '
                             'bfloat16 only (float16 needs loss scaling: use AmpOptimWrapper '
                             'on a GPU)')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        """mmengine's context (gradient-accumulation sync) + bf16 autocast on the device of
        the model's first parameter."""
        param = next(model.parameters(), None)
        device_type = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(device_type, dtype=self.cast_dtype):
            yield

    def load_state_dict(self, state_dict: dict) -> None:
        """Also loads a checkpoint written under ``AmpOptimWrapper`` (its loss-scaler state,
        meaningless without loss scaling, is dropped)."""
        state_dict = dict(state_dict)
        state_dict.pop('loss_scaler', None)
        super().load_state_dict(state_dict)
