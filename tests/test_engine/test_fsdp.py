"""FSDP with one config switch (configs/_base_/fsdp.py): tools/train.py builds mmengine's
FlexibleRunner with FSDPStrategy, two gloo processes train the tiny adapter model sharded on the
CPU, and the weighting methods that need the full shared parameters are refused at build.

The training test runs ``tools/train.py``'s ``main`` in two forked processes (torchrun's
environment variables, ``--launcher pytorch``). A probe hook gathers the full (unsharded) state
on every rank before and after training."""
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import load_tool, write_taskonomy_fixture
from mmengine.hooks import Hook
from mmengine.runner import FlexibleRunner

from mtl_adapters.engine.fsdp import check_fsdp, is_fsdp
from mtl_adapters.registry import HOOKS, MODELS
from mtl_adapters.utils import load_checkpoint_file
from mtl_adapters.utils.checkpoint import unsafe_globals

REPO = Path(__file__).resolve().parents[2]
LEAF = REPO / 'configs/vtagml/vtagml-fsdp_swinv2-tiny-narrow_2xb4-600_synthetic-128x128_sdne.py'
DDP_LEAF = REPO / 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'
ITERS = 3

TINY = """
_base_ = '{base}'
data_root = '{root}'
model = dict(
    tasks=_base_.tasks[:2],
    encoder=dict(pretrained=None, img_size=(64, 64),
                 model_kwargs=dict(embed_dim=8, num_heads=(1, 1, 2, 2), depths=(1, 1, 2, 1),
                                   window_size=4),
                 adapter_blocks={{2: (-1,), 3: 'all'}}, embed_dim=8, reduction=2),
    decoder=dict(depths=(0, 1, 1, 1), num_heads=(2, 2, 1, 1), window_size=4,
                 img_size=(64, 64), head_channels=8),
    weighting={weighting})
param_scheduler = []
optim_wrapper = dict(clip_grad={clip_grad})
train_cfg = dict(max_iters={iters}, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval={iters}), logger=dict(interval=1))
visualizer = dict(name='{name}', vis_backends=[dict(type='LocalVisBackend')])
custom_hooks = [dict(type='FSDPProbeHook', out_dir='{out}')] + {extra_hooks}
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = None                    # no evaluation at the end of the three iterations
val_cfg = None
val_evaluator = None
"""
CROP = 'train_dataloader.dataset.pipeline.1.geometric.0.size=(64,64)'


