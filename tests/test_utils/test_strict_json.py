"""The project's one JSON writer: strict (no bare NaN/Infinity), atomic, errors that name the
entries."""
import json
import math

import pytest

from mtl_adapters.utils import json_bytes, write_json


def test_write_json_refuses_non_finite_numbers_and_keeps_the_old_file(tmp_path):
    path = tmp_path / 'metrics.json'
    write_json(path, {'seg/mIoU': 40.5, 'depth': [1.0, None]})
    before = path.read_bytes()
    assert json.loads(before) == {'seg/mIoU': 40.5, 'depth': [1.0, None]}
    with pytest.raises(ValueError, match=r"metrics\.json.*\['depth\[1\]', 'x\.y'\].*null"):
        write_json(path, {'seg/mIoU': 40.5, 'depth': [1.0, math.nan],
                          'x': {'y': -math.inf}})
    assert path.read_bytes() == before                       # not replaced, not truncated
    assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.json']   # no temp left


def test_json_bytes_passes_dump_options_through():
    assert json_bytes({'b': 1, 'a': [1, 2]}, sort_keys=True, separators=(',', ':')) \
        == b'{"a":[1,2],"b":1}\n'
