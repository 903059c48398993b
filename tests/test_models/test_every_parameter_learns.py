"""Every config as shipped builds, and every trainable tensor of its model learns.

On a random trunk (what most tests run), on the shipped pretrained trunk (the CPU demo's
default) and on a trunk loaded from a timm state dict, one training step with the config's own
optimiser wrapper must give a non-zero gradient to the task-adapted attention (A and its FiLM)
and to both halves of every task-scaled norm: these are the tensors that a zero-initialised
res-post norm kept at exactly zero gradient forever. Two steps must give every trainable tensor
(adapters, task embeddings, skip projections, decoders, heads, weighting parameters) a non-zero
gradient and move it.

Why two steps for the rest: the adapters start as the identity through zero-initialised
factors of products (FF-up after FF-down, FiLM linears after the task embeddings). At such a
saddle the first step can only move the zero factor; the factor behind it gets its gradient
from the second step on (a LoRA's down-projection behaves the same). The first step's
zero-gradient set is asserted to be exactly those tensors.
"""
import copy
import glob
import os.path as osp

import pytest
import timm
import torch
from conftest import REPO
from mmengine import Config
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

from mtl_adapters.benchmarks.common import random_samples
from mtl_adapters.registry import MODELS
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks

CONFIGS = sorted(osp.relpath(p, REPO)
                 for p in glob.glob(str(REPO / 'configs/**/*.py'), recursive=True)
                 if '_base_' not in p)
NARROW_SDNE = 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'
BASE_SDNE = 'configs/vtagml/vtagml_swinv2-base_1xb8-40k_taskonomy-256x256_sdne.py'
#: adapter tensors behind a zero-initialised factor: zero gradient on the first step only
SECOND_FACTOR = ('task_embeddings', 'adapter_norm.', 'tsn3.', 'ff_down.', 'skip_merges.',
                 'lora_A')          # LoRA's A sits behind B = 0, as FF-down behind FF-up
#: the tensors a zero res-post norm killed: they must learn from the first step
FIRST_STEP = ('taa.task_bias', 'taa.film.', 'tsn1.film.', 'tsn2.film.', 'ff_up.')


def load_config(path: str, pretrained=None) -> Config:
    """The shipped config with the trunk's weights from ``pretrained`` (None: random)."""
    cfg = Config.fromfile(str(REPO / path))
    if 'pretrained' in cfg.model.encoder:
        cfg.model.encoder.pretrained = pretrained
    return cfg


def write_trained_like_timm_weights(cfg: Config, path) -> dict:
    """A timm state dict for the config's trunk, as a trained checkpoint has it: non-zero
    res-post norms (timm's random init leaves them at 0). Saved as safetensors."""
    from safetensors.torch import save_file
    enc = cfg.model.encoder
    torch.manual_seed(7)
    swin = timm.create_model(enc.model_name, pretrained=False, num_classes=0,
                             img_size=tuple(enc.img_size), **dict(enc.get('model_kwargs', {})))
    with torch.no_grad():
        for name, p in swin.named_parameters():
            if '.norm' in name and 'blocks' in name:
                p.normal_(0.4, 0.2) if name.endswith('weight') else p.normal_(0.0, 0.05)
    state = {k: v.contiguous() for k, v in swin.state_dict().items()}
    save_file(state, str(path))
    return state


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_and_builds(path):
    """Every config under configs/ parses and builds its model (pretrained trunk: random)."""
    cfg = load_config(path)
    n = len(cfg.model.tasks)
    if path.startswith('configs/vtagml/'):
        assert n == {'sd': 2, 'sdn': 3, 'sdne': 4}[path.rsplit('_', 1)[-1][:-3]]
    model = MODELS.build(cfg.model)
    assert list(model.tasks) == ['seg', 'depth', 'normal', 'edge'][:n]
    loaded = list(build_tasks(cfg.train_dataloader.dataset.tasks))
    if list(model.train_task_names) == list(model.tasks):
        assert len(loaded) == 4                       # the dataset loads every task
    else:                                             # zero-shot: only the labelled tasks
        assert loaded == list(model.train_task_names), (loaded, model.train_task_names)
    if hasattr(model.encoder, 'task_names'):
        assert model.encoder.task_names == list(model.tasks)
    if 'base' in path:
        return                                  # Swin-V2-B: a forward is the learning test's
    with torch.no_grad():
        out = model.eval().forward_tasks(torch.randn(1, 3, 64, 64))
    assert all(o.shape[-2:] == (64, 64) for o in out.values())


