"""Train a multi-task model from a config (OpenMMLab style).

    python tools/train.py \
        configs/baseline/light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py
    python tools/train.py CONFIG --resume            # continue from work_dir's last checkpoint
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import gc
import glob
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mtl_adapters.engine.fsdp import check_fsdp, is_fsdp  # noqa: E402
from mtl_adapters.registry import register_all_modules  # noqa: E402
from mtl_adapters.utils import (load_config, newest_loadable_checkpoint,  # noqa: E402
                                set_cpu_threads, trust_checkpoint, unwrap_model)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a multi-task dense-prediction model with mmengine\'s Runner.',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file, e.g. configs/vtagml/...py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume training: from CKPT, or (no value) from the last '
                        'checkpoint in the work dir')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load the --resume / load_from checkpoint with a full pickle load '
                        '(runs any code inside it: only for files you wrote or trust)')
    parser.add_argument('--amp', action='store_true', help='bf16 mixed precision '
                        '(AmpOptimWrapper on a GPU, BF16OptimWrapper on the CPU)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. train_cfg.max_iters=100 '
                        'model.encoder.pretrained=weights/swinv2.safetensors')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed training')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads of each training process (default: OMP_NUM_THREADS '
                        'if set, else the available cores less the data workers)')
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_cfg(args) -> Config:
    """Config from file + command line."""
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.resume == 'auto':
        # the newest checkpoint that loads: one truncated by a kill is skipped, with a warning
        cfg.resume = True
        if args.trust_checkpoint:         # the user's own work dir: trust what is in it
            for path in glob.glob(osp.join(cfg.work_dir, '*.pth')):
                trust_checkpoint(path)
        cfg.load_from = newest_loadable_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) \
            else None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.trust_checkpoint and cfg.get('load_from'):
        trust_checkpoint(cfg.load_from)
    if args.amp:
        enable_amp(cfg)
    return cfg


def enable_amp(cfg: Config) -> None:
    """``--amp``: bf16 autocast of the forward and the losses (weights, gradients and the
    optimizer stay fp32). On a GPU mmengine's ``AmpOptimWrapper`` with ``dtype='bfloat16'``, as
    mmseg's ``--amp``; it refuses a machine without an accelerator, so on the CPU
    ``BF16OptimWrapper`` (engine/optimizers/bf16_optim_wrapper.py: the same autocast, no loss
    scaler, which bf16 does not need). The config's other optim_wrapper keys (optimizer,
    clip_grad, constructor, paramwise_cfg) are kept."""
    import torch
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind not in ('OptimWrapper', 'AmpOptimWrapper', 'BF16OptimWrapper'):
        raise ValueError(f'--amp: optim_wrapper.type={kind!r} in {cfg.filename} is not '
                         'OptimWrapper/AmpOptimWrapper; set the mixed-precision wrapper in the '
                         'config instead of passing --amp')
    wrapper.setdefault('dtype', 'bfloat16')
    wrapper.type = 'AmpOptimWrapper' if torch.cuda.is_available() else 'BF16OptimWrapper'


def init_cpu_distributed(cfg: Config) -> None:
    """torchrun without GPUs (CI, debugging): gloo process group, DDP without device ids.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device``; we start the group ourselves so
    the Runner finds it initialised and skips that call. The configured ``model_wrapper_cfg``
    (e.g. UDA's ``UDADistributedDataParallel``) is kept, with ``device_ids=None``;
    ``MMDistributedDataParallel`` when the config names none. Under FSDP
    (``configs/_base_/fsdp.py``) the shards live on the CPU: ``device_id`` is the CPU device
    (mmengine's ``FSDPStrategy`` would give ``LOCAL_RANK``, a CUDA index).
    """
    import torch
    import torch.distributed as dist
    if cfg.launcher != 'pytorch' or torch.cuda.is_available() or dist.is_initialized():
        return
    dist.init_process_group(backend='gloo')
    if is_fsdp(cfg):
        cfg.strategy.model_wrapper = dict(cfg.strategy.get('model_wrapper') or {},
                                          device_id=torch.device('cpu'))
        return
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the runner the config names in ``runner_type`` (mmengine's
    ``FlexibleRunner`` for FSDP, configs/_base_/fsdp.py), built from mmengine's ``RUNNERS``
    registry as mmengine's own tools do."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    cfg = build_cfg(args)
    set_cpu_threads((cfg.get('train_dataloader') or {}).get('num_workers', 0), args.threads)
    check_fsdp(cfg)
    init_cpu_distributed(cfg)
    runner = build_runner(cfg)
    runner.train()
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        # A clean shutdown. A process group left to interpreter exit can abort the process
        # after a successful run ("terminate called without an active exception", seen about
        # once in 15 two-process gloo runs), and DDP's reducer keeps the group alive: unwrap
        # the model and collect the reducer first, then destroy the group while Python runs.
        runner.model = unwrap_model(runner.model)
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return runner


if __name__ == '__main__':
    main()
