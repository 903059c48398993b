"""mmengine's ``CheckpointHook`` with checkpoints written atomically and rotated afterwards.

mmengine's hook deletes the oldest kept checkpoint *before* it writes the new one, and writes
the new one in place: with ``max_keep_ckpts=1`` a kill during the save, or a save refused by
:class:`~mtl_adapters.engine.hooks.SafeCheckpointHook` (a state that is not sane), leaves
nothing loadable. Here a checkpoint is written to ``.<name>.tmp`` in the same directory, renamed
to its name when complete, ``last_checkpoint`` is replaced atomically, and the oldest
checkpoint beyond ``max_keep_ckpts`` is deleted only after the *next* training iteration went
through :class:`~mtl_adapters.engine.hooks.SafeCheckpointHook`'s checks (a finite loss below its
``max_loss``, a finite gradient norm; it runs first and stops training otherwise) or training
ended: the weights of a checkpoint are only judged by the loss they give, one step later, so
until then the checkpoint before it is kept. After a stop there may be one checkpoint more than
``max_keep_ckpts``: the newest is the last state, the one before the last one known sane.
"""
import os
import os.path as osp

from mmengine.dist import barrier, is_main_process
from mmengine.hooks import CheckpointHook

from mtl_adapters.registry import HOOKS
from mtl_adapters.utils.io import atomic_write_bytes


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose saves are atomic and whose rotation deletes
    an old checkpoint only after the new one is complete and the next iteration was sane
    (module docstring). Local work dirs
    only; ``save_best`` is refused (mmengine deletes the previous best before saving)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._expired: list = []       # checkpoints to delete once the next iteration was sane
        if self.save_best is not None:
            raise ValueError(
                'AtomicCheckpointHook does not support save_best (mmengine deletes the previous '
                'best checkpoint before writing the new one); use '
                "default_hooks.checkpoint.type='CheckpointHook' for it, accepting that order.")

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """This iteration passed the sanity checks (higher priority): rotate out what the last
        save made redundant, then save as mmengine does."""
        self._delete_expired()
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train(self, runner) -> None:
        """Training ended normally: the last rotation is due."""
        self._delete_expired()
        super().after_train(runner)

    def _delete_expired(self) -> None:
        expired, self._expired = self._expired, []
        if not is_main_process():
            return
        for path in expired:
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Write ``filename_tmpl.format(step)`` through a temporary file, point
        ``last_checkpoint`` at it, then rotate."""
        hub = runner.message_hub
        old_keep, old_last = list(getattr(self, 'keep_ckpt_ids', ())), self.last_ckpt
        keep, expired = list(old_keep), []
        if self.max_keep_ckpts > 0 and not (keep and keep[-1] == step):
            keep.append(step)
            expired, keep = keep[:-self.max_keep_ckpts], keep[-self.max_keep_ckpts:]
        filename = self.filename_tmpl.format(step)
        final = self.file_backend.join_path(self.out_dir, filename)
        tmp_name = f'.{filename}.tmp'
        # the checkpoint's message hub records the state after this save (as mmengine's does)
        if self.max_keep_ckpts > 0:
            hub.update_info('keep_ckpt_ids', keep)
        hub.update_info('last_ckpt', final)
        try:
            runner.save_checkpoint(
                self.out_dir, tmp_name, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta,
                by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        except BaseException:
            if self.max_keep_ckpts > 0:
                hub.update_info('keep_ckpt_ids', old_keep)
            if old_last is None:
                hub.runtime_info.pop('last_ckpt', None)
            else:
                hub.update_info('last_ckpt', old_last)
            raise
        barrier()                     # sharded saves: every rank has written its part
        self.last_ckpt = final
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids.clear()
            self.keep_ckpt_ids.extend(keep)
        self._expired = self._expired + [
            self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            for old in expired]
        if is_main_process():
            os.replace(self.file_backend.join_path(self.out_dir, tmp_name), final)
            atomic_write_bytes(osp.join(runner.work_dir, 'last_checkpoint'), final.encode())
