"""The one runner behind every ``data_prep/<dataset>.py``: items in, files out, never half-written.

A dataset's preparation is a :class:`Preparation`: it lists :class:`PrepItem` s (one per sample:
its input files and the output files it will write) and turns one item into the bytes of its
outputs (:meth:`Preparation.process`). :func:`run_preparation` does everything else, the same
way for every dataset:

* **atomic**: each output is written to a temporary file and renamed (``atomic_write_bytes``),
  so no partial file is ever visible under its final name; a killed run leaves only finished
  files (and hidden ``.tmp`` files, removed by the next run);
* **resumable**: an item whose outputs all exist and pass :meth:`Preparation.check_outputs`
  is skipped; processing is deterministic, so a killed and resumed run writes byte-identical
  files to an uninterrupted one;
* ``--check``: validate inputs and existing outputs only, write nothing;
* ``--workers N`` processes (items are independent), a progress bar, and a summary: processed,
  skipped, failed, each failure with its file name and reason. The workers die with the
  preparer: killing it (SIGTERM, SIGKILL, Ctrl-C) leaves no worker running
  (:func:`_die_with_parent`). A corrupt or missing input
  fails that item only; the run goes on and the exit code says whether anything failed.
"""
import argparse
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from mtl_adapters.utils import DataFileError, atomic_write_bytes, read_image


@dataclass
class PrepItem:
    """One unit of work: a sample's input files and the output files it writes."""

    #: short name for reports (e.g. ``aachen/aachen_000000_000019``)
    key: str
    #: the input files (checked for existence before processing)
    inputs: Tuple[Path, ...]
    #: the files this item writes (all of them, so resuming can tell whether it is done)
    outputs: Tuple[Path, ...]
    #: anything else :meth:`Preparation.process` needs (plain data: it crosses processes)
    extra: dict = field(default_factory=dict)


@dataclass
class PrepSummary:
    """What a run did."""

    processed: int = 0
    skipped: int = 0
    failed: List[Tuple[str, str]] = field(default_factory=list)   # (file or key, reason)
    seconds: float = 0.0
    checked_only: bool = False

    @property
    def ok(self) -> bool:
        """True if no item failed."""
        return not self.failed

    def format(self, name: str) -> str:
        """The summary printed at the end of a run."""
        verb = 'checked' if self.checked_only else 'processed'
        lines = [f'{name}: {verb} {self.processed}, skipped {self.skipped} (already done), '
                 f'failed {len(self.failed)} ({self.seconds:.1f} s)']
        lines += [f'  FAILED {where}: {why}' for where, why in self.failed]
        return '\n'.join(lines)


class Preparation:
    """Base of a dataset's preparation: list the items, turn one into output bytes.

    Subclasses must be picklable (they are sent to worker processes): keep only plain
    attributes (paths, numbers, dicts).
    """

    #: name used in progress bars and summaries
    name: str = 'dataset'

    def items(self) -> List[PrepItem]:
        """Every item of the dataset (deterministic order). Missing top-level folders should
        raise ``FileNotFoundError`` naming them and what the user must download."""
        raise NotImplementedError

    def process(self, item: PrepItem) -> Dict[Path, bytes]:
        """``{output path: file bytes}`` for one item; raise ``DataFileError`` (or any error)
        naming the input file on bad input."""
        raise NotImplementedError

    def check_outputs(self, item: PrepItem) -> Optional[str]:
        """None if the item's outputs are complete and valid, else the reason. Default: every
        output exists, is non-empty and (PNG) decodes."""
        for path in item.outputs:
            if not path.is_file():
                return f'missing output {path}'
            if path.suffix.lower() == '.png':
                try:
                    read_image(path)
                except DataFileError as err:
                    return str(err)
            elif path.stat().st_size == 0:
                return f'empty output {path}'
        return None

    def check_inputs(self, item: PrepItem) -> Optional[str]:
        """None if every input exists, else the reason naming the first missing file."""
        for path in item.inputs:
            if not Path(path).is_file():
                return f'missing input file {path}'
        return None

    def finish(self, items: Sequence[PrepItem], summary: PrepSummary) -> None:
        """Called once after all items (e.g. to write an index or split files atomically)."""


def encode_png(img: np.ndarray) -> bytes:
    """A uint8/uint16 array as PNG bytes (RGB order for 3-channel arrays)."""
    import cv2
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(img))
    if not ok:
        raise RuntimeError(f'OpenCV could not encode {img.dtype} {img.shape} as PNG')
    return buf.tobytes()


