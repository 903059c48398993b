"""Loops: validation that leaves training alone; the unsupervised-domain-adaptation loop.

``ValLoop`` (this scope's, which every config of the package gets with
``val_cfg = dict(type='ValLoop')`` and ``default_scope = 'mtl_adapters'``) is mmengine's run
under :func:`~mtl_adapters.utils.isolated_rng`: the global generators that training draws from
(augmentation seeds from numpy, dropout and the loaders' base seeds from torch, Python's
``random``) continue after a validation exactly where they were before it. So a run's training
is the same bit for bit whether and how often it validates.

``UDAIterBasedTrainLoop`` is mmengine's ``IterBasedTrainLoop`` whose batches are
``dict(source=<labelled source batch>, target=<unlabelled target batch>)``: the source
dataloader is ``train_dataloader``, the target one ``train_cfg.target_dataloader``, each with
its own infinite iterator, sampled together (one batch of each per iteration). Everything else
is mmengine's: hooks, validation, and resuming (the loop skips the batches already trained of
*both* dataloaders, so a resumed run sees the data the uninterrupted one would have).

The target dataloader is built like the source one (``Runner.build_dataloader``) with the run's
seed moved by ``TARGET_SEED_OFFSET``: its sampler shuffles in an order of its own, and its
workers' augmentation generators never repeat a source worker's (mmengine seeds worker w of
rank r with ``seed + r * num_workers + w``).

    train_cfg = dict(type='UDAIterBasedTrainLoop', max_iters=..., val_interval=...,
                     target_dataloader=dict(batch_size=..., sampler=dict(type='InfiniteSampler'),
                                            dataset=dict(..., with_labels=False, pipeline=[
        dict(type='LoadMultiTaskImageAndAnnotations', with_labels=False), ...])))
"""
from typing import Dict, List, Optional, Tuple, Union

from mmengine.runner import IterBasedTrainLoop
from mmengine.runner import ValLoop as MMEngineValLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import DataLoader

from mtl_adapters.registry import LOOPS
from mtl_adapters.utils import isolated_rng

#: added to the run's seed for the target dataloader (far above num_workers * world size)
TARGET_SEED_OFFSET = 100003


@LOOPS.register_module()
class ValLoop(MMEngineValLoop):
    """mmengine's ``ValLoop`` that leaves the global random generators as it found them
    (module docstring): validating never changes what training draws next."""

    def run(self) -> dict:
        """Validate on copies of the global generators; returns the metrics."""
        with isolated_rng():
            return super().run()


class PairedIterator:
    """``next()`` -> ``dict(source=next(source), target=next(target))``."""

    def __init__(self, source, target):
        self.source, self.target = source, target

    def __iter__(self) -> 'PairedIterator':
        return self

    def __next__(self) -> Dict[str, dict]:
        return dict(source=next(self.source), target=next(self.target))


@LOOPS.register_module()
class UDAIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` on paired source and target batches (module docstring).

    Args:
        runner: the Runner.
        dataloader: the labelled source dataloader (``train_dataloader``).
        target_dataloader: the unlabelled target dataloader or its config.
        max_iters, val_begin, val_interval, dynamic_intervals: ``IterBasedTrainLoop``'s.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict],
                 target_dataloader: Union[DataLoader, Dict], max_iters: int,
                 val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        super().__init__(runner, dataloader, max_iters, val_begin, val_interval,
                         dynamic_intervals)
        if isinstance(target_dataloader, dict):
            seed = None if runner.seed is None else runner.seed + TARGET_SEED_OFFSET
            target_dataloader = runner.build_dataloader(
                target_dataloader, seed=seed,
                diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed', False))
        self.target_dataloader = target_dataloader
        self.source_iterator = self.dataloader_iterator
        self.target_iterator = _InfiniteDataloaderIterator(self.target_dataloader)
        self.dataloader_iterator = PairedIterator(self.source_iterator, self.target_iterator)
