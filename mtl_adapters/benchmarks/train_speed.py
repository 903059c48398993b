"""Training speed of the adapter model with 1-4 tasks: images/s, peak memory, and where a step's
time goes (trunk, adapters, decoders, losses, task weighting, optimizer), per speed option.

Run ``python tools/benchmark.py --speed [args...]`` (or ``python -m
mtl_adapters.benchmarks.train_speed``). For T = 1..4 tasks (seg, depth, normal, edge prefixes)
it builds ``MultiTaskModel(AdaptedSwinV2Encoder + SwinDecoder per task)`` and times full
training steps (forward, task losses on random targets, backward, AdamW step): the median over
``--iters`` steps after ``--warmup``. Each step is cut into stages, with a device sync at every
cut (``torch.cuda.synchronize`` on a GPU):

* ``trunk``: the frozen trunk, once per image, no_grad;
* ``adapters``: the task branch (adapter blocks, all tasks batched) forward + its backward;
* ``decoders``: the per-task decoders and heads forward + their backward (the backward is split
  where the gradients reach the encoder features: hooks on them, the last one to fire ends the
  decoders' part; autograd runs the later-built decoder nodes first);
* ``losses``: the task losses' forward;
* ``weighting``: the weighting method's step work (``--task-weighting troa``: a TROA update on every
  step, the worst case of ``TROAHook(interval=1)``; run outside autocast, in fp32: its gradients
  after the losses, its write to W after the optimizer step);
* ``optimizer``: AdamW's step.

Speed options, one row each (``--variants``; ``all`` for every one): ``base`` (fp32, timm's
explicit attention, full decoders), ``amp`` (bf16 autocast; fp16 with ``--amp-dtype fp16``),
``sdpa`` (fused window attention in adapters and decoders), ``light`` (decoders without blocks at
1/32), ``cp`` (gradient checkpointing of the decoder blocks), ``fused_adamw`` (AdamW's fused
kernel), ``fast`` (amp + sdpa + light + fused AdamW).

Peak memory is measured from just before the model is built (model, optimizer state and
activations): CUDA max-allocated minus the allocated level on GPU; on CPU the RSS high-water
mark minus the RSS (Linux ``/proc``, after ``malloc_trim``). Prints a table and writes JSON
(``--out``).

``--strategy per-task`` runs OUR encoder once per task (trunk and adapter blocks, tasks one
after another, our decoders): it isolates the gain of running the trunk once and batching
tasks, but it is not the release's step (its adapters after every block, its backward through
the whole trunk, its decoders and losses), which runs slower: for ours against the release's
strategy use the speed suite (``--speed --suite gpu|cpu``, ``speed_suite.py`` and
``release_strategy.py``).

On a GPU (the measurement the README's Speed section leaves open)::

    python tools/benchmark.py --speed --model swinv2_small_window8_256 --img-size 224 \
        --batch-size 32 --variants all --device cuda
"""
import argparse
import ctypes
import gc
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from mtl_adapters.utils import set_cpu_threads

from .common import random_samples, write_json

TASK_CFGS = [dict(type='SemanticTask', num_classes=17), dict(type='DepthTask'),
             dict(type='NormalTask'), dict(type='EdgeTask')]
