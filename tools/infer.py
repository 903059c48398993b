"""Predict every task of a model for images of any size; write per-task files and a picture.

    python tools/infer.py CONFIG CHECKPOINT IMAGES_OR_FOLDERS... --out-dir DIR [--skip-bad]

For each image ``<name>``: ``<name>_<task>...png`` per task (labels: palette PNG; depth:
16-bit PNG in millimetres, ``_depth_mm.png``; normals: RGB; edges: 16-bit) and
``<name>_overview.png`` (input | each task's coloured prediction).
"""
import argparse
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mtl_adapters.apis import inference_model, init_model, list_images  # noqa: E402
from mtl_adapters.utils import DataFileError, read_image, trust_checkpoint, write_png  # noqa: E402
from mtl_adapters.visualization import make_side_by_side, save_predictions  # noqa: E402


def parse_args(argv=None):
    """Command line of the inference tool."""
    parser = argparse.ArgumentParser(
        description='Multi-task inference on images of any size.',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('images', nargs='+', help='image files and/or folders of images')
    parser.add_argument('--out-dir', required=True, help='where the outputs go')
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cuda:0')
    parser.add_argument('--skip-bad', action='store_true',
                        help='report files that are not images and go on (default: stop)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load the checkpoint with a full pickle load (runs any code inside '
                        'it: only for files you wrote or trust); default: weights only')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys')
    return parser.parse_args(argv)


def main(argv=None):
    """Run inference on every input; returns ``{image path: {task: output path}}``."""
    args = parse_args(argv)
    paths = list_images(args.images)
    if not paths:
        raise SystemExit(f'no images found in {args.images}')
    if args.trust_checkpoint:
        trust_checkpoint(args.checkpoint)
    model = init_model(args.config, args.checkpoint, args.device, args.cfg_options)
    out_dir = Path(args.out_dir)
    written, bad, used = {}, [], set()
    for path in tqdm(paths, desc='inference', unit='img'):
        try:
            img = read_image(path, unchanged=False,
                             hint='give only image files (PNG, JPEG, ...), or use --skip-bad')
        except DataFileError as exc:
            if not args.skip_bad:
                raise SystemExit(f'error: {exc}')
            tqdm.write(f'skipped: {exc}')
            bad.append(str(path))
            continue
        sample = inference_model(model, img)
        preds = {name: sample.get_pred(name) for name in model.tasks}
        name = path.stem if path.stem not in used else f'{path.parent.name}_{path.stem}'
        name = name if name not in used else f'{name}_{len(used)}'  # same name, other folder
        used.add(name)
        files = save_predictions(preds, model.tasks, out_dir / name)
        overview = out_dir / f'{name}_overview.png'
        write_png(overview, make_side_by_side(img, preds, model.tasks))
        files['overview'] = overview
        written[str(path)] = files
    print(f'{len(written)} image(s) written to {out_dir}'
          + (f'; {len(bad)} skipped (not images): {bad}' if bad else ''))
    return written


if __name__ == '__main__':
    main()
