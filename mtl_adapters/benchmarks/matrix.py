"""Benchmark of task combinations: from the configs to the paper-style table in one command.

    python tools/benchmark.py --matrix                      # default matrix, 3 seeds
    python tools/benchmark.py --matrix --dry-run            # print the plan, run nothing
    python tools/benchmark.py --matrix --tasks S-D S-D-N-E --methods troa uniform lora
    python tools/benchmark.py --matrix --launcher pytorch --gpus 4   # each cell through torchrun

A cell is (task combination, method, seed): the method's config narrowed to the combination's
tasks (``model = dict(tasks=[_base_.model.tasks[i], ...])``) with this benchmark's budget,
data and seed (``weighting_comparison.derived_config``), trained and tested in fresh processes
(``weighting_comparison.run``). Cells run one after another; a cell whose test metrics exist is
not run again (an interrupted matrix continues where it stopped), and a cell that fails is
recorded and reported in the table while the others go on.

Methods are ``troa`` and ``uniform`` by default; ``--methods`` adds any of ``configs/troa/*``
(task weighting) or ``configs/peft/*`` (encoders) by name. TROA, uniform, GradNorm and PCGrad
only re-weight between tasks, so with one task they train the same model as the plain
adapters (TROA's W is [1]): the single-task cells run once per seed, as the ``single-task``
rows, which are both the 1-task point of these methods and the baseline of Δm (uncertainty
weighting is the exception: with one task it still scales the loss by ``c exp(-s)``, a learnt
learning-rate factor, and shares these rows all the same; read its 1-task point with that). An
encoder method is another model, so it gets its own single-task cells. The single-task row of
every task in a requested combination is added to the plan (Δm needs it).

Per row (combination x method): per-task metrics, Δm (%) against the same seed's single-task
rows, total and trainable parameters (the model built from the cell's config, nothing
trained; cached per row), training wall time (start-up included) and images/s, as mean ± std
over the seeds; a failed cell shows in the ``status`` column and under the table. Writes
``<work-dir>/matrix.{md,csv,json}`` and ``matrix.png`` (headline metric and Δm vs the number of
tasks, one line per method, std as error bars).

Default budget: 3 seeds (the fewest that show the noise) x 40 iterations (batch 8, 128 px, the
narrow demo model), 10 cells per seed; sized to finish on 2 CPU cores in under 30 minutes
(README: "Benchmark of task combinations").
"""
import argparse
import csv
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mtl_adapters.benchmarks import weighting_comparison as wc
from mtl_adapters.benchmarks.common import write_json

#: one letter per task of the synthetic scenes, as the configs name combinations (S-D-N-E)
LETTERS = {'S': 'seg', 'D': 'depth', 'N': 'normal', 'E': 'edge'}
DEFAULT_COMBOS = ('S', 'D', 'N', 'E', 'S-D', 'S-D-N', 'S-D-N-E')
DEFAULT_METHODS = ('troa', 'uniform')
#: the method name of the single-task baseline rows
SINGLE = 'single-task'
#: the metric drawn for each task in the plot
HEADLINE = {'seg': 'seg/mIoU', 'depth': 'depth/rmse', 'normal': 'normal/mean',
            'edge': 'edge/l1'}
DEFAULT_WORK_DIR = 'work_dirs/benchmark_matrix'
DEFAULT_ITERS = 40
DEFAULT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: a task combination, a method and a seed."""
    combo: str                  # 'S-D'
    tasks: Tuple[str, ...]      # ('seg', 'depth')
    method: str                 # 'troa', 'uniform', 'lora', ... or SINGLE
    method_config: str          # the method's config, relative to the repository
    task_index: Tuple[int, ...]  # the tasks' positions in that config's model.tasks
    seed: int
    root: str                   # the matrix's work dir (absolute)

    @property
    def row(self) -> Tuple[str, str]:
        """The table row this cell is a seed of."""
        return self.combo, self.method

    @property
    def row_dir(self) -> str:
        return osp.join(self.root, self.combo, self.method)

    @property
    def work_dir(self) -> str:
        return osp.join(self.row_dir, f'seed{self.seed}')

    @property
    def config(self) -> str:
        """The derived config (outside the work dir: tools/train.py dumps its own copy there)."""
        return osp.join(self.root, 'configs', f'{self.combo}_{self.method}_seed{self.seed}.py')

    @property
    def metrics_path(self) -> str:
        """Exists once the cell has finished (``tools/test.py --out``)."""
        return osp.join(self.work_dir, 'test_metrics.json')

    @property
    def name(self) -> str:
        return f'{self.combo} {self.method} seed {self.seed}'

    def config_text(self) -> str:
        """What the derived config adds to the budget: the combination's tasks."""
        picked = ', '.join(f'_base_.model.tasks[{i}]' for i in self.task_index)
        return f'model = dict(tasks=[{picked}])\n'


