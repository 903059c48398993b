"""The model's tasks against a dataset's: one declaration, two built copies, which must agree.

The model builds its tasks (heads, losses) from ``model.tasks``; each dataset builds its own
(decoding, metric) from ``dataset.tasks``. Configs normally pass the same list to both, but
nothing forces it: a dataset without a trained task would train that task on no labels (a loss
of 0), a different ``num_classes`` trains silently (or fails deep inside a loss), and a metric
option set on one copy is ignored by the code reading the other. :func:`check_model_data_tasks`
compares them once, before a run (``engine/hooks/task_check_hook.py``).
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .base_task import BaseTask

#: what each kind of dataloader must provide of the model's tasks
ROLES = ('train', 'target', 'val', 'test')


def task_differences(model_task: BaseTask, data_task: BaseTask,
                     compare_metric: bool = True) -> List[str]:
    """The options on which two copies of a task differ, as ``'<key>: model X, dataset Y'``.

    Class names are compared only where both copies have names (a dataset names its classes
    from its class map; a model task without names takes them). ``compare_metric=False`` leaves
    ``metric_cfg`` out (a dataset evaluated under its own protocol, ``own_metric_cfg``).
    """
    mine, theirs = model_task.options(), data_task.options()
    out = []
    for key in dict.fromkeys([*mine, *theirs]):
        a, b = mine.get(key), theirs.get(key)
        if key == 'class_names' and (a is None or b is None):
            continue
        if key == 'metric_cfg':
            if not compare_metric:
                continue
            for sub in dict.fromkeys([*(a or {}), *(b or {})]):
                if (a or {}).get(sub) != (b or {}).get(sub):
                    out.append(f'metric_cfg.{sub}: model {_show(a, sub)}, dataset '
                               f'{_show(b, sub)}')
            continue
        if a != b:
            out.append(f'{key}: model {a!r}, dataset {b!r}')
    return out


def _show(cfg: Optional[Mapping[str, Any]], key: str) -> str:
    return repr(cfg[key]) if cfg and key in cfg else '(not set)'


def check_model_data_tasks(model_tasks: Mapping[str, BaseTask],
                           data_tasks: Mapping[str, BaseTask], role: str,
                           trained: Optional[Sequence[str]] = None,
                           own_metric_cfg: bool = False, where: str = '') -> None:
    """Refuse a dataset whose tasks contradict the model's (module docstring).

    Args:
        model_tasks: the model's built tasks ``{name: task}``.
        data_tasks: the dataset's built tasks.
        role: 'train' (every trained task must be among the dataset's), 'target' (the
            unlabelled target of domain adaptation: nothing required), 'val' or 'test'
            (every model task must be among the dataset's, else it is never evaluated).
            A dataset may have tasks the model lacks (a model narrowed to some of them).
        trained: the model's trained tasks (``model.train_tasks``); None: all.
        own_metric_cfg: the dataset evaluates under its own metric options (a model tested
            on another dataset's protocol): ``metric_cfg`` is not compared.
        where: names the dataloader in the message (e.g. ``'val_dataloader.dataset'``).
    """
    if role not in ROLES:
        raise ValueError(f'role must be one of {ROLES}, got {role!r}')
    where = where or f'{role}_dataloader.dataset'
    required: List[str] = []
    if role == 'train':
        required = list(trained if trained is not None else model_tasks)
    elif role in ('val', 'test'):
        required = list(model_tasks)
    missing = [t for t in required if t not in data_tasks]
    if missing:
        what = ('are trained (model.tasks / model.train_tasks) but would get no labels'
                if role == 'train' else 'are predicted but would never be evaluated')
        raise ValueError(
            f'{where}.tasks {list(data_tasks)} lack {missing}, which {what}: add them to '
            f"the dataset's tasks, or leave them out of the model's "
            f'({"model.train_tasks" if role == "train" else "model.tasks"}); model tasks '
            f'{list(model_tasks)}')
    problems: Dict[str, List[str]] = {}
    for name, task in model_tasks.items():
        if name in data_tasks:
            diff = task_differences(task, data_tasks[name], compare_metric=not own_metric_cfg)
            if diff:
                problems[name] = diff
    if problems:
        lines = '; '.join(f'{name}: {", ".join(d)}' for name, d in problems.items())
        raise ValueError(
            f'model.tasks and {where}.tasks configure the same task differently ({lines}). '
            'The model builds its heads and losses from its copy, the dataset decodes and '
            'evaluates with its own: give both the same task configs (one `tasks` list for '
            "both). A dataset evaluated under its own metric protocol sets "
            'own_metric_cfg=True.')
