"""Heatmaps of task-affinity matrices (TROA's W and C) with the value written in every cell."""
from pathlib import Path
from typing import Optional, Sequence, Union

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mtl_adapters.utils.io import save_figure  # noqa: E402


def plot_affinity(matrix, task_names: Sequence[str], title: str = '',
                  path: Optional[Union[str, Path]] = None, vmin: Optional[float] = None,
                  vmax: Optional[float] = None, cmap: str = 'viridis') -> np.ndarray:
    """(T, T) matrix -> (H, W, 3) uint8 heatmap (rows: target task, columns: source task),
    values printed in the cells; also written to ``path`` as a PNG when given."""
    values = np.asarray(matrix.detach().cpu() if hasattr(matrix, 'detach') else matrix,
                        dtype=np.float64)
    n = len(task_names)
    if values.shape != (n, n):
        raise ValueError(f'plot_affinity: matrix is {values.shape}, expected ({n}, {n}) for '
                         f'tasks {list(task_names)}')
    fig, ax = plt.subplots(figsize=(1.2 * n + 1.8, 1.2 * n + 1.2), dpi=100)
    lo = values.min() if vmin is None else vmin
    hi = values.max() if vmax is None else vmax
    image = ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(task_names))
    ax.set_yticks(range(n), labels=list(task_names))
    ax.set_xlabel('source task')
    ax.set_ylabel('target task')
    if title:
        ax.set_title(title)
    mid = (lo + hi) / 2
    for t in range(n):
        for s in range(n):
            ax.text(s, t, f'{values[t, s]:.3f}', ha='center', va='center', fontsize=9,
                    color='black' if values[t, s] > mid else 'white')
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        save_figure(fig, path)
    plt.close(fig)
    return rgb
