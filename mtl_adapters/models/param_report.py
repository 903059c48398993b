"""Parameter counts of a multi-task model: total, trainable, per component, per method and task.

Components: ``trunk`` (the pretrained encoder, including the pretrained weights inside adapter
blocks), ``adapters`` (everything the encoder's method adds to it, i.e. its
``adapter_named_parameters()``: the adapter blocks and task embeddings, VPT's prompts,
learnable memory, LoRA factors; the table shows it under the encoder's ``method_name`` if it
has one), ``decoder.<task>`` (a task's
decoder without its head), ``head.<task>`` (its task head) and ``other``.

Per method and task (every encoder variant): ``method`` names the encoder's method (its
``method_name``; else its class name, or ``frozen encoder (decoders only)`` for a frozen
encoder without one); ``encoder_trainable`` is what the method trains in the encoder (the
adapters, or the whole trunk for full fine-tuning), split into ``encoder_per_task[t]`` (what
only task t uses) and ``encoder_shared`` (the rest, used by every task). A task's own share is
read from the encoder, first that applies:

1. ``task_named_parameters(task)``: the parameters only that task uses (memory, LoRA);
2. ``per_task_numel()``: the values each task owns inside tensors stacked over the tasks (VPT);
3. ``task_embeddings``: one row of the (T, d) embeddings (the adapter encoder);
4. nothing (frozen or fully shared encoders).

The per-task add-on is what one more task costs: its decoder + head + its own encoder share.
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


def encoder_method(encoder: nn.Module) -> str:
    """The name of an encoder's method (see the module docstring)."""
    name = getattr(encoder, 'method_name', None)
    if name:
        return str(name)
    if not hasattr(encoder, 'adapter_named_parameters') and not any(
            p.requires_grad for p in encoder.parameters()):
        return 'frozen encoder (decoders only)'
    return type(encoder).__name__


def encoder_task_numel(encoder: nn.Module, task: str) -> int:
    """Trainable values of the encoder that only ``task`` uses (see the module docstring)."""
    if hasattr(encoder, 'task_named_parameters'):
        return sum(p.numel() for _, p in encoder.task_named_parameters(task) if p.requires_grad)
    if hasattr(encoder, 'per_task_numel'):
        return int(encoder.per_task_numel())
    emb = getattr(encoder, 'task_embeddings', None)
    if emb is not None and emb.requires_grad:
        return int(emb.shape[1])
    return 0


def parameter_report(model: nn.Module) -> dict:
    """Count a ``MultiTaskModel``'s parameters by component, method and task; see the module
    docstring."""
    model = unwrap_model(model)
    components: Dict[str, list] = {}
    assigned = set()

    def take(name, params):
        params = [p for p in params if id(p) not in assigned]
        assigned.update(id(p) for p in params)
        components.setdefault(name, []).extend(params)

    encoder = getattr(model, 'encoder', None)
    if encoder is not None:
        if hasattr(encoder, 'adapter_named_parameters'):
            take('adapters', [p for _, p in encoder.adapter_named_parameters()])
        take('trunk', encoder.parameters())
    decoders = getattr(model, 'decoders', {})
    for name, dec in decoders.items():
        head = getattr(dec, 'head', None)
        if head is not None:
            take(f'head.{name}', head.parameters())
        take(f'decoder.{name}', dec.parameters())
    take('other', model.parameters())
    comp = {k: _count(v) for k, v in components.items() if v or k in ('trunk', 'adapters')}
    per_task, own = {}, {}
    for name in decoders:
        own[name] = encoder_task_numel(encoder, name) if encoder is not None else 0
        n = sum(comp.get(f'{k}.{name}', dict(total=0))['total'] for k in ('decoder', 'head'))
        per_task[name] = n + own[name]
    enc_trainable = _count(encoder.parameters())['trainable'] if encoder is not None else 0
    report = dict(_count(model.parameters()), components=comp, per_task_addon=per_task)
    report['num_tasks'] = len(decoders)
    report['method'] = encoder_method(encoder) if encoder is not None else 'none'
    #: the table's name for the 'adapters' component: the method's, where the encoder names it
    report['adapters_label'] = getattr(encoder, 'method_name', None) or 'adapters'
    report['encoder_trainable'] = enc_trainable
    report['encoder_per_task'] = own
    report['encoder_shared'] = enc_trainable - sum(own.values())
    return report


def format_param_report(report: dict) -> str:
    """A fixed-width table of ``parameter_report``'s result (millions and raw counts)."""
    method = report.get('method')
    lines = [f'{"component":<22}{"params":>14}{"trainable":>14}{"M":>10}',
             '-' * 60]
    for name, c in report['components'].items():
        label = report.get('adapters_label', name) if name == 'adapters' else name
        lines.append(f'{label:<22}{c["total"]:>14,}{c["trainable"]:>14,}'
                     f'{c["total"] / 1e6:>10.3f}')
    lines.append('-' * 60)
    lines.append(f'{"total":<22}{report["total"]:>14,}{report["trainable"]:>14,}'
                 f'{report["total"] / 1e6:>10.3f}')
    if method is not None:
        lines.append(f'method: {method}')
        lines.append(f'{"  encoder, trainable":<36}{report["encoder_trainable"]:>14,}'
                     f'{report["encoder_trainable"] / 1e6:>10.3f}')
        lines.append(f'{"    shared by all tasks":<36}{report["encoder_shared"]:>14,}'
                     f'{report["encoder_shared"] / 1e6:>10.3f}')
        for name, n in report['encoder_per_task'].items():
            lines.append(f'{"    own to " + name:<36}{n:>14,}{n / 1e6:>10.3f}')
    for name, n in report['per_task_addon'].items():
        lines.append(f'{"per-task add-on " + name:<36}{n:>14,}{n / 1e6:>10.3f}')
    return '\n'.join(lines)
