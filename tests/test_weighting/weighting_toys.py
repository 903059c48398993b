"""Tiny multi-task models and batches shared by the weighting tests (no pretrained weights)."""
import torch

from mtl_adapters.set_env import register_all_modules
from mtl_adapters.structures import MultiTaskDataSample

register_all_modules()

#: a very narrow Swin-V2 (random init) for the adapter encoder
TINY_SWIN = dict(model_name='swinv2_tiny_window8_256', img_size=(32, 32),
                 model_kwargs=dict(embed_dim=8, num_heads=(1, 1, 2, 2), depths=(1, 1, 2, 1),
                                   window_size=4))
TASKS = [dict(type='SemanticTask', num_classes=3), dict(type='DepthTask'),
         dict(type='NormalTask')]


def build_model(weighting=None, encoder='AdaptedSwinV2Encoder', seed=0, tasks=TASKS):
    """A MultiTaskModel on the tiny Swin-V2 (adapter encoder: blocks of the last two stages)."""
    from mtl_adapters.registry import MODELS
    torch.manual_seed(seed)
    enc = dict(type=encoder, **TINY_SWIN)
    if encoder == 'AdaptedSwinV2Encoder':
        enc.update(adapter_blocks={2: (-1,), 3: 'all'}, embed_dim=8, reduction=2)
    model = MODELS.build(dict(type='MultiTaskModel', tasks=tasks, encoder=enc,
                              decoder=dict(type='LightHead', channels=8), weighting=weighting))
    # adapters start as the identity (zero up-projections): perturb them so every adapter
    # parameter receives a gradient and the tasks' gradients differ
    with torch.no_grad():
        for p in model.shared_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def make_batch(batch=4, seed=0, size=32, drop=()):
    """(inputs, data samples) with random labels; tasks in ``drop`` have no labels."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=g)
    samples = []
    for _ in range(batch):
        s = MultiTaskDataSample(metainfo=dict(img_shape=(size, size)))
        if 'seg' not in drop:
            s.set_gt('seg', torch.randint(0, 3, (1, size, size), generator=g))
        if 'depth' not in drop:
            s.set_gt('depth', torch.rand(1, size, size, generator=g) * 5 + 0.5)
        if 'normal' not in drop:
            n = torch.randn(3, size, size, generator=g)
            s.set_gt('normal', n / n.norm(dim=0, keepdim=True))
        samples.append(s)
    return inputs, samples