def available_methods() -> Dict[str, Tuple[str, bool]]:
    """``{name: (config, is_weighting)}``: ``configs/troa/*`` (task weighting) and
    ``configs/peft/*`` (encoders)."""
    methods = {m: (p, True) for m, p in wc.weighting_methods().items()}
    methods.update({m: (p, False) for m, p in wc.encoder_methods().items()
                    if p != wc.BASE})      # the adapter leaf is the uniform weighting's model
    return methods


def parse_combo(text: str) -> Tuple[str, ...]:
    """``'S-D-N'`` (letters or task names, '-' between) -> ``('seg', 'depth', 'normal')``."""
    names = tuple(LETTERS.get(part, part) for part in text.split('-') if part)
    if not names or len(set(names)) != len(names):
        raise ValueError(f'--tasks: {text!r} is not a combination of distinct tasks like S-D-N '
                         f'(letters {LETTERS})')
    return names


def combo_label(tasks: Sequence[str]) -> str:
    """``('seg', 'depth')`` -> ``'S-D'`` (task names without a letter stay as they are)."""
    short = {v: k for k, v in LETTERS.items()}
    return '-'.join(short.get(t, t) for t in tasks)


def model_tasks(config: str) -> List[str]:
    """The task names of a config's model, in order."""
    from mmengine.config import Config

    from mtl_adapters.tasks import build_tasks
    return list(build_tasks(Config.fromfile(osp.join(wc.REPO, config)).model.tasks))


def plan(combos: Sequence[str], methods: Sequence[str], seeds: Sequence[int], work_dir: str,
         catalogue: Optional[Dict[str, Tuple[str, bool]]] = None,
         tasks_of: Callable[[str], List[str]] = model_tasks) -> List[Cell]:
    """The cells, seed by seed (a seed's table is complete before the next seed starts): the
    single-task rows first (Δm needs them), then each method on each combination, smaller
    combinations first. ``catalogue``: ``{method: (config, is_weighting)}``."""
    catalogue = available_methods() if catalogue is None else catalogue
    unknown = [m for m in methods if m not in catalogue]
    if unknown:
        raise ValueError(f'--methods: unknown {unknown}; known (configs/troa/*, configs/peft/*): '
                         f'{sorted(catalogue)}')
    wanted = [parse_combo(c) for c in combos]
    singles = []
    for tasks in wanted:
        for t in tasks:
            if (t,) not in singles:
                singles.append((t,))
    multi = sorted({t for t in wanted if len(t) > 1}, key=lambda t: (len(t), wanted.index(t)))
    root = osp.abspath(work_dir)
    names = {}

    def cell(tasks, method, config, seed):
        if config not in names:
            names[config] = tasks_of(config)
        missing = [t for t in tasks if t not in names[config]]
        if missing:
            raise ValueError(f'--tasks: {combo_label(tasks)} needs {missing}, but {config} '
                             f'model.tasks has only {names[config]}')
        return Cell(combo_label(tasks), tasks, method, config,
                    tuple(names[config].index(t) for t in tasks), seed, root)

    cells = []
    for seed in seeds:
        cells += [cell(t, SINGLE, wc.BASE, seed) for t in singles]
        for method in methods:
            config, is_weighting = catalogue[method]
            cells += [cell(t, method, config, seed)
                      for t in (multi if is_weighting else singles + multi)]
    return cells


# ---------------------------------------------------------------------------------- running


def subprocess_runner(iters: int, launcher: str = 'none', gpus: int = 1) -> Callable:
    """The real cell runner: ``tools/train.py`` + ``tools/test.py`` in fresh processes."""
    def run_cell(cell: Cell) -> dict:
        return wc.run(cell.name, cell.config, cell.work_dir, iters, launcher=launcher, gpus=gpus)
    return run_cell


def count_parameters(cell: Cell) -> Dict[str, int]:
    """Total and trainable parameters of the cell's model (built from its config)."""
    return wc.parameter_counts(cell.config)


