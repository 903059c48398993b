"""Pretrain a Swin-V2 trunk from a config (configs/pretrain/) and write it as a trunk file.

    python tools/pretrain.py \
        configs/pretrain/supervised_swinv2-tiny-narrow_1xb8-3000_synthetic-pretrain-64x64_sdne.py

Generates the config's ``corpus`` into its ``data_root`` first if needed (resumable, seeded),
trains the pretraining model with mmengine's Runner (``randomness.seed``), then writes the
trunk (``trunk_out``, or ``--out``; relative to the work dir) and prints its path, size and
sha256. Any encoder loads the file with ``model.encoder.pretrained=<path>``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

# Only what parsing needs at module level (no torch): `--help` answers in about a second.
from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pretrain a Swin-V2 trunk and write it as a trunk file (safetensors).',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file, e.g. configs/pretrain/...py')
    parser.add_argument('--work-dir', help='logs and checkpoints (default: work_dirs/<config '
                        'name>)')
    parser.add_argument('--out', help='trunk file to write (default: the config\'s trunk_out, '
                        'relative to the work dir)')
    parser.add_argument('--overwrite', action='store_true',
                        help='start again in a work dir that holds a previous run (its '
                        'checkpoints are deleted first; logs kept)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. train_cfg.max_iters=10 '
                        'corpus.num_scenes=2 data_root=/tmp/corpus')
    return parser.parse_args(argv)


def prepare_corpus(cfg) -> None:
    """Render the config's ``corpus`` (``generate`` keyword arguments) into the training
    dataset's ``data_root``; existing views are kept, a folder made with other settings is
    refused by ``generate``."""
    from mtl_adapters.data_generation.synthetic import generate
    if not cfg.get('corpus'):
        return
    root = cfg.train_dataloader.dataset.data_root
    summary = generate(root, **dict(cfg.corpus), progress=False)
    print(f"corpus {root}: {summary['rendered']} view(s) rendered, {summary['skipped']} kept")


def main(argv=None):
    args = parse_args(argv)
    from mmengine.runner import Runner

    from mtl_adapters.set_env import register_all_modules
    from mtl_adapters.utils import load_config, unwrap_model
    from mtl_adapters.utils.workdir import claim_work_dir
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options, 'none', args.work_dir)
    out = args.out or cfg.get('trunk_out')
    if not out:
        raise ValueError(f'{args.config} sets no trunk_out: pass --out PATH')
    out = out if osp.isabs(out) or args.out else osp.join(cfg.work_dir, out)
    prepare_corpus(cfg)
    # one run per work dir, never over a previous one unless asked (as tools/train.py)
    lock = claim_work_dir(cfg.work_dir, bool(cfg.get('resume')), args.overwrite)
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    finally:
        if lock is not None:
            lock.release()
    model = unwrap_model(runner.model)
    if not hasattr(model, 'export_trunk'):
        raise TypeError(f'model.type={cfg.model.type!r} cannot export a trunk: use a '
                        'pretraining model (mtl_adapters/models/pretrain/)')
    sha = model.export_trunk(out)
    print(f'trunk written: {out} ({osp.getsize(out) / 2**20:.2f} MiB, sha256 {sha})')
    return out, sha


if __name__ == '__main__':
    main()
