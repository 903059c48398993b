"""Benchmark of task combinations: from the configs to the paper-style table in one command.

    python tools/benchmark.py --matrix                      # default matrix, 3 seeds
    python tools/benchmark.py --matrix --dry-run            # print the plan, run nothing
    python tools/benchmark.py --matrix --tasks S-D S-D-N-E --methods troa uniform lora
    python tools/benchmark.py --matrix --launcher pytorch --gpus 4   # each cell through torchrun

A cell is (task combination, method, seed): the method's config narrowed to the combination's
tasks (``model = dict(tasks=[_base_.model.tasks[i], ...])``) with this benchmark's budget,
data and seed (``weighting_comparison.derived_text``), trained and tested in fresh processes
(``weighting_comparison.run``) in ``<work-dir>/<combo>/<method>/seed<s>-<key>``, the key naming
everything that defines the cell (``common.define_cell``). Cells run one after another; a cell
whose test metrics exist is not run again (an interrupted matrix continues where it stopped;
a rerun with another budget or override runs cells of its own), and a cell that fails is
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
trained; cached per row and model), training wall time (start-up included) and images/s, as
mean ± std over the seeds; a failed cell shows in the ``status`` column and under the table
(``matrix_report.py``). Writes ``<work-dir>/matrix.{md,csv,json}`` and ``matrix.png``
(headline metric and Δm vs the number of tasks, one line per method, std as error bars).

Default budget: 3 seeds (the fewest that show the noise) x 40 iterations (batch 8, 128 px, the
narrow demo model), 10 cells per seed; sized to finish on 2 CPU cores in under 30 minutes
(README: "Benchmark of task combinations").
"""
import argparse
import json
import os.path as osp
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mtl_adapters.benchmarks import weighting_comparison as wc
from mtl_adapters.benchmarks.common import CellPaths, define_cell, definition_key, write_json
from mtl_adapters.benchmarks.matrix_report import SINGLE, report

#: one letter per task of the synthetic scenes, as the configs name combinations (S-D-N-E)
LETTERS = {'S': 'seg', 'D': 'depth', 'N': 'normal', 'E': 'edge'}
DEFAULT_COMBOS = ('S', 'D', 'N', 'E', 'S-D', 'S-D-N', 'S-D-N-E')
DEFAULT_METHODS = ('troa', 'uniform')
DEFAULT_WORK_DIR = 'work_dirs/benchmark_matrix'
DEFAULT_ITERS = 40
DEFAULT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: a task combination, a method and a seed, under a budget.

    Its config and work dir are named by everything that defines it (``common.define_cell``:
    the resolved derived config, so iterations, image size, batch, seed, data, decoder and
    every override, plus the launcher and processes): a finished cell is reused only by the
    same definition, and a matrix with another budget runs cells of its own.
    """
    combo: str                  # 'S-D'
    tasks: Tuple[str, ...]      # ('seg', 'depth')
    method: str                 # 'troa', 'uniform', 'lora', ... or SINGLE
    method_config: str          # the method's config, relative to the repository
    task_index: Tuple[int, ...]  # the tasks' positions in that config's model.tasks
    seed: int
    root: str                   # the matrix's work dir (absolute)
    iters: int = DEFAULT_ITERS
    data_root: str = 'data/synthetic'
    launcher: str = 'none'
    gpus: int = 1

    @property
    def row(self) -> Tuple[str, str]:
        """The table row this cell is a seed of."""
        return self.combo, self.method

    @property
    def row_dir(self) -> str:
        return osp.join(self.root, self.combo, self.method)

    def config_text(self) -> str:
        """The derived config: the method's config narrowed to the combination's tasks, with
        the matrix's budget, data and seed."""
        picked = ', '.join(f'_base_.model.tasks[{i}]' for i in self.task_index)
        return wc.derived_text(self.method_config, self.data_root, self.iters, self.seed,
                               f'model = dict(tasks=[{picked}])\n')

    def define(self, write: bool = False) -> CellPaths:
        """Config and work dir of this definition (the config written with ``write``)."""
        return define_cell(self.row_dir, f'seed{self.seed}', self.config_text(), write=write,
                           launcher=self.launcher, gpus=self.gpus)

    @cached_property
    def paths(self) -> CellPaths:
        return self.define()

    @property
    def work_dir(self) -> str:
        return self.paths.work_dir

    @property
    def config(self) -> str:
        """The derived config (outside the work dir: tools/train.py dumps its own copy there)."""
        return self.paths.config

    @property
    def metrics_path(self) -> str:
        """Exists once the cell has finished (``tools/test.py --out``)."""
        return self.paths.metrics_path

    @property
    def name(self) -> str:
        return f'{self.combo} {self.method} seed {self.seed}'


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
         tasks_of: Callable[[str], List[str]] = model_tasks, **budget) -> List[Cell]:
    """The cells, seed by seed (a seed's table is complete before the next seed starts): the
    single-task rows first (Δm needs them), then each method on each combination, smaller
    combinations first. ``catalogue``: ``{method: (config, is_weighting)}``; ``budget``: the
    cells' ``iters``, ``data_root``, ``launcher`` and ``gpus``."""
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
                    tuple(names[config].index(t) for t in tasks), seed, root, **budget)

    cells = []
    for seed in seeds:
        cells += [cell(t, SINGLE, wc.BASE, seed) for t in singles]
        for method in methods:
            config, is_weighting = catalogue[method]
            cells += [cell(t, method, config, seed)
                      for t in (multi if is_weighting else singles + multi)]
    return cells


