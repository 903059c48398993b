"""Evaluate a checkpoint on a config's test split and write the metrics as JSON.

    python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--baseline baseline.json]
                         [--out-dir DIR] [--show-dir DIR]

``--baseline`` adds the multi-task score ``mtl/delta_m`` against single-task baselines (a JSON
``{"seg/mIoU": 40.1, "depth/rmse": 0.6, ...}``). ``--out-dir`` writes every prediction as
per-task PNG files (labels: palette PNG; depth: 16-bit millimetres ``_depth_mm.png``; normals:
RGB; edges: 16-bit); ``--show-dir DIR`` has the visualiser write a grid picture (input | ground
truth | prediction) of every test image under ``DIR/vis_data/vis_image/`` (as in mmseg).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

# Only what parsing needs at module level (no torch): `--help` answers in about a second.
from mmengine.config import Config, DictAction  # noqa: E402

VIS_HOOK = 'MultiTaskVisualizationHook'


def parse_args(argv=None):
    """Command line of the test tool."""
    parser = argparse.ArgumentParser(
        description='Evaluate a multi-task checkpoint.',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load the checkpoint with a full pickle load (runs any code inside '
                        'it: only for files you wrote or trust); default: weights only')
    parser.add_argument('--work-dir', help='where logs go (default: work_dirs/<config>)')
    parser.add_argument('--out', help='metrics JSON (default: <work-dir>/test_metrics.json)')
    parser.add_argument('--baseline', help='single-task baseline metrics (JSON) for Δm')
    parser.add_argument('--out-dir', help='write each prediction as per-task PNG files here')
    parser.add_argument('--show-dir', help='write a grid picture of every test image under '
                        'SHOW_DIR/vis_data/vis_image/')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_cfg(args) -> Config:
    """Config from file + command line: checkpoint, baseline, output hooks."""
    from mtl_adapters.utils import load_config, trust_checkpoint
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = None        # loaded strictly in main(), not by the Runner (non-strict)
    if args.trust_checkpoint:
        trust_checkpoint(args.checkpoint)
    if args.baseline:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
            else [cfg.test_evaluator]
        for evaluator in evaluators:
            if evaluator.get('type') == 'MultiTaskMetric':
                evaluator['baseline_file'] = osp.abspath(args.baseline)
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != VIS_HOOK]
    if args.show_dir:
        hooks.append(dict(type=VIS_HOOK, interval=1, max_samples=-1, draw_val=False))
        show_visualizer(cfg, args.show_dir)
    else:  # keep the config's own visualisation hook (a few samples under the work dir)
        hooks += [h for h in cfg.get('custom_hooks', []) if h.get('type') == VIS_HOOK]
    if args.out_dir:
        hooks.append(dict(type='SavePredictionsHook', out_dir=args.out_dir))
    cfg.custom_hooks = hooks
    return cfg


def show_visualizer(cfg: Config, show_dir: str) -> None:
    """Point the config's visualiser at ``show_dir`` (its backends write under
    ``show_dir/vis_data``). The instance is named after the folder: mmengine's visualisers are
    process-wide named instances, and one built earlier under the config's name would keep
    writing to its own folder."""
    show_dir = osp.abspath(show_dir)
    vis = dict(cfg.get('visualizer') or {})
    vis.setdefault('type', 'Visualizer')
    vis.setdefault('vis_backends', [dict(type='LocalVisBackend')])
    vis.update(save_dir=show_dir, name=f'visualizer_{show_dir}')
    cfg.visualizer = vis


def main(argv=None):
    """Evaluate; write the metrics JSON; return the metrics."""
    args = parse_args(argv)
    from mmengine.runner import Runner

    from mtl_adapters.evaluation import metrics_for_json
    from mtl_adapters.set_env import register_all_modules
    from mtl_adapters.utils import write_json
    register_all_modules()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    if args.baseline and not osp.isfile(args.baseline):
        raise SystemExit(f'baseline file not found: {args.baseline}')
    cfg = build_cfg(args)
    runner = Runner.from_cfg(cfg)
    # strict: a checkpoint of another task set or class count, or an empty one, is an error
    # naming the missing and unexpected keys, never metrics of randomly initialised decoders
    runner.load_checkpoint(args.checkpoint, map_location='cpu', strict=True)
    metrics = runner.test()
    out = args.out or osp.join(cfg.work_dir, 'test_metrics.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    write_json(out, metrics_for_json(metrics))     # undefined metrics: null (warned)
    print(f'metrics written to {out}')
    return metrics


if __name__ == '__main__':
    main()
