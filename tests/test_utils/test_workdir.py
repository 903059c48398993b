"""One training per work dir (an flock held for the run) and no silent overwriting of a
previous run (mtl_adapters/utils/workdir.py)."""
import os
import subprocess
import sys

import pytest

from mtl_adapters.utils.workdir import (WorkDirBusyError, WorkDirLock, prepare_work_dir,
                                        previous_run_files)


def test_second_lock_is_refused_and_released_on_exit(tmp_path):
    lock = WorkDirLock(str(tmp_path))
    with pytest.raises(WorkDirBusyError, match=rf'in use by another training \(pid {os.getpid()}'):
        WorkDirLock(str(tmp_path))
    lock.release()
    WorkDirLock(str(tmp_path)).release()


def test_lock_of_a_killed_process_blocks_nobody(tmp_path):
    """A process that took the lock and was killed leaves .lock behind: it is not held."""
    code = ('import os, sys; from mtl_adapters.utils.workdir import WorkDirLock; '
            f'WorkDirLock({str(tmp_path)!r}); print("locked", flush=True); '
            'os.kill(os.getpid(), 9)')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert 'locked' in res.stdout and res.returncode == -9, res.stderr
    assert (tmp_path / '.lock').exists()
    with WorkDirLock(str(tmp_path)):
        pass


def test_previous_run_refused_unless_resumed_or_overwritten(tmp_path):
    work = tmp_path / 'work'
    assert prepare_work_dir(str(work), resume=False, overwrite=False) == []   # new: fine
    work.mkdir()
    (work / 'run.log').write_text('a benchmark log, not a run')
    assert previous_run_files(str(work)) == []
    (work / 'iter_2.pth').write_bytes(b'x')
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    (work / '20250101_120000').mkdir()
    with pytest.raises(FileExistsError, match=r'holds a previous run \(iter_2\.pth, '
                       r'last_checkpoint, 20250101_120000\).*--resume.*--overwrite'):
        prepare_work_dir(str(work), resume=False, overwrite=False)
    assert prepare_work_dir(str(work), resume=True, overwrite=False) == []
    with pytest.raises(ValueError, match='contradict'):
        prepare_work_dir(str(work), resume=True, overwrite=True)
    removed = prepare_work_dir(str(work), resume=False, overwrite=True)
    assert sorted(os.path.basename(p) for p in removed) == ['iter_2.pth', 'last_checkpoint']
    assert sorted(os.listdir(work)) == ['20250101_120000', 'run.log']     # logs kept
