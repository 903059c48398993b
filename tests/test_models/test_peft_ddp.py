"""Every method of configs/peft/ trains under two-process gloo DDP: two training steps through
mmengine's ``MMDistributedDataParallel.train_step`` (data preprocessor, loss, the config's own
optimiser wrapper), different images on each rank, and both ranks end with bit-identical
parameters, every trainable tensor moved. The configs are found by glob: a method whose config
lands in configs/peft/ is tested with the others."""
import glob
import os
import os.path as osp
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import REPO
from mmengine import Config
from mmengine.optim import build_optim_wrapper

from mtl_adapters.benchmarks.common import random_samples
from mtl_adapters.registry import MODELS

CONFIGS = sorted(osp.relpath(p, REPO) for p in glob.glob(str(REPO / 'configs/peft/*.py')))
SIZE = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tiny_config(path: str) -> Config:
    """The shipped config, made small: two tasks, one block per decoder stage (the encoder
    as shipped)."""
    cfg = Config.fromfile(str(REPO / path))
    cfg.model.tasks = cfg.model.tasks[:2]
    cfg.model.decoder.depths = (1, 1, 1, 1)
    return cfg


def batch(model, rank: int, step: int) -> dict:
    """One uint8 image and random valid labels, different on each rank and step."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    img = torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    return dict(inputs=[img], data_samples=random_samples(model, 1, (SIZE, SIZE), generator=g))


def _worker(rank: int, port: int, path: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    from mmengine.model import MMDistributedDataParallel
    cfg = tiny_config(path)
    torch.manual_seed(0)                                   # same initial weights on both ranks
    model = MODELS.build(cfg.model).train()
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    ddp = MMDistributedDataParallel(module=model, device_ids=None, broadcast_buffers=False)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    losses = []
    for step in range(2):
        log = ddp.train_step(batch(model, rank, step), optim_wrapper=optim)
        losses.append(float(log['loss']))
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.save(dict(initial=initial, final=final, losses=losses),
               osp.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


@pytest.mark.parametrize('path', CONFIGS)
def test_two_rank_ddp_training_keeps_ranks_identical(tmp_path, path):
    # fork: the children reuse the parent's imports (spawn would re-import torch and timm)
    mp.start_processes(_worker, args=(_free_port(), path, str(tmp_path)), nprocs=2, join=True,
                       start_method='fork')
    r0 = torch.load(tmp_path / 'rank0.pth')
    r1 = torch.load(tmp_path / 'rank1.pth')
    assert r0['losses'] != r1['losses']                   # the ranks saw different data
    assert r0['final'].keys() == r1['final'].keys()
    differ = [n for n in r0['final'] if not torch.equal(r0['final'][n], r1['final'][n])]
    assert not differ, f'ranks differ after two DDP steps: {differ[:5]}'
    assert r0['initial'], 'nothing trains'
    unmoved = [n for n, p in r0['initial'].items() if torch.equal(r0['final'][n], p)]
    assert not unmoved, f'not moved after two steps: {unmoved[:5]}'