NARROW = dict(embed_dim=32, num_heads=(1, 2, 4, 8))
#: the speed options and what each changes (see the module docstring)
VARIANTS = {
    'base': dict(),
    'amp': dict(amp=True),
    'sdpa': dict(attn_impl='sdpa'),
    'light': dict(light=True),
    'cp': dict(with_cp=True),
    'fused_adamw': dict(fused_adamw=True),
    'fast': dict(amp=True, attn_impl='sdpa', light=True, fused_adamw=True),
}
#: the decoder depths of the light setting (configs/_base_/models/vtagml_swinv2_*_light.py)
LIGHT_DEPTHS = (0, 2, 2, 2)
STAGES = ('trunk', 'adapters', 'decoders', 'losses', 'weighting', 'optimizer')


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='swinv2_tiny_window8_256', help='timm swinv2_* name')
    p.add_argument('--narrow', action='store_true', help='the CPU demo width (embed_dim 32)')
    p.add_argument('--img-size', type=int, nargs='+', default=[256], help='H [W]')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--tasks', type=int, nargs='+', default=[1, 2, 3, 4],
                   help='task counts to run (prefixes of seg, depth, normal, edge)')
    p.add_argument('--iters', '--steps', type=int, default=10, help='timed steps')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none',
                   help='autocast of every row (the amp variants use --amp-dtype)')
    p.add_argument('--amp-dtype', choices=['bf16', 'fp16'], default='bf16',
                   help='autocast dtype of the amp / fast variants')
    p.add_argument('--variants', nargs='+', default=['base'],
                   choices=list(VARIANTS) + ['all'], help='speed options, one row each')
    p.add_argument('--task-weighting', choices=['uniform', 'troa'], default='uniform',
                   help="'troa': a TROA update (params mode) on every step")
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: OMP_NUM_THREADS if set, else the available '
                   'cores)')
    p.add_argument('--seg-classes', type=int, default=17)
    p.add_argument('--strategy', nargs='+', choices=['batched', 'per-task'],
                   default=['batched', 'per-task'],
                   help="'batched': trunk once, tasks batched as (B*T) (ours); 'per-task': the "
                        "whole encoder once per task (as the authors' release)")
    p.add_argument('--out', default='work_dirs/benchmarks/train_speed.json')
    return p.parse_args(argv)


def proc_kb(field: str) -> Optional[int]:
    """A ``/proc/self/status`` field in kB (None off Linux)."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(field + ':'):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_rss_peak() -> bool:
    """Reset the RSS high-water mark (Linux); False if not possible."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc), so RSS deltas are honest."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def build_adapter_model(model_name: str, num_tasks: int, size, *, light: bool = False,
                        attn_impl: str = 'explicit', with_cp: bool = False,
                        model_kwargs: Optional[dict] = None, window: Optional[int] = None,
                        embed_dim: int = 64, head_channels: int = 32, seg_classes: int = 17,
                        weighting: str = 'uniform'):
    """Our adapter model (``AdaptedSwinV2Encoder`` + a ``SwinDecoder`` per task) for the first
    ``num_tasks`` of S-D-N-E, random init; the one builder of every speed benchmark.

    ``window`` (default: the ``windowN`` in ``model_name``, else 8) is the attention window of
    the trunk (through ``model_kwargs``) and of the decoders; ``light``: the light decoders
    (:data:`LIGHT_DEPTHS`); ``weighting``: ``'uniform'`` or ``'troa'`` (params mode).
    """
    from mtl_adapters.registry import MODELS
    tasks = [dict(c) for c in TASK_CFGS[:num_tasks]]
    tasks[0]['num_classes'] = seg_classes
    kwargs = dict(model_kwargs or {})
    if window is None:
        match = re.search(r'window(\d+)', model_name)
        window = kwargs.get('window_size', int(match.group(1)) if match else 8)
    else:
        kwargs['window_size'] = window
    encoder = dict(type='AdaptedSwinV2Encoder', model_name=model_name, pretrained=None,
                   img_size=tuple(size), model_kwargs=kwargs or None, embed_dim=embed_dim,
                   attn_impl=attn_impl)
    decoder = dict(type='SwinDecoder', window_size=window, img_size=tuple(size),
                   head_channels=head_channels, attn_impl=attn_impl, with_cp=with_cp)
    if light:
        decoder['depths'] = LIGHT_DEPTHS
    weighting_cfg = dict(type='UniformWeighting')
    if weighting == 'troa':
        weighting_cfg = dict(type='TROAWeighting', gradient_mode='params', loss_weighting=True)
    torch.manual_seed(0)
    return MODELS.build(dict(type='MultiTaskModel', tasks=tasks, encoder=encoder,
                             decoder=decoder, weighting=weighting_cfg))


