"""Checkpoints load with weights_only=True: a file that would run code is refused (and its code
never runs) unless the user trusts it explicitly; our own checkpoints need nothing unsafe."""
import pickle

import pytest
import torch
from conftest import Payload
from mmengine.logging import HistoryBuffer

from mtl_adapters.utils import UnsafeCheckpointError, load_checkpoint_file, trust_checkpoint
from mtl_adapters.utils.checkpoint import (plain_message_hub, restore_message_hub,
                                           unsafe_globals)


def test_code_in_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'system.*--trust-checkpoint') as err:
        load_checkpoint_file(str(path))
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_old_mmengine_checkpoint_refused_then_trusted(tmp_path):
    """A message hub of raw HistoryBuffers needs builtins.getattr: refused, named, and loadable
    only after the user trusts that file."""
    path = tmp_path / 'old.pth'
    torch.save({'message_hub': {'log_scalars': {'loss': HistoryBuffer([1.0, 2.0], [1, 1])}}},
               path)
    with pytest.raises(UnsafeCheckpointError, match='builtins.getattr'):
        load_checkpoint_file(str(path))
    trust_checkpoint(str(path))
    loaded = load_checkpoint_file(str(path))
    assert loaded['message_hub']['log_scalars']['loss'].mean() == 1.5


def test_message_hub_round_trip_is_weights_only(tmp_path):
    state = {'log_scalars': {'train/loss': HistoryBuffer([0.5, 0.25, 0.125], [1, 1, 2], 2)},
             'runtime_info': {'iter': 3}, 'resumed_keys': {'iter': True}}
    path = tmp_path / 'hub.pth'
    torch.save({'message_hub': plain_message_hub(state)}, path)
    assert unsafe_globals(str(path)) == []
    hub = restore_message_hub(load_checkpoint_file(str(path))['message_hub'])
    buf = hub['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.max_length == 2
    assert buf.data[0].tolist() == [0.25, 0.125] and buf.data[1].tolist() == [1, 2]


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / 'truncated.pth'
    path.write_bytes(b'PK\x03\x04 not really a zip')
    with pytest.raises((RuntimeError, pickle.UnpicklingError, EOFError)):
        load_checkpoint_file(str(path))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_safe_checkpoint_hook_refuses_non_finite_state():
    """A non-finite gradient norm stops training after the iteration; a non-finite state dict
    is never written (the hook runs before CheckpointHook)."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mtl_adapters.engine.hooks import SafeCheckpointHook
    hook = SafeCheckpointHook()
    hub = MessageHub.get_instance('safe_checkpoint_test')
    runner = SimpleNamespace(message_hub=hub, iter=6)
    hook.after_train_iter(runner, 0)                      # nothing logged yet: fine
    hub.update_scalar('train/grad_norm', 3.0)
    hook.after_train_iter(runner, 0)
    hub.update_scalar('train/grad_norm', float('inf'))
    with pytest.raises(FloatingPointError, match='gradient norm.*iteration 7'):
        hook.after_train_iter(runner, 0)
    ok = {'state_dict': {'w': torch.ones(2), 'n': torch.tensor(3)}, 'message_hub': {}}
    hook.before_save_checkpoint(runner, ok)
    bad = {'state_dict': {'w': torch.tensor([1.0, float('nan')])}, 'message_hub': {}}
    with pytest.raises(FloatingPointError, match=r"not finite .* in \['w \(max \|x\| nan\)'\]"):
        hook.before_save_checkpoint(runner, bad)
    # finite but exploded weights (what a diverging step leaves before the NaN) are refused too
    exploded = {'state_dict': {'w': torch.tensor([1.0, 1e38])}, 'meta': {'iter': 7}}
    with pytest.raises(FloatingPointError, match=r'iteration 7: .*max_abs_weight=1e\+06'):
        hook.before_save_checkpoint(runner, exploded)
    SafeCheckpointHook(max_abs_weight=1e39).before_save_checkpoint(runner, exploded)


def test_safe_checkpoint_hook_stops_on_an_exploded_loss():
    """A finite loss above max_loss stops training after that iteration (before its
    checkpoint), with the advice to resume with --resume-lr."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mtl_adapters.engine.hooks import SafeCheckpointHook
    hub = MessageHub.get_instance('safe_checkpoint_loss_test')
    runner = SimpleNamespace(message_hub=hub, iter=4)
    hub.update_scalar('train/loss', 2.5)
    SafeCheckpointHook().after_train_iter(runner, 0)
    hub.update_scalar('train/loss', 3e20)
    with pytest.raises(FloatingPointError, match=r'exploded training loss .*iteration 5.*'
                       r'--resume-lr'):
        SafeCheckpointHook().after_train_iter(runner, 0)
    SafeCheckpointHook(max_loss=1e21).after_train_iter(runner, 0)
