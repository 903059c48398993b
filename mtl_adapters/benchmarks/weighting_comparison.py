"""S-D-N-E on the synthetic scenes with every task-weighting method (or every encoder method),
same budget, several seeds; Δm against single-task runs of the same model, budget and seed.

    python tools/benchmark.py --weighting [--max-iters 200] [--seeds 0 1 2] [--data-root ...]
    python tools/benchmark.py --weighting --family peft     # adapters vs VPT, memory, LoRA, ...
    python tools/benchmark.py --weighting --family decoders # full vs light Swin decoders

``--family peft`` compares the encoders of ``configs/peft/*`` with the adapter leaf, and
``--family decoders`` the adapter leaf with full and with light decoders; both add each
method's trainable parameters and its training images/s (wall time of ``tools/train.py`` over
the images it saw) to the table.

Each run is ``tools/train.py`` then ``tools/test.py`` (test split) in a fresh process, with a
config derived from ``configs/troa/*`` (methods) or the S-D-N-E adapter config narrowed to one
task (baselines), and ``randomness.seed`` set to the run's seed; its config and work dir
(``<work-dir>/seed<s>/<name>-<key>``) are named by everything that defines the run
(``common.define_cell``), so finished runs are reused only by the same budget. Δm is computed
per seed against that seed's single-task runs; the table reports mean ± std (sample std)
over the seeds, so a difference can be read against the noise. Finished runs are skipped, so
an interrupted comparison resumes. Writes ``<work-dir>/weighting_comparison.{json,md}`` and
prints the table; the TROA runs' affinity heatmaps stay in their work dirs (``troa/``), and
the JSON holds every seed's W and its mean.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

from .common import CellPaths, define_cell, write_json, write_text

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'
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


DEFAULT_WORK_DIR = 'work_dirs/weighting_comparison'


def weighting_methods() -> Dict[str, str]:
    """``{method: config}`` of ``configs/troa/*`` (name: the prefix before ``_vtagml``)."""
    return {osp.basename(p).split('_vtagml')[0]: osp.relpath(p, REPO)
            for p in sorted(glob.glob(osp.join(REPO, 'configs/troa/*.py')))}


def encoder_methods() -> Dict[str, str]:
    """``{method: config}``: the adapter leaf and ``configs/peft/*`` (name: the prefix before
    ``_swinv2``)."""
    methods = {'adapters': BASE}
    methods.update({osp.basename(p).split('_swinv2')[0]: osp.relpath(p, REPO)
                    for p in sorted(glob.glob(osp.join(REPO, 'configs/peft/*.py')))})
    return methods


def decoder_settings() -> Dict[str, str]:
    """``{setting: config}``: the adapter leaf with full Swin decoders and with the light ones
    (no blocks at 1/32; configs/_base_/models/vtagml_swinv2_tiny_light.py)."""
    return {'full-decoders': BASE,
            'light-decoders': 'configs/vtagml/vtagml-light_swinv2-tiny-narrow_1xb8-600_'
                              'synthetic-128x128_sdne.py'}


#: what ``--family`` compares
FAMILIES = {'weighting': weighting_methods, 'peft': encoder_methods,
            'decoders': decoder_settings}


def parameter_counts(config: str) -> Dict[str, int]:
    """``{'total': ..., 'trainable': ...}`` parameters of a config's model, built with random
    weights (nothing is trained or loaded: the count is known before a run starts)."""
    from mmengine.config import Config

    from mtl_adapters.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, config))
    params = list(MODELS.build(cfg.model).parameters())
    return dict(total=sum(p.numel() for p in params),
                trainable=sum(p.numel() for p in params if p.requires_grad))


def trainable_millions(config: str) -> float:
    """Trainable parameters (millions) of a config's model, built with random weights."""
    return parameter_counts(config)['trainable'] / 1e6


def derived_text(base: str, root: str, iters: int, seed: int, extra: str = '') -> str:
    """A config inheriting ``base`` with this comparison's budget, data and seed, and
    ``extra`` lines."""
    return (OVERRIDES.format(base=osp.join(REPO, base), root=osp.abspath(root), iters=iters,
                             warmup=max(iters // 10, 1))
            + f'randomness = dict(seed={seed})\n' + extra)


def derived_cell(parent: str, name: str, base: str, root: str, iters: int, seed: int,
                 extra: str = '', write: bool = True, **how) -> CellPaths:
    """The cell ``name`` under ``parent`` training ``derived_text(base, ...)``, named by its
    definition (``common.define_cell``: budget, seed, data, overrides, ``how`` it runs), its
    config written unless ``write=False`` (a report writes nothing)."""
    return define_cell(parent, name, derived_text(base, root, iters, seed, extra), write=write,
                       **how)


def mean_std(values: List[float]) -> tuple:
    """(mean, sample std; 0 for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: List[float], sign: bool = False) -> str:
    """``mean ± std`` with 4 significant digits (``+`` sign if asked)."""
    if not values:
        return 'n/a'
    mean, std = mean_std(values)
    return (f'{mean:+.2f} ± {std:.2f}' if sign else f'{mean:.4g} ± {std:.2g}')


def markdown(header: List[str], rows: List[List[str]]) -> str:
    """A Markdown table."""
    return '\n'.join(['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
                     + ['| ' + ' | '.join(r) + ' |' for r in rows])


def commands(config: str, work_dir: str, iters: int, out: str, launcher: str = 'none',
             gpus: int = 1) -> List[tuple]:
    """``[(step, argv), ...]`` of one run: ``tools/train.py`` (through ``torchrun --standalone
    --nproc_per_node gpus`` with ``launcher='pytorch'``) then ``tools/test.py`` of its last
    checkpoint, writing the test metrics to ``out`` (one process: the test split is small).
    The training runs with ``--resume``: a run interrupted before its metrics were written
    continues from its newest checkpoint (tools/train.py refuses a work dir holding a previous
    run otherwise), and one that never saved starts afresh."""
    work_dir = osp.abspath(work_dir)
    train = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir, '--resume']
    if launcher == 'pytorch':
        train = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                 '--nproc_per_node', str(gpus)] + train[1:] + ['--launcher', 'pytorch']
    elif launcher != 'none':
        raise ValueError(f'launcher must be "none" or "pytorch", got {launcher!r}')
    return [('train', train),
            ('test', test_command(config, osp.join(work_dir, f'iter_{iters}.pth'), work_dir,
                                  out))]


def test_command(config: str, checkpoint: str, work_dir: str, out: str) -> List[str]:
    """``tools/test.py`` of ``checkpoint`` under ``config``, metrics written to ``out``."""
    return [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir', work_dir,
            '--out', out]


def run(name: str, config: str, work_dir: str, iters: int, report_only: bool = False,
        launcher: str = 'none', gpus: int = 1, steps: Optional[List[tuple]] = None):
    """Train + test one configuration (skipped if its metrics exist); returns test metrics
    (None for a run that has not finished when ``report_only``). A failed step raises
    ``RuntimeError`` naming its log. ``steps`` replaces the train + test commands (e.g. a
    test of another run's checkpoint: ``[('test', test_command(...))]``); a step's argv may be
    a callable, called when the step starts (a test of a checkpoint chosen after training)."""
    out = osp.join(osp.abspath(work_dir), 'test_metrics.json')
    if osp.isfile(out):
        with open(out) as f:
            return json.load(f)
    if report_only:
        return None
    env = dict(os.environ, HF_HUB_OFFLINE='1', NO_ALBUMENTATIONS_UPDATE='1')
    work_dir = osp.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    seconds = {}
    for step, cmd in steps or commands(config, work_dir, iters, out, launcher, gpus):
        t0 = time.time()
        cmd = cmd() if callable(cmd) else cmd
        with open(osp.join(work_dir, 'run.log'), 'a') as log:
            res = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        if res.returncode:
            raise RuntimeError(f'{name}: {" ".join(cmd)} failed; see {work_dir}/run.log')
        seconds[step] = time.time() - t0
    print(f'  {name}: {time.time() - start:.0f} s', flush=True)
    with open(out) as f:
        metrics = json.load(f)
    if 'train' in seconds:
        metrics['time/train_s'] = seconds['train']      # wall time, start-up included
    write_json(out, metrics)
    return metrics


def main(argv=None) -> dict:
    """Run the single-task baselines and every weighting method for each seed; print and
    write the mean ± std table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR)
    parser.add_argument('--max-iters', type=int, default=200)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='one run of every configuration per seed (>= 3 to read noise)')
    parser.add_argument('--family', choices=sorted(FAMILIES), default='weighting',
                        help='what is compared: weighting methods (configs/troa/) or encoder '
                             'methods (configs/peft/ and the adapters)')
    parser.add_argument('--methods', nargs='*', default=None,
                        help='config names (prefix before "_vtagml" or "_swinv2"); default all')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: tabulate the runs that have finished (the "seeds" '
                        'column says how many per method)')
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from mtl_adapters.data_generation.synthetic import generate
    from mtl_adapters.evaluation.delta_m import delta_m
    from mtl_adapters.tasks import build_tasks
    generate(args.data_root, num_scenes=30, views_per_scene=10, size=(128, 128), seed=0,
             splits=(24, 3, 3))          # the demo's scenes (a no-op when they exist)
    tasks_cfg = Config.fromfile(osp.join(REPO, BASE)).model.tasks
    tasks = build_tasks(tasks_cfg)
    directions = {f'{n}/{k}': v for n, t in tasks.items() for k, v in t.metric_directions.items()}
    methods = FAMILIES[args.family]()
    methods = {m: p for m, p in methods.items() if not args.methods or m in args.methods}
    if args.work_dir == DEFAULT_WORK_DIR and args.family != 'weighting':
        args.work_dir = f'work_dirs/{args.family}_comparison'

    baseline: Dict[int, dict] = {}
    results: Dict[str, Dict[int, dict]] = {m: {} for m in methods}
    affinity: Dict[str, Dict[int, list]] = {}
    for seed in args.seeds:
        root = osp.join(args.work_dir, f'seed{seed}')
        print(f'seed {seed}: single-task baselines', flush=True)
        baseline[seed] = {}
        complete = True
        for i, name in enumerate(tasks):
            cell = derived_cell(root, f'single_{name}', BASE, args.data_root, args.max_iters,
                                seed, f'model = dict(tasks=[_base_.tasks[{i}]])\n',
                                write=not args.report_only)
            metrics = run(f'single-{name}', cell.config, cell.work_dir, args.max_iters,
                          args.report_only)
            if metrics is None:
                complete = False
                break
            baseline[seed].update({k: v for k, v in metrics.items()
                                   if k.startswith(f'{name}/')})
        if not complete:
            del baseline[seed]               # report-only: this seed's baselines are not done
            continue
        print(f'seed {seed}: {args.family} methods (S-D-N-E)', flush=True)
        keys = [k for k in COLUMNS if k in baseline[seed]]
        for method, path in methods.items():
            cell = derived_cell(root, method, path, args.data_root, args.max_iters, seed,
                                write=not args.report_only)
            metrics = run(method, cell.config, cell.work_dir, args.max_iters,
                          args.report_only)
            if metrics is None:
                continue
            metrics['mtl/delta_m'] = delta_m(metrics, {k: baseline[seed][k] for k in keys},
                                             directions)
            results[method][seed] = metrics
            final = osp.join(cell.work_dir, 'troa', 'troa_final.json')
            if osp.isfile(final):
                with open(final) as f:
                    affinity.setdefault(method, {})[seed] = json.load(f)['W']

    def column(per_seed: Dict[int, dict], key: str) -> List[float]:
        return [m[key] for m in per_seed.values() if key in m]

    header = ['method', 'seeds'] + [f'{k} {"↑" if directions[k] else "↓"}' for k in COLUMNS] + \
        ['Δm (%) ↑']
    extra = args.family != 'weighting'       # encoder methods: their cost next to their Δm
    if extra:
        header += ['trainable (M)', 'train img/s']
    batch = Config.fromfile(osp.join(REPO, BASE)).train_dataloader.batch_size
    rows = [['single-task', str(len(baseline))] + [fmt(column(baseline, k)) for k in COLUMNS]
            + ['0'] + (['', ''] if extra else [])]
    for m, r in results.items():
        if not r:
            continue
        row = [m, str(len(r))] + [fmt(column(r, k)) for k in COLUMNS] + \
            [fmt(column(r, 'mtl/delta_m'), True)]
        if extra:
            speed = [args.max_iters * batch / s for s in column(r, 'time/train_s')]
            row += [f'{trainable_millions(methods[m]):.3f}', fmt(speed)]
        rows.append(row)
    table = markdown(header, rows)
    names = list(tasks)
    w_tables = {}
    for method, per_seed in affinity.items():
        cells = [[mean_std([w[t][s] for w in per_seed.values()]) for s in range(len(names))]
                 for t in range(len(names))]
        mean_w = [[m for m, _ in row] for row in cells]
        std_w = [[d for _, d in row] for row in cells]
        w_tables[method] = dict(mean=mean_w, std=std_w, per_seed=per_seed)
        table += (f'\n\n{method}: W after {args.max_iters} iterations (rows: target task), '
                  f'mean ± std over {len(per_seed)} seeds\n\n')
        table += markdown(['W'] + names,
                          [[names[t]] + [f'{mean_w[t][s]:.3f} ± {std_w[t][s]:.3f}'
                                         for s in range(len(names))]
                           for t in range(len(names))])
    print(table)
    summary = dict(max_iters=args.max_iters, seeds=args.seeds, baseline=baseline,
                   methods=results, affinity=w_tables,
                   affinity_heatmaps=sorted(glob.glob(osp.join(args.work_dir, 'seed*',
                                                               'troa*', 'troa', '*.png'))))
    os.makedirs(args.work_dir, exist_ok=True)
    write_json(osp.join(args.work_dir, f'{args.family}_comparison.json'), summary)
    write_text(osp.join(args.work_dir, f'{args.family}_comparison.md'), table + '\n')
    return summary


if __name__ == '__main__':
    main()