def execute(cells: Sequence[Cell], iters: int, data_root: str, run_cell: Callable,
            count_params: Callable = count_parameters, log=print) -> List[dict]:
    """Run every cell that has not finished; one record per cell.

    ``run_cell(cell) -> metrics`` trains and tests a cell and leaves its metrics at
    ``cell.metrics_path``; an exception marks that cell failed and the next one starts
    (KeyboardInterrupt still stops the matrix: what finished stays finished). Parameters are
    counted once per row and cached in ``<row dir>/params.json``.
    """
    records = []
    for i, cell in enumerate(cells):
        record = dict(combo=cell.combo, tasks=list(cell.tasks), method=cell.method,
                      seed=cell.seed, config=cell.config, work_dir=cell.work_dir)
        wc.derived_config(cell.config, cell.method_config, data_root, iters, cell.seed,
                          cell.config_text())
        record['params'] = cached_parameters(cell, count_params)
        if osp.isfile(cell.metrics_path):
            with open(cell.metrics_path) as f:
                record.update(status='done', metrics=json.load(f))
            log(f'[{i + 1}/{len(cells)}] {cell.name}: finished before', flush=True)
        else:
            log(f'[{i + 1}/{len(cells)}] {cell.name}', flush=True)
            try:
                record.update(status='done', metrics=run_cell(cell))
            except Exception as exc:         # reported in the table; the others go on
                record.update(status='failed', error=f'{type(exc).__name__}: {exc}')
                log(f'[{i + 1}/{len(cells)}] {cell.name}: FAILED: {record["error"]}',
                    flush=True)
        records.append(record)
    return records


def cached_parameters(cell: Cell, count_params: Callable) -> Optional[Dict[str, int]]:
    """The row's parameter counts, counted once (None, with the reason, if the model does not
    build: that is reported, not raised)."""
    path = osp.join(cell.row_dir, 'params.json')
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    try:
        counts = dict(count_params(cell))
    except Exception as exc:
        return dict(error=f'{type(exc).__name__}: {exc}')
    os.makedirs(cell.row_dir, exist_ok=True)
    write_json(path, counts, indent=None)
    return counts


# ------------------------------------------------------------------------------ aggregating


def add_delta_m(records: List[dict], directions: Dict[str, bool]) -> None:
    """``metrics['mtl/delta_m']`` of every finished cell: Δm (%) over the headline metrics
    (``weighting_comparison.COLUMNS``) of its tasks against the same seed's single-task rows
    (0 for a single-task row; absent when a baseline it needs has not finished)."""
    from mtl_adapters.evaluation.delta_m import delta_m
    baseline: Dict[int, dict] = {}
    for r in records:
        if r['method'] == SINGLE and r['status'] == 'done':
            task = r['tasks'][0]
            baseline.setdefault(r['seed'], {}).update(
                {k: v for k, v in r['metrics'].items() if k.split('/')[0] == task})
    for r in records:
        if r['status'] != 'done':
            continue
        keys = [k for k in wc.COLUMNS if k.split('/')[0] in r['tasks'] and k in directions]
        base = baseline.get(r['seed'], {})
        if all(k in base for k in keys) and keys:
            r['metrics']['mtl/delta_m'] = delta_m(r['metrics'], {k: base[k] for k in keys},
                                                  directions)
        else:
            r['metrics'].pop('mtl/delta_m', None)
            r['delta_m_missing'] = sorted({k.split('/')[0] for k in keys if k not in base})


def rows(records: List[dict], iters: int, images_per_iter: int) -> List[dict]:
    """One row per (combination, method) in plan order: the seeds' values of every metric,
    Δm, train time and images/s; parameters; failed seeds."""
    out: Dict[Tuple[str, str], dict] = {}
    for r in records:
        row = out.setdefault((r['combo'], r['method']), dict(
            combo=r['combo'], tasks=r['tasks'], method=r['method'], seeds=[], failed=[],
            errors={}, values={}, params=r.get('params')))
        if r['status'] != 'done':
            row['failed'].append(r['seed'])
            row['errors'][r['seed']] = r.get('error', '')
            continue
        row['seeds'].append(r['seed'])
        metrics = dict(r['metrics'])
        if 'time/train_s' in metrics:
            metrics['time/images_per_s'] = iters * images_per_iter / metrics['time/train_s']
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                row['values'].setdefault(k, []).append(float(v))
    return list(out.values())


def _millions(params: Optional[dict], key: str) -> str:
    return f'{params[key] / 1e6:.3f}' if params and key in params else 'n/a'


def _status(row: dict) -> str:
    if not row['failed']:
        return 'ok'
    return f'FAILED seed {", ".join(map(str, row["failed"]))}'