def train_steps(cfg: Config, steps: int = 2, size: int = 64, batch: int = 2):
    """Build the model and the config's optimiser wrapper, take ``steps`` training steps on
    random data; returns (model, initial values, per-step {name: grad is non-zero})."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    initial = {n: p.detach().clone() for n, p in params.items()}
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, size, size, generator=g)
    samples = random_samples(model, batch, (size, size), generator=g)
    if isinstance(optim, OptimWrapperDict):         # UDA: its own step, two optimisers
        return model, initial, uda_train_steps(model, optim, params, steps, inputs, samples)
    has_grad = []
    for _ in range(steps):
        if hasattr(model.weighting, 'due'):
            model.weighting.due = True             # what TROAHook does on an update step
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        assert torch.isfinite(loss)
        optim.backward(loss)
        has_grad.append({n: p.grad is not None and bool(p.grad.abs().max() > 0)
                         for n, p in params.items()})
        optim.step()
        optim.zero_grad()
        model.weighting.after_backward()           # what TROAHook does after the step
    return model, initial, has_grad


def uda_train_steps(model, optim, params, steps, inputs, samples) -> list:
    """``steps`` UDA iterations (``model.train_step`` on a source batch with labels and a
    target batch without; a mean teacher as its hook would set it); per step, which tensors
    had a non-zero gradient when their optimiser stepped."""
    if model.mean_teacher_cfg is not None:
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        model.set_teacher(teacher)
    seen = {}
    for wrapper in optim.values():                   # record the gradients each step uses
        def step(wrapper=wrapper, original=wrapper.step, **kwargs):
            for group in wrapper.optimizer.param_groups:
                for p in group['params']:
                    if p.grad is not None and bool(p.grad.abs().max() > 0):
                        seen[id(p)] = True
            return original(**kwargs)
        wrapper.step = step
    images = [(x - x.min()) / (x.max() - x.min()) * 255 for x in inputs]
    target = [MultiTaskDataSample(metainfo=dict(img_shape=tuple(inputs.shape[-2:])))
              for _ in samples]
    has_grad = []
    for _ in range(steps):
        seen.clear()
        if hasattr(model.weighting, 'due'):
            model.weighting.due = True
        log_vars = model.train_step(dict(source=dict(inputs=images, data_samples=samples),
                                         target=dict(inputs=images, data_samples=target)),
                                    optim)
        assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values()), log_vars
        has_grad.append({n: id(p) in seen for n, p in params.items()})
        model.weighting.after_backward()
    return has_grad


def check_learning(model, initial, has_grad):
    """Every tensor: gradient at step 2 and moved; the first step's dead set as documented."""
    params = dict(model.named_parameters())
    assert initial, 'the model has no trainable parameter'
    dead_second = [n for n, ok in has_grad[1].items() if not ok]
    assert not dead_second, f'no gradient on the second step: {dead_second}'
    unmoved = [n for n, p0 in initial.items() if torch.equal(params[n].detach(), p0)]
    assert not unmoved, f'not moved after two steps: {unmoved}'
    # zero-shot: the evaluated-only tasks' rows of the task embeddings are meant to stay as
    # loaded (a zero gradient; the rest of the tensor learns), bit for bit under the
    # config's own optimiser
    for name, (_, rows) in getattr(model, 'frozen_embedding_rows', {}).items():
        assert torch.equal(params[name][rows].detach(), initial[name][rows]), name
        assert not torch.equal(params[name].detach(), initial[name]), name
    dead_first = [n for n, ok in has_grad[0].items() if not ok]
    assert all(any(k in n for k in SECOND_FACTOR) for n in dead_first), dead_first
    adapters = [n for n in initial if any(k in n for k in FIRST_STEP)]
    if hasattr(model.encoder, 'adapter_named_parameters'):
        assert len(adapters) >= 5 * len(model.encoder.adapter_positions), adapters
    assert all(has_grad[0][n] for n in adapters), [n for n in adapters if not has_grad[0][n]]


