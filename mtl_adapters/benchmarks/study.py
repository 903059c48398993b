"""The claims study: every claim of the paper as a paired comparison A vs B over seeds, with a
95 % confidence interval and a verdict (holds / does not hold / within noise).

    python tools/benchmark.py --study                      # every claim, 5 seeds
    python tools/benchmark.py --study --dry-run            # the plan and its cell count
    python tools/benchmark.py --study --claims weighting peft --seeds 0 1 2 --iters 100
    python tools/benchmark.py --study --publish            # also copy md/json/png to docs

Families (``--claims``): ``tasks`` (S-D-N-E and S-D vs single-task on S and D), ``weighting``
(TROA vs uniform, uncertainty, GradNorm, PCGrad and TROA with zero cosines), ``peft`` (adapters
vs ``configs/peft/*``, with trainable parameters), ``zeroshot`` (the adapted model's unlabelled
tasks vs the source model's on the target; frozen vs moving unlabelled task embeddings),
``uda`` (adversarial, mean teacher, both vs source-only; the target-trained oracle above UDA),
``dg`` (adapters vs decoder-only and full fine-tuning on the unseen style), ``trunk`` (the
shipped pretrained trunk vs a random one, under adapters and under decoder-only training).

An arm is a config (narrowed to some tasks, on a domain) trained and tested in fresh
processes (``weighting_comparison.run``), one cell per seed under ``<work-dir>/<arm>/seed<s>-
<key>`` named by its definition (``common.define_cell``), run by ``matrix.execute``: finished
cells are reused (resumable), a failed cell is reported and the others go on. Model selection:
validation on the training domain's val split every ``iters / --val-points`` iterations, every
checkpoint kept; the test split (the target's for the generalisation arms) is evaluated once,
at the checkpoint with the best val score (Δm of that evaluation against the run's first one,
over the trained tasks' headline metrics). Running the cells: ``study_runner.py``; statistics
and report: ``study_report.py``.
"""
import argparse
import json
import os
import os.path as osp
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mtl_adapters.benchmarks import matrix
from mtl_adapters.benchmarks import study_report
from mtl_adapters.benchmarks import weighting_comparison as wc
from mtl_adapters.benchmarks.common import CellPaths, define_cell, mean_teacher_schedule
from mtl_adapters.benchmarks.generalisation import CONFIGS as GEN
from mtl_adapters.benchmarks.study_runner import (execute, locked_print, run_in_subprocesses,
                                                  timed)
from mtl_adapters.benchmarks.train_speed import LIGHT_DEPTHS
from mtl_adapters.data_generation.synthetic import STYLES
from mtl_adapters.utils import atomic_write_bytes

DEFAULT_WORK_DIR = 'work_dirs/study'
PUBLISH_DIR = 'docs/results/study'
TROA = 'configs/troa/troa_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'
UDA_BOTH = ('configs/generalisation/uda_adversarial-mean-teacher_vtagml-swinv2-tiny-narrow_'
            '1xb8-600_synthetic-to-alt-128x128_sdne.py')
ALL = ('seg', 'depth', 'normal', 'edge')


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: ``config`` narrowed to ``tasks`` (indices into its
    ``model.tasks``; None: all), trained on ``train`` and tested on ``test`` ('source' or
    'target'); ``needs``: the arm whose last checkpoint it loads; ``via``: a test-only arm,
    testing on ``test`` the checkpoint the arm ``via`` chose on its val split (the same trained
    model: the DG and source-only rows are the source-trained models tested on the unseen
    style, not retrained); ``select``: the tasks whose val metrics choose the checkpoint
    (None: all); ``model``: extra ``model = dict(...)`` keys; ``encoder``: extra
    ``model.encoder`` keys; ``ramp``: the mean teacher's pseudo-label warm-up and ramp-up
    scaled to the study's iterations (a quarter each, as the shipped configs do of theirs)."""
    name: str
    config: str
    tasks: Optional[Tuple[int, ...]] = None
    train: str = 'source'
    test: str = 'source'
    needs: Optional[str] = None
    select: Optional[Tuple[str, ...]] = None
    model: str = ''
    via: Optional[str] = None
    encoder: str = ''
    ramp: bool = False

    @property
    def after(self) -> Optional[str]:
        """The arm this one waits for (loads or tests its checkpoint)."""
        return self.needs or self.via


