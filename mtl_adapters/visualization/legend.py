"""Legends for prediction pictures: what each task's colours mean (class names, depth in
metres, edge strength, surface directions), drawn from the tasks' own ``legend``."""
from typing import List, Sequence

import cv2
import numpy as np

#: height of one legend line (pixels)
LINE_HEIGHT = 12


def legend_tile(entries: Sequence[tuple], hw: tuple) -> np.ndarray:
    """An HxWx3 uint8 tile listing ``(swatch, text)`` entries top to bottom (in columns when
    they do not fit in one): each swatch scaled to the line height, its text beside it."""
    h, w = hw
    tile = np.zeros((h, w, 3), np.uint8)
    if not entries:
        return tile
    wide = max(e[0].shape[1] / e[0].shape[0] for e in entries) > 3    # bars, not swatches
    rows = max(1, (h - 2) // (LINE_HEIGHT + (LINE_HEIGHT if wide else 0)))
    columns = -(-len(entries) // rows)
    col_w = w // columns
    for i, (swatch, text) in enumerate(entries):
        x = (i // rows) * col_w + 2
        y = (i % rows) * (LINE_HEIGHT * (2 if wide else 1)) + 2
        sw = col_w - 4 if wide else LINE_HEIGHT
        patch = cv2.resize(np.ascontiguousarray(swatch), (sw, LINE_HEIGHT - 2),
                           interpolation=cv2.INTER_NEAREST)
        tile[y:y + LINE_HEIGHT - 2, x:x + sw] = patch[:h - y, :w - x]
        tx, ty = (x, y + 2 * LINE_HEIGHT - 3) if wide else (x + sw + 3, y + LINE_HEIGHT - 3)
        scale = 0.3
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if tw > col_w - (tx - x) - 2:               # shrink long texts into their column
            scale = max(scale * (col_w - (tx - x) - 2) / tw, 0.18)
        cv2.putText(tile, text, (tx, min(ty, h - 2)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return tile


__all__: List[str] = ['legend_tile']
