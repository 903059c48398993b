"""The multi-task model: image -> encoder (trunk once) -> one decoder per task -> losses.

Data flow: ``inputs (B, 3, H, W)`` -> ``encoder(inputs, tasks)`` gives each task its stage
features (the frozen trunk runs once; an adapter encoder adds task-specific deep stages) ->
``decoders[task](features, (H, W))`` gives (B, C_task, H, W) -> ``task.postprocess`` /
``task`` losses. Loss weights are a buffer (``task_weights``), so a weighting method or hook can
change them and they work under DDP (mmengine's wrapper calls our loss, not our train_step).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch import Tensor

from mtl_adapters.registry import MODELS
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks


@MODELS.register_module()
class MultiTaskModel(BaseModel):
    """Frozen encoder + per-task decoders, trained on a weighted sum of task losses.

    Args:
        tasks: task configs; their order is the order of every per-task tensor.
        encoder: encoder config (``SwinV2Encoder`` or the adapter encoder).
        decoder: decoder config shared by all tasks, or ``{task: config}``; ``in_channels`` and
            ``out_channels`` are filled in.
        data_preprocessor: preprocessor config (``tasks`` filled in).
        task_weights: initial loss weights ``{task: w}`` (default 1 each).
    """

    def __init__(self, tasks: Sequence, encoder: dict, decoder: dict,
                 data_preprocessor: Optional[dict] = None,
                 task_weights: Optional[Dict[str, float]] = None, init_cfg=None):
        self.tasks = build_tasks(tasks)
        data_preprocessor = dict(data_preprocessor or dict(type='MultiTaskDataPreprocessor'))
        data_preprocessor.setdefault('tasks', list(self.tasks.values()))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.task_names: List[str] = list(self.tasks)
        self.encoder = MODELS.build(encoder)
        per_task = decoder if 'type' not in decoder else {t: decoder for t in self.task_names}
        unknown = set(per_task) - set(self.task_names)
        if unknown:
            raise KeyError(f'model.decoder has configs for unknown tasks {sorted(unknown)}; '
                           f'tasks are {self.task_names}')
        self.decoders = nn.ModuleDict({
            name: MODELS.build(dict(per_task[name], in_channels=self.encoder.out_channels,
                                    out_channels=task.out_channels))
            for name, task in self.tasks.items()})
        self.losses = nn.ModuleDict({n: t.build_loss() for n, t in self.tasks.items()})
        weights = [float((task_weights or {}).get(n, 1.0)) for n in self.task_names]
        self.register_buffer('task_weights', torch.tensor(weights))

    # ------------------------------------------------------------------ forward
    def forward_tasks(self, inputs: Tensor,
                      task_names: Optional[Sequence[str]] = None) -> Dict[str, Tensor]:
        """(B, 3, H, W) -> ``{task: (B, C_task, H, W)}`` raw outputs."""
        task_names = list(task_names or self.task_names)
        feats = self.encoder(inputs, task_names)
        size = tuple(inputs.shape[-2:])
        return {t: self.decoders[t](feats[t], size) for t in task_names}

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        """mmengine entry point: mode 'loss', 'predict' or 'tensor'."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.forward_tasks(inputs)
        raise ValueError(f'unknown mode {mode!r}; use loss, predict or tensor')

    # ------------------------------------------------------------------- losses
    def stack_gt(self, name: str, data_samples: Sequence[MultiTaskDataSample],
                 like: Tensor) -> Optional[Tensor]:
        """(B, C, H, W) ground truth of ``name``; images without it are filled with the
        task's ignore value. None if no image in the batch has this task."""
        task = self.tasks[name]
        gts = [s.get_gt(name) for s in data_samples]
        if all(g is None for g in gts):
            return None
        shape = (task.gt_channels,) + tuple(like.shape[-2:])
        ref = next(g for g in gts if g is not None)
        return torch.stack([g if g is not None else ref.new_full(shape, task.ignore_value)
                            for g in gts]).to(like.device)

    def task_losses(self, outputs: Dict[str, Tensor],
                    data_samples: Sequence[MultiTaskDataSample]) -> Dict[str, Tensor]:
        """Unweighted loss of every task (a zero that depends on the output when a task has
        no labels in this batch, so every parameter still takes part under DDP)."""
        losses = {}
        for name, out in outputs.items():
            gt = self.stack_gt(name, data_samples, out)
            if gt is None:
                losses[name] = out.sum() * 0.0
                continue
            losses[name] = self.losses[name](out, gt, self.tasks[name].valid_mask(gt))
        return losses

    def loss(self, inputs: Tensor, data_samples: Sequence[MultiTaskDataSample]) -> dict:
        """Weighted per-task losses, keyed ``<task>.loss_<name>`` (logs read by task)."""
        losses = self.task_losses(self.forward_tasks(inputs), data_samples)
        out = {}
        for i, (name, value) in enumerate(losses.items()):
            out[f'{name}.loss_{self.losses[name].loss_name}'] = self.task_weights[i] * value
        return out

    # --------------------------------------------------------------- prediction
    def predict(self, inputs: Tensor,
                data_samples: Optional[Sequence[MultiTaskDataSample]] = None
                ) -> List[MultiTaskDataSample]:
        """Predictions in ground-truth units, cropped to each image's unpadded size."""
        outputs = self.forward_tasks(inputs)
        if data_samples is None:
            data_samples = [MultiTaskDataSample(metainfo=dict(img_shape=inputs.shape[-2:]))
                            for _ in range(inputs.shape[0])]
        for name, out in outputs.items():
            pred = self.tasks[name].postprocess(out)
            for i, sample in enumerate(data_samples):
                h, w = sample.metainfo.get('img_shape', pred.shape[-2:])
                sample.set_pred(name, pred[i, :, :h, :w])
        return list(data_samples)
