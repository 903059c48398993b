"""Before a run: the model's tasks against every dataloader's dataset (``check_model_data_tasks``).

Every shipped config has it (``default_hooks.task_check`` in ``configs/_base_/schedules/``); a
run without it skips the check (``default_hooks = dict(task_check=None)``).
"""
from typing import Iterator, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from mtl_adapters.registry import HOOKS
from mtl_adapters.tasks import build_tasks, check_model_data_tasks
from mtl_adapters.utils import unwrap_model


def _datasets(dataset, where: str) -> Iterator[Tuple[object, str]]:
    """``(dataset with tasks, where)``, looking through dataset wrappers (Concat, Repeat)."""
    if isinstance(dataset, dict):
        if 'tasks' in dataset:
            yield dataset, where
        for i, inner in enumerate(dataset.get('datasets') or ()):
            yield from _datasets(inner, f'{where}.datasets[{i}]')
        if isinstance(dataset.get('dataset'), dict):
            yield from _datasets(dataset['dataset'], f'{where}.dataset')
        return
    if hasattr(dataset, 'tasks'):
        yield dataset, where
    for i, inner in enumerate(getattr(dataset, 'datasets', None) or ()):
        yield from _datasets(inner, f'{where}.datasets[{i}]')
    if getattr(dataset, 'dataset', None) is not None:
        yield from _datasets(dataset.dataset, f'{where}.dataset')


def _loader_dataset(loader):
    """A built dataloader's dataset, or a dataloader config's ``dataset`` dict."""
    if loader is None:
        return None
    if isinstance(loader, dict):
        return loader.get('dataset')
    return getattr(loader, 'dataset', None)


@HOOKS.register_module()
class TaskCheckHook(Hook):
    """Refuse a run whose datasets configure the model's tasks differently, before any data
    is trained or evaluated (``mtl_adapters/tasks/consistency.py``). Checks the train, UDA
    target, val and test dataloaders: built datasets, or the task configs of those not built
    in this run (a training run's test dataloader)."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Compare ``model.tasks`` with each dataloader's ``dataset.tasks``."""
        model = unwrap_model(runner.model)
        if not hasattr(model, 'tasks'):
            return
        trained = getattr(model, 'train_task_names', None)
        for role, loader in self._loaders(runner):
            for dataset, where in _datasets(_loader_dataset(loader), f'{role}_dataloader.dataset'):
                if isinstance(dataset, dict):
                    tasks = build_tasks(dataset['tasks'])
                    own = bool(dataset.get('own_metric_cfg', False))
                else:
                    tasks, own = dataset.tasks, bool(getattr(dataset, 'own_metric_cfg', False))
                check_model_data_tasks(model.tasks, tasks, role, trained=trained,
                                       own_metric_cfg=own, where=where)

    @staticmethod
    def _loaders(runner) -> Iterator[Tuple[str, Optional[object]]]:
        """``(role, dataloader or its config)`` of each dataloader the run has."""
        for role in ('train', 'val', 'test'):
            loop = getattr(runner, f'_{role}_loop', None)
            if isinstance(loop, BaseLoop):
                yield role, loop.dataloader
                target = getattr(loop, 'target_dataloader', None)
                if target is not None:
                    yield 'target', target
                continue
            yield role, getattr(runner, f'_{role}_dataloader', None)
            if role == 'train' and isinstance(loop, dict) and loop.get('target_dataloader'):
                yield 'target', loop['target_dataloader']
