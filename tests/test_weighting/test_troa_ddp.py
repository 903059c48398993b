"""Two-process gloo DDP: W is bit-identical on both ranks and uses both ranks' gradients."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mtl_adapters.weighting import cosine_matrix
from weighting_toys import build_model, make_batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str, troa: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    from mmengine.model import MMDistributedDataParallel
    model = build_model(troa, seed=0)
    model.train()
    ddp = MMDistributedDataParallel(module=model, device_ids=None, broadcast_buffers=False)
    optim = torch.optim.SGD(model.parameters(), lr=0.05)
    record = []
    for step in range(2):
        inputs, samples = make_batch(seed=10 * step + rank)          # different data per rank
        model.weighting.due = True
        losses = ddp(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        optim.zero_grad()
        loss.backward()
        optim.step()
        model.weighting.after_backward()                # what TROAHook.after_train_iter does
        record.append((model.weighting.affinity.clone(), model.weighting.cosine.clone()))
    torch.save(record, os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


@pytest.mark.parametrize('mode', ['params', 'representation'])
def test_ddp_ranks_hold_identical_w(tmp_path, mode):
    troa = dict(type='TROAWeighting', eta=1.0, rho=0.2, gradient_mode=mode)
    # fork: the children reuse the parent's imports (spawn would re-import torch and timm)
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path), troa), nprocs=2, join=True,
                       start_method='fork')
    r0 = torch.load(tmp_path / 'rank0.pth')
    r1 = torch.load(tmp_path / 'rank1.pth')
    for (w0, c0), (w1, c1) in zip(r0, r1):
        assert torch.equal(w0, w1) and torch.equal(c0, c1)           # bit-identical
    # the first update used the mean of both ranks' gradients
    captured = []
    for rank in range(2):
        model = build_model(troa, seed=0)
        model.train()
        model.weighting.update = lambda g_a, g_b: captured.append((g_a, g_b))
        model.weighting.due = True
        sum(model.loss(*make_batch(seed=rank)).values()).backward()
        model.weighting.after_backward()
    g_a = (captured[0][0] + captured[1][0]) / 2
    g_b = (captured[0][1] + captured[1][1]) / 2
    torch.testing.assert_close(r0[0][1], cosine_matrix(g_a, g_b), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(r0[0][1], cosine_matrix(*captured[0]), atol=1e-3)
