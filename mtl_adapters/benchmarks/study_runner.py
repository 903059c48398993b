"""Running the claims study's cells (``study.py`` plans them): train, choose the checkpoint on
val, test it, in fresh processes (``tools/train.py``, ``tools/test.py``), several cells at once
in dependency chains; Ctrl-C stops the study as with one job."""
import glob
import json
import os.path as osp
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Dict, List, Sequence

from mtl_adapters.benchmarks import matrix
from mtl_adapters.benchmarks import weighting_comparison as wc
from mtl_adapters.benchmarks.common import write_json


def val_history(work_dir: str) -> Dict[int, dict]:
    """``{iteration: val metrics}`` from the run's ``vis_data/scalars.json`` logs (a resumed
    run has several; the latest evaluation of an iteration wins)."""
    history: Dict[int, dict] = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if any(k in record for k in wc.COLUMNS) and 'loss' not in record:
                    history[int(record['step'])] = record
    return history


def select_iteration(history: Dict[int, dict], tasks: Sequence[str],
                     directions: Dict[str, bool], checkpoints: Sequence[int]) -> int:
    """The checkpointed iteration whose val metrics are best: Δm against the first
    evaluation over ``tasks``' headline metrics (the latest among equals; the last
    checkpoint if none was evaluated)."""
    from mtl_adapters.evaluation.delta_m import delta_m
    evaluated = sorted(i for i in history if i in checkpoints)
    if not evaluated:
        return max(checkpoints)
    first = history[evaluated[0]]
    keys = [k for k in wc.COLUMNS if k.split('/')[0] in tasks and k in first]
    if not keys:
        return evaluated[-1]
    score = {i: delta_m(history[i], {k: first[k] for k in keys}, directions)
             for i in evaluated}
    return max(evaluated, key=lambda i: (score[i], i))


def run_in_subprocesses(cell, directions: Dict[str, bool]) -> dict:
    """Train (``tools/train.py``), choose the checkpoint on val, test it (``tools/test.py``);
    the chosen iteration is kept in the metrics as ``select/iter``. A test-only cell tests the
    checkpoint its ``after`` cell chose."""
    after = cell.after
    if after is not None and not osp.isfile(after.metrics_path):
        raise RuntimeError(f'{cell.name} needs the arm {after.arm.name!r}, which has not '
                           'finished for this seed (see its failure)')
    chosen = {}
    if cell.test_only:
        with open(after.metrics_path) as f:
            chosen['iter'] = int(json.load(f)['select/iter'])
        checkpoint = osp.join(after.work_dir, f'iter_{chosen["iter"]}.pth')
        steps = [('test', wc.test_command(cell.config, checkpoint, cell.work_dir,
                                          cell.metrics_path))]
    else:
        def test_best() -> List[str]:
            points = range(cell.val_every, cell.iters + 1, cell.val_every)
            saved = [i for i in points if osp.isfile(osp.join(cell.work_dir, f'iter_{i}.pth'))]
            chosen['iter'] = select_iteration(val_history(cell.work_dir), cell.tasks,
                                              directions, saved or [cell.iters])
            return wc.test_command(cell.config,
                                   osp.join(cell.work_dir, f'iter_{chosen["iter"]}.pth'),
                                   cell.work_dir, cell.metrics_path)

        train = wc.commands(cell.config, cell.work_dir, cell.iters, cell.metrics_path)[0]
        steps = [train, ('test', test_best)]
    metrics = wc.run(cell.name, cell.config, cell.work_dir, cell.iters, steps=steps)
    metrics['select/iter'] = chosen.get('iter', cell.iters)
    write_json(cell.metrics_path, metrics)
    return metrics


_PRINT_LOCK = threading.Lock()


def locked_print(*args, **kwargs) -> None:
    """``print`` that keeps the lines of cells running at once whole."""
    with _PRINT_LOCK:
        print(*args, **kwargs)


class Interrupted(BaseException):
    """Raised in a worker thread once the study is interrupted: no further cell starts
    (a BaseException, so ``matrix.execute`` does not record it as a failed cell)."""


def execute(cells: Sequence, run_cell: Callable, count_params: Callable,
            jobs: int = 1) -> List[dict]:
    """``matrix.execute`` over ``jobs`` threads: the cells form chains (a cell with the cells
    that load or test its checkpoint, for one seed) and each chain runs in order on one
    thread; the records come back in the order of ``cells``. Ctrl-C stops the study as it
    does with one job: no further cell starts, and what finished stays finished."""
    if jobs <= 1:
        return matrix.execute(cells, run_cell, count_params)
    chains: Dict[int, list] = {}
    head: Dict[int, int] = {}
    for cell in cells:
        root = head.get(id(cell.after), id(cell))     # a chain's first cell is its own head
        head[id(cell)] = root
        chains.setdefault(root, []).append(cell)
    stop = threading.Event()

    def guarded(cell):
        if stop.is_set():
            raise Interrupted(cell.name)
        return run_cell(cell)

    pool = ThreadPoolExecutor(jobs)
    futures = [pool.submit(matrix.execute, chain, guarded, count_params, locked_print)
               for chain in chains.values()]
    try:
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in finished:                        # an interrupted chain stops the others
            if future.exception() is not None:
                raise future.exception()
        done = [future.result() for future in futures]
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    by_cell = {id(c): r for chain, records in zip(chains.values(), done)
               for c, r in zip(chain, records)}
    return [by_cell[id(c)] for c in cells]


def timed(run_cell: Callable, todo: int, log=print, jobs: int = 1) -> Callable:
    """``run_cell`` that, after the first cell it runs, prints that cell's wall time and the
    extrapolated time of the ``todo`` cells to run, ``jobs`` at once."""
    state = dict(first=True)

    def wrapped(cell):
        start = time.time()
        try:
            return run_cell(cell)
        finally:
            if state.pop('first', False):
                took = time.time() - start
                log(f'estimate: one cell took {took:.0f} s; {todo} cells to run -> about '
                    f'{took * todo / jobs / 3600:.1f} h in all', flush=True)
    return wrapped
