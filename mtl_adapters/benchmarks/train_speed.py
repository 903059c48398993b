"""Training speed of the adapter model with 1-4 tasks: images/s, peak memory, trunk vs branch.

Run ``python -m mtl_adapters.benchmarks.train_speed [--narrow] [--device cuda] ...`` (or
``python tools/benchmark.py --speed ...``). For T = 1..4 tasks (seg, depth, normal, edge
prefixes) it builds ``MultiTaskModel(AdaptedSwinV2Encoder + SwinDecoder per task)`` and times
full training steps (forward, task losses on random targets, backward, AdamW step): the median
over ``--iters`` steps after ``--warmup``. Each step is split into the frozen trunk (once per
image, no_grad) and the branch (adapters for all tasks batched, decoders, losses, backward,
step), so the table shows the trunk's cost staying flat as tasks are added. Peak memory is
measured from just before the model is built (model, optimizer state and activations): CUDA
max-allocated minus the allocated level on GPU; on CPU the RSS high-water mark minus the RSS
(Linux ``/proc``, after ``malloc_trim``). Prints a table and writes JSON (``--out``).

``--strategy per-task`` times the way the authors' release trains instead: the whole encoder
(trunk and adapter blocks) runs once per task, tasks one after another, on the same model and
data; the ratio of the two rows is the speed-up of running the trunk once and batching tasks.
"""
import argparse
import ctypes
import gc
import json
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from .common import random_samples

TASK_CFGS = [dict(type='SemanticTask', num_classes=17), dict(type='DepthTask'),
             dict(type='NormalTask'), dict(type='EdgeTask')]
NARROW = dict(embed_dim=32, num_heads=(1, 2, 4, 8))


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='swinv2_tiny_window8_256', help='timm swinv2_* name')
    p.add_argument('--narrow', action='store_true', help='the CPU demo width (embed_dim 32)')
    p.add_argument('--img-size', type=int, nargs='+', default=[256], help='H [W]')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--tasks', type=int, nargs='+', default=[1, 2, 3, 4],
                   help='task counts to run (prefixes of seg, depth, normal, edge)')
    p.add_argument('--iters', type=int, default=10, help='timed steps')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--seg-classes', type=int, default=17)
    p.add_argument('--strategy', nargs='+', choices=['batched', 'per-task'],
                   default=['batched', 'per-task'],
                   help="'batched': trunk once, tasks batched as (B*T) (ours); 'per-task': the "
                        "whole encoder once per task (as the authors' release)")
    p.add_argument('--out', default='work_dirs/benchmarks/train_speed.json')
    return p.parse_args(argv)