@dataclass(frozen=True)
class Claim:
    """``A`` beats ``B`` (``direction=-1``: B beats A) on the headline metrics of ``tasks``;
    ``kind``: 'paper' (the paper claims it) or 'control' (what the setting must show for the
    paper's claims to be testable here, or a choice of ours the study settles)."""
    family: str
    text: str
    a: str
    b: str
    tasks: Tuple[str, ...] = ALL
    direction: int = 1
    kind: str = 'paper'


def catalogue() -> Tuple[Dict[str, Arm], List[Claim]]:
    """Every arm and every claim of the study."""
    arms = [Arm('troa', TROA), Arm('troa-S-D', TROA, (0, 1)),
            Arm('single-S', wc.BASE, (0,)), Arm('single-D', wc.BASE, (1,))]
    claims = [Claim('tasks', 'S-D-N-E beats single-task on S', 'troa', 'single-S', ('seg',)),
              Claim('tasks', 'S-D-N-E beats single-task on D', 'troa', 'single-D', ('depth',)),
              Claim('tasks', 'S-D beats single-task on S', 'troa-S-D', 'single-S', ('seg',)),
              Claim('tasks', 'S-D beats single-task on D', 'troa-S-D', 'single-D', ('depth',)),
              Claim('tasks', 'S-D-N-E beats S-D on S and D', 'troa', 'troa-S-D',
                    ('seg', 'depth'))]
    # the adapters leaf weighs the tasks uniformly: it is the 'uniform' arm (one training)
    for name, config in wc.weighting_methods().items():
        if name in ('uncertainty', 'gradnorm', 'pcgrad', 'troa-zero-cosines'):
            arms.append(Arm(name, config))
            claims.append(Claim('weighting', f'TROA beats {name}', 'troa', name,
                                kind='control' if 'zero' in name else 'paper'))
    first = next(i for i, c in enumerate(claims) if c.family == 'weighting')
    claims.insert(first, Claim('weighting', 'TROA beats uniform (the adapters leaf)', 'troa',
                               'adapters'))
    for name, config in wc.encoder_methods().items():
        arms.append(Arm(name, config))
        if name != 'adapters':
            claims.append(Claim('peft', f'adapters beat {name}', 'adapters', name))
    zs = dict(train='target', test='target', needs='zs-source', select=('seg',))
    arms += [Arm('zs-source', GEN['zs_source'], test='target'),
             Arm('zs-adapted', GEN['zs_s'], **zs),
             Arm('zs-adapted-moving', GEN['zs_s'], model='freeze_eval_only_embeddings=False',
                 **zs)]
    claims += [Claim('zeroshot', 'adapting with S labels improves the unlabelled D and N',
                     'zs-adapted', 'zs-source', ('depth', 'normal')),
               Claim('zeroshot', 'letting the unlabelled task embeddings move helps',
                     'zs-adapted-moving', 'zs-adapted', ('depth', 'normal'), kind='control')]
    # source-only: the adapters arm's model tested on the target; the oracle: the same leaf
    # trained on the target (same classes, labels read): the domain gap is oracle - source-only
    uda = {'uda-adversarial': GEN['uda_adversarial'],
           'uda-mean-teacher': GEN['uda_mean_teacher'], 'uda-both': UDA_BOTH}
    arms += [Arm('source-only', wc.BASE, test='target', via='adapters'),
             Arm('oracle', wc.BASE, train='target', test='target')]
    arms += [Arm(name, config, test='target', ramp='mean-teacher' in name or 'both' in name)
             for name, config in uda.items()]
    claims += [Claim('uda', f'the domain gap: trained on the target beats trained on the '
                     f'source, on {task}', 'oracle', 'source-only', (task,), kind='control')
               for task in ALL]
    claims += [Claim('uda', f'{name[4:]} beats source-only on the target', name,
                     'source-only') for name in uda]
    claims.append(Claim('uda', 'the target-trained oracle stays above UDA (both)', 'oracle',
                        'uda-both', kind='control'))
    encoders = wc.encoder_methods()
    # the premise: a pretrained frozen trunk; the same leaves on a randomly initialised one
    for name in ('adapters', 'decoder-only'):
        arms.append(Arm(f'{name}-random-trunk', encoders[name], encoder='pretrained=None'))
        claims.append(Claim('trunk', f'{name}: the pretrained trunk beats a random one', name,
                            f'{name}-random-trunk', kind='control'))
    # the test of the frozen features themselves: decoders alone, task by task
    claims += [Claim('trunk', f'frozen features: the pretrained trunk beats a random one, on '
                     f'{task}', 'decoder-only', 'decoder-only-random-trunk', (task,),
                     kind='control') for task in ALL]
    for name in ('decoder-only', 'full-ft'):
        arms.append(Arm(f'dg-{name}', encoders[name], test='target', via=name))
        claims.append(Claim('dg', f'adapters generalise better than {name} to the unseen '
                            'style', 'source-only', f'dg-{name}'))
    return {a.name: a for a in arms}, claims


