"""Step time of the narrow CPU-demo model with TROA off vs on (interval 1 and 10), both modes.

``python -m mtl_adapters.benchmarks.troa_overhead [--iters 10] [--batch 8]`` builds the model of
``configs/troa/troa_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py`` (adapter
encoder), times full training steps (forward, loss, backward, AdamW step) on random 128 px batches,
with the variants interleaved step by step so machine load drifts cancel, and reports medians. An
update costs ``t_due - t_off`` once per ``interval`` steps, so the overhead at interval k is
``(t_due - t_off) / (k t_off)``. Prints a table and writes
``work_dirs/benchmarks/troa_overhead.json``.
"""
import argparse
import os
import statistics
import time

import torch

from .common import random_samples, write_json

CONFIG = 'configs/troa/troa_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def random_batch(model, batch: int, size: int, seed: int = 0):
    """(inputs, data samples) with random labels for every task of ``model``."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=g)
    return inputs, random_samples(model, batch, (size, size), generator=g)


def time_step(model, optim, inputs, samples, mode: str, due: bool) -> float:
    """Seconds for one training step (TROA due or not, in ``mode``)."""
    model.weighting.gradient_mode = mode
    model.weighting.due = due
    start = time.perf_counter()
    losses = model.loss(inputs, samples)
    loss, _ = model.parse_losses(losses)
    optim.zero_grad()
    loss.backward()
    optim.step()
    model.weighting.after_backward()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    """Run the benchmark; print the table and write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--iters', type=int, default=10, help='timed steps per variant')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--out', default='work_dirs/benchmarks/troa_overhead.json')
    args = parser.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from mmengine.config import Config

    from mtl_adapters.registry import MODELS
    from mtl_adapters.set_env import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(args.config).model)
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs, samples = random_batch(model, args.batch, args.size)
    variants = [('off', 'params', False), ('params', 'params', True),
                ('representation', 'representation', True)]
    times = {name: [] for name, _, _ in variants}
    for step in range(args.warmup + args.iters):
        for name, mode, due in variants:
            seconds = time_step(model, optim, inputs, samples, mode, due)
            if step >= args.warmup:
                times[name].append(seconds)
        print(f'step {step + 1}/{args.warmup + args.iters}', flush=True)
    t_off = statistics.median(times['off'])
    rows = [dict(variant='off', interval=None, step_s=t_off, overhead_pct=0.0)]
    for name in ('params', 'representation'):
        extra = statistics.median(times[name]) - t_off
        for interval in (1, 10):
            rows.append(dict(variant=name, interval=interval,
                             step_s=t_off + extra / interval,
                             overhead_pct=100.0 * extra / (interval * t_off)))
    result = dict(config=args.config, batch=args.batch, size=args.size, iters=args.iters,
                  threads=torch.get_num_threads(),
                  shared_params=sum(p.numel() for p in model.shared_parameters()),
                  raw_step_s={k: v for k, v in times.items()}, rows=rows)
    print(f'\n{"TROA":<16}{"interval":>9}{"step (s)":>11}{"overhead":>11}')
    for row in rows:
        interval = '-' if row['interval'] is None else str(row['interval'])
        print(f'{row["variant"]:<16}{interval:>9}{row["step_s"]:>11.3f}'
              f'{row["overhead_pct"]:>10.1f}%')
    write_json(args.out, result)
    return result


if __name__ == '__main__':
    main()
