"""The three generalisation settings on the synthetic scenes, each next to its naive baseline on
the same budget, over several seeds (README: "Generalisation settings, measured").

    python tools/benchmark.py --generalisation [--max-iters 60] [--seeds 0 1 2]
    python tools/benchmark.py --generalisation --report-only     # tabulate what has finished

The source domain is ``data/synthetic`` ('default' style), the target ``data/synthetic_alt``
('alt' style: the same geometry distribution and classes, another appearance); a root without
``splits.csv`` is rendered with the demo's parameters. Per seed:

* ``source`` (``configs/generalisation/uda_source-only_*``): the S-D-N-E adapter model trained
  on the source only, tested on the target; the baseline of UDA, and (tested again under the
  target's label protocol) of DG.
* DG: ``source`` tested through ``configs/generalisation/dg_*`` (the target's class map: S over
  the classes the target labels) against ``dg-oracle_*`` (trained on the target: the upper
  bound).
* UDA: ``configs/generalisation/uda_{adversarial,mean-teacher}_*`` (source labelled, target
  images only) against ``source``.
* Zero-shot task transfer: the S-D-N TROA source model (``zeroshot-source_*``) tested on the
  target, against the same checkpoint adapted on the target with only S labelled
  (``zeroshot_*_s-to-sdn``, ``--max-iters`` more iterations; D and N get no target label).

Every run is ``tools/train.py`` + ``tools/test.py`` in fresh processes (``weighting_comparison
.run``) with ``randomness.seed`` set, all data roots absolute, in ``<work-dir>/seed<s>/<run>-<key>``
named by everything that defines the run (``common.define_cell``); finished runs of the same
definition are skipped, so an interrupted benchmark resumes and another budget reruns; a
failed run is listed under the tables and the others go on. Each setting's table gives the
target's headline metrics as
mean ± std over the seeds and Δm (%) against the setting's baseline, per seed. Writes
``<work-dir>/generalisation.{json,md}``.
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional

from mtl_adapters.benchmarks.common import (CellPaths, mean_teacher_schedule, write_json,
                                            write_text)
from mtl_adapters.benchmarks.weighting_comparison import (BASE, COLUMNS, REPO, derived_cell,
                                                          fmt, markdown, run, test_command)

DEFAULT_WORK_DIR = 'work_dirs/generalisation'
GEN = 'configs/generalisation/'
CONFIGS = dict(
    source=GEN + 'uda_source-only_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_'
                 'sdne.py',
    dg=GEN + 'dg_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_sdne.py',
    oracle=GEN + 'dg-oracle_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-alt-128x128_sdne.py',
    uda_adversarial=GEN + 'uda_adversarial_vtagml-swinv2-tiny-narrow_1xb8-600_'
                          'synthetic-to-alt-128x128_sdne.py',
    uda_mean_teacher=GEN + 'uda_mean-teacher_vtagml-swinv2-tiny-narrow_1xb8-600_'
                           'synthetic-to-alt-128x128_sdne.py',
    zs_source=GEN + 'zeroshot-source_troa-vtagml-swinv2-tiny-narrow_1xb8-600_'
                    'synthetic-128x128_sdn.py',
    zs_s=GEN + 'zeroshot_troa-vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_'
               's-to-sdn.py',
)

#: (setting, [(row label, run name)], baseline run name); the first row is the baseline
SETTINGS = [
    ('Domain generalisation (S over the 6 classes the target labels)',
     [('trained on source, tested on target (DG)', 'source_dg'),
      ('trained on target (upper bound)', 'oracle')], 'source_dg'),
    ('Unsupervised domain adaptation (target labels never read)',
     [('source only', 'source'), ('adversarial (per-task discriminators)', 'uda_adversarial'),
      ('mean teacher (EMA pseudo-labels)', 'uda_mean_teacher')], 'source'),
    ('Zero-shot task transfer (S-D-N; only S labelled on the target)',
     [('source model, no adaptation', 'zs_source'),
      ('adapted on target with S labels (D, N zero-shot)', 'zs_s')], 'zs_source'),
]


def test_only(name: str, config: str, checkpoint: str, work_dir: str,
              report_only: bool = False) -> Optional[dict]:
    """``tools/test.py`` of ``checkpoint`` under ``config`` (skipped if its metrics exist)."""
    work_dir = osp.abspath(work_dir)
    steps = [('test', test_command(config, checkpoint, work_dir,
                                   osp.join(work_dir, 'test_metrics.json')))]
    return run(name, config, work_dir, 0, report_only, steps=steps)


def seed_runs(seed: int, args, source: str, target: str,
              failures: List[str]) -> Dict[str, Optional[dict]]:
    """Train and test every run of one seed; ``{run name: test metrics or None}``. A run that
    fails is None and is listed in ``failures`` (so are the runs that needed it); the others
    go on."""
    root = osp.abspath(osp.join(args.work_dir, f'seed{seed}'))
    iters, write = args.max_iters, not args.report_only
    on_target = ('val_dataloader = dict(dataset=dict(data_root={t!r}))\n'
                 'test_dataloader = dict(dataset=dict(data_root={t!r}))\n').format(t=target)

    def derived(name: str, base: str, train_root: str, extra: str = '', **how) -> CellPaths:
        return derived_cell(root, name, base, train_root, iters, seed, extra, write=write,
                            **how)

    def attempt(name: str, step, *step_args) -> Optional[dict]:
        try:
            return step(name, *step_args, args.report_only)
        except RuntimeError as exc:              # report it, go on with the next run
            failures.append(f'seed {seed}: {exc}')
            print(f'  FAILED: {exc}', flush=True)
            return None

    def train(name: str, cell: CellPaths) -> Optional[dict]:
        return attempt(name, run, cell.config, cell.work_dir, iters)

    def last_checkpoint(cell: CellPaths) -> str:
        return osp.join(cell.work_dir, f'iter_{iters}.pth')

    out: Dict[str, Optional[dict]] = {}
    source_cell = derived('source', CONFIGS['source'], source, on_target)
    out['source'] = train('source', source_cell)
    # a test-only cell is defined by the checkpoint it tests too (whose path holds the key of
    # the run that trained it)
    checkpoint = last_checkpoint(source_cell)
    dg_cell = derived('source_dg', CONFIGS['dg'], source,
                      f'test_dataloader = dict(dataset=dict(data_root={target!r}))\n',
                      checkpoint=checkpoint)
    out['source_dg'] = None if out['source'] is None else attempt(
        'source_dg', test_only, dg_cell.config, checkpoint, dg_cell.work_dir)
    out['oracle'] = train('oracle', derived('oracle', CONFIGS['oracle'], target))
    uda_loop = (f'train_cfg = dict(max_iters={iters}, val_interval={iters}, '
                f'target_dataloader=dict(dataset=dict(data_root={target!r})))\n')
    ramp = f'model = dict({mean_teacher_schedule(iters)})\n'   # scaled to this run
    for name in ('uda_adversarial', 'uda_mean_teacher'):
        extra = on_target + uda_loop + (ramp if name == 'uda_mean_teacher' else '')
        out[name] = train(name, derived(name, CONFIGS[name], source, extra))
    zs_source = derived('zs_source', CONFIGS['zs_source'], source, on_target)
    out['zs_source'] = train('zs_source', zs_source)
    out['zs_s'] = None if out['zs_source'] is None else train(
        'zs_s', derived('zs_s', CONFIGS['zs_s'], target,
                        f'load_from = {last_checkpoint(zs_source)!r}\n'))
    return out


def tabulate(results: Dict[int, Dict[str, Optional[dict]]], directions: Dict[str, bool],
             iters: int) -> str:
    """One Markdown table per setting: the target's metrics (mean ± std over the seeds) and
    Δm (%) against the setting's baseline, per seed."""
    from mtl_adapters.evaluation.delta_m import delta_m
    text = []
    for title, rows, base_name in SETTINGS:
        keys = [k for k in COLUMNS
                if any(r.get(base_name) and k in r[base_name] for r in results.values())]
        header = ['method', 'seeds'] + [f'{k} {"↑" if directions[k] else "↓"}' for k in keys] \
            + ['Δm vs first row (%) ↑']
        lines = []
        for label, name in rows:
            per_seed = [r[name] for r in results.values() if r.get(name)]
            dms = [delta_m(r[name], {k: r[base_name][k] for k in keys}, directions)
                   for r in results.values() if r.get(name) and r.get(base_name)]
            lines.append([label, str(len(per_seed))]
                         + [fmt([m[k] for m in per_seed if k in m]) for k in keys]
                         + ['0' if name == base_name else fmt(dms, True)])
        text.append(f'**{title}**, {iters} iterations per training run\n\n'
                    + markdown(header, lines))
    return '\n\n'.join(text)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--source-root', default='data/synthetic',
                        help="source domain ('default' style; rendered if missing)")
    parser.add_argument('--target-root', default='data/synthetic_alt',
                        help="target domain ('alt' style; rendered if missing)")
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR)
    parser.add_argument('--max-iters', type=int, default=60,
                        help='iterations of every training run (and of the zero-shot '
                        'adaptation)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='one run of every setting per seed (>= 3 to read the noise)')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: tabulate the runs that have finished')
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from mtl_adapters.data_generation.synthetic import generate
    from mtl_adapters.tasks import build_tasks
    source, target = osp.abspath(args.source_root), osp.abspath(args.target_root)
    for root, style, seed in ((source, 'default', 0), (target, 'alt', 1000)):
        if not args.report_only and not osp.isfile(osp.join(root, 'splits.csv')):
            generate(root, num_scenes=30, views_per_scene=10, size=(128, 128), seed=seed,
                     style=style, splits=(24, 3, 3))     # the demo's scenes in each style
    tasks = build_tasks(Config.fromfile(osp.join(REPO, BASE)).model.tasks)
    directions = {f'{n}/{k}': v for n, t in tasks.items() for k, v in t.metric_directions.items()}
    results: Dict[int, Dict[str, Optional[dict]]] = {}
    failures: List[str] = []
    for seed in args.seeds:
        print(f'seed {seed}', flush=True)
        results[seed] = seed_runs(seed, args, source, target, failures)
    table = tabulate(results, directions, args.max_iters)
    if failures:
        table += '\n\nFailed:\n' + '\n'.join(f'- {f}' for f in failures)
    print(table)
    os.makedirs(args.work_dir, exist_ok=True)
    summary = dict(max_iters=args.max_iters, seeds=args.seeds, runs=results, failures=failures)
    write_json(osp.join(args.work_dir, 'generalisation.json'), summary)
    write_text(osp.join(args.work_dir, 'generalisation.md'), table + '\n')
    return summary


if __name__ == '__main__':
    main()
