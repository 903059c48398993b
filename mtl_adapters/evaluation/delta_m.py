"""The multi-task score Δm (Maninis et al. 2019; Vandenhende et al. 2021).

    Δm = 1/K Σ_i (−1)^{l_i} (M_m,i − M_b,i) / M_b,i × 100

over the K metrics listed in the single-task baseline, with ``l_i = 1`` when lower is better
for metric i (so Δm > 0 always means the multi-task model is better on average).
"""
import json
import math
from pathlib import Path
from typing import Dict, Mapping, Union


def delta_m(metrics: Mapping[str, float], baseline: Mapping[str, float],
            directions: Mapping[str, bool]) -> float:
    """Mean relative improvement (%) of ``metrics`` over ``baseline``; ``directions[key]`` is
    True when larger is better. Every baseline key must be in ``metrics`` and ``directions``."""
    if not baseline:
        raise ValueError('delta_m: the baseline lists no metrics')
    terms = []
    for key, base in baseline.items():
        if key not in metrics:
            raise KeyError(f'delta_m: baseline metric {key!r} was not computed; computed '
                           f'metrics are {sorted(metrics)}. Fix the baseline file or evaluate '
                           'that task.')
        if key not in directions:
            raise KeyError(f'delta_m: no direction known for {key!r} (is it a metric of a task '
                           f'in `metric_directions`?); known: {sorted(directions)}')
        base = float(base)
        if base == 0 or not math.isfinite(base):
            raise ValueError(f'delta_m: baseline value of {key!r} is {base}; Δm divides by it')
        sign = 1.0 if directions[key] else -1.0
        terms.append(sign * (float(metrics[key]) - base) / base * 100.0)
    return sum(terms) / len(terms)


def load_baseline(path: Union[str, Path]) -> Dict[str, float]:
    """Read a baseline JSON ``{"seg/mIoU": 40.1, "depth/rmse": 0.6, ...}`` with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'baseline file not found: {path}. It is a JSON object of '
                                'single-task metrics, e.g. {"seg/mIoU": 40.1, "depth/rmse": 0.6}')
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f'baseline file {path} is not valid JSON: {exc}') from exc
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise ValueError(f'baseline file {path} must hold one JSON object of '
                         '"task/metric": number pairs')
    return {str(k): float(v) for k, v in data.items()}
