"""CPU threads from the cores other work leaves free; explicit choices win."""
import os

import pytest
import torch
from conftest import load_tool

from mtl_adapters.utils import choose_threads, set_cpu_threads
from mtl_adapters.utils import threads as threads_mod


@pytest.fixture
def two_cores(monkeypatch):
    """A process allowed on 2 of the machine's cores, no thread setting in the environment."""
    monkeypatch.setattr(threads_mod.os, 'sched_getaffinity', lambda pid: {0, 5}, raising=False)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    monkeypatch.setattr(threads_mod, 'busy_cores', lambda: 0)


def test_free_cores_less_the_busy_ones(two_cores, monkeypatch):
    assert choose_threads()[0] == 2                       # the demo alone on 2 cores
    monkeypatch.setattr(threads_mod, 'busy_cores', lambda: 1)
    assert choose_threads()[0] == 1                       # one other job running
    monkeypatch.setattr(threads_mod, 'busy_cores', lambda: 8)
    assert choose_threads()[0] == 1                       # overloaded: still at least one
    monkeypatch.setattr(threads_mod.os, 'sched_getaffinity', lambda pid: set(range(16)))
    monkeypatch.setattr(threads_mod, 'busy_cores', lambda: 2)
    assert choose_threads()[0] == 14
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')           # torchrun: 4 processes on the node
    assert choose_threads()[0] == 3


def test_explicit_choices_win(two_cores, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert choose_threads() == (3, 'OMP_NUM_THREADS')
    assert choose_threads(requested=4) == (4, '--threads')
    monkeypatch.setenv('OMP_NUM_THREADS', 'many')
    with pytest.raises(ValueError, match='OMP_NUM_THREADS'):
        choose_threads()
    with pytest.raises(ValueError, match='--threads'):
        choose_threads(requested=0)


def test_applied_to_torch_and_child_processes(two_cores, monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads() == 2
        assert torch.get_num_threads() == 2 and os.environ['OMP_NUM_THREADS'] == '2'
    finally:
        torch.set_num_threads(before)


def test_tools_take_threads():
    assert load_tool('demo').parse_args(['--threads', '2']).threads == 2
    assert load_tool('train').parse_args(['cfg.py', '--threads', '2']).threads == 2
    assert load_tool('demo').parse_args([]).threads is None


def test_busy_cores_sees_a_busy_core():
    """Measured, not assumed: a spinning process makes one core of this process's set busy."""
    import multiprocessing
    cores = len(os.sched_getaffinity(0))
    idle = threads_mod.busy_cores()
    assert 0 <= idle <= cores
    stop = multiprocessing.Event()
    spinner = multiprocessing.Process(target=_spin, args=(stop,))
    spinner.start()
    try:
        import time
        time.sleep(0.3)
        assert threads_mod.busy_cores(window=0.5) >= 1
    finally:
        stop.set()
        spinner.join(10)


def _spin(stop):
    while not stop.is_set():
        pass
