"""How many CPU threads a process computes with: the cores it may run on, less its data workers.

PyTorch starts one intra-op (OpenMP) thread per physical core of the machine, whatever else
runs: next to busy dataloader workers, or on cores other jobs share, the threads wait for each
other at every parallel region and a step gets many times slower (the demo on a shared 2-core
machine: 0.9 s a step alone, 22-35 s with two threads beside its two workers; with one other
job running, 1.6 s with one thread and 3.8-9.0 s with two). So the tools choose, in this
order:

1. ``--threads N`` (tools/train.py, tools/demo.py, the speed benchmark);
2. an ``OMP_NUM_THREADS`` set in the environment;
3. the cores this process may run on (``os.sched_getaffinity``: a container's or ``taskset``'s
   limit, not the machine's count), shared by the processes ``torchrun`` started on this node
   (``LOCAL_WORLD_SIZE``), less the training dataloader's workers (each computes with one
   thread); at least 1.
"""
import os
from typing import Optional, Tuple


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; the machine's count where
    the platform has none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                       # macOS, Windows
        return os.cpu_count() or 1


def choose_threads(num_workers: int = 0, requested: Optional[int] = None) -> Tuple[int, str]:
    """``(threads, why)`` for a process beside ``num_workers`` busy data workers (module
    docstring: ``requested``, else ``OMP_NUM_THREADS``, else the free cores)."""
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
    threads = max(cores // local - int(num_workers), 1)
    return threads, (f'{cores} available cores / {local} process(es) - {int(num_workers)} '
                     'data workers')


def set_cpu_threads(num_workers: int = 0, requested: Optional[int] = None) -> int:
    """Choose (:func:`choose_threads`) and apply the process's intra-op threads
    (``torch.set_num_threads``); ``OMP_NUM_THREADS`` is set to the same for the processes it
    starts. Prints the choice and why; returns it."""
    import torch
    threads, why = choose_threads(num_workers, requested)
    torch.set_num_threads(threads)
    os.environ['OMP_NUM_THREADS'] = str(threads)
    print(f'CPU threads: {threads} ({why})', flush=True)
    return threads
