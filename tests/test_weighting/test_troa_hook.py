"""TROAHook in a real Runner: schedule, scalars, heatmaps + JSON, checkpoint resume of W."""
import json

import pytest
import torch
from mmengine.runner import Runner
from torch.utils.data import Dataset

from weighting_toys import build_model, make_batch


class _ToyData(Dataset):
    """Eight random images with labels, as the packer hands them over."""

    def __init__(self):
        inputs, self.samples = make_batch(batch=8, seed=5)
        self.images = (inputs * 40 + 120).clamp(0, 255)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return dict(inputs=self.images[i], data_samples=self.samples[i])


def _runner(work_dir, max_iters, resume=False, mode='params', **hook):
    model = build_model(dict(type='TROAWeighting', eta=1.0, rho=0.2, loss_weighting=True,
                             gradient_mode=mode))
    return Runner(
        # a unique name: mmengine's global logger/visualiser instances are keyed by it
        model=model, work_dir=str(work_dir),
        experiment_name=f'troa{max_iters}{resume}{mode}_{abs(hash(str(work_dir)))}',
        train_dataloader=dict(dataset=_ToyData(), batch_size=4, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[dict(type='TROAHook', interval=2, **hook)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1),
                           # as every schedule base: checkpoints that load weights-only
                           safe_checkpoint=dict(type='SafeCheckpointHook')),
        log_processor=dict(by_epoch=False), resume=resume, default_scope='mtl_adapters',
        randomness=dict(seed=0))


@pytest.mark.parametrize('mode', ['params', 'representation'])
def test_hook_logs_plots_and_resumes(tmp_path, mode):
    runner = _runner(tmp_path, max_iters=4, mode=mode, plot_every=1)
    runner.train()
    weighting = runner.model.weighting
    assert int(weighting.num_updates) == 2                              # iters 0 and 2
    W = weighting.affinity.clone()
    assert runner.model.weighting.task_affinity() is weighting.affinity   # one W, no copy
    torch.testing.assert_close(W.sum(1), torch.ones(3))
    scalars = [json.loads(line) for line in
               next(tmp_path.rglob('vis_data/scalars.json')).read_text().splitlines()]
    logged = [s for s in scalars if 'troa/W/seg->depth' in s]
    assert [s['step'] for s in logged] == [1, 3]
    assert logged[-1]['troa/W/seg->depth'] == float(W[0, 1])
    # updates on iterations 0 and 2 (1 and 3 done): plotted there, and at the end
    plots = sorted(p.name for p in (tmp_path / 'troa').glob('*.png'))
    assert plots == ['C_iter1.png', 'C_iter3.png', 'C_iter4.png',
                     'W_iter1.png', 'W_iter3.png', 'W_iter4.png']
    final = json.loads((tmp_path / 'troa' / 'troa_final.json').read_text())
    assert final['num_updates'] == 2 and torch.equal(torch.tensor(final['W']), W)
    # a new runner resumes from iter_4.pth: W, C and the update count come back
    resumed = _runner(tmp_path, max_iters=4, resume=True, mode=mode)
    resumed.load_or_resume()
    assert torch.equal(resumed.model.weighting.affinity, W)
    assert torch.equal(resumed.model.weighting.cosine, weighting.cosine)
    assert int(resumed.model.weighting.num_updates) == 2


def test_plots_follow_updates_whatever_the_interval(tmp_path):
    runner = _runner(tmp_path, max_iters=6, plot_every=2)      # updates after 1, 3, 5 iters
    runner.train()
    assert sorted(p.name for p in (tmp_path / 'troa').glob('W_*.png')) == [
        'W_iter3.png', 'W_iter6.png']                           # 2nd update, and the end
    with pytest.raises(ValueError, match='plot_every'):
        _runner(tmp_path / 'bad', max_iters=2, plot_every=0).train()