def build_model(args, num_tasks: int, size, variant: Optional[dict] = None):
    """The adapter model for the first ``num_tasks`` tasks, with a variant's options."""
    variant = variant or {}
    narrow = args.narrow
    return build_adapter_model(
        args.model, num_tasks, size, light=bool(variant.get('light')),
        attn_impl=variant.get('attn_impl', 'explicit'), with_cp=variant.get('with_cp', False),
        model_kwargs=dict(NARROW) if narrow else None, embed_dim=32 if narrow else 64,
        head_channels=16 if narrow else 32, seg_classes=args.seg_classes,
        weighting=args.task_weighting)


def _sync(device: torch.device) -> None:
    """Wait for the device."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def run_one(args, num_tasks: int, size, strategy: str = 'batched',
            variant_name: str = 'base') -> Dict:
    """Time ``args.iters`` training steps with ``num_tasks`` tasks; one result row."""
    from mtl_adapters.weighting.base import TrainingStep
    variant = VARIANTS[variant_name]
    device = torch.device(args.device)
    trim_heap()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = proc_kb('VmRSS')
        can_reset = reset_rss_peak()
    model = build_model(args, num_tasks, size, variant).to(device).train()
    enc = model.encoder
    weighting = model.weighting
    weighting.scheduled = True                      # the benchmark plays TROAHook's part
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4, fused=bool(variant.get('fused_adamw')) or None)
    img = torch.randn(args.batch_size, 3, *size, device=device)
    samples = random_samples(model, args.batch_size, size, device)
    names = model.task_names
    amp = args.amp_dtype if variant.get('amp') else args.amp
    amp_dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(amp)
    scaler = torch.amp.GradScaler(device.type) if amp == 'fp16' else None

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def now() -> float:
        _sync(device)
        return time.perf_counter()

    def step() -> Dict[str, float]:
        """One training step, timed stage by stage (seconds)."""
        marks: List[float] = []
        train_step = TrainingStep(model=model, data_samples=samples)
        weighting.due = args.task_weighting == 'troa'
        weighting.before_forward(train_step)
        t0 = now()
        with autocast():
            trunk = enc.trunk(img)
        t1 = now()
        optim.zero_grad(set_to_none=True)
        affinity = weighting.task_affinity()
        with autocast():
            if strategy == 'batched':
                feats = enc.adapt(trunk, names, affinity=affinity)
            else:          # the whole encoder again for every task (trunk included)
                feats = {t: enc.adapt(trunk if i == 0 else enc.trunk(img), [t],
                                      affinity=affinity)[t] for i, t in enumerate(names)}
        t2 = now()
        for f in (f for fs in feats.values() for f in fs if f.requires_grad):
            f.register_hook(lambda g: marks.append(now()))   # decoders' backward reached f
        with autocast():
            outs = {t: model.decoders[t](feats[t], tuple(size)) for t in names}
        t3 = now()
        losses = model.task_losses({t: o.float() for t, o in outs.items()}, samples)
        t4 = now()
        train_step.outputs, train_step.losses = outs, losses
        weighting.after_losses(train_step)           # TROA's gradients (fp32, no autocast)
        result = weighting(torch.stack([losses[t] for t in names]))
        t5 = now()
        loss = sum(model.task_weights[i] * result.weights[i] * losses[t]
                   for i, t in enumerate(names))
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        t6 = now()
        t_dec_bwd = max(marks) if marks else t6
        if scaler is not None:
            scaler.step(optim)
            scaler.update()
        else:
            optim.step()
        t7 = now()
        weighting.after_backward()                   # the update is written to W here
        t8 = now()
        return dict(trunk=t1 - t0, adapters=(t2 - t1) + (t6 - t_dec_bwd),
                    decoders=(t3 - t2) + (t_dec_bwd - t5), losses=t4 - t3,
                    weighting=(t5 - t4) + (t8 - t7), optimizer=t7 - t6, step=t8 - t0)

    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.iters)]
    if device.type == 'cuda':
        peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
        mem_kind = 'cuda max allocated - allocated before build'
    else:
        hwm = proc_kb('VmHWM')
        peak_mb = (hwm - base) / 1024 if (hwm and base and can_reset) else float('nan')
        mem_kind = 'RSS high-water - RSS before build'
    median = {k: statistics.median(t[k] for t in times) for k in times[0]}
    stage_sum = sum(median[k] for k in STAGES)
    total_s = median['step']
    trainable = sum(p.numel() for p in params)
    return dict(tasks=num_tasks, strategy=strategy, variant=variant_name,
                options=dict(amp=amp, attn_impl=variant.get('attn_impl', 'explicit'),
                             decoder_depths=list(LIGHT_DEPTHS if variant.get('light')
                                                 else (2, 2, 2, 2)),
                             with_cp=bool(variant.get('with_cp')),
                             fused_adamw=bool(variant.get('fused_adamw')),
                             weighting=args.task_weighting),
                task_names=names, batch_size=args.batch_size,
                img_size=list(size), step_ms=total_s * 1e3, trunk_ms=median['trunk'] * 1e3,
                branch_ms=(total_s - median['trunk']) * 1e3,
                stage_ms={k: median[k] * 1e3 for k in STAGES},
                share={k: median[k] / stage_sum for k in STAGES},
                images_per_s=args.batch_size / total_s,
                peak_mem_mb=peak_mb, memory=mem_kind, trainable_params=trainable)


def format_table(rows: List[Dict]) -> str:
    """Fixed-width table of the result rows: speed, memory, and each stage's share of a step."""
    short = dict(trunk='trunk', adapters='adapt', decoders='decod', losses='loss',
                 weighting='weigh', optimizer='optim')
    head = (f'{"strategy":>9} {"variant":>11} {"tasks":>5} {"img/s":>8} {"step ms":>9} '
            f'{"trunk ms":>9} ' + ' '.join(f'{short[k] + " %":>7}' for k in STAGES)
            + f' {"peak MB":>9} {"trainable M":>12}')
    lines = [head, '-' * len(head)]
    for r in rows:
        lines.append(f'{r["strategy"]:>9} {r["variant"]:>11} {r["tasks"]:>5} '
                     f'{r["images_per_s"]:>8.2f} {r["step_ms"]:>9.1f} {r["trunk_ms"]:>9.1f} '
                     + ' '.join(f'{100 * r["share"][k]:>7.1f}' for k in STAGES)
                     + f' {r["peak_mem_mb"]:>9.1f} {r["trainable_params"] / 1e6:>12.3f}')
    return '\n'.join(lines)