def table(table_rows: List[dict], directions: Dict[str, bool], iters: int) -> str:
    """The Markdown table with a note on the single-task rows and the failed cells."""
    header = ['tasks', 'method', 'seeds'] + \
        [f'{k} {"↑" if directions.get(k, True) else "↓"}' for k in wc.COLUMNS] + \
        ['Δm (%) ↑', 'params (M)', 'trainable (M)', 'train time (s)', 'train img/s', 'status']
    lines = []
    for row in table_rows:
        v = row['values']
        in_row = [k for k in wc.COLUMNS if k.split('/')[0] in row['tasks']]
        lines.append([row['combo'], row['method'], str(len(row['seeds']))]
                     + [wc.fmt(v.get(k, [])) if k in in_row else '' for k in wc.COLUMNS]
                     + [wc.fmt(v.get('mtl/delta_m', []), sign=True),
                        _millions(row['params'], 'total'), _millions(row['params'], 'trainable'),
                        wc.fmt(v.get('time/train_s', [])),
                        wc.fmt(v.get('time/images_per_s', [])), _status(row)])
    text = wc.markdown(header, lines)
    text += (f'\n\n{iters} iterations per cell; mean ± std over the seeds that finished. '
             f'`{SINGLE}` rows: the adapter model trained on one task, once per seed; with one '
             'task TROA (W = [1]), uniform, GradNorm and PCGrad train this same model (uncertainty '
             'weighting still scales its loss by a learnt factor), so these rows are the 1-task '
             'point of the weighting methods and the Δm baseline (Δm is against the same '
             'seed\'s single-task rows). Train time: wall time of tools/train.py, start-up '
             'included.')
    failed = [(row, seed) for row in table_rows for seed in row['failed']]
    if failed:
        text += '\n\nFailed cells:\n\n' + '\n'.join(
            f'- {row["combo"]} {row["method"]} seed {seed}: {row["errors"][seed]}'
            for row, seed in failed)
    uncounted = [row for row in table_rows if row['params'] and 'error' in row['params']]
    if uncounted:
        text += '\n\nParameters not counted (the model does not build):\n\n' + '\n'.join(
            f'- {row["combo"]} {row["method"]}: {row["params"]["error"]}' for row in uncounted)
    return text


def write_csv(path: str, table_rows: List[dict]) -> None:
    """One line per row: the numbers of the table as mean and std columns."""
    keys = list(wc.COLUMNS) + ['mtl/delta_m', 'time/train_s', 'time/images_per_s']
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['tasks', 'num_tasks', 'method', 'seeds', 'failed_seeds']
                        + [f'{k}_{s}' for k in keys for s in ('mean', 'std')]
                        + ['params_total', 'params_trainable'])
        for row in table_rows:
            stats = []
            for k in keys:
                values = row['values'].get(k)
                stats += list(wc.mean_std(values)) if values else ['', '']
            params = row['params'] or {}
            writer.writerow([row['combo'], len(row['tasks']), row['method'], len(row['seeds']),
                             ' '.join(map(str, row['failed']))] + stats
                            + [params.get('total', ''), params.get('trainable', '')])


def plot(path: str, table_rows: List[dict], directions: Dict[str, bool]) -> None:
    """Headline metric of each task and Δm vs the number of tasks, one line per method (its
    1-task point is the single-task row for a weighting method), std as error bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = ['mtl/delta_m'] + [k for t, k in HEADLINE.items()
                                if any(t in r['tasks'] for r in table_rows)]
    methods = []
    for r in table_rows:
        if r['method'] != SINGLE and r['method'] not in methods:
            methods.append(r['method'])
    own_singles = {r['method'] for r in table_rows if len(r['tasks']) == 1}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), dpi=100,
                             squeeze=False)
    for ax, key in zip(axes[0], panels):
        task = key.split('/')[0]
        for method in methods or [SINGLE]:
            # a weighting method's single-task point is the shared single-task row
            sources = {method} | ({SINGLE} if method not in own_singles else set())
            points: Dict[int, List[float]] = {}
            for r in table_rows:
                if r['method'] not in sources or (r['method'] == SINGLE and len(r['tasks']) > 1):
                    continue
                if key != 'mtl/delta_m' and task not in r['tasks']:
                    continue
                points.setdefault(len(r['tasks']), []).extend(r['values'].get(key, []))
            xs = sorted(n for n, v in points.items() if v)
            if not xs:
                continue
            stats = [wc.mean_std(points[n]) for n in xs]
            ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker='o',
                        capsize=3, label=method)
        arrow = '↑' if directions.get(key, True) else '↓'
        ax.set_title(f'{"Δm (%)" if key == "mtl/delta_m" else key} {arrow}')
        ax.set_xlabel('number of tasks')
        ax.set_xticks(range(1, 1 + max(len(r['tasks']) for r in table_rows)))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(records: List[dict], work_dir: str, iters: int, images_per_iter: int,
           directions: Dict[str, bool], settings: dict) -> dict:
    """Δm, the table, ``matrix.{md,csv,json,png}``; returns the JSON's content."""
    add_delta_m(records, directions)
    table_rows = rows(records, iters, images_per_iter)
    text = table(table_rows, directions, iters)
    print(text)
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'matrix.md'), 'w') as f:
        f.write(text + '\n')
    write_csv(osp.join(work_dir, 'matrix.csv'), table_rows)
    summary = dict(settings, rows=table_rows, cells=records)
    write_json(osp.join(work_dir, 'matrix.json'), summary)
    plot(osp.join(work_dir, 'matrix.png'), table_rows, directions)
    return summary


