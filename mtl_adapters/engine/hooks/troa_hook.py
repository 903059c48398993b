"""Schedule TROA updates, log W and C, plot their heatmaps on update steps, a JSON at the end.

TROA itself lives in ``TROAWeighting`` (``mtl_adapters/weighting/troa.py``); the model calls it at
the fixed points of its step. This hook only says *when*: ``before_train_iter`` marks the
iteration due every ``interval`` iterations, and ``after_train_iter`` calls the weighting's
``after_backward`` on every rank: the step's update is written to W there, in both gradient
modes, after the training backward and optimizer step (under DDP nothing runs between the
two), so a step's conditioning and loss weights read the same W. After an update it logs
every entry as a scalar (``troa/W/<target>-><source>``, ``troa/C/<target>-><source>``: row t
is the target task, column s the source); with ``plot_every`` it writes the heatmaps
``<work_dir>/troa/W_iter<k>.png`` and ``C_iter<k>.png`` after every ``plot_every``-th update
(k: iterations completed), and at the end of training those of the final W and C and
``troa_final.json``. The encoder reads W by reference, so validation and checkpoints see it
without any copy.
"""
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils import unwrap_model, write_json
from mtl_adapters.visualization.affinity import plot_affinity
from mtl_adapters.weighting import TROAWeighting


@HOOKS.register_module()
class TROAHook(Hook):
    """Run a TROA update every ``interval`` training iterations and report W and C.

    Args:
        interval: iterations between updates (the first update is at ``start_iter``).
        start_iter: first iteration with an update.
        plot_every: also write heatmaps after every this-many-th update (1: after each update;
            None: only at the end). Counted in updates, so plots always fall on update steps.
        out_dir: folder under ``work_dir`` for the PNGs and the JSON.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 10, start_iter: int = 0,
                 plot_every: Optional[int] = None, out_dir: str = 'troa'):
        if interval < 1:
            raise ValueError(f'TROAHook.interval must be >= 1, got {interval}')
        if plot_every is not None and int(plot_every) < 1:
            raise ValueError(f'TROAHook.plot_every must be >= 1 (updates) or None, got '
                             f'{plot_every}')
        self.interval = int(interval)
        self.start_iter = int(start_iter)
        self.plot_every = None if plot_every is None else int(plot_every)
        self.out_dir = out_dir
        self._updates_seen = 0

    def weighting_of(self, runner) -> TROAWeighting:
        """The model's ``TROAWeighting``, or a clear error naming the config field."""
        weighting = getattr(unwrap_model(runner.model), 'weighting', None)
        if not isinstance(weighting, TROAWeighting):
            raise TypeError("TROAHook needs model.weighting=dict(type='TROAWeighting', ...) in "
                            f'the config; the model has {type(weighting).__name__}')
        return weighting

    def before_train(self, runner) -> None:
        """Check the model; updates are scheduled from now on."""
        weighting = self.weighting_of(runner)
        weighting.scheduled = True
        self._updates_seen = int(weighting.num_updates)

    def is_due(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` (0-based) runs an update."""
        return iteration >= self.start_iter and (iteration - self.start_iter) % self.interval == 0

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Mark the iteration due (identically on every rank: it depends on the iteration)."""
        self.weighting_of(runner).due = self.is_due(runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Finish a pending update (every rank), then log W and C and plot if asked."""
        weighting = self.weighting_of(runner)
        weighting.due = False
        weighting.after_backward()           # 'representation' mode: gradient captured
        if int(weighting.num_updates) == self._updates_seen:
            return
        self._updates_seen = int(weighting.num_updates)
        names = weighting.task_names
        scalars = {}
        for key, matrix in (('W', weighting.affinity), ('C', weighting.cosine)):
            for t, target in enumerate(names):
                for s, source in enumerate(names):
                    scalars[f'troa/{key}/{target}->{source}'] = float(matrix[t, s])
        runner.visualizer.add_scalars(scalars, step=runner.iter + 1)
        if self.plot_every and self._updates_seen % self.plot_every == 0:
            self.save_plots(runner, runner.iter + 1)

    def save_plots(self, runner, k: int) -> None:
        """Write ``W_iter<k>.png`` and ``C_iter<k>.png`` after ``k`` completed iterations
        (main process only)."""
        if not is_main_process():
            return
        weighting = self.weighting_of(runner)
        folder = osp.join(runner.work_dir, self.out_dir)
        plot_affinity(weighting.affinity, weighting.task_names, f'TROA W (iter {k})',
                      osp.join(folder, f'W_iter{k}.png'), vmin=0.0, vmax=1.0)
        plot_affinity(weighting.cosine, weighting.task_names, f'TROA C (iter {k})',
                      osp.join(folder, f'C_iter{k}.png'), vmin=-1.0, vmax=1.0, cmap='coolwarm')

    def after_train(self, runner) -> None:
        """Final heatmaps and ``troa_final.json`` with W, C and the update count."""
        if not is_main_process():
            return
        self.save_plots(runner, runner.iter)
        weighting = self.weighting_of(runner)
        summary = dict(iter=runner.iter, task_names=weighting.task_names,
                       num_updates=int(weighting.num_updates), interval=self.interval,
                       eta=weighting.eta, rho=weighting.rho,
                       gradient_mode=weighting.gradient_mode,
                       W=weighting.affinity.cpu().tolist(), C=weighting.cosine.cpu().tolist(),
                       loss_weights=weighting.loss_weights().cpu().tolist())
        write_json(osp.join(runner.work_dir, self.out_dir, 'troa_final.json'), summary)