def _process_one(args) -> Tuple[str, Optional[str], Dict[Path, bytes]]:
    """Worker: (preparation, item, check_only) -> (key, error or None, outputs)."""
    prep, item, check_only = args
    problem = prep.check_inputs(item)
    if problem:
        return item.key, problem, {}
    try:
        outputs = prep.process(item)
    except Exception as err:      # noqa: BLE001 -- one bad sample must not stop the run
        return item.key, f'{type(err).__name__}: {err}', {}
    unknown = set(outputs) - set(item.outputs)
    if unknown:
        return item.key, f'{type(prep).__name__}.process wrote undeclared outputs {unknown}', {}
    return item.key, None, ({} if check_only else outputs)


#: ``prctl`` option: the signal a process gets when its parent dies (linux/prctl.h)
PR_SET_PDEATHSIG = 1
#: seconds between two looks of a worker's watchdog at its parent
PARENT_POLL_S = 0.5


def _die_with_parent(parent: int) -> None:
    """Pool worker initializer: end this worker when the preparer ``parent`` dies, however it
    dies (a SIGKILL runs no clean-up in the parent, so the pool cannot stop its workers).

    On Linux the kernel sends the worker SIGKILL when its parent exits (``PR_SET_PDEATHSIG``);
    everywhere, a daemon thread checks every :data:`PARENT_POLL_S` seconds that the parent is
    still ``os.getppid()`` (an orphan is re-parented) and ends the worker if not.
    """
    if sys.platform.startswith('linux'):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):      # no libc prctl: the watchdog alone
            pass
    if os.getppid() != parent:                 # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name='prep-parent-watchdog').start()


def _watch_parent(parent: int) -> None:
    """End this process (no clean-up: its work is lost anyway) once ``parent`` is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _remove_stale_temporaries(items: Sequence[PrepItem]) -> None:
    """Hidden ``.<name>.*.tmp`` files left by a killed run, in the output folders."""
    folders = {p.parent for item in items for p in item.outputs}
    for folder in folders:
        if folder.is_dir():
            for tmp in folder.glob('.*.tmp'):
                tmp.unlink(missing_ok=True)


def run_preparation(prep: Preparation, workers: int = 1, check_only: bool = False,
                    progress: bool = True) -> PrepSummary:
    """Prepare every item not already done (see the module docstring)."""
    from tqdm import tqdm
    start = time.perf_counter()
    items = prep.items()
    summary = PrepSummary(checked_only=check_only)
    todo = []
    for item in items:
        problem = prep.check_outputs(item)
        if problem is None:
            summary.skipped += 1
        elif check_only and any(p.exists() for p in item.outputs):
            summary.failed.append((item.key, problem))      # a broken existing output
        else:
            todo.append(item)
    if not check_only:
        _remove_stale_temporaries(todo)
    bar = dict(total=len(todo), desc=prep.name, unit='item', disable=not progress,
               dynamic_ncols=True)
    jobs = [(prep, item, check_only) for item in todo]

    def consume(results: Iterable) -> None:
        for key, error, outputs in tqdm(results, **bar):
            if error:
                summary.failed.append((key, error))
                continue
            for path, data in sorted(outputs.items()):
                atomic_write_bytes(path, data)
            summary.processed += 1

    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        ctx = mp.get_context('fork' if sys.platform.startswith('linux') else 'spawn')
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            try:
                consume(pool.map(_process_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
            except BrokenProcessPool as err:
                raise RuntimeError(
                    f'{prep.name}: a worker process died (killed, or out of memory); the files '
                    'written so far are complete: run the same command again to resume') from err
    else:
        consume(map(_process_one, jobs))
    if not check_only:
        prep.finish(items, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--check`` and ``--no-progress``, the same in every script."""
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='worker processes')
    parser.add_argument('--check', action='store_true',
                        help='validate inputs and existing outputs only; write nothing')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def run_from_args(prep: Preparation, args: argparse.Namespace) -> int:
    """Run, print the summary, return the exit code (1 if any item failed)."""
    summary = run_preparation(prep, workers=args.workers, check_only=args.check,
                              progress=not args.no_progress)
    print(summary.format(prep.name))
    return 0 if summary.ok else 1
