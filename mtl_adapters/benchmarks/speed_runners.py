"""What the speed suite times: one training step and one inference pass of our adapter model and
of the release's strategy, device-synchronised step timing, peak memory per model, and the
regional ``torch.compile`` of our repeated block classes.

Every runner holds its model, optimizer and a fixed random batch, and offers ``train_step`` and
``infer_step``; the suite interleaves the runners' steps (round-robin, the order rotated every
round), so drift of a shared or throttling machine spreads over all of them.
"""
import math
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from .common import random_samples
from .release_strategy import RELEASE_TASK_CHANNELS, ReleaseStrategyModel
from .train_speed import build_adapter_model, proc_kb, reset_rss_peak, trim_heap

AMP_DTYPES = dict(none=None, bf16=torch.bfloat16, fp16=torch.float16)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def allocated(device: torch.device) -> float:
    """Bytes held now: CUDA allocated memory, or the process RSS on CPU (NaN off Linux)."""
    if device.type == 'cuda':
        return float(torch.cuda.memory_allocated(device))
    kb = proc_kb('VmRSS')
    return float('nan') if kb is None else kb * 1024.0


class Runner:
    """A model with its optimizer and batch; subclasses define ``_forward_loss`` and
    ``_forward``. ``static_bytes``: what the model holds between steps (parameters, optimizer
    state, its batch), measured around its build and first step."""

    system = ''
    images_per_step = 0

    def __init__(self, device: torch.device, amp: str):
        self.device = device
        self.amp_dtype = AMP_DTYPES[amp]
        self.static_bytes = float('nan')
        self.optim = None
        self.params: List[torch.nn.Parameter] = []

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype,
                              enabled=self.amp_dtype is not None)

    def train_step(self) -> None:
        """Forward, losses, backward, optimizer step."""
        self.optim.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self._forward_loss()
        loss.backward()
        self.optim.step()

    @torch.no_grad()
    def infer_step(self) -> None:
        """Every task's prediction of the batch (whole images)."""
        with self._autocast():
            self._forward()

    def trainable(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.params)


class OursRunner(Runner):
    """Our adapter model: trunk once, task branch batched, a decoder per task; the model's own
    training loss (``MultiTaskModel.loss``: forward, task losses, weighting)."""

    system = 'ours'

    def __init__(self, device, amp: str, batch: int, num_tasks: int, size, *, light: bool,
                 attn_impl: str, ours: dict):
        super().__init__(device, amp)
        self.model = build_adapter_model(
            ours['model_name'], num_tasks, size, light=light, attn_impl=attn_impl,
            model_kwargs=ours.get('model_kwargs'), window=ours.get('window'),
            embed_dim=ours.get('embed_dim', 64), head_channels=ours.get('head_channels', 32))
        self.model.to(device).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optim = torch.optim.AdamW(self.params, lr=1e-4)
        self.img = torch.randn(batch, 3, *size, device=device)
        self.samples = random_samples(self.model, batch, size, device)
        self.images_per_step = batch

    def _forward_loss(self):
        return sum(self.model.loss(self.img, self.samples).values())

    def _forward(self):
        return self.model.forward_tasks(self.img)


class ReleaseRunner(Runner):
    """The release's strategy (``release_strategy``): every image once per task through the
    whole encoder, AdamW(lr 2e-5, betas 0.9/0.98) on its trainable parameters."""

    system = 'release'

    def __init__(self, device, amp: str, batch: int, num_tasks: int, release: dict):
        super().__init__(device, amp)
        torch.manual_seed(0)
        self.model = ReleaseStrategyModel(task_channels=RELEASE_TASK_CHANNELS[:num_tasks],
                                          **release)
        self.model.to(device).train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optim = torch.optim.AdamW(self.params, lr=2e-5, betas=(0.9, 0.98))
        self.img, self.task_ids, self.targets = self.model.random_batch(batch, num_tasks, device)
        self.images_per_step = batch

    def _forward_loss(self):
        return self.model.losses(self.model(self.img, self.task_ids), self.targets)

    def _forward(self):
        return self.model(self.img, self.task_ids)


