"""UDA under two-process gloo DDP, through the Runner: ``tools/train.py``'s CPU set-up keeps the
config's ``UDADistributedDataParallel``; both strategies train three iterations on different
data per rank, and both ranks end with bit-identical students, discriminators, optimiser
states and mean teachers, every trained tensor moved."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine import Config
from mmengine.runner import Runner

from conftest import load_tool
from mtl_adapters.utils import load_checkpoint_file, unwrap_model
from uda_toys import write_source, write_tiny_config, write_unlabelled_target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, config: str, work_dir: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE='2')
    torch.set_num_threads(1)
    cfg = Config.fromfile(config)
    cfg.work_dir, cfg.launcher = work_dir, 'pytorch'
    load_tool('train').init_cpu_distributed(cfg)           # gloo, wrapper kept, no device ids
    assert cfg.model_wrapper_cfg == dict(type='UDADistributedDataParallel', device_ids=None)
    runner = Runner.from_cfg(cfg)
    initial = {n: p.detach().clone() for n, p in runner.model.module.named_parameters()
               if p.requires_grad}
    runner.train()
    model = unwrap_model(runner.model)
    hook = next(h for h in runner.hooks if type(h).__name__ == 'MeanTeacherHook')
    hub = runner.message_hub
    losses = [hub.get_scalar(f'train/{k}').data[0].tolist()
              for k in ('seg.loss_ce', 'seg.loss_adv', 'seg.loss_pseudo', 'seg.loss_disc')]
    record = dict(wrapper=type(runner.model).__name__, initial=initial, losses=losses,
                  final={n: p.detach().clone() for n, p in model.named_parameters()},
                  teacher={k: v.clone() for k, v in hook.teacher.state_dict().items()},
                  teacher_steps=hook.steps, optim=runner.optim_wrapper.state_dict())
    torch.save(record, os.path.join(out_dir, f'rank{rank}.pth'))
    dist.barrier()
    dist.destroy_process_group()


def _flat(state) -> dict:
    """Nested optimiser state dicts -> ``{path: tensor or value}``."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f'{prefix}.{k}', v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f'{prefix}.{i}', v)
        else:
            out[prefix] = value
    walk('', state)
    return out


def test_two_rank_uda_keeps_ranks_identical(tmp_path):
    source, target = tmp_path / 'source', tmp_path / 'target'
    write_source(source)
    write_unlabelled_target(target)
    config = write_tiny_config(tmp_path / 'tiny_ddp.py', str(source), str(target), max_iters=3,
                               ckpt_interval=100)
    work = tmp_path / 'work'
    # fork: the children reuse the parent's imports (spawn would re-import torch and timm)
    mp.start_processes(_worker, args=(_free_port(), str(config), str(work), str(tmp_path)),
                       nprocs=2, join=True, start_method='fork')
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pth', weights_only=False) for r in (0, 1))
    assert r0['wrapper'] == 'UDADistributedDataParallel'
    assert r0['losses'] != r1['losses']                     # different data on each rank
    differ = [n for n in r0['final'] if not torch.equal(r0['final'][n], r1['final'][n])]
    assert not differ, f'student/discriminators differ across ranks: {differ[:5]}'
    unmoved = [n for n, p in r0['initial'].items() if torch.equal(r0['final'][n], p)]
    assert not unmoved, f'not trained: {unmoved[:5]}'
    assert any(n.startswith('discriminators.') for n in r0['initial'])
    assert r0['teacher_steps'] == r1['teacher_steps'] == 3
    assert r0['teacher'].keys() == r1['teacher'].keys()
    assert all(torch.equal(r0['teacher'][k], r1['teacher'][k]) for k in r0['teacher'])
    o0, o1 = _flat(r0['optim']), _flat(r1['optim'])
    assert o0.keys() == o1.keys() and any(k.startswith('.discriminator.') for k in o0)
    assert all(torch.equal(o0[k], o1[k]) if torch.is_tensor(o0[k]) else o0[k] == o1[k]
               for k in o0)
    ckpt = load_checkpoint_file(str(work / 'iter_3.pth'), map_location='cpu')
    keys = list(ckpt['state_dict'])
    assert not any(k.startswith('module.') for k in keys)
    assert any(k.startswith('discriminators.') for k in keys)
    assert ckpt['mean_teacher']['steps'] == 3
