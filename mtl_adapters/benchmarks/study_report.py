"""The claims study's statistics and report (``study.py`` runs the cells).

Per claim (A vs B) and seed, the paired difference is A − B averaged over the claim's
headline metrics, each in % of B's mean over the paired seeds and signed so that > 0 means A
is better (Δm of A minus Δm of B, both against that mean: ``delta_m``). A seed's noise common
to both arms (its data order, its initialisation) cancels, and a seed where B is near 0 (a
source model's mIoU on the target) does not blow its difference up as a per-seed ratio would.
Over the n seeds with both arms finished: mean ± ``t_{0.975, n-1} sd / sqrt(n)`` (the 95 %
confidence interval of the mean paired difference, Student's t). Verdict: the interval
excludes 0 on the claimed side -> ``holds``; on the other side -> ``does not hold``; it
contains 0 -> ``within noise`` (fewer than 2 seeds: ``n/a``). ``seeds_for_1`` says how many
paired seeds, at the measured spread, would narrow that interval to ±1 point: the budget's
power, row by row.
"""
import csv
import io
import math
import os
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence

from mtl_adapters.benchmarks import weighting_comparison as wc
from mtl_adapters.benchmarks.common import write_json, write_text
from mtl_adapters.utils.io import save_figure

HOLDS, FAILS, NOISE, NA = 'holds', 'does not hold', 'within noise', 'n/a'


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (scipy)."""
    from scipy.stats import t
    return float(t.ppf(p, df))


def seeds_to_resolve(sd: float, half: float = 1.0, level: float = 0.95,
                     most: int = 100_000) -> int:
    """The fewest paired seeds n (≥ 2) whose interval ``t_{(1+level)/2, n-1} sd / sqrt(n)``
    is at most ``half`` wide on each side, for a spread ``sd``; ``most`` caps the search."""
    from scipy.stats import norm
    # t's quantile exceeds the normal one: the normal's n is a lower bound to start from
    n = max(2, math.ceil((float(norm.ppf((1 + level) / 2)) * sd / half) ** 2))
    while n < most and t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n) > half:
        n += 1
    return min(n, most)


def paired_ci(diffs: Sequence[float], level: float = 0.95) -> Optional[dict]:
    """``{'mean', 'half', 'low', 'high', 'n', 'sd', 'seeds_for_1'}`` of the paired
    differences: mean ± ``t_{(1+level)/2, n-1} sd / sqrt(n)``, and the seeds that would make
    that ±1 point at this spread; None for fewer than 2 values."""
    n = len(diffs)
    if n < 2:
        return None
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return dict(mean=mean, half=half, low=mean - half, high=mean + half, n=n, sd=sd,
                seeds_for_1=seeds_to_resolve(sd, 1.0, level))


def verdict(ci: Optional[dict], direction: int = 1) -> str:
    """``holds`` / ``does not hold`` / ``within noise`` for a claim that A beats B
    (``direction=1``; -1: that B beats A) given the interval of A - B; ``n/a`` without one."""
    if ci is None:
        return NA
    if ci['low'] > 0 or ci['high'] < 0:
        a_better = ci['low'] > 0
        return HOLDS if a_better == (direction > 0) else FAILS
    return NOISE


def evaluate(claims: Sequence, metrics: Dict[str, Dict[int, dict]],
             directions: Dict[str, bool], params: Dict[str, dict]) -> List[dict]:
    """One row per claim: per-seed paired differences, their CI and the verdict.
    ``metrics[arm][seed]``: the finished cells' test metrics; ``params[arm]``: counts."""
    from mtl_adapters.evaluation.delta_m import delta_m
    out = []
    for c in claims:
        per_a, per_b = metrics.get(c.a, {}), metrics.get(c.b, {})
        seeds = sorted(set(per_a) & set(per_b))
        diffs, keys = {}, []
        if seeds:
            keys = [k for k in wc.COLUMNS if k.split('/')[0] in c.tasks
                    and all(k in per_a[s] and k in per_b[s] for s in seeds)]
        if keys:
            # B's mean over the paired seeds: one scale for every seed, so a seed where B is
            # near 0 (a source model's mIoU on the target) does not blow its difference up
            scale = {k: statistics.fmean(per_b[s][k] for s in seeds) for k in keys}
            for s in seeds:
                diffs[s] = (delta_m(per_a[s], scale, directions)
                            - delta_m(per_b[s], scale, directions))
        ci = paired_ci(list(diffs.values()))
        out.append(dict(family=c.family, kind=c.kind, claim=c.text, a=c.a, b=c.b,
                        tasks=list(c.tasks),
                        direction=c.direction, keys=keys, diffs=diffs, ci=ci,
                        verdict=verdict(ci, c.direction),
                        trainable=[(params.get(arm) or {}).get('trainable') for arm in
                                   (c.a, c.b)]))
    return out