LEARNING_CASES = [p for p in CONFIGS if 'base' not in p] + [BASE_SDNE]


@pytest.mark.filterwarnings('ignore:TROAWeighting is configured')   # no hook here: we mark due
@pytest.mark.parametrize('path', LEARNING_CASES)
def test_every_trainable_tensor_learns_random_trunk(path):
    """Shipped configs, random trunk (the Swin-V2-B case once, at S-D-N-E: the others are
    the same model with fewer tasks)."""
    model, initial, has_grad = train_steps(load_config(path))
    norms = [b.norm1.weight for s in model.encoder.swin.layers for b in s.blocks]
    assert all(w.abs().min() > 0 for w in norms)    # trained-like res-post norms
    check_learning(model, initial, has_grad)


def test_every_trainable_tensor_learns_loaded_trunk(tmp_path):
    """The demo config with its trunk loaded from a timm state dict file."""
    cfg = load_config(NARROW_SDNE)
    state = write_trained_like_timm_weights(cfg, tmp_path / 'swinv2.safetensors')
    cfg.model.encoder.pretrained = str(tmp_path / 'swinv2.safetensors')
    model, initial, has_grad = train_steps(cfg)
    loaded = model.encoder.swin.state_dict()
    for key in ('layers.2.blocks.2.norm1.weight', 'layers.3.blocks.1.attn.qkv.weight',
                'patch_embed.proj.weight'):
        assert torch.equal(loaded[key], state[key]), key      # really the file's weights
    check_learning(model, initial, has_grad)


def test_every_trainable_tensor_learns_shipped_trunk():
    """The demo config as shipped: its trunk is the embedded pretrained one (not random)."""
    from safetensors.torch import load_file

    from mtl_adapters.models.backbones.embedded_trunk import EMBEDDED_TRUNKS, WEIGHTS_DIR
    cfg = Config.fromfile(str(REPO / NARROW_SDNE))
    assert cfg.model.encoder.pretrained == 'embedded://swinv2-tiny-narrow-synthetic'
    model, initial, has_grad = train_steps(cfg)
    state = load_file(str(WEIGHTS_DIR / EMBEDDED_TRUNKS['swinv2-tiny-narrow-synthetic'].file))
    loaded = model.encoder.swin.state_dict()
    for key in ('layers.2.blocks.2.norm1.weight', 'layers.3.blocks.1.attn.qkv.weight'):
        assert torch.equal(loaded[key], state[key].float()), key
    check_learning(model, initial, has_grad)


def test_untrained_timm_weights_are_refused(tmp_path):
    """A timm state dict saved before any training (res-post norms all zero) would silence
    the task-adapted attention: a clear error naming the block, not a dead model."""
    from safetensors.torch import save_file
    cfg = load_config(NARROW_SDNE)
    enc = cfg.model.encoder
    swin = timm.create_model(enc.model_name, pretrained=False, num_classes=0,
                             img_size=tuple(enc.img_size), **dict(enc.model_kwargs))
    path = tmp_path / 'untrained.safetensors'
    save_file({k: v.contiguous() for k, v in swin.state_dict().items()}, str(path))
    cfg.model.encoder.pretrained = str(path)
    with pytest.raises(ValueError, match=r'layers\.2\.blocks\.2\.norm1.*all-zero'):
        MODELS.build(cfg.model)


def test_random_trunk_norms_are_trained_like():
    """timm zero-inits the res-post norms; our random trunk gives them LayerNorm's (1, 0)."""
    from mtl_adapters.models.backbones import create_swinv2
    swin = create_swinv2('swinv2_tiny_window8_256', None, (64, 64),
                         dict(embed_dim=16, num_heads=(1, 2, 2, 4), depths=(1, 1, 2, 1)))
    for stage in swin.layers:
        for blk in stage.blocks:
            for norm in (blk.norm1, blk.norm2):
                assert torch.equal(norm.weight, torch.ones_like(norm.weight))
                assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
