"""The shared preparation runner: atomic, resumable to identical bytes, --check, failures named."""
import argparse
from pathlib import Path

import numpy as np
import pytest

from mtl_adapters.data_generation.prepare import (PrepItem, Preparation, add_common_args,
                                                  encode_png, run_from_args, run_preparation)
from mtl_adapters.utils import read_image, write_png


class Brighten(Preparation):
    """A toy dataset: every input PNG gets a brightened copy and its 16-bit square."""

    name = 'toy'

    def __init__(self, src: Path, out: Path):
        self.src, self.out = Path(src), Path(out)

    def items(self):
        return [PrepItem(key=p.stem, inputs=(p,),
                         outputs=(self.out / f'{p.stem}_bright.png',
                                  self.out / 'sq' / f'{p.stem}_sq.png'))
                for p in sorted(self.src.glob('*.png'))]

    def process(self, item):
        img = read_image(item.inputs[0])
        return {item.outputs[0]: encode_png(np.clip(img.astype(int) + 40, 0, 255).astype(np.uint8)),
                item.outputs[1]: encode_png((img[..., 0].astype(np.uint16) ** 2))}


def _inputs(folder: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(folder / f'img{i:02d}.png', rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    return folder


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def test_killed_run_resumes_to_identical_bytes(tmp_path, monkeypatch):
    src = _inputs(tmp_path / 'src')
    clean = run_preparation(Brighten(src, tmp_path / 'clean'), progress=False)
    assert clean.processed == 6 and clean.ok
    original = Brighten.process
    calls = []

    def dies_at_four(self, item):
        calls.append(item.key)
        if len(calls) == 4:
            raise KeyboardInterrupt           # the user's Ctrl-C in the middle of the run
        return original(self, item)

    monkeypatch.setattr(Brighten, 'process', dies_at_four)
    with pytest.raises(KeyboardInterrupt):
        run_preparation(Brighten(src, tmp_path / 'resumed'), progress=False)
    done = _tree(tmp_path / 'resumed')
    assert len(done) == 6 and not any(name.endswith('.tmp') for name in done)   # 3 complete
    monkeypatch.setattr(Brighten, 'process', original)
    again = run_preparation(Brighten(src, tmp_path / 'resumed'), progress=False)
    assert (again.processed, again.skipped) == (3, 3)
    assert _tree(tmp_path / 'resumed') == _tree(tmp_path / 'clean')


def test_workers_give_the_same_bytes(tmp_path):
    src = _inputs(tmp_path / 'src')
    run_preparation(Brighten(src, tmp_path / 'one'), workers=1, progress=False)
    run_preparation(Brighten(src, tmp_path / 'two'), workers=2, progress=False)
    assert _tree(tmp_path / 'one') == _tree(tmp_path / 'two')


def test_bad_input_is_named_and_the_run_goes_on(tmp_path, capsys):
    src = _inputs(tmp_path / 'src')
    (src / 'img03.png').write_bytes(b'not a png')
    (src / 'img05.png').unlink()
    prep = Brighten(src, tmp_path / 'out')
    prep.items = lambda: Brighten.items(prep) + [
        PrepItem('ghost', (src / 'img05.png',), (tmp_path / 'out' / 'ghost.png',))]
    parser = argparse.ArgumentParser()
    add_common_args(parser)
    code = run_from_args(prep, parser.parse_args(['--workers', '1', '--no-progress']))
    out = capsys.readouterr().out
    assert code == 1
    assert 'processed 4' in out and 'failed 2' in out
    assert str(src / 'img03.png') in out and str(src / 'img05.png') in out
    assert len(list((tmp_path / 'out').glob('*_bright.png'))) == 4


def test_check_writes_nothing_and_finds_broken_outputs(tmp_path):
    src = _inputs(tmp_path / 'src', n=3)
    prep = Brighten(src, tmp_path / 'out')
    summary = run_preparation(prep, check_only=True, progress=False)
    assert summary.ok and summary.processed == 3 and not (tmp_path / 'out').exists()
    run_preparation(prep, progress=False)
    (tmp_path / 'out' / 'img01_bright.png').write_bytes(b'\x89PNG truncated')
    summary = run_preparation(prep, check_only=True, progress=False)
    assert [key for key, _ in summary.failed] == ['img01'] and summary.skipped == 2
    fixed = run_preparation(prep, progress=False)                 # a normal run repairs it
    assert fixed.processed == 1 and run_preparation(prep, check_only=True,
                                                    progress=False).ok


def test_undeclared_output_is_refused(tmp_path):
    src = _inputs(tmp_path / 'src', n=1)

    class Sloppy(Brighten):
        def process(self, item):
            return {self.out / 'elsewhere.png': b''}

    summary = run_preparation(Sloppy(src, tmp_path / 'out'), progress=False)
    assert 'undeclared' in summary.failed[0][1] and not (tmp_path / 'out').exists()


class Slow(Preparation):
    """A preparer whose items take a minute each: every worker writes its pid, then sleeps."""

    name = 'slow'

    def __init__(self, out: Path):
        self.out = out

    def items(self):
        return [PrepItem(key=str(i), inputs=(), outputs=(self.out / f'{i}.bin',))
                for i in range(4)]

    def process(self, item):
        import os
        import time
        (self.out / 'pids' / str(os.getpid())).touch()
        time.sleep(60)
        return {}


def _run_slow(out: Path) -> None:
    run_preparation(Slow(out), workers=2, progress=False)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ('Z', 'X')


@pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='reads /proc')
@pytest.mark.parametrize('sig', ['SIGKILL', 'SIGTERM'])
def test_workers_die_with_the_preparer(tmp_path, sig):
    """Killing the preparer (a forked copy of this process running ``--workers 2``) leaves no
    worker running: they end within seconds."""
    import multiprocessing
    import os
    import signal
    import time
    (tmp_path / 'pids').mkdir()
    preparer = multiprocessing.get_context('fork').Process(target=_run_slow, args=(tmp_path,))
    preparer.start()
    pids = []
    try:
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline and preparer.is_alive():
            time.sleep(0.05)
            pids = [int(p.name) for p in (tmp_path / 'pids').iterdir()]
        assert len(pids) == 2, f'the workers did not start (exit code {preparer.exitcode})'
        os.kill(preparer.pid, getattr(signal, sig))
        preparer.join(10)
        deadline = time.monotonic() + 5
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], f'workers outlived the preparer ({sig})'
    finally:
        preparer.kill()
        for pid in pids:                    # the workers this test started, if still there
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
