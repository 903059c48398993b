"""Parameter counts of a multi-task model: total, trainable, per component, per-task add-on.

Components: ``trunk`` (the pretrained encoder, including the pretrained weights inside adapter
blocks), ``adapters`` (everything the adapter method adds to the encoder, shared by all tasks,
task embeddings included), ``decoder.<task>`` (a task's decoder without its head),
``head.<task>`` (its task head) and ``other``. The per-task add-on is what one more task costs:
its decoder + head + one task-embedding row.
"""
from typing import Dict

import torch.nn as nn

from mtl_adapters.utils import unwrap_model


def _count(params) -> Dict[str, int]:
    """{'total': n, 'trainable': n} over unique parameters."""
    seen, total, trainable = set(), 0, 0
    for p in params:
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return dict(total=total, trainable=trainable)


def parameter_report(model: nn.Module) -> dict:
    """Count a ``MultiTaskModel``'s parameters by component; see the module docstring."""
    model = unwrap_model(model)
    components: Dict[str, list] = {}
    assigned = set()

    def take(name, params):
        params = [p for p in params if id(p) not in assigned]
        assigned.update(id(p) for p in params)
        components.setdefault(name, []).extend(params)

    encoder = getattr(model, 'encoder', None)
    adapter_params = []
    if encoder is not None:
        if hasattr(encoder, 'adapter_named_parameters'):
            adapter_params = [p for _, p in encoder.adapter_named_parameters()]
            take('adapters', adapter_params)
        take('trunk', encoder.parameters())
    decoders = getattr(model, 'decoders', {})
    for name, dec in decoders.items():
        head = getattr(dec, 'head', None)
        if head is not None:
            take(f'head.{name}', head.parameters())
        take(f'decoder.{name}', dec.parameters())
    take('other', model.parameters())
    comp = {k: _count(v) for k, v in components.items() if v or k in ('trunk', 'adapters')}
    emb = getattr(encoder, 'task_embeddings', None)
    emb_row = emb.shape[1] if emb is not None else 0
    per_task = {}
    for name in decoders:
        n = sum(comp.get(f'{k}.{name}', dict(total=0))['total'] for k in ('decoder', 'head'))
        per_task[name] = n + emb_row
    report = dict(_count(model.parameters()), components=comp, per_task_addon=per_task)
    report['num_tasks'] = len(decoders)
    return report


def format_param_report(report: dict) -> str:
    """A fixed-width table of ``parameter_report``'s result (millions and raw counts)."""
    lines = [f'{"component":<22}{"params":>14}{"trainable":>14}{"M":>10}',
             '-' * 60]
    for name, c in report['components'].items():
        lines.append(f'{name:<22}{c["total"]:>14,}{c["trainable"]:>14,}'
                     f'{c["total"] / 1e6:>10.3f}')
    lines.append('-' * 60)
    lines.append(f'{"total":<22}{report["total"]:>14,}{report["trainable"]:>14,}'
                 f'{report["total"] / 1e6:>10.3f}')
    for name, n in report['per_task_addon'].items():
        lines.append(f'{"per-task add-on " + name:<36}{n:>14,}{n / 1e6:>10.3f}')
    return '\n'.join(lines)
