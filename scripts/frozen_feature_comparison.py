"""Frozen-feature comparison: the decoders alone trained on the frozen trunk, on the synthetic
S-D-N-E scenes, with the shipped pretrained trunk vs a random one, same budget, several seeds;
test-split metrics as mean ± sample std per trunk. ``--config light`` (default) trains one light
FPN head per task (configs/baseline/light_...: a cheap probe of the features), ``--config swin``
the Swin decoders of configs/peft/decoder-only_....

    python scripts/frozen_feature_comparison.py [--config light] [--trunks pretrained random]
        [--seeds 0 1 2] [--max-iters 50] [--data-root data/synthetic]
        [--work-dir work_dirs/frozen_features]

Each run writes ``<work-dir>/<trunk>[-<sha256 start>]_seed<k>.json`` (skipped when present, so
an interrupted comparison resumes; the shipped trunk's runs carry its hash); the table goes to
``<work-dir>/frozen_features.md``.
"""
import argparse
import json
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mtl_adapters.set_env import register_all_modules  # noqa: E402
from mtl_adapters.utils.io import atomic_write_bytes, json_bytes  # noqa: E402

CONFIGS = dict(
    light='configs/baseline/light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py',
    swin='configs/peft/decoder-only_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py')
TRUNKS = {'pretrained': 'embedded://swinv2-tiny-narrow-synthetic', 'random': None}


def run_name(trunk: str) -> str:
    """``trunk`` and, for a shipped one, the start of its sha256: a result is reused only for
    the same weights (a trunk replaced under the same name gets runs of its own)."""
    if TRUNKS[trunk] is None:
        return trunk
    from mtl_adapters.models.backbones.embedded_trunk import resolve_trunk
    return f'{trunk}-{resolve_trunk(TRUNKS[trunk])[1][:8]}'


def run(trunk: str, seed: int, args) -> dict:
    """Train the decoders on the frozen ``trunk`` for ``max_iters``; test-split metrics."""
    cfg = Config.fromfile(CONFIGS[args.config])
    iters, warmup = args.max_iters, max(1, args.max_iters // 10)
    cfg.model.encoder.pretrained = TRUNKS[trunk]
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = osp.join(args.work_dir, f'{run_name(trunk)}_seed{seed}')
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = iters
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=warmup),
        dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=warmup, end=iters)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=iters,
                                        save_last=False)
    cfg.custom_hooks = []
    cfg.visualizer = dict(type='Visualizer', name=f'vis_{trunk}_{seed}',
                          vis_backends=[dict(type='LocalVisBackend')])
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    for loader in ('train_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = args.data_root
        cfg[loader].num_workers = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {k: float(v) for k, v in runner.test().items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', choices=list(CONFIGS), default='light')
    parser.add_argument('--trunks', nargs='+', choices=list(TRUNKS), default=list(TRUNKS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--max-iters', type=int, default=50)
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--work-dir', default=None,
                        help='default: work_dirs/frozen_features_<config>')
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir or f'work_dirs/frozen_features_{args.config}'
    register_all_modules()
    results = {}
    for trunk in args.trunks:
        for seed in args.seeds:
            path = osp.join(args.work_dir, f'{run_name(trunk)}_seed{seed}.json')
            if not osp.isfile(path):
                atomic_write_bytes(path, json_bytes(run(trunk, seed, args), what=path))
            with open(path) as f:
                results.setdefault(trunk, []).append(json.load(f))
    keys = sorted(set.intersection(*(set(r) for rs in results.values() for r in rs)))
    lines = ['| metric | ' + ' | '.join(results) + ' |', '|---' * (len(results) + 1) + '|']
    for key in keys:
        cells = []
        for runs in results.values():
            vals = [r[key] for r in runs]
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f'{statistics.mean(vals):.3f} ± {std:.3f}')
        lines.append(f'| {key} | ' + ' | '.join(cells) + ' |')
    table = '\n'.join(lines) + '\n'
    atomic_write_bytes(osp.join(args.work_dir, 'frozen_features.md'), table.encode())
    print(table)


if __name__ == '__main__':
    main()