# ---------------------------------------------------------------------------------- running


def run_in_subprocesses(cell: Cell) -> dict:
    """The real cell runner: ``tools/train.py`` + ``tools/test.py`` in fresh processes."""
    return wc.run(cell.name, cell.config, cell.work_dir, cell.iters, launcher=cell.launcher,
                  gpus=cell.gpus)


def count_parameters(cell: Cell) -> Dict[str, int]:
    """Total and trainable parameters of the cell's model (built from its config)."""
    return wc.parameter_counts(cell.config)


def execute(cells: Sequence[Cell], run_cell: Callable,
            count_params: Callable = count_parameters, log=print) -> List[dict]:
    """Run every cell that has not finished; one record per cell.

    ``run_cell(cell) -> metrics`` trains and tests a cell and leaves its metrics at
    ``cell.metrics_path``; an exception marks that cell failed and the next one starts
    (KeyboardInterrupt still stops the matrix: what finished stays finished). Parameters are
    counted once per row and model definition, cached in ``<row dir>/params-<key>.json``.
    """
    records = []
    for i, cell in enumerate(cells):
        record = dict(combo=cell.combo, tasks=list(cell.tasks), method=cell.method,
                      seed=cell.seed, config=cell.config, work_dir=cell.work_dir,
                      key=cell.paths.key)
        cell.define(write=True)
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
    """The row's parameter counts, counted once per model definition (the resolved ``model``
    of the cell's config); with the reason if the model does not build: reported, not
    raised."""
    key = definition_key(cell.config_text(), part='model')
    path = osp.join(cell.row_dir, f'params-{key}.json')
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    try:
        counts = dict(count_params(cell))
    except Exception as exc:
        return dict(error=f'{type(exc).__name__}: {exc}')
    write_json(path, counts, indent=None)
    return counts


def print_plan(cells: Sequence[Cell]) -> None:
    """Every cell, whether it has finished, its config and its commands."""
    todo = [c for c in cells if not osp.isfile(c.metrics_path)]
    print(f'{len(cells)} cells ({len(todo)} to run, {len(cells) - len(todo)} finished), '
          f'{cells[0].iters if cells else 0} iterations each')
    for i, cell in enumerate(cells):
        done = 'finished' if osp.isfile(cell.metrics_path) else 'to run'
        print(f'[{i + 1}/{len(cells)}] {cell.name} ({done}): {cell.method_config} '
              f'narrowed to {", ".join(cell.tasks)}')
        for step, cmd in wc.commands(cell.config, cell.work_dir, cell.iters, cell.metrics_path,
                                     cell.launcher, cell.gpus):
            print(f'    {step}: {" ".join(cmd)}')


def main(argv=None, run_cell: Optional[Callable] = None,
         count_params: Callable = count_parameters) -> dict:
    """Plan, run what has not finished, and report (``--dry-run``: print the plan only).
    ``run_cell`` replaces the train + test subprocesses (tests); the real runner also makes
    the demo's synthetic scenes when ``--data-root`` has none."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    gpus = args.gpus if args.launcher == 'pytorch' else 1
    cells = plan(args.tasks, methods, args.seeds, args.work_dir, iters=args.max_iters,
                 data_root=osp.abspath(args.data_root), launcher=args.launcher, gpus=gpus)
    if args.dry_run:
        print_plan(cells)
        return dict(cells=cells)
    if run_cell is None:
        if not osp.isfile(osp.join(args.data_root, 'splits.csv')):
            from mtl_adapters.data_generation.synthetic import generate
            generate(args.data_root, num_scenes=30, views_per_scene=10, size=(128, 128),
                     seed=0, splits=(24, 3, 3))      # the demo's scenes
        run_cell = run_in_subprocesses
    base = Config.fromfile(osp.join(wc.REPO, wc.BASE))
    directions = {f'{n}/{k}': v for n, t in build_tasks(base.model.tasks).items()
                  for k, v in t.metric_directions.items()}
    directions['mtl/delta_m'] = True
    records = execute(cells, run_cell, count_params)
    settings = dict(max_iters=args.max_iters, seeds=args.seeds, combos=args.tasks,
                    data_root=osp.abspath(args.data_root),
                    methods=methods, launcher=args.launcher, gpus=gpus)
    return report(records, args.work_dir, args.max_iters,
                  base.train_dataloader.batch_size * gpus, directions, settings)


if __name__ == '__main__':
    main()
