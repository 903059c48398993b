"""Train a multi-task model from a config (OpenMMLab style).

    python tools/train.py \
        configs/baseline/light_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py
    python tools/train.py CONFIG --resume            # continue from work_dir's last checkpoint
    python tools/train.py CONFIG --resume --resume-lr 1e-4    # ... with a new learning rate
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
"""
from __future__ import annotations

import argparse
import gc
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

# Only what parsing needs at module level (mmengine.config does not import torch): `--help` and
# a usage error answer in about a second; torch, the Runner and the package load in `main`.
from mmengine.config import Config, DictAction  # noqa: E402


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
    parser.add_argument('--resume-lr', type=float, metavar='LR',
                        help='with --resume: the new base learning rate '
                        '(optim_wrapper.optimizer.lr); the restored optimiser and schedulers '
                        'take their learning rates from the config, not from the checkpoint')
    parser.add_argument('--overwrite', action='store_true',
                        help='train into a work dir that holds a previous run: its checkpoints '
                        'are deleted first (without it such a work dir is refused)')
    parser.add_argument('--load-partial', action='store_true',
                        help='load_from loads only the tensors that match the model and logs '
                        'the others (config: load_from_partial = True); default: strict')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load the --resume CKPT / load_from checkpoint with a full pickle '
                        'load (runs any code inside it: only for files you wrote or trust)')
    parser.add_argument('--amp', action='store_true', help='bf16 mixed precision '
                        '(AmpOptimWrapper on a GPU, BF16OptimWrapper on the CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the total batch (GPUs x batch per '
                        'GPU) / auto_scale_lr.base_batch_size of the config (linear rule)')
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
    from mtl_adapters.utils import load_config, newest_loadable_checkpoint, trust_checkpoint
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.resume == 'auto':
        if args.trust_checkpoint:
            raise ValueError('--trust-checkpoint trusts one file you name: pass it as '
                             '--resume CKPT, not every checkpoint of the work dir')
        # the newest checkpoint that loads: one truncated by a kill is skipped, with a warning
        newest = newest_loadable_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
        if newest is not None:
            if cfg.get('load_from'):
                print(f'--resume: resuming from {newest}; the config\'s load_from '
                      f'({cfg.load_from}) is what that run started from', flush=True)
            cfg.resume, cfg.load_from = True, newest
        else:
            cfg.resume = False
            print(f'--resume: no checkpoint in {cfg.work_dir} to resume; starting a new run '
                  + (f'from load_from={cfg.load_from}' if cfg.get('load_from')
                     else 'from scratch'), flush=True)
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.resume_lr is not None:
        set_resume_lr(cfg, args.resume_lr, bool(args.resume))
    if args.load_partial:
        cfg.load_from_partial = True
    if args.trust_checkpoint and cfg.get('load_from'):
        trust_checkpoint(cfg.load_from)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    return cfg


def enable_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr``: mmengine's Runner scales the learning rate by (GPUs x batch per GPU)
    / ``auto_scale_lr.base_batch_size`` (the linear scaling rule, as mmseg's ``--auto-scale-lr``);
    the base batch is the one the config's name states (``1xb8``: 8)."""
    scale = cfg.get('auto_scale_lr')
    if not scale or 'base_batch_size' not in scale:
        raise ValueError(f'--auto-scale-lr: {cfg.filename} sets no auto_scale_lr.base_batch_size '
                         '(the total batch its learning rate was chosen for); add '
                         'auto_scale_lr = dict(enable=False, base_batch_size=N) to the config')
    if cfg.get('runner_type'):
        raise ValueError(f'--auto-scale-lr: {cfg.filename} uses runner_type='
                         f'{cfg.runner_type!r}, which does not apply auto_scale_lr; scale '
                         'optim_wrapper.optimizer.lr yourself with --cfg-options')
    cfg.auto_scale_lr.enable = True


def set_resume_lr(cfg: Config, lr: float, resume: bool) -> None:
    """``--resume-lr LR``: ``optim_wrapper.optimizer.lr = LR`` and ``resume_lr_from_config =
    True`` (SafeCheckpointHook then rescales the restored optimiser and schedulers)."""
    if not resume:
        raise ValueError('--resume-lr needs --resume (a new run takes its learning rate from '
                         '--cfg-options optim_wrapper.optimizer.lr=...)')
    if 'optimizer' not in cfg.optim_wrapper:
        raise ValueError(
            f'--resume-lr: {cfg.filename} has several optimisers '
            f'({", ".join(cfg.optim_wrapper)}); set each one\'s learning rate with '
            '--cfg-options optim_wrapper.<name>.optimizer.lr=... resume_lr_from_config=True')
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.resume_lr_from_config = True


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

    from mtl_adapters.engine.fsdp import is_fsdp
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
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


def main(argv=None):
    args = parse_args(argv)
    from mtl_adapters.engine.fsdp import check_fsdp
    from mtl_adapters.set_env import register_all_modules
    from mtl_adapters.utils import set_cpu_threads, unwrap_model
    from mtl_adapters.utils.workdir import claim_work_dir
    register_all_modules()
    cfg = build_cfg(args)
    set_cpu_threads(args.threads)
    check_fsdp(cfg)
    # one training per work dir, and none over a previous run unless it resumes/overwrites it
    lock = claim_work_dir(cfg.work_dir, bool(cfg.get('resume')) or args.resume is not None,
                          args.overwrite)
    try:
        init_cpu_distributed(cfg)
        runner = build_runner(cfg)
        runner.train()
    finally:
        if lock is not None:
            lock.release()
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