@dataclass(frozen=True)
class Budget:
    """What every cell of a study trains with: ``iters`` iterations of ``batch_size`` crops of
    ``image_size`` px (the scenes are rendered at that size), val every ``val_every``
    iterations (every checkpoint kept), light decoders or not."""
    iters: int
    val_every: int
    image_size: int = 128
    batch_size: int = 8
    light: bool = False


@lru_cache(maxsize=None)
def train_pipelines(config: str, size: int) -> Tuple[str, str]:
    """The training pipelines of ``config`` (its own, and its UDA target's; '' if none) as
    Python literals, every crop of the config's ``crop_size`` made ``size`` px: the study sets
    its image size without editing the datasets' base files."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(wc.REPO, config))
    crop = list(cfg.get('crop_size', (128, 128)))

    def resized(node, found: list):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == 'size' and isinstance(v, (list, tuple)) and list(v) == crop:
                    found.append(k)
                    out[k] = [size, size]
                else:
                    out[k] = resized(v, found)
            return out
        if isinstance(node, (list, tuple)):
            return [resized(v, found) for v in node]
        return node

    def literal(pipeline) -> str:
        found: list = []
        text = repr(resized(json.loads(json.dumps(pipeline)), found))
        if not found and list(crop) != [size, size]:
            raise ValueError(f'{config}: its training pipeline has no crop of crop_size '
                             f'{crop} to make {size} px')
        return text

    target = cfg.train_cfg.get('target_dataloader')
    return (literal(cfg.train_dataloader.dataset.pipeline),
            literal(target.dataset.pipeline) if target else '')


@dataclass(frozen=True)
class StudyCell:
    """One arm and seed under a budget; what ``matrix.execute`` needs of a cell."""
    arm: Arm
    seed: int
    root: str
    budget: Budget
    domains: Tuple[str, str]           # (source root, target root), absolute
    after: Optional['StudyCell'] = None   # the cell whose checkpoint it loads or tests

    combo = property(lambda self: self.arm.name)
    method = property(lambda self: self.arm.name)
    tasks = property(lambda self: self.arm.select or ALL)
    name = property(lambda self: f'{self.arm.name} seed {self.seed}')
    row_dir = property(lambda self: osp.join(self.root, self.arm.name))
    iters = property(lambda self: self.budget.iters)
    val_every = property(lambda self: self.budget.val_every)
    test_only = property(lambda self: self.arm.via is not None)

    def root_of(self, domain: str) -> str:
        return self.domains[domain == 'target']

    def config_text(self) -> str:
        """The arm's config with the study's budget, data, seed and model selection."""
        arm, budget = self.arm, self.budget
        size = (budget.image_size, budget.image_size)
        encoder = f', {arm.encoder}' if arm.encoder else ''
        model = ([arm.model] if arm.model else []) + [f'encoder=dict(img_size={size}{encoder})']
        if arm.tasks is not None:
            picked = ', '.join(f'_base_.model.tasks[{i}]' for i in arm.tasks)
            model.append(f'tasks=[{picked}]')
        if arm.ramp:
            model.append(mean_teacher_schedule(self.iters))
        depths = f', depths={tuple(LIGHT_DEPTHS)}' if budget.light else ''
        model.append(f'decoder=dict(img_size={size}{depths})')
        pipeline, target_pipeline = train_pipelines(arm.config, budget.image_size)
        loop = f'max_iters={self.iters}, val_interval={self.val_every}'
        if target_pipeline:
            loop += (f', target_dataloader=dict(batch_size={budget.batch_size}, dataset=dict('
                     f'data_root={self.domains[1]!r}, pipeline={target_pipeline}))')
        keep = self.iters // self.val_every + 1
        extra = (f'train_dataloader = dict(batch_size={budget.batch_size}, dataset=dict('
                 f'data_root=_root, pipeline={pipeline}))\n'
                 f'train_cfg = dict({loop})\n'
                 f'default_hooks = dict(checkpoint=dict(interval={self.val_every}, '
                 f'max_keep_ckpts={keep}))\n'
                 f'test_dataloader = dict(dataset=dict(data_root={self.root_of(arm.test)!r}))\n'
                 f'model = dict({", ".join(model)})\n')
        if self.after is not None and self.test_only:
            extra += f'# tests the checkpoint chosen on val in {self.after.work_dir}\n'
        elif self.after is not None:
            extra += f"load_from = {osp.join(self.after.work_dir, f'iter_{self.iters}.pth')!r}\n"
        return wc.derived_text(arm.config, self.root_of(arm.train), self.iters, self.seed,
                               extra)

    def define(self, write: bool = False) -> CellPaths:
        return define_cell(self.row_dir, f'seed{self.seed}', self.config_text(), write=write)

    @cached_property
    def paths(self) -> CellPaths:
        return self.define()

    work_dir = property(lambda self: self.paths.work_dir)
    config = property(lambda self: self.paths.config)
    metrics_path = property(lambda self: self.paths.metrics_path)


def plan(families: Sequence[str], seeds: Sequence[int], work_dir: str, budget: Budget,
         domains: Tuple[str, str]) -> Tuple[List[StudyCell], List[Claim]]:
    """The cells the chosen claim families need (an arm after the one it loads or tests),
    seed by seed, and those claims."""
    arms, claims = catalogue()
    unknown = sorted(set(families) - {c.family for c in claims})
    if unknown:
        raise ValueError(f'--claims: unknown {unknown}; families: '
                         f'{list(dict.fromkeys(c.family for c in claims))}')
    claims = [c for c in claims if c.family in families]
    names: List[str] = []

    def add(name: str) -> None:                # the arms it needs first, recursively
        if arms[name].after:
            add(arms[name].after)
        if name not in names:
            names.append(name)

    for c in claims:
        add(c.a)
        add(c.b)
    root = osp.abspath(work_dir)
    cells = []
    for seed in seeds:
        made: Dict[str, StudyCell] = {}
        for name in names:
            made[name] = StudyCell(arms[name], seed, root, budget, domains,
                                   made.get(arms[name].after))
        cells += list(made.values())
    return cells, claims


def publish(work_dir: str, dest: str = PUBLISH_DIR) -> List[str]:
    """Copy ``study.{md,json,png}`` to ``dest`` (each atomically); returns the paths."""
    out = []
    for ext in ('md', 'json', 'png'):
        with open(osp.join(work_dir, f'study.{ext}'), 'rb') as f:
            data = f.read()
        path = osp.join(wc.REPO, dest, f'study.{ext}')
        atomic_write_bytes(path, data)
        out.append(path)
    print('published: ' + ', '.join(out))
    return out


def main(argv=None, run_cell: Optional[Callable] = None,
         count_params: Callable = matrix.count_parameters) -> dict:
    """Plan, estimate, run what has not finished, and report (``--dry-run``: the plan only).
    ``run_cell`` replaces the train + select + test subprocesses (tests)."""
    families = list(dict.fromkeys(c.family for c in catalogue()[1]))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--claims', nargs='+', default=families, choices=families,
                        help='claim families to run (default: all)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4],
                        help='paired seeds: every arm runs once per seed')
    parser.add_argument('--iters', type=int, default=80, help='training iterations per cell')
    parser.add_argument('--val-points', type=int, default=4,
                        help='val evaluations per run (model selection); every checkpoint kept')
    parser.add_argument('--size', type=int, default=40,
                        help='scenes rendered per domain (80/10/10 train/val/test split; more '
                             'scenes: more test images, less test noise)')
    parser.add_argument('--image-size', type=int, default=64,
                        help='px of the rendered views and of the training crops (the trunk '
                             'sees whole views at test time)')
    parser.add_argument('--batch-size', type=int, default=4, help='training batch per step')
    parser.add_argument('--light', action=argparse.BooleanOptionalAction, default=True,
                        help=f'decoders without blocks at 1/32 (depths {LIGHT_DEPTHS})')
    parser.add_argument('--jobs', type=int, default=2,
                        help='cells run at once (each with cores/jobs CPU threads unless '
                             'OMP_NUM_THREADS is set); a cell that loads or tests another '
                             "arm's checkpoint runs after it")
    parser.add_argument('--target-style', default='shifted', choices=STYLES[1:],
                        help="the target domain's appearance ('shifted': calibrated so that "
                             'training on the target beats training on the source)')
    parser.add_argument('--source-root',
                        help='default: data/study/synthetic-<size>x<image size>px')
    parser.add_argument('--target-root',
                        help='default: data/study/synthetic_<target style>-<size>x<image size>px')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR)
    parser.add_argument('--dry-run', action='store_true', help='print the plan, run nothing')
    parser.add_argument('--report-only', action='store_true',
                        help='report the finished cells, run nothing (the others are listed '
                             'as not run; a study still running elsewhere is not disturbed)')
    parser.add_argument('--publish', action='store_true',
                        help='copy study.md/json/png to --publish-dir')
    parser.add_argument('--publish-dir', default=PUBLISH_DIR,
                        help='where --publish copies to (relative: to the repository)')
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from mtl_adapters.tasks import build_tasks
    data = f'data/study/{{}}-{args.size}x{args.image_size}px'
    source = osp.abspath(args.source_root or data.format('synthetic'))
    target = osp.abspath(args.target_root or data.format(f'synthetic_{args.target_style}'))
    budget = Budget(args.iters, max(args.iters // max(args.val_points, 1), 1), args.image_size,
                    args.batch_size, args.light)
    cells, claims = plan(args.claims, args.seeds, args.work_dir, budget, (source, target))
    todo = [c for c in cells if not osp.isfile(c.metrics_path)]
    print(f'{len(cells)} cells ({len(todo)} to run) for {len(claims)} claims, '
          f'{len(args.seeds)} seeds, {args.iters} iterations each', flush=True)
    if args.dry_run:
        for cell in cells:
            print(f'  {cell.name}: {cell.arm.config} ({cell.work_dir})')
        return dict(cells=cells, claims=claims)
    tasks = build_tasks(Config.fromfile(osp.join(wc.REPO, wc.BASE)).model.tasks)
    directions = {f'{n}/{k}': v for n, t in tasks.items() for k, v in t.metric_directions.items()}
    if run_cell is None and not args.report_only:
        from mtl_adapters.data_generation.synthetic import generate
        held = max(3, args.size // 10)
        for root, style, seed in ((source, 'default', 0), (target, args.target_style, 1000)):
            if not osp.isfile(osp.join(root, 'splits.csv')):
                generate(root, num_scenes=args.size, views_per_scene=10,
                         size=(args.image_size, args.image_size),
                         seed=seed, style=style, splits=(args.size - 2 * held, held, held))
        run_cell = (lambda cell: run_in_subprocesses(cell, directions))
        if args.jobs > 1 and 'OMP_NUM_THREADS' not in os.environ:
            from mtl_adapters.utils.threads import available_cores
            os.environ['OMP_NUM_THREADS'] = str(max(available_cores() // args.jobs, 1))
    if args.report_only:
        def run_cell(cell):                            # noqa: F811 (never reached)
            raise AssertionError(f'{cell.name} has not finished')
        cells = [c for c in cells if c not in todo]
    records = execute(cells, timed(run_cell, len(todo), locked_print, args.jobs), count_params,
                      args.jobs)
    settings = dict(iters=args.iters, seeds=args.seeds, claims_run=args.claims,
                    size=args.size, light=args.light, val_points=args.val_points,
                    image_size=args.image_size, batch_size=args.batch_size, jobs=args.jobs,
                    target_style=args.target_style,
                    not_run=[c.name for c in todo] if args.report_only else [],
                    source_root=source, target_root=target)
    summary = study_report.report(claims, records, args.work_dir, directions, settings)
    if args.publish:
        publish(args.work_dir, args.publish_dir)
    return summary


if __name__ == '__main__':
    main()