def _ci_text(row: dict) -> List[str]:
    ci = row['ci']
    if ci is None:
        return ['n/a', 'n/a']
    return [f"{ci['mean']:+.2f} ± {ci['half']:.2f}", f"[{ci['low']:+.2f}, {ci['high']:+.2f}]"]


def _spread_text(row: dict) -> str:
    ci = row['ci']
    return '' if ci is None else f"{ci['sd']:.2f} / {ci['seeds_for_1']}"


def _params_text(row: dict) -> str:
    a, b = row['trainable']
    return f'{a / 1e6:.3f} / {b / 1e6:.3f}' if a is not None and b is not None else ''


HEADER = ['claim', 'A', 'B', 'metrics', 'seeds', 'paired Δ (%, A vs B)', '95 % CI', 'verdict',
          'sd / seeds for ±1', 'trainable M (A / B)']


def arm_table(metrics: Dict[str, Dict[int, dict]]) -> str:
    """Each arm's test metrics, mean ± std over its finished seeds (the levels the paired
    differences are taken between)."""
    lines = []
    for arm, per_seed in metrics.items():
        cells = []
        for key in wc.COLUMNS:
            values = [m[key] for m in per_seed.values() if key in m]
            cells.append(wc.fmt(values) if values else '')
        lines.append([arm, str(len(per_seed))] + cells)
    return wc.markdown(['arm', 'seeds'] + list(wc.COLUMNS), lines)


def table(rows: List[dict], settings: dict, failures: List[str],
          metrics: Optional[Dict[str, Dict[int, dict]]] = None) -> str:
    """The Markdown report: one table per claim family, the arms' own metrics, then the
    failed cells."""
    budget = ', '.join(f'{k.replace("_", " ")} {settings[k]}' for k in
                       ('image_size', 'batch_size', 'size', 'light') if k in settings)
    text = [f"**Claims study**: {settings['iters']} iterations per cell ({budget}), seeds "
            f"{settings['seeds']}, paired differences (A − B over the claim's metrics, each in % "
            "of B's mean over the seeds; > 0: A better) "
            'with 95 % t-intervals over the seeds; model selection on val, numbers on test.']
    summary = [[r['claim'], r['kind'], _ci_text(r)[0], r['verdict']] for r in rows]
    text.append('**Summary**\n\n' + wc.markdown(
        ['claim (A beats B)', 'paper or control', 'paired Δ (%) ± 95 % CI', 'verdict'],
        summary))
    for family in dict.fromkeys(r['family'] for r in rows):
        lines = [[r['claim'], r['a'], r['b'], ' '.join(r['keys']), str(len(r['diffs']))]
                 + _ci_text(r) + [r['verdict'], _spread_text(r), _params_text(r)]
                 for r in rows if r['family'] == family]
        text.append(f'**{family}**\n\n' + wc.markdown(HEADER, lines))
    if metrics:
        text.append('**Each arm on its test split** (mean ± std over seeds)\n\n'
                    + arm_table(metrics))
    if failures:
        text.append('Failed cells:\n\n' + '\n'.join(f'- {f}' for f in failures))
    if settings.get('not_run'):
        text.append(f"Not run yet ({len(settings['not_run'])} cells, `--report-only`): "
                    + ', '.join(settings['not_run']))
    return '\n\n'.join(text)


