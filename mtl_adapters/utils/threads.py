"""How many CPU threads a process computes with: the cores it may run on that other work does
not already keep busy.

PyTorch starts one intra-op (OpenMP) thread per physical core of the machine, whatever else
runs: on cores other jobs share, the threads wait for each other at every parallel region and a
step gets many times slower (the demo on a shared 2-core machine: 0.9 s a step alone, 22-35 s
with two threads while other jobs ran; with one other job running, 1.6 s with one thread and
3.8-9.0 s with two). Alone, the same demo takes 2.6 s a step with one thread: idle cores must
not be given away either. The dataloader workers are not counted: for these pipelines they
wait on the queue almost all the time (about 3 % of a core each, measured in the demo). So the
tools choose, in this order:

1. ``--threads N`` (tools/train.py, tools/demo.py, the speed benchmark);
2. an ``OMP_NUM_THREADS`` set in the environment;
3. the cores this process may run on (``os.sched_getaffinity``: a container's or ``taskset``'s
   limit, not the machine's count), shared by the processes ``torchrun`` started on this node
   (``LOCAL_WORLD_SIZE``), less the cores other work keeps busy when the process starts
   (:func:`busy_cores`: their busy share over 0.3 s from ``/proc/stat``); at least 1.
"""
import os
import time
from typing import Optional, Tuple


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; the machine's count where
    the platform has none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                       # macOS, Windows
        return os.cpu_count() or 1


def _cpu_times(cpus) -> dict:
    """``{cpu: (busy, total)}`` jiffies of the given CPUs from ``/proc/stat`` (Linux)."""
    out = {}
    with open('/proc/stat') as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith('cpu') and name[3:].isdigit() and int(name[3:]) in cpus:
                values = [int(v) for v in fields[:8]]     # user .. steal (guest is in user)
                total = sum(values)
                out[int(name[3:])] = (total - values[3] - values[4], total)   # - idle, iowait
    return out


def busy_cores(window: float = 0.3) -> int:
    """Cores of this process's affinity that other work keeps busy now: their busy share over
    ``window`` seconds while this process sleeps (``/proc/stat``), rounded; the 1-minute load
    average where there is no ``/proc/stat`` (0 where there is neither). A load average alone
    lags a minute behind: a run started right after another one finished would see it busy."""
    try:
        cpus = os.sched_getaffinity(0)
        before = _cpu_times(cpus)
        time.sleep(window)
        after = _cpu_times(cpus)
        busy = sum((after[c][0] - before[c][0]) / max(after[c][1] - before[c][1], 1)
                   for c in after if c in before)
        return int(round(busy))
    except (AttributeError, OSError, ValueError):
        try:
            return int(round(os.getloadavg()[0]))
        except (AttributeError, OSError):
            return 0


def choose_threads(requested: Optional[int] = None) -> Tuple[int, str]:
    """``(threads, why)``: ``requested``, else ``OMP_NUM_THREADS``, else the free cores (module
    docstring)."""
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f'--threads must be >= 1, got {requested}')
        return int(requested), '--threads'
    env = os.environ.get('OMP_NUM_THREADS', '').strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f'OMP_NUM_THREADS={env!r} is not a positive integer; unset it to '
                             'let the tools choose, or pass --threads N')
        return int(env), 'OMP_NUM_THREADS'
    cores = available_cores()
    local = max(int(os.environ.get('LOCAL_WORLD_SIZE', '1') or 1), 1)
    busy = min(busy_cores(), cores)
    threads = max((cores - busy) // local, 1)
    return threads, (f'{cores} available cores - {busy} busy with other work / {local} '
                     'process(es)')


def set_cpu_threads(requested: Optional[int] = None) -> int:
    """Choose (:func:`choose_threads`) and apply the process's intra-op threads
    (``torch.set_num_threads``); ``OMP_NUM_THREADS`` is set to the same for the processes it
    starts. Prints the choice and why; returns it."""
    import torch
    threads, why = choose_threads(requested)
    torch.set_num_threads(threads)
    os.environ['OMP_NUM_THREADS'] = str(threads)
    print(f'CPU threads: {threads} ({why})', flush=True)
    return threads