def _proc_kb(field: str) -> Optional[int]:
    """A ``/proc/self/status`` field in kB (None off Linux)."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(field + ':'):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the RSS high-water mark (Linux); False if not possible."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc), so RSS deltas are honest."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def build_model(args, num_tasks: int, size):
    """The adapter model for the first ``num_tasks`` tasks."""
    from mtl_adapters.registry import MODELS
    tasks = [dict(c) for c in TASK_CFGS[:num_tasks]]
    tasks[0]['num_classes'] = args.seg_classes
    match = re.search(r'window(\d+)', args.model)
    window = int(match.group(1)) if match else 8
    encoder = dict(type='AdaptedSwinV2Encoder', model_name=args.model, pretrained=None,
                   img_size=tuple(size), model_kwargs=dict(NARROW) if args.narrow else None,
                   embed_dim=32 if args.narrow else 64)
    decoder = dict(type='SwinDecoder', window_size=window, img_size=tuple(size),
                   head_channels=16 if args.narrow else 32)
    torch.manual_seed(0)
    return MODELS.build(dict(type='MultiTaskModel', tasks=tasks, encoder=encoder,
                             decoder=decoder))


def _sync(device: torch.device) -> None:
    """Wait for the device."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def run_one(args, num_tasks: int, size, strategy: str = 'batched') -> Dict:
    """Time ``args.iters`` training steps with ``num_tasks`` tasks; one result row."""
    device = torch.device(args.device)
    _trim_heap()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = _proc_kb('VmRSS')
        can_reset = _reset_rss_peak()
    model = build_model(args, num_tasks, size).to(device).train()
    enc = model.encoder
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4)
    img = torch.randn(args.batch_size, 3, *size, device=device)
    samples = random_samples(model, args.batch_size, size, device)
    names = model.task_names
    amp_dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(args.amp)
    scaler = torch.amp.GradScaler(device.type) if args.amp == 'fp16' else None

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def step():
        _sync(device)
        t0 = time.perf_counter()
        with autocast():
            trunk = enc.trunk(img)
        _sync(device)
        t1 = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        with autocast():
            if strategy == 'batched':
                feats = enc.adapt(trunk, names)
            else:          # the whole encoder again for every task (trunk included)
                feats = {t: enc.adapt(trunk if i == 0 else enc.trunk(img), [t])[t]
                         for i, t in enumerate(names)}
            outs = {t: model.decoders[t](feats[t], tuple(size)) for t in names}
        losses = model.task_losses({t: o.float() for t, o in outs.items()}, samples)
        loss = sum(model.task_weights[i] * losses[t] for i, t in enumerate(names))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optim)
            scaler.update()
        else:
            loss.backward()
            optim.step()
        _sync(device)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.iters)]
    if device.type == 'cuda':
        peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
        mem_kind = 'cuda max allocated - allocated before build'
    else:
        hwm = _proc_kb('VmHWM')
        peak_mb = (hwm - base) / 1024 if (hwm and base and can_reset) else float('nan')
        mem_kind = 'RSS high-water - RSS before build'
    trunk_s = statistics.median(t for t, _ in times)
    branch_s = statistics.median(b for _, b in times)
    total_s = statistics.median(t + b for t, b in times)
    trainable = sum(p.numel() for p in params)
    return dict(tasks=num_tasks, strategy=strategy, task_names=names,
                batch_size=args.batch_size,
                img_size=list(size), step_ms=total_s * 1e3, trunk_ms=trunk_s * 1e3,
                branch_ms=branch_s * 1e3, images_per_s=args.batch_size / total_s,
                peak_mem_mb=peak_mb, memory=mem_kind, trainable_params=trainable)


def format_table(rows: List[Dict]) -> str:
    """Fixed-width table of the result rows."""
    head = (f'{"strategy":>9} {"tasks":>5} {"img/s":>8} {"step ms":>9} {"trunk ms":>9} '
            f'{"branch ms":>10} {"peak MB":>9} {"trainable M":>12}')
    lines = [head, '-' * len(head)]
    for r in rows:
        lines.append(f'{r["strategy"]:>9} {r["tasks"]:>5} {r["images_per_s"]:>8.2f} '
                     f'{r["step_ms"]:>9.1f} '
                     f'{r["trunk_ms"]:>9.1f} {r["branch_ms"]:>10.1f} {r["peak_mem_mb"]:>9.1f} '
                     f'{r["trainable_params"] / 1e6:>12.3f}')
    return '\n'.join(lines)


def main(argv=None) -> List[Dict]:
    """Run the benchmark, print the table, write JSON; returns the rows."""
    args = parse_args(argv)
    from mtl_adapters.registry import register_all_modules
    register_all_modules()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.img_size * 2 if len(args.img_size) == 1 else args.img_size[:2]
    rows = []
    for strategy in args.strategy:
        for n in args.tasks:
            row = run_one(args, n, size, strategy)
            rows.append(row)
            print(f'[train_speed] {strategy}, {n} task(s): {row["images_per_s"]:.2f} img/s',
                  flush=True)
    dev = (torch.cuda.get_device_name(args.device) if args.device.startswith('cuda')
           else platform.processor() or platform.machine())
    print(f'\nmodel {args.model}{" (narrow)" if args.narrow else ""}, {size[0]}x{size[1]}, '
          f'batch {args.batch_size}, amp {args.amp}, device {args.device} ({dev}), '
          f'median of {args.iters} steps after {args.warmup} warm-up')
    print(format_table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(model=args.model, narrow=args.narrow, amp=args.amp, device=args.device,
                device_name=dev, torch=torch.__version__, threads=torch.get_num_threads(),
                iters=args.iters, warmup=args.warmup)
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    print(f'wrote {out}')
    return rows


if __name__ == '__main__':
    main()
