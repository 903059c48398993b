"""The matrix benchmark's report: Δm against the single-task rows, the rows (mean ± std over
the seeds), and ``matrix.{md,csv,json,png}`` (``matrix.py`` plans and runs the cells)."""
import csv
import io
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mtl_adapters.benchmarks import weighting_comparison as wc
from mtl_adapters.benchmarks.common import write_json, write_text
from mtl_adapters.utils.io import save_figure

#: the method name of the single-task baseline rows
SINGLE = 'single-task'
#: the metric drawn for each task in the plot
HEADLINE = {'seg': 'seg/mIoU', 'depth': 'depth/rmse', 'normal': 'normal/mean',
            'edge': 'edge/l1'}


def add_delta_m(records: List[dict], directions: Dict[str, bool]) -> None:
    """``metrics['mtl/delta_m']`` of every finished cell: Δm (%) over the headline metrics
    (``weighting_comparison.COLUMNS``) of its tasks against the same seed's single-task rows
    (0 for a single-task row; absent when a baseline it needs has not finished)."""
    from mtl_adapters.evaluation.delta_m import delta_m
    baseline: Dict[int, dict] = {}
    for r in records:
        if r['method'] == SINGLE and r['status'] == 'done':
            task = r['tasks'][0]
            baseline.setdefault(r['seed'], {}).update(
                {k: v for k, v in r['metrics'].items() if k.split('/')[0] == task})
    for r in records:
        if r['status'] != 'done':
            continue
        keys = [k for k in wc.COLUMNS if k.split('/')[0] in r['tasks'] and k in directions]
        base = baseline.get(r['seed'], {})
        if all(k in base for k in keys) and keys:
            r['metrics']['mtl/delta_m'] = delta_m(r['metrics'], {k: base[k] for k in keys},
                                                  directions)
        else:
            r['metrics'].pop('mtl/delta_m', None)
            r['delta_m_missing'] = sorted({k.split('/')[0] for k in keys if k not in base})


def rows(records: List[dict], iters: int, images_per_iter: int) -> List[dict]:
    """One row per (combination, method) in plan order: the seeds' values of every metric,
    Δm, train time and images/s; parameters; failed seeds."""
    out: Dict[Tuple[str, str], dict] = {}
    for r in records:
        row = out.setdefault((r['combo'], r['method']), dict(
            combo=r['combo'], tasks=r['tasks'], method=r['method'], seeds=[], failed=[],
            errors={}, values={}, params=r.get('params')))
        if r['status'] != 'done':
            row['failed'].append(r['seed'])
            row['errors'][r['seed']] = r.get('error', '')
            continue
        row['seeds'].append(r['seed'])
        metrics = dict(r['metrics'])
        if 'time/train_s' in metrics:
            metrics['time/images_per_s'] = iters * images_per_iter / metrics['time/train_s']
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                row['values'].setdefault(k, []).append(float(v))
    return list(out.values())


def _millions(params: Optional[dict], key: str) -> str:
    return f'{params[key] / 1e6:.3f}' if params and key in params else 'n/a'


def _status(row: dict) -> str:
    if not row['failed']:
        return 'ok'
    return f'FAILED seed {", ".join(map(str, row["failed"]))}'


def table(table_rows: List[dict], directions: Dict[str, bool], iters: int) -> str:
    """The Markdown table with a note on the single-task rows and the failed cells."""
    header = ['tasks', 'method', 'seeds'] + \
        [f'{k} {"↑" if directions.get(k, True) else "↓"}' for k in wc.COLUMNS] + \
        ['Δm (%) ↑', 'params (M)', 'trainable (M)', 'train time (s)', 'train img/s', 'status']
    lines = []
    for row in table_rows:
        v = row['values']
        in_row = [k for k in wc.COLUMNS if k.split('/')[0] in row['tasks']]
        lines.append([row['combo'], row['method'], str(len(row['seeds']))]
                     + [wc.fmt(v.get(k, [])) if k in in_row else '' for k in wc.COLUMNS]
                     + [wc.fmt(v.get('mtl/delta_m', []), sign=True),
                        _millions(row['params'], 'total'), _millions(row['params'], 'trainable'),
                        wc.fmt(v.get('time/train_s', [])),
                        wc.fmt(v.get('time/images_per_s', [])), _status(row)])
    text = wc.markdown(header, lines)
    text += (f'\n\n{iters} iterations per cell; mean ± std over the seeds that finished. '
             f'`{SINGLE}` rows: the adapter model trained on one task, once per seed; with one '
             'task TROA (W = [1]), uniform, GradNorm and PCGrad train this same model (uncertainty '
             'weighting still scales its loss by a learnt factor), so these rows are the 1-task '
             'point of the weighting methods and the Δm baseline (Δm is against the same '
             'seed\'s single-task rows). Train time: wall time of tools/train.py, start-up '
             'included.')
    failed = [(row, seed) for row in table_rows for seed in row['failed']]
    if failed:
        text += '\n\nFailed cells:\n\n' + '\n'.join(
            f'- {row["combo"]} {row["method"]} seed {seed}: {row["errors"][seed]}'
            for row, seed in failed)
    uncounted = [row for row in table_rows if row['params'] and 'error' in row['params']]
    if uncounted:
        text += '\n\nParameters not counted (the model does not build):\n\n' + '\n'.join(
            f'- {row["combo"]} {row["method"]}: {row["params"]["error"]}' for row in uncounted)
    return text


