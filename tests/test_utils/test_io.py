"""Atomic writes give the finished file the umask's mode, not mkstemp's 0600; a figure is
replaced whole or not at all."""
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


def test_save_figure_replaces_a_picture_whole_or_not_at_all(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mtl_adapters.utils import save_figure
    path = tmp_path / 'plots' / 'curve.png'
    fig = plt.figure()
    plt.plot([0, 1], [1, 0])
    save_figure(fig, path)
    before = path.read_bytes()
    assert before.startswith(b'\x89PNG')

    class Broken(Exception):
        pass

    def fail(*args, **kwargs):            # a figure that fails half-way through rendering
        args[0].write(b'\x89PNG half')
        raise Broken('renderer died')

    fig.savefig = fail
    with pytest.raises(Broken):
        save_figure(fig, path)
    assert path.read_bytes() == before and os.listdir(path.parent) == ['curve.png']
    plt.close(fig)
