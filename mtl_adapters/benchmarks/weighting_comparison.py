"""S-D-N-E on the synthetic scenes with every task-weighting method, same budget; Δm against
single-task runs of the same model.

    python tools/benchmark.py --weighting [--max-iters 200] [--data-root data/synthetic]

Each run is ``tools/train.py`` then ``tools/test.py`` (test split) in a fresh process, with a
config derived from ``configs/troa/*`` (methods) or the S-D-N-E adapter config narrowed to one
task (baselines). Finished runs are skipped, so an interrupted comparison resumes. Writes
``<work-dir>/weighting_comparison.{json,md}`` and prints the table; the TROA runs' affinity
heatmaps stay in their work dirs (``troa/``).
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = 'configs/vtagml/vtagml_swinv2-tiny-narrow_1x8-600_synthetic-128_sdne.py'
#: the columns of the table: one or two headline metrics per task
COLUMNS = ('seg/mIoU', 'depth/rmse', 'depth/abs_rel', 'normal/mean', 'normal/11.25', 'edge/l1')

OVERRIDES = """
_base_ = {base!r}
_root = {root!r}
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end={warmup}),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin={warmup}, end={iters}),
]
train_dataloader = dict(dataset=dict(data_root=_root))
val_dataloader = dict(dataset=dict(data_root=_root))
test_dataloader = dict(dataset=dict(data_root=_root))
"""


def derived_config(path: str, base: str, root: str, iters: int, extra: str = '') -> str:
    """Write a config inheriting ``base`` with this comparison's budget and data."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(OVERRIDES.format(base=osp.join(REPO, base), root=osp.abspath(root),
                                 iters=iters, warmup=max(iters // 10, 1)) + extra)
    return path


def run(name: str, config: str, work_dir: str, iters: int) -> dict:
    """Train + test one configuration (skipped if its metrics exist); returns test metrics."""
    out = osp.join(osp.abspath(work_dir), 'test_metrics.json')
    if osp.isfile(out):
        with open(out) as f:
            return json.load(f)
    env = dict(os.environ, HF_HUB_OFFLINE='1', NO_ALBUMENTATIONS_UPDATE='1')
    work_dir = osp.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    for cmd in ([sys.executable, 'tools/train.py', config, '--work-dir', work_dir],
                [sys.executable, 'tools/test.py', config, osp.join(work_dir, f'iter_{iters}.pth'),
                 '--work-dir', work_dir, '--out', out]):
        with open(osp.join(work_dir, 'run.log'), 'a') as log:
            res = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        if res.returncode:
            raise RuntimeError(f'{name}: {" ".join(cmd)} failed; see {work_dir}/run.log')
    print(f'  {name}: {time.time() - start:.0f} s', flush=True)
    with open(out) as f:
        return json.load(f)


def main(argv=None) -> dict:
    """Run all single-task baselines and weighting methods; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--work-dir', default='work_dirs/weighting_comparison')
    parser.add_argument('--max-iters', type=int, default=200)
    parser.add_argument('--methods', nargs='*', default=None,
                        help='configs/troa/* names (prefix before "_vtagml"); default all')
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from mtl_adapters.datasets.synthetic_scenes import generate
    from mtl_adapters.evaluation.delta_m import delta_m
    from mtl_adapters.tasks import build_tasks
    generate(args.data_root, num_scenes=30, views_per_scene=10, size=(128, 128), seed=0,
             splits=(24, 3, 3))          # the demo's scenes (a no-op when they exist)
    tasks_cfg = Config.fromfile(osp.join(REPO, BASE)).model.tasks
    tasks = build_tasks(tasks_cfg)
    directions = {f'{n}/{k}': v for n, t in tasks.items() for k, v in t.metric_directions.items()}
    cfg_dir = osp.abspath(osp.join(args.work_dir, 'configs'))

    print('single-task baselines')
    baseline = {}
    for i, name in enumerate(tasks):
        cfg = derived_config(osp.join(cfg_dir, f'single_{name}.py'), BASE, args.data_root,
                             args.max_iters, f'model = dict(tasks=[_base_.tasks[{i}]])\n')
        metrics = run(f'single-{name}', cfg, osp.join(args.work_dir, f'single_{name}'),
                      args.max_iters)
        baseline.update({k: v for k, v in metrics.items() if k.startswith(f'{name}/')})

    print('weighting methods (S-D-N-E)')
    results = {}
    for path in sorted(glob.glob(osp.join(REPO, 'configs/troa/*.py'))):
        method = osp.basename(path).split('_vtagml')[0]
        if args.methods and method not in args.methods:
            continue
        cfg = derived_config(osp.join(cfg_dir, f'{method}.py'), osp.relpath(path, REPO),
                             args.data_root, args.max_iters)
        metrics = run(method, cfg, osp.join(args.work_dir, method), args.max_iters)
        keys = [k for k in COLUMNS if k in baseline]
        metrics['mtl/delta_m'] = delta_m(metrics, {k: baseline[k] for k in keys}, directions)
        results[method] = metrics

    header = ['method'] + list(COLUMNS) + ['Δm (%)']
    rows = [['single-task'] + [f'{baseline.get(k, float("nan")):.4g}' for k in COLUMNS] + ['0']]
    rows += [[m] + [f'{r.get(k, float("nan")):.4g}' for k in COLUMNS]
             + [f'{r["mtl/delta_m"]:+.2f}'] for m, r in results.items()]
    arrows = [''] + ['↑' if directions[k] else '↓' for k in COLUMNS] + ['↑']
    md = ['| ' + ' | '.join(f'{h} {a}'.strip() for h, a in zip(header, arrows)) + ' |',
          '|' + '---|' * len(header)] + ['| ' + ' | '.join(r) + ' |' for r in rows]
    table = '\n'.join(md)
    print(table)
    summary = dict(max_iters=args.max_iters, baseline=baseline, methods=results,
                   affinity_heatmaps=sorted(glob.glob(osp.join(args.work_dir, 'troa*', 'troa',
                                                               '*.png'))))
    with open(osp.join(args.work_dir, 'weighting_comparison.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    with open(osp.join(args.work_dir, 'weighting_comparison.md'), 'w') as f:
        f.write(table + '\n')
    return summary


if __name__ == '__main__':
    main()