def main(argv=None) -> List[Dict]:
    """Run the benchmark, print the table, write JSON; returns the rows."""
    args = parse_args(argv)
    from mtl_adapters.set_env import register_all_modules
    register_all_modules()
    set_cpu_threads(args.threads)
    size = args.img_size * 2 if len(args.img_size) == 1 else args.img_size[:2]
    variants = list(VARIANTS) if 'all' in args.variants else args.variants
    rows = []
    for strategy in args.strategy:
        for variant in variants:
            for n in args.tasks:
                row = run_one(args, n, size, strategy, variant)
                rows.append(row)
                print(f'[train_speed] {strategy}, {variant}, {n} task(s): '
                      f'{row["images_per_s"]:.2f} img/s', flush=True)
    dev = (torch.cuda.get_device_name(args.device) if args.device.startswith('cuda')
           else platform.processor() or platform.machine())
    print(f'\nmodel {args.model}{" (narrow)" if args.narrow else ""}, {size[0]}x{size[1]}, '
          f'batch {args.batch_size}, amp {args.amp} (variants: {args.amp_dtype}), weighting '
          f'{args.task_weighting}, device {args.device} ({dev}), median of {args.iters} steps '
          f'after {args.warmup} warm-up')
    print(format_table(rows))
    meta = dict(model=args.model, narrow=args.narrow, amp=args.amp, amp_dtype=args.amp_dtype,
                weighting=args.task_weighting, device=args.device, device_name=dev,
                torch=torch.__version__, threads=torch.get_num_threads(),
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                iters=args.iters, warmup=args.warmup, stages=list(STAGES))
    write_json(args.out, dict(meta=meta, rows=rows))
    return rows


if __name__ == '__main__':
    main()