def write_csv(path: str, table_rows: List[dict]) -> None:
    """One line per row: the numbers of the table as mean and std columns."""
    keys = list(wc.COLUMNS) + ['mtl/delta_m', 'time/train_s', 'time/images_per_s']
    buf = io.StringIO(newline='')
    writer = csv.writer(buf)
    writer.writerow(['tasks', 'num_tasks', 'method', 'seeds', 'failed_seeds']
                    + [f'{k}_{s}' for k in keys for s in ('mean', 'std')]
                    + ['params_total', 'params_trainable'])
    for row in table_rows:
        stats = []
        for k in keys:
            values = row['values'].get(k)
            stats += list(wc.mean_std(values)) if values else ['', '']
        params = row['params'] or {}
        writer.writerow([row['combo'], len(row['tasks']), row['method'], len(row['seeds']),
                         ' '.join(map(str, row['failed']))] + stats
                        + [params.get('total', ''), params.get('trainable', '')])
    write_text(path, buf.getvalue())


def plot(path: str, table_rows: List[dict], directions: Dict[str, bool]) -> None:
    """Headline metric of each task and Δm vs the number of tasks, one line per method (its
    1-task point is the single-task row for a weighting method), std as error bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = ['mtl/delta_m'] + [k for t, k in HEADLINE.items()
                                if any(t in r['tasks'] for r in table_rows)]
    methods = []
    for r in table_rows:
        if r['method'] != SINGLE and r['method'] not in methods:
            methods.append(r['method'])
    own_singles = {r['method'] for r in table_rows if len(r['tasks']) == 1}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), dpi=100,
                             squeeze=False)
    for ax, key in zip(axes[0], panels):
        task = key.split('/')[0]
        for method in methods or [SINGLE]:
            # a weighting method's single-task point is the shared single-task row
            sources = {method} | ({SINGLE} if method not in own_singles else set())
            points: Dict[int, List[float]] = {}
            for r in table_rows:
                if r['method'] not in sources or (r['method'] == SINGLE and len(r['tasks']) > 1):
                    continue
                if key != 'mtl/delta_m' and task not in r['tasks']:
                    continue
                points.setdefault(len(r['tasks']), []).extend(r['values'].get(key, []))
            xs = sorted(n for n, v in points.items() if v)
            if not xs:
                continue
            stats = [wc.mean_std(points[n]) for n in xs]
            ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker='o',
                        capsize=3, label=method)
        arrow = '↑' if directions.get(key, True) else '↓'
        ax.set_title(f'{"Δm (%)" if key == "mtl/delta_m" else key} {arrow}')
        ax.set_xlabel('number of tasks')
        ax.set_xticks(range(1, 1 + max(len(r['tasks']) for r in table_rows)))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def report(records: List[dict], work_dir: str, iters: int, images_per_iter: int,
           directions: Dict[str, bool], settings: dict) -> dict:
    """Δm, the table, ``matrix.{md,csv,json,png}``; returns the JSON's content."""
    add_delta_m(records, directions)
    table_rows = rows(records, iters, images_per_iter)
    text = table(table_rows, directions, iters)
    print(text)
    os.makedirs(work_dir, exist_ok=True)
    write_text(osp.join(work_dir, 'matrix.md'), text + '\n')
    write_csv(osp.join(work_dir, 'matrix.csv'), table_rows)
    summary = dict(settings, rows=table_rows, cells=records)
    write_json(osp.join(work_dir, 'matrix.json'), summary)
    plot(osp.join(work_dir, 'matrix.png'), table_rows, directions)
    return summary