def build_runner(factory: Callable[[], Runner], device: torch.device) -> Runner:
    """Build a runner, run one training step, and record what it holds between steps."""
    sync(device)
    trim_heap()
    before = allocated(device)
    runner = factory()
    runner.train_step()
    runner.optim.zero_grad(set_to_none=True)
    sync(device)
    trim_heap()
    runner.static_bytes = allocated(device) - before
    return runner


def timed(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``fn``, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(runners: Dict[str, Runner], mode: str, warmup: int, iters: int,
                device: torch.device, log: Optional[Callable[[str], None]] = None
                ) -> Dict[str, List[float]]:
    """Step times (s) of every runner, ``warmup`` untimed then ``iters`` timed rounds; each
    round runs every runner once, the order rotated by one each round. ``log`` gets a line per
    step (a run stopped early still shows what it measured)."""
    names = list(runners)
    times = {n: [] for n in names}
    for r in range(warmup + iters):
        for n in names[r % len(names):] + names[:r % len(names)]:
            run = runners[n]
            seconds = timed(run.train_step if mode == 'train' else run.infer_step, device)
            if r >= warmup:
                times[n].append(seconds)
            if log is not None:
                log(f'{mode} round {r}{" (warm-up)" if r < warmup else ""} {n}: '
                    f'{seconds * 1e3:.1f} ms')
    return times


def step_peak_bytes(runner: Runner, mode: str, device: torch.device) -> float:
    """Peak memory of one step above the level before it (CUDA max allocated, or the RSS
    high-water mark on Linux; NaN where it cannot be reset)."""
    runner.optim.zero_grad(set_to_none=True)
    sync(device)
    trim_heap()
    step = runner.train_step if mode == 'train' else runner.infer_step
    if device.type == 'cuda':
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync(device)
        return float(torch.cuda.max_memory_allocated(device) - before)
    before_kb = proc_kb('VmRSS')
    if before_kb is None or not reset_rss_peak():
        step()
        return float('nan')
    step()
    return (proc_kb('VmHWM') - before_kb) * 1024.0


def summarise(runner: Runner, times: List[float], peak_step: float) -> dict:
    """Speed and memory numbers of one runner's timed steps."""
    median = statistics.median(times)
    peak = (runner.static_bytes + peak_step) / 2 ** 20
    static = runner.static_bytes / 2 ** 20
    return dict(images_per_s=runner.images_per_step / median, step_ms=median * 1e3,
                best_step_ms=min(times) * 1e3, steps=len(times),
                peak_mem_mb=peak if math.isfinite(peak) else None,
                static_mem_mb=static if math.isfinite(static) else None)


def compile_regions(model: torch.nn.Module, backend: str = 'inductor',
                    mode: Optional[str] = None) -> Dict[str, int]:
    """Regional compilation: ``torch.compile`` the forward of every instance of our repeated
    block classes (``AdapterBlock``; timm's ``SwinTransformerV2Block`` of the trunk; a decoder's
    ``DecoderStage`` with blocks), not the whole model.

    All instances of a class share one forward code object, and dynamo treats parameters as
    inputs (torch >= 2.5), so each class is traced and compiled once per distinct input shape
    and static attribute (width, shift), not once per instance. Returns the number of compiled
    instances per class.
    """
    from timm.models.swin_transformer_v2 import SwinTransformerV2Block

    from mtl_adapters.models.adapters import AdapterBlock
    from mtl_adapters.models.decoders.swin_decoder import DecoderStage
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    in_decoders = {id(b) for m in model.modules() if isinstance(m, DecoderStage)
                   for b in m.blocks}
    counts = {'AdapterBlock': 0, 'SwinTransformerV2Block': 0, 'DecoderStage': 0}
    for m in model.modules():
        if isinstance(m, AdapterBlock):
            key = 'AdapterBlock'
        elif isinstance(m, SwinTransformerV2Block) and id(m) not in in_decoders:
            key = 'SwinTransformerV2Block'
        elif isinstance(m, DecoderStage) and len(m.blocks):
            key = 'DecoderStage'
        else:
            continue
        m.compile(backend=backend, mode=mode, dynamic=False)
        counts[key] += 1
    return counts


def unique_graphs() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters
    return int(counters['stats']['unique_graphs'])
