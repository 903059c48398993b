"""One training per work dir: an exclusive lock held for the run, and no silent overwriting of
a previous run's checkpoints.

* :class:`WorkDirLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<work_dir>/.lock`` and
  holds it until :meth:`WorkDirLock.release` or the process exits. The kernel drops a flock
  when its process dies, so the lock file a killed run leaves behind blocks nobody; a second
  training into the same directory while the first runs is refused, naming the holder's pid.
* :func:`previous_run_files` says whether a work dir holds a previous run (its checkpoints,
  its ``last_checkpoint`` pointer, mmengine's per-run log directories);
  :func:`prepare_work_dir` refuses such a directory unless the run resumes it or the user asked
  to overwrite it (then the old checkpoints go, so they can never be mixed with the new ones).
"""
import fcntl
import glob
import os
import os.path as osp
import re
import shutil
from typing import List, Optional

LOCK_NAME = '.lock'
#: mmengine's per-run log directory: <work_dir>/YYYYMMDD_HHMMSS/
_RUN_DIR = re.compile(r'^\d{8}_\d{6}$')


class WorkDirBusyError(RuntimeError):
    """Another process holds the work dir's lock."""


class WorkDirLock:
    """An exclusive, non-blocking ``flock`` on ``<work_dir>/.lock`` (the directory is created).

    The lock file holds the owner's pid (for the error message of the process refused).
    """

    def __init__(self, work_dir: str):
        os.makedirs(work_dir, exist_ok=True)
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 64).decode(errors='replace').strip() or '?'
            os.close(self._fd)
            self._fd = None
            raise WorkDirBusyError(
                f'{work_dir} is in use by another training (pid {holder}, lock {self.path}): '
                'two runs writing into one work dir would mix their checkpoints and logs. Wait '
                'for it to finish, or train into another directory (--work-dir).') from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f'{os.getpid()}\n'.encode())

    def release(self) -> None:
        """Drop the lock (also dropped by the kernel when the process exits)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def previous_run_files(work_dir: str) -> List[str]:
    """What in ``work_dir`` belongs to a previous training: ``*.pth`` checkpoints (files or
    sharded directories), ``last_checkpoint``, mmengine's ``YYYYMMDD_HHMMSS`` log directories.
    Anything else (a benchmark's ``run.log``, the lock file) is not a run."""
    if not osp.isdir(work_dir):
        return []
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        found.append(osp.join(work_dir, 'last_checkpoint'))
    found += sorted(osp.join(work_dir, name) for name in os.listdir(work_dir)
                    if _RUN_DIR.match(name) and osp.isdir(osp.join(work_dir, name)))
    return found


def prepare_work_dir(work_dir: str, resume: bool, overwrite: bool) -> List[str]:
    """Check that a new training may write into ``work_dir``; returns the checkpoints deleted.

    A directory holding a previous run (:func:`previous_run_files`) is refused unless the run
    resumes (``resume``) or the user asked to overwrite it (``overwrite``): then its
    checkpoints and ``last_checkpoint`` are deleted, so a later ``--resume`` can never pick up
    the old run; its log directories stay (their names are unique). Call it holding the
    directory's :class:`WorkDirLock`.
    """
    if resume and overwrite:
        raise ValueError('--resume and --overwrite contradict each other: resume continues the '
                         'run in the work dir, overwrite discards it. Pass one of them.')
    previous = previous_run_files(work_dir)
    if not previous or resume:
        return []
    if not overwrite:
        shown = ', '.join(osp.basename(p) for p in previous[:5])
        raise FileExistsError(
            f'{work_dir} holds a previous run ({shown}{" ..." if len(previous) > 5 else ""}); '
            'a new training there would overwrite or mix with it. Continue it with --resume, '
            'train into another directory (--work-dir), or pass --overwrite to delete its '
            'checkpoints and start again.')
    removed = [p for p in previous if not _RUN_DIR.match(osp.basename(p))]
    for path in removed:
        if osp.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return removed


def launch_rank() -> int:
    """This process's global rank as the launcher set it (torchrun, slurm, MPI), before any
    process group exists; 0 for a single process."""
    for var in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK'):
        if os.environ.get(var, '').isdigit():
            return int(os.environ[var])
    return 0


def claim_work_dir(work_dir: str, resume: bool, overwrite: bool) -> Optional[WorkDirLock]:
    """On rank 0: lock ``work_dir`` for this training and check it may be written
    (:func:`prepare_work_dir`); the other ranks write no checkpoints and get None. Keep the
    lock for the whole run and :meth:`~WorkDirLock.release` it at the end."""
    if launch_rank() != 0:
        return None
    lock = WorkDirLock(work_dir)
    try:
        removed = prepare_work_dir(work_dir, resume, overwrite)
    except BaseException:
        lock.release()
        raise
    if removed:
        print(f'--overwrite: deleted the previous run\'s checkpoints in {work_dir}: '
              + ', '.join(osp.basename(p) for p in removed), flush=True)
    return lock
