"""Inference speed on photographs: images/s of ``inference_model`` at the config's test scale,
whole-image and sliding-window, for a batch size.

Run ``python tools/benchmark.py --infer``; it prints a table (mode, batch, image size, images,
seconds, images/s) and writes JSON (``--out``). The model is the config's (random weights:
speed does not depend on them); the photos are skimage's astronaut resized to ``--size``
(default 480x640, a phone photo's aspect ratio). The first batch is a warm-up, not timed.
"""
import argparse
import os
import platform
import time
from typing import List, Optional

import numpy as np
import torch

from .common import write_json

DEMO_CONFIG = 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def photos(num: int, size) -> List[np.ndarray]:
    """``num`` HxWx3 uint8 photographs (the astronaut, slightly shifted each time)."""
    import cv2
    from skimage.data import astronaut
    base = cv2.resize(astronaut(), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(np.roll(base, 3 * i, axis=1)) for i in range(num)]


def time_mode(model, images, mode: str, batch_size: int, crop, stride) -> float:
    """Seconds to predict ``images`` (after one untimed warm-up batch)."""
    from mtl_adapters.apis import inference_model
    model.test_cfg = (dict(mode='slide', crop_size=crop, stride=stride) if mode == 'slide'
                      else dict(mode='whole'))
    inference_model(model, images[:batch_size], batch_size=batch_size)
    start = time.perf_counter()
    inference_model(model, images, batch_size=batch_size)
    return time.perf_counter() - start


def main(argv: Optional[List[str]] = None) -> dict:
    """Time whole and slide inference; print a table, write JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=DEMO_CONFIG)
    parser.add_argument('--size', type=int, nargs=2, default=(480, 640), metavar=('H', 'W'))
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--batch-size', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--modes', nargs='+', default=['whole', 'slide'],
                        choices=['whole', 'slide'])
    parser.add_argument('--crop-size', type=int, nargs=2, default=None,
                        help="slide window (default: the config's crop_size)")
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default='work_dirs/benchmarks/inference_speed.json')
    args = parser.parse_args(argv)
    from mtl_adapters.apis import init_model
    torch.manual_seed(0)
    model = init_model(args.config, None, args.device)
    crop = tuple(args.crop_size or model.cfg.get('crop_size', (256, 256)))
    stride = tuple(max(1, 2 * c // 3) for c in crop)
    images = photos(args.num_images, args.size)
    rows = []
    for mode in args.modes:
        for batch in args.batch_size:
            seconds = time_mode(model, images, mode, batch, crop, stride)
            rows.append(dict(mode=mode, batch_size=batch, size=list(args.size),
                             images=len(images), seconds=seconds,
                             images_per_s=len(images) / seconds))
    head = f'{"mode":>6} {"batch":>5} {"image":>9} {"images":>6} {"seconds":>8} {"img/s":>7}'
    print(head + '\n' + '-' * len(head))
    for r in rows:
        print(f'{r["mode"]:>6} {r["batch_size"]:>5} {"x".join(map(str, r["size"])):>9} '
              f'{r["images"]:>6} {r["seconds"]:>8.2f} {r["images_per_s"]:>7.2f}')
    result = dict(config=args.config, device=args.device, slide_crop=list(crop),
                  slide_stride=list(stride), threads=torch.get_num_threads(),
                  cpu=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                  rows=rows)
    write_json(args.out, result)
    return result


if __name__ == '__main__':
    main()
