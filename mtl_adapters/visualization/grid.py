"""Pictures of multi-task predictions: one row per task, input | ground truth | prediction."""
from typing import Dict, List, Mapping, Optional, Sequence, Union

import cv2
import numpy as np
import torch

from mtl_adapters.tasks import BaseTask, build_tasks

from .legend import legend_tile

#: height of the caption strip above each tile (pixels)
CAPTION_HEIGHT = 18
#: grey of the "no data" tiles and of the gaps between tiles
BLANK_GREY = 64


def to_hwc(value) -> np.ndarray:
    """A task map as canonical numpy: tensors are (C, H, W) -> HxW (C == 1) or HxWxC; numpy
    arrays are taken to be canonical already (HxW or HxWxC)."""
    if isinstance(value, torch.Tensor):
        arr = value.detach().cpu().numpy()
        if arr.ndim == 3:
            arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
        return arr
    arr = np.asarray(value)
    return arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr


def image_to_rgb(img) -> np.ndarray:
    """An input image as HxWx3 uint8 RGB: accepts a (3, H, W) tensor or an HxWx3 array."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = img.transpose(1, 2, 0)
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[..., :3])


def add_caption(tile: np.ndarray, text: str) -> np.ndarray:
    """Put a black caption strip with white ``text`` (cv2.putText) above an RGB tile."""
    h, w = tile.shape[:2]
    strip = np.zeros((CAPTION_HEIGHT, w, 3), np.uint8)
    scale = 0.4
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if tw > w - 4:  # narrow tiles: shrink the font so the caption fits
        scale = max(scale * (w - 4) / tw, 0.2)
    cv2.putText(strip, text, (2, CAPTION_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([strip, tile], axis=0)


def _fit(tile: np.ndarray, hw) -> np.ndarray:
    """Resize an RGB tile to ``hw`` (nearest: keeps label colours exact)."""
    if tile.shape[:2] == tuple(hw):
        return tile
    return cv2.resize(tile, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


def colorize_prediction_row(img: np.ndarray, task: BaseTask, gt=None, pred=None,
                            columns: Optional[Mapping[str, object]] = None,
                            legend: bool = False) -> List[np.ndarray]:
    """The captioned tiles of one task: input, ground truth, prediction (grey if absent).

    ``columns`` (``{caption: prediction}``) draws several predictions side by side instead of
    ``pred`` (e.g. the untrained and the trained model); ``legend`` adds a last tile saying
    what the colours mean. Depth and edges are coloured on the ground truth's scale when there
    is one, so the ground truth and the predictions of a row are comparable."""
    hw = img.shape[:2]
    columns = {'prediction': pred} if columns is None else columns
    gt_map = None if gt is None else to_hwc(gt)
    maps = {k: None if v is None else to_hwc(v) for k, v in columns.items()}
    drawn = [m for m in maps.values() if m is not None]
    blank = np.full(hw + (3,), BLANK_GREY, np.uint8)
    ref = gt_map if gt_map is not None else (drawn[0] if drawn else None)
    tiles = [add_caption(img, f'{task.name}: input'),
             add_caption(blank if gt_map is None else _fit(task.colorize(gt_map, gt_map), hw),
                         f'{task.name}: ground truth' if gt_map is not None
                         else f'{task.name}: no ground truth')]
    for caption, m in maps.items():
        tiles.append(add_caption(blank if m is None else _fit(task.colorize(m, ref), hw),
                                 f'{task.name}: {caption}' if m is not None
                                 else f'{task.name}: no {caption}'))
    if legend:
        entries = task.legend(ref, drawn + ([gt_map] if gt_map is not None else [])) \
            if ref is not None else []
        tiles.append(add_caption(legend_tile(entries, (hw[0], max(hw[1], 160))),
                                 f'{task.name}: legend'))
    return tiles


def _concat(tiles: Sequence[np.ndarray], axis: int, gap: int = 2) -> np.ndarray:
    """Concatenate RGB tiles along ``axis`` with ``gap``-pixel grey separators."""
    out = []
    for i, tile in enumerate(tiles):
        if i:
            shape = list(tile.shape)
            shape[axis] = gap
            out.append(np.full(shape, BLANK_GREY, np.uint8))
        out.append(tile)
    return np.concatenate(out, axis=axis)


def make_prediction_grid(img, gts: Mapping[str, object], preds: Mapping[str, object],
                         tasks: Union[Mapping[str, BaseTask], Sequence]) -> np.ndarray:
    """Grid picture, HxWx3 uint8: one row per task, columns input | ground truth | prediction,
    each tile captioned; colours from ``task.colorize`` (palette for labels, turbo for depth,
    RGB for normals, grey for edges). Maps are (C, H, W) tensors or canonical numpy arrays;
    a task missing from ``gts``/``preds`` gets a grey tile."""
    return make_comparison_grid(img, gts, {'prediction': preds}, tasks, legend=False)


def make_comparison_grid(img, gts: Mapping[str, object],
                         columns: Mapping[str, Mapping[str, object]],
                         tasks: Union[Mapping[str, BaseTask], Sequence],
                         legend: bool = True) -> np.ndarray:
    """Grid picture, HxWx3 uint8: one row per task, columns input | ground truth | one column
    per entry of ``columns`` (``{caption: {task: prediction}}``, e.g. untrained and trained)
    | a legend of the row's colours (class names, depth in metres, ...)."""
    task_dict: Dict[str, BaseTask] = dict(tasks) if isinstance(tasks, Mapping) \
        else build_tasks(tasks)
    rgb = image_to_rgb(img)
    rows = []
    for name, task in task_dict.items():
        preds = {caption: col.get(name) for caption, col in columns.items()}
        tiles = colorize_prediction_row(rgb, task, gts.get(name), columns=preds, legend=legend)
        rows.append(_concat(tiles, axis=1))
    return _concat(rows, axis=0)


def make_side_by_side(img, preds: Mapping[str, object],
                      tasks: Union[Mapping[str, BaseTask], Sequence]) -> np.ndarray:
    """One captioned row, HxWx3 uint8: input | each task's coloured prediction."""
    task_dict: Dict[str, BaseTask] = dict(tasks) if isinstance(tasks, Mapping) \
        else build_tasks(tasks)
    rgb = image_to_rgb(img)
    tiles = [add_caption(rgb, 'input')]
    for name, task in task_dict.items():
        if name in preds:
            pred = to_hwc(preds[name])
            tiles.append(add_caption(_fit(task.colorize(pred, pred), rgb.shape[:2]), name))
    return _concat(tiles, axis=1)


def grid_shape(image_hw, num_tasks: int, gap: int = 2) -> tuple:
    """(H, W) of :func:`make_prediction_grid`'s picture for an image of ``image_hw``."""
    h, w = image_hw
    return (num_tasks * (h + CAPTION_HEIGHT) + (num_tasks - 1) * gap, 3 * w + 2 * gap)


__all__: List[str] = ['make_prediction_grid', 'make_comparison_grid', 'make_side_by_side',
                      'to_hwc', 'image_to_rgb',
                      'add_caption', 'grid_shape', 'colorize_prediction_row']
