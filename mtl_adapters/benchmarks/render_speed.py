"""Speed of the synthetic scene renderer: ``render_view`` alone and ``generate`` end to end.

Run ``python -m mtl_adapters.benchmarks.render_speed``; it prints a table (stage, workers,
images, seconds, images/s) and writes JSON (``--out``). ``generate`` includes the PNG encoding,
the atomic writes and the worker pool start-up, into a temporary folder.
"""
import argparse
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from typing import List, Optional, Tuple

from mtl_adapters.data_generation.synthetic import generate, render_view, synthetic_tasks
from .common import write_json


def _render_job(args) -> None:
    """Render one view (pool worker)."""
    seed, size = args
    render_view(seed, size)


def time_render(num_images: int, size: int, workers: int) -> Tuple[float, int]:
    """(seconds, images) to render ``num_images`` views with ``workers`` processes, no writes."""
    jobs = [(seed, (size, size)) for seed in range(num_images)]
    start = time.perf_counter()
    if workers > 1:
        ctx = mp.get_context('fork' if 'fork' in mp.get_all_start_methods() else None)
        with ctx.Pool(workers) as pool:
            pool.map(_render_job, jobs, chunksize=max(1, num_images // (workers * 4)))
    else:
        for job in jobs:
            _render_job(job)
    return time.perf_counter() - start, num_images


def time_generate(num_images: int, size: int, workers: int,
                  views_per_scene: int = 8) -> Tuple[float, int]:
    """(seconds, images) for ``generate`` to write about ``num_images`` views to a temp folder."""
    scenes = max(1, round(num_images / views_per_scene))
    with tempfile.TemporaryDirectory(prefix='render_speed_') as tmp:
        start = time.perf_counter()
        generate(tmp, num_scenes=scenes, views_per_scene=views_per_scene, size=size,
                 seed=0, workers=workers, progress=False, splits=(1.0, 0.0, 0.0))
        return time.perf_counter() - start, scenes * views_per_scene


def main(argv: Optional[List[str]] = None) -> dict:
    """Time both stages for 1 and all available workers; print a table, write JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=128, help='square image size')
    parser.add_argument('--num-images', type=int, default=96,
                        help='images per measurement (generate: whole scenes of 8 views)')
    parser.add_argument('--workers', type=int, nargs='+', default=None,
                        help='worker counts to time (default: 1 and min(2, cpu count))')
    parser.add_argument('--out', default='work_dirs/benchmarks/render_speed.json',
                        help='JSON output path')
    args = parser.parse_args(argv)
    workers = args.workers or sorted({1, min(2, os.cpu_count() or 1)})

    render_view(0, (args.size, args.size))  # warm-up: imports, caches
    synthetic_tasks()
    rows = []
    for stage, fn in (('render_view', time_render), ('generate', time_generate)):
        for w in workers:
            seconds, images = fn(args.num_images, args.size, w)
            rows.append(dict(stage=stage, workers=w, images=images, seconds=seconds,
                             images_per_s=images / seconds))
    header = f"{'stage':<12} {'workers':>7} {'images':>6} {'seconds':>8} {'images/s':>9}"
    print(f'synthetic renderer, {args.size}x{args.size}, {os.cpu_count()} CPU(s)')
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f"{r['stage']:<12} {r['workers']:>7} {r['images']:>6} {r['seconds']:>8.2f} "
              f"{r['images_per_s']:>9.1f}")
    result = dict(benchmark='render_speed', size=[args.size, args.size],
                  cpu_count=os.cpu_count(), python=sys.version.split()[0],
                  machine=platform.machine(), rows=rows)
    write_json(args.out, result)
    return result


if __name__ == '__main__':
    main()
