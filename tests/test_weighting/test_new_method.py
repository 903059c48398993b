"""A new weighting method is one class in one file: this file adds Dynamic Weight Average
(Liu, Johns & Davison, CVPR 2019) and a task-mixing method without touching the model, and
checks the order of the fixed points the model calls."""
import math
from typing import List, Optional

import pytest
import torch
from torch import Tensor

from mtl_adapters.registry import WEIGHTINGS
from mtl_adapters.weighting import BaseWeighting, WeightingResult
from weighting_toys import build_model, make_batch


@WEIGHTINGS.register_module(name='TestDWAWeighting', force=True)
class DWAWeighting(BaseWeighting):
    """``w_t = T softmax_t(r_t / temperature)``, ``r_t = L_t(k-1) / L_t(k-2)``: a task whose
    loss fell less over the last two steps gets more weight (uniform for the first two)."""

    def __init__(self, task_names, temperature: float = 2.0):
        super().__init__(task_names)
        self.temperature = temperature
        self.register_buffer('history', torch.zeros(2, self.num_tasks))
        self.register_buffer('seen', torch.tensor(0))
        self.calls: List[str] = []
        self.seen_losses: List[dict] = []

    def before_forward(self, step) -> None:
        self.calls.append('before_forward')

    def after_losses(self, step) -> None:
        self.calls.append('after_losses')
        assert set(step.losses) == set(self.task_names) and step.outputs
        self.seen_losses.append({k: v.detach() for k, v in step.losses.items()})

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        self.calls.append('forward')
        if int(self.seen) < 2:
            weights = torch.ones_like(losses)
        else:
            ratio = self.history[1] / self.history[0].clamp(min=1e-12)
            weights = self.num_tasks * torch.softmax(ratio / self.temperature, dim=0)
        if self.training and torch.is_grad_enabled():
            self.history.copy_(torch.stack([self.history[1], losses.detach()]))
            self.seen += 1
        return WeightingResult(weights=weights.detach())


@WEIGHTINGS.register_module(name='TestFixedMixing', force=True)
class FixedMixing(BaseWeighting):
    """Uniform loss weights; every task reads the mean of all task embeddings."""

    def task_affinity(self) -> Tensor:
        return torch.full((self.num_tasks, self.num_tasks), 1.0 / self.num_tasks)

    def forward(self, losses: Tensor, grads: Optional[Tensor] = None) -> WeightingResult:
        return WeightingResult(weights=torch.ones_like(losses))


def test_dwa_plugs_in_without_model_changes():
    model = build_model(dict(type='TestDWAWeighting', temperature=2.0))
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=0.05)
    terms = []
    for step in range(3):
        out = model.loss(*make_batch(seed=step))
        terms.append({k: v.detach() for k, v in out.items()})
        optim.zero_grad()
        sum(out.values()).backward()
        optim.step()
    assert model.weighting.calls == ['before_forward', 'after_losses', 'forward'] * 3
    raw = [torch.stack(list(h.values())) for h in model.weighting.seen_losses]
    for step in range(2):                                 # uniform for the first two steps
        torch.testing.assert_close(torch.stack(list(terms[step].values())), raw[step])
    expected = 3 * torch.softmax((raw[1] / raw[0]) / 2.0, dim=0)
    assert math.isclose(float(expected.sum()), 3.0, rel_tol=1e-6)
    assert not torch.allclose(expected, torch.ones(3), atol=1e-4)
    torch.testing.assert_close(torch.stack(list(terms[2].values())), expected * raw[2])
    with torch.no_grad():                                 # no fixed point outside training
        model.loss(*make_batch(seed=3))
    assert model.weighting.calls[-2:] == ['forward', 'forward']


def test_task_mixing_reaches_the_encoder():
    """A method's ``task_affinity`` conditions the adapters: here every task reads the same
    mixed embedding, so tasks whose decoders are equal get equal features."""
    mixing = build_model(dict(type='TestFixedMixing'))
    plain = build_model(None)
    inputs, _ = make_batch()
    with torch.no_grad():
        feats_mixed = mixing.encoder(inputs, mixing.task_names,
                                     affinity=mixing.weighting.task_affinity())
        feats_plain = plain.encoder(inputs, plain.task_names)
    names = mixing.task_names
    assert torch.equal(feats_mixed[names[0]][-1], feats_mixed[names[1]][-1])
    assert not torch.equal(feats_plain[names[0]][-1], feats_plain[names[1]][-1])


def test_unknown_method_names_the_registry():
    with pytest.raises(KeyError, match='NoSuchWeighting'):
        build_model(dict(type='NoSuchWeighting'))
