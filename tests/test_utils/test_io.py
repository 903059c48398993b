"""Atomic writes give the finished file the umask's mode, not mkstemp's 0600."""
import os
import stat

import pytest

from mtl_adapters.utils import atomic_write_bytes


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_follows_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / 'sub' / 'f.bin', b'abc')
    finally:
        os.umask(old)
    path = tmp_path / 'sub' / 'f.bin'
    assert path.read_bytes() == b'abc'
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert os.umask(old) == old  # the helper left the process umask as it found it
    assert [p.name for p in (tmp_path / 'sub').iterdir()] == ['f.bin']  # no temporary left