@HOOKS.register_module()
class FSDPProbeHook(Hook):
    """Test probe: the full state gathered on this rank before and after training, the names
    of the trainable tensors, the rank's losses, and the TROA matrix if any."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.record = dict(losses=[])

    @staticmethod
    def _full_state(model) -> dict:
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        if not isinstance(model, FSDP):                                # DDP: replicated
            return {k: v.detach().clone() for k, v in model.module.state_dict().items()}
        with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(rank0_only=False)):
            return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def before_train(self, runner) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        self.record['wrapper'] = type(runner.model).__name__
        self.record['units'] = len(FSDP.fsdp_modules(runner.model))
        self.record['unit_classes'] = sorted({type(m.module).__name__
                                              for m in FSDP.fsdp_modules(runner.model)})
        self.record['initial'] = self._full_state(runner.model)
        self.record['trainable'] = sorted(
            n.replace('_fsdp_wrapped_module.', '').replace('module.', '', 1)
            for n, p in runner.model.named_parameters() if p.requires_grad)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.record['losses'].append(float(outputs['loss'].detach()))

    def after_train(self, runner) -> None:
        self.record['final'] = self._full_state(runner.model)
        weighting = runner.model.module.weighting
        if hasattr(weighting, 'affinity'):
            self.record['affinity'] = weighting.affinity.clone()
            self.record['num_updates'] = int(weighting.num_updates)
        torch.save(self.record, os.path.join(self.out_dir, f'rank{runner.rank}.pth'))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, argv: list) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE='2', LOCAL_WORLD_SIZE='2')
    torch.set_num_threads(1)
    load_tool('train').main(argv)


def write_tiny_config(tmp_path, weighting="dict(type='UniformWeighting')", extra_hooks='[]',
                      base=LEAF, clip_grad='dict(max_norm=5.0)', iters=ITERS):
    """The FSDP leaf config (or ``base``) shrunk to a tiny model on a tiny dataset."""
    root = tmp_path / 'data'
    if not root.exists():
        write_taskonomy_fixture(str(root), buildings=('b0', 'b1', 'b2', 'b3'), views=2,
                                size=(64, 64), num_classes=8)
    tag = 'fsdp' if base == LEAF else 'ddp'
    out = tmp_path / f'probe_{tag}'
    out.mkdir(exist_ok=True)
    cfg = tmp_path / f'tiny_{tag}.py'
    cfg.write_text(TINY.format(base=base, root=root, name=f'{tag}_{tmp_path.name}', out=out,
                               iters=iters, weighting=weighting, extra_hooks=extra_hooks,
                               clip_grad=clip_grad))
    return cfg, out


def train_two_ranks(tmp_path, load_from=None, resume=False, **config):
    """tools/train.py on two forked gloo processes; the two ranks' probe records."""
    cfg, out = write_tiny_config(tmp_path, **config)
    argv = [str(cfg), '--launcher', 'pytorch', '--work-dir', str(tmp_path / out.name)] + (
        ['--resume'] if resume else []) + ['--cfg-options', CROP] + (
        [f'load_from={load_from}'] if load_from else [])
    # fork: the children reuse the parent's imports (spawn would re-import torch and timm)
    mp.start_processes(_worker, args=(_free_port(), argv), nprocs=2, join=True,
                       start_method='fork')
    return [torch.load(out / f'rank{r}.pth', weights_only=False) for r in range(2)]


def test_config_switch_builds_a_flexible_runner_with_fsdp(tmp_path):
    """The leaf config's two `_base_` entries give FlexibleRunner + FSDPStrategy with our
    options; tools/train.py builds that runner (not mmengine's Runner) from `runner_type`.
    (Built without a process group: nothing is wrapped until training starts.)"""
    from mmengine._strategy import FSDPStrategy
    train = load_tool('train')
    cfg, _ = write_tiny_config(tmp_path)
    built = train.build_cfg(train.parse_args([str(cfg), '--launcher', 'pytorch', '--work-dir',
                                              str(tmp_path / 'work'), '--cfg-options', CROP]))
    assert built.runner_type == 'FlexibleRunner'
    assert is_fsdp(built)
    check_fsdp(built)                                   # uniform weighting: accepted
    built.launcher = 'none'
    runner = train.build_runner(built)
    assert isinstance(runner, FlexibleRunner)
    assert isinstance(runner.strategy, FSDPStrategy)
    wrapper = runner.strategy.model_wrapper
    assert wrapper['type'] == 'MMFullyShardedDataParallel' and wrapper['use_orig_params']
    assert wrapper['auto_wrap_policy']['type'] == 'mtl_adapters.engine.fsdp.block_wrap_policy'
    assert runner.strategy._is_full_state_dict()     # one ordinary checkpoint, on rank 0


def test_fsdp_needs_a_launcher(tmp_path):
    train = load_tool('train')
    cfg, _ = write_tiny_config(tmp_path)
    built = train.build_cfg(train.parse_args([str(cfg), '--work-dir', str(tmp_path / 'w')]))
    with pytest.raises(ValueError, match=r'torchrun .*--launcher pytorch'):
        check_fsdp(built)


