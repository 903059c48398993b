"""Speed of the boundary benchmark (ODS/OIS/AP) on synthetic 480x640 prediction/GT pairs.

``python tools/benchmark.py --boundary [--num-images 654] [--workers 1 4]`` draws
``--num-images`` pairs (ground truth: the 1-pixel boundaries between random overlapping
ellipses; prediction: those boundaries at uneven strength plus spurious ones, blurred, shifted
by a pixel or two and mixed with smooth noise, in [0, 1], so that low thresholds give thick,
noisy regions as real detectors do), evaluates them
with :func:`mtl_adapters.tasks.boundary.boundary_counts` (99 thresholds, NYUD's
``max_dist=0.011``) for each worker count, and prints images/s and the projected time for the
654 NYUD test images; JSON goes to ``--out``. Drawing the pairs is not timed.
"""
import argparse
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import List, Optional, Tuple

import numpy as np

from mtl_adapters.tasks.boundary import boundary_counts, boundary_scores
from .common import write_json

#: images in the NYUDv2 test split
NYUD_TEST_IMAGES = 654


def synthetic_pair(seed: int, height: int = 480, width: int = 640,
                   ellipses: int = 24) -> Tuple[np.ndarray, np.ndarray]:
    """(prediction in [0, 1], binary ground truth), both (H, W) float32."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:height, :width]
    scale = min(height, width) / 480

    def boundaries(n: int) -> np.ndarray:
        labels = np.zeros((height, width), np.int32)
        for k in range(1, n + 1):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            ry, rx = rng.uniform(10, 150, 2) * scale
            labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = k
        edges = np.zeros((height, width), bool)
        edges[:-1] |= labels[:-1] != labels[1:]
        edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        return edges

    gt = boundaries(ellipses)
    spurious = boundaries(ellipses // 3)  # edges the annotators did not draw
    strength = ndimage.gaussian_filter(rng.random((height, width)), 15)
    strength = np.clip((strength - strength.min()) / max(np.ptp(strength), 1e-12), 0, 1)
    soft = ndimage.gaussian_filter(gt * (0.2 + 0.8 * strength) + 0.5 * spurious, 1.5)
    soft /= max(soft.max(), 1e-12)
    noise = ndimage.gaussian_filter(rng.random((height, width)), 2.0)
    noise = (noise - noise.mean()) / max(noise.std(), 1e-12)
    pred = np.clip(0.9 * soft + 0.05 * noise, 0.0, 1.0)
    pred = ndimage.shift(pred, rng.uniform(-2, 2, 2), order=1)
    return pred.astype(np.float32), gt.astype(np.float32)


def _job(args):
    pred, gt, kwargs = args
    return boundary_counts(pred, gt, **kwargs)


def time_counts(pairs, workers: int, **kwargs) -> Tuple[float, list]:
    """(seconds, per-image counts) for every pair with ``workers`` processes."""
    jobs = [(p, g, kwargs) for p, g in pairs]
    start = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            counts = list(pool.map(_job, jobs, chunksize=1))
    else:
        counts = [_job(j) for j in jobs]
    return time.perf_counter() - start, counts


def main(argv: Optional[List[str]] = None) -> dict:
    """Time the per-image counts for each worker count; print a table, write JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num-images', type=int, default=8,
                        help=f'pairs to evaluate ({NYUD_TEST_IMAGES} = the NYUD test split)')
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--thresholds', type=int, default=99)
    parser.add_argument('--max-dist', type=float, default=0.011,
                        help='matching tolerance, fraction of the diagonal (NYUD 0.011)')
    parser.add_argument('--workers', type=int, nargs='+', default=None,
                        help='worker counts to time (default: 1 and min(2, cpu count))')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmarks/boundary_speed.json',
                        help='JSON output path')
    args = parser.parse_args(argv)
    workers = args.workers or sorted({1, min(2, os.cpu_count() or 1)})
    pairs = [synthetic_pair(args.seed + i, args.height, args.width)
             for i in range(args.num_images)]
    kwargs = dict(thresholds=args.thresholds, max_dist=args.max_dist, gt_threshold=0.5,
                  max_value=1.0)
    boundary_counts(*pairs[0], **dict(kwargs, thresholds=3))  # warm-up: imports
    rows, scores = [], None
    for w in workers:
        seconds, counts = time_counts(pairs, w, **kwargs)
        scores = boundary_scores(counts, args.thresholds)
        rate = len(pairs) / seconds
        rows.append(dict(workers=w, images=len(pairs), seconds=seconds, images_per_s=rate,
                         projected_nyud_test_s=NYUD_TEST_IMAGES / rate))
    print(f'boundary benchmark, {args.height}x{args.width}, {args.thresholds} thresholds, '
          f'max_dist {args.max_dist}, {os.cpu_count()} CPU(s)')
    header = (f"{'workers':>7} {'images':>6} {'seconds':>8} {'images/s':>9} "
              f"{'654 images':>11}")
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f"{r['workers']:>7} {r['images']:>6} {r['seconds']:>8.2f} "
              f"{r['images_per_s']:>9.2f} {r['projected_nyud_test_s'] / 60:>9.1f} min")
    print('scores of the synthetic pairs: ' +
          ', '.join(f'{k} {scores[k]:.2f}' for k in ('odsF', 'oisF', 'AP')))
    result = dict(benchmark='boundary_speed', size=[args.height, args.width],
                  thresholds=args.thresholds, max_dist=args.max_dist,
                  cpu_count=os.cpu_count(), python=sys.version.split()[0],
                  machine=platform.machine(), rows=rows,
                  scores={k: scores[k] for k in ('odsF', 'oisF', 'AP')})
    write_json(args.out, result)
    return result


if __name__ == '__main__':
    main()