def write_csv(path: str, rows: List[dict]) -> None:
    """One line per claim: the paired statistics and each seed's difference."""
    seeds = sorted({s for r in rows for s in r['diffs']})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(['family', 'claim', 'a', 'b', 'metrics', 'n', 'mean', 'low', 'high',
                     'sd', 'seeds_for_1', 'verdict', 'trainable_a', 'trainable_b']
                    + [f'seed{s}' for s in seeds])
    for r in rows:
        ci = r['ci'] or {}
        writer.writerow([r['family'], r['claim'], r['a'], r['b'], ' '.join(r['keys']),
                         len(r['diffs']), ci.get('mean', ''), ci.get('low', ''),
                         ci.get('high', ''), ci.get('sd', ''), ci.get('seeds_for_1', ''),
                         r['verdict']] + list(r['trainable'])
                        + [r['diffs'].get(s, '') for s in seeds])
    write_text(path, buf.getvalue())


def plot(path: str, rows: List[dict]) -> None:
    """One panel per claim family: each claim's mean paired difference with its 95 % CI as
    an error bar (0 dashed); written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    families = list(dict.fromkeys(r['family'] for r in rows))
    fig, axes = plt.subplots(len(families), 1, squeeze=False, dpi=100,
                             figsize=(8, 1.2 + sum(0.45 * sum(r['family'] == f for r in rows)
                                                   + 0.6 for f in families)))
    for ax, family in zip(axes[:, 0], families):
        mine = [r for r in rows if r['family'] == family]
        ys = list(range(len(mine)))[::-1]
        for y, r in zip(ys, mine):
            if r['ci'] is not None:
                colour = {HOLDS: 'tab:green', FAILS: 'tab:red'}.get(r['verdict'], 'tab:gray')
                ax.errorbar(r['ci']['mean'], y, xerr=r['ci']['half'], fmt='o', capsize=3,
                            color=colour)
        ax.axvline(0, color='k', linestyle='--', linewidth=0.8)
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{r['a']} vs {r['b']}"
                            + (f" ({r['tasks'][0]})" if len(r['tasks']) == 1 else '')
                            for r in mine], fontsize=8)
        ax.set_title(family, fontsize=9)
        ax.grid(alpha=0.3, axis='x')
    axes[-1, 0].set_xlabel("paired Δ, A − B in % of B's mean, 95 % CI (green: holds, red: "
                           'does not hold, grey: within noise)', fontsize=8)
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)


def report(claims: Sequence, records: List[dict], work_dir: str, directions: Dict[str, bool],
           settings: dict) -> dict:
    """The claims' rows from the cells' records; ``study.{md,csv,json,png}`` in
    ``work_dir``; returns the JSON's content."""
    metrics: Dict[str, Dict[int, dict]] = {}
    params: Dict[str, dict] = {}
    failures = []
    for r in records:
        if r.get('status') == 'done':
            metrics.setdefault(r['method'], {})[r['seed']] = r['metrics']
        elif r.get('status') == 'failed':
            failures.append(f"{r['method']} seed {r['seed']}: {r['error']} ({r['work_dir']})")
        if r.get('params') and 'trainable' in r['params']:
            params[r['method']] = r['params']
    rows = evaluate(claims, metrics, directions, params)
    text = table(rows, settings, failures, metrics)
    print(text)
    os.makedirs(work_dir, exist_ok=True)
    write_text(osp.join(work_dir, 'study.md'), text + '\n')
    write_csv(osp.join(work_dir, 'study.csv'), rows)
    summary = dict(settings, claims=rows, failures=failures, cells=records)
    write_json(osp.join(work_dir, 'study.json'), summary)
    plot(osp.join(work_dir, 'study.png'), rows)
    return summary