@pytest.mark.parametrize('weighting, refused', [
    ("dict(type='PCGradWeighting')", 'PCGradWeighting'),
    ("dict(type='GradNormWeighting')", 'GradNormWeighting'),
    ("dict(type='TROAWeighting')", 'TROAWeighting'),                     # default: 'params'
    ("dict(type='TROAWeighting', gradient_mode='params')", 'TROAWeighting'),
    ("dict(type='UncertaintyWeighting')", None),
    ("dict(type='TROAWeighting', gradient_mode='representation')", None),
])
def test_gradient_weighting_is_refused_at_build(tmp_path, weighting, refused):
    """Methods taking per-task gradients on the shared parameters cannot see them sharded:
    tools/train.py refuses them before building anything, naming the config key."""
    train = load_tool('train')
    cfg, _ = write_tiny_config(tmp_path, weighting=weighting)
    built = train.build_cfg(train.parse_args([str(cfg), '--launcher', 'pytorch',
                                              '--work-dir', str(tmp_path / 'w')]))
    if refused is None:
        check_fsdp(built)
        return
    with pytest.raises(ValueError, match=rf"model\.weighting\.type='{refused}' needs the full "
                       r'shared parameters.*use DDP'):
        check_fsdp(built)
    built.pop('runner_type')              # without the switch (DDP) the same method is fine
    built.pop('strategy')
    check_fsdp(built)


def test_two_rank_fsdp_training_matches_ddp(tmp_path):
    """Two gloo ranks, uniform weighting, three iterations from the same weights, once under
    FSDP and once under DDP (the leaf config without configs/_base_/fsdp.py). Under FSDP the
    ranks saw different data and gather the same state, every trainable tensor moved, the
    frozen trunk did not, and the weights are DDP's (the sharded step averages both ranks'
    gradients as DDP does; gradient clipping off, as FSDP clips per shard). The checkpoint the
    FlexibleRunner wrote (gathered on rank 0) loads weights-only into a fresh model."""
    train = load_tool('train')
    cfg, _ = write_tiny_config(tmp_path)
    built = train.build_cfg(train.parse_args([str(cfg), '--work-dir', str(tmp_path / 'w')]))
    torch.manual_seed(1)
    start = tmp_path / 'start.pth'                  # the same initial weights for both runs
    torch.save(dict(state_dict=MODELS.build(built.model).state_dict()), start)
    r0, r1 = train_two_ranks(tmp_path, clip_grad='None', load_from=start)
    assert r0['wrapper'] == 'MMFullyShardedDataParallel'
    assert r0['units'] > 3                       # the auto-wrap policy split the model
    assert {'SwinTransformerV2Block', 'AdapterBlock', 'DecoderStage'} <= set(r0['unit_classes'])
    assert r0['losses'] != r1['losses']          # different images on each rank
    assert r0['final'].keys() == r1['final'].keys()
    differ = [k for k in r0['final'] if not torch.equal(r0['final'][k], r1['final'][k])]
    assert not differ, f'ranks gather different states: {differ[:5]}'
    trainable = set(r0['trainable'])
    assert any(k.startswith('encoder.') for k in trainable)       # adapters
    assert any(k.startswith('decoders.') for k in trainable)
    unmoved = [k for k in trainable if torch.equal(r0['initial'][k], r0['final'][k])]
    assert not unmoved, f'not moved after {ITERS} FSDP steps: {unmoved[:5]}'
    trunk = [k for k in r0['initial'] if k.startswith('encoder.swin.') and k not in trainable]
    assert trunk
    moved = [k for k in trunk if not torch.equal(r0['initial'][k], r0['final'][k])]
    assert not moved, f'frozen trunk changed: {moved[:5]}'

    ddp, _ = train_two_ranks(tmp_path, clip_grad='None', base=DDP_LEAF, load_from=start)
    assert ddp['wrapper'] == 'MMDistributedDataParallel'
    assert all(torch.equal(r0['initial'][k], ddp['initial'][k]) for k in ddp['initial'])
    assert r0['losses'] == pytest.approx(ddp['losses'], rel=1e-5)
    assert r0['final'].keys() == ddp['final'].keys()
    far = [k for k in r0['final']
           if not torch.allclose(r0['final'][k], ddp['final'][k], rtol=1e-4, atol=1e-6)]
    assert not far, f'FSDP and DDP weights differ: {far[:5]}'

    ckpt_path = tmp_path / 'probe_fsdp' / f'iter_{ITERS}.pth'
    assert unsafe_globals(str(ckpt_path)) == []
    ckpt = load_checkpoint_file(str(ckpt_path), map_location='cpu')
    assert ckpt['meta']['iter'] == ITERS
    state = ckpt['state_dict']
    assert not any('_fsdp' in k or k.startswith('module.') for k in state)
    assert state.keys() == r0['final'].keys()
    assert all(torch.equal(state[k], r0['final'][k]) for k in state)
    assert ckpt['optimizer']['state']                           # the gathered optimizer state
    model = MODELS.build(built.model)
    model.load_state_dict(state, strict=True)
    assert all(torch.equal(v, r0['final'][k]) for k, v in model.state_dict().items())


