"""CPU threads from the cores actually available, less the data workers; explicit choices win."""
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


def test_free_cores_less_workers(two_cores, monkeypatch):
    assert choose_threads(num_workers=2)[0] == 1          # the demo: 2 workers on 2 cores
    assert choose_threads(num_workers=1)[0] == 1
    assert choose_threads(num_workers=0)[0] == 2
    monkeypatch.setattr(threads_mod.os, 'sched_getaffinity', lambda pid: set(range(16)))
    assert choose_threads(num_workers=2)[0] == 14
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')           # torchrun: 4 processes on the node
    assert choose_threads(num_workers=2)[0] == 2


def test_explicit_choices_win(two_cores, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert choose_threads(num_workers=2) == (3, 'OMP_NUM_THREADS')
    assert choose_threads(num_workers=2, requested=4) == (4, '--threads')
    monkeypatch.setenv('OMP_NUM_THREADS', 'many')
    with pytest.raises(ValueError, match='OMP_NUM_THREADS'):
        choose_threads()
    with pytest.raises(ValueError, match='--threads'):
        choose_threads(requested=0)


def test_applied_to_torch_and_child_processes(two_cores, monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(num_workers=1) == 1
        assert torch.get_num_threads() == 1 and os.environ['OMP_NUM_THREADS'] == '1'
    finally:
        torch.set_num_threads(before)


def test_tools_take_threads():
    assert load_tool('demo').parse_args(['--threads', '2']).threads == 2
    assert load_tool('train').parse_args(['cfg.py', '--threads', '2']).threads == 2
    assert load_tool('demo').parse_args([]).threads is None