def print_plan(cells: Sequence[Cell], iters: int, launcher: str, gpus: int) -> None:
    """Every cell, whether it has finished, its config and its commands."""
    todo = [c for c in cells if not osp.isfile(c.metrics_path)]
    print(f'{len(cells)} cells ({len(todo)} to run, {len(cells) - len(todo)} finished), '
          f'{iters} iterations each')
    for i, cell in enumerate(cells):
        done = 'finished' if osp.isfile(cell.metrics_path) else 'to run'
        print(f'[{i + 1}/{len(cells)}] {cell.name} ({done}): {cell.method_config} '
              f'narrowed to {", ".join(cell.tasks)}')
        for step, cmd in wc.commands(cell.config, cell.work_dir, iters, cell.metrics_path,
                                     launcher, gpus):
            print(f'    {step}: {" ".join(cmd)}')


def main(argv=None, run_cell: Optional[Callable] = None,
         count_params: Callable = count_parameters) -> dict:
    """Plan, run what has not finished, and report (``--dry-run``: print the plan only).
    ``run_cell`` replaces the train + test subprocesses (tests); the real runner also makes
    the demo's synthetic scenes when ``--data-root`` has none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/synthetic',
                        help='the scenes (the demo\'s are generated here if absent)')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR,
                        help='cells, derived configs and matrix.{md,csv,json,png}')
    parser.add_argument('--max-iters', type=int, default=DEFAULT_ITERS,
                        help='training iterations of every cell')
    parser.add_argument('--seeds', type=int, nargs='+', default=list(DEFAULT_SEEDS),
                        help='one run of every cell per seed (mean ± std over them)')
    parser.add_argument('--tasks', nargs='+', default=list(DEFAULT_COMBOS),
                        help='task combinations, letters joined by "-" (S seg, D depth, '
                             'N normal, E edge)')
    parser.add_argument('--methods', nargs='*', default=[],
                        help=f'methods added to {" and ".join(DEFAULT_METHODS)}: names from '
                             'configs/troa/* (before "_vtagml") or configs/peft/* (before '
                             '"_swinv2")')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='pytorch: each cell trains through torchrun --nproc_per_node GPUS')
    parser.add_argument('--gpus', type=int, default=1, help='processes per cell (--launcher '
                        'pytorch)')
    parser.add_argument('--dry-run', action='store_true', help='print the plan, run nothing')
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from mtl_adapters.set_env import register_all_modules
    from mtl_adapters.tasks import build_tasks
    register_all_modules()
    methods = list(dict.fromkeys(list(DEFAULT_METHODS) + list(args.methods)))
    cells = plan(args.tasks, methods, args.seeds, args.work_dir)
    gpus = args.gpus if args.launcher == 'pytorch' else 1
    if args.dry_run:
        print_plan(cells, args.max_iters, args.launcher, gpus)
        return dict(cells=cells)
    if run_cell is None:
        if not osp.isfile(osp.join(args.data_root, 'splits.csv')):
            from mtl_adapters.data_generation.synthetic import generate
            generate(args.data_root, num_scenes=30, views_per_scene=10, size=(128, 128),
                     seed=0, splits=(24, 3, 3))      # the demo's scenes
        run_cell = subprocess_runner(args.max_iters, args.launcher, gpus)
    base = Config.fromfile(osp.join(wc.REPO, wc.BASE))
    directions = {f'{n}/{k}': v for n, t in build_tasks(base.model.tasks).items()
                  for k, v in t.metric_directions.items()}
    directions['mtl/delta_m'] = True
    records = execute(cells, args.max_iters, args.data_root, run_cell, count_params)
    settings = dict(max_iters=args.max_iters, seeds=args.seeds, combos=args.tasks,
                    methods=methods, launcher=args.launcher, gpus=gpus)
    return report(records, args.work_dir, args.max_iters,
                  base.train_dataloader.batch_size * gpus, directions, settings)


if __name__ == '__main__':
    main()