def test_troa_representation_mode_under_fsdp_and_resume(tmp_path):
    """TROA's 'representation' mode takes its gradients on an activation, not on the sharded
    parameters: under FSDP it updates W every iteration, identically on both ranks. ``--resume``
    from the FlexibleRunner's checkpoint restores W, its update count and the sharded AdamW
    state (mmengine 0.10's FSDP resume fails on torch >= 2.1; MultiTaskFSDPStrategy fixes it)."""
    troa = dict(weighting="dict(type='TROAWeighting', gradient_mode='representation')",
                extra_hooks="[dict(type='TROAHook', interval=1), dict(type='ParamReportHook')]")
    r0, r1 = train_two_ranks(tmp_path, **troa)
    assert r0['num_updates'] == ITERS
    assert torch.equal(r0['affinity'], r1['affinity'])
    assert not torch.allclose(r0['affinity'], r0['initial']['weighting.affinity'])

    resumed, _ = train_two_ranks(tmp_path, resume=True, iters=ITERS + 2, **troa)
    assert torch.equal(resumed['initial']['weighting.affinity'], r0['affinity'])
    assert resumed['num_updates'] == ITERS + 2
    assert len(resumed['losses']) == 2                        # iterations 4 and 5 only
    ckpt = load_checkpoint_file(str(tmp_path / 'probe_fsdp' / f'iter_{ITERS + 2}.pth'))
    steps = {float(v['step']) for v in ckpt['optimizer']['state'].values()}
    assert steps == {ITERS + 2.0}                      # AdamW went on from the saved state


def _guard_worker(rank: int, port: int, model_cfg: dict, out: str) -> None:
    """One gloo rank: the tiny model under FSDP with our wrap policy, one training forward."""
    from functools import partial

    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from mtl_adapters.benchmarks.common import random_samples
    from mtl_adapters.engine.fsdp import block_wrap_policy
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', rank=rank, world_size=1)
    model = MODELS.build(model_cfg).train()
    wrapped = FSDP(model, auto_wrap_policy=partial(block_wrap_policy),
                   device_id=torch.device('cpu'), use_orig_params=True)
    try:
        wrapped(torch.randn(2, 3, 64, 64), random_samples(model, 2, (64, 64)), mode='loss')
        message = 'no error'
    except RuntimeError as error:
        message = str(error)
    torch.save(message, os.path.join(out, 'message.pth'))
    torch.distributed.destroy_process_group()


def test_model_refuses_shared_parameter_gradients_under_fsdp(tmp_path):
    """Outside tools/train.py (a FlexibleRunner built by hand, a notebook) the model itself
    refuses a shared-parameter gradient method under FSDP instead of silently acting as uniform
    weighting."""
    train = load_tool('train')
    cfg, _ = write_tiny_config(tmp_path, weighting="dict(type='PCGradWeighting')")
    built = train.build_cfg(train.parse_args([str(cfg), '--work-dir', str(tmp_path / 'w')]))
    mp.start_processes(_guard_worker, args=(_free_port(), built.model.to_dict(), str(tmp_path)),
                       nprocs=1, join=True, start_method='fork')
    message = torch.load(tmp_path / 'message.pth')
    assert "model.weighting.type='PCGradWeighting' needs the full shared parameters" in message
