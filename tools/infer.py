"""Predict every task of a model for images of any size; write per-task files and a picture.

    python tools/infer.py CONFIG CHECKPOINT IMAGES_OR_FOLDERS... --out-dir DIR
        [--batch-size 8] [--mode slide] [--save-raw] [--device cuda:0] [--skip-bad]

Images are predicted at the scale the model was tested at: the config's test pipeline resizes
them (keeping their aspect ratio), and every prediction is resized back to the input's size
(depth stays in metres). ``--mode slide`` predicts overlapping windows of
``model.test_cfg.crop_size`` every ``stride`` (default: the training crop, 2/3 of it; a
stride larger than the window is refused), blended seamlessly, for images much larger than the
training scale. A non-finite raw output (a broken checkpoint) stops with an error naming the
task and the image; nothing is written for it.

For each image ``<name>``: ``<name>_<task>...png`` per task (labels: palette PNG; depth:
16-bit PNG in millimetres, ``_depth_mm.png``; normals: RGB; edges: 16-bit),
``<name>_overview.png`` (input | each task's coloured prediction) and, with ``--save-raw``,
``<name>_<task>.npy`` float32 arrays (C, H, W) in the task's units (labels: class
probabilities).
"""
import argparse
import io
import os.path as osp
import sys
import time
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

# Only what parsing needs at module level (no torch): `--help` answers in about a second;
# the model code loads in the functions that use it.
from mmengine.config import DictAction  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mtl_adapters.utils.io import DataFileError, atomic_write_bytes, read_image  # noqa: E402
from mtl_adapters.utils.io import write_png  # noqa: E402


def parse_args(argv=None):
    """Command line of the inference tool."""
    parser = argparse.ArgumentParser(
        description='Multi-task inference on images of any size, at the scale of the config\'s '
                    'test pipeline.',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('images', nargs='+', help='image files and/or folders of images')
    parser.add_argument('--out-dir', required=True, help='where the outputs go')
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cuda:0')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per forward (consecutive images of equal size)')
    parser.add_argument('--mode', choices=('whole', 'slide'), default=None,
                        help="whole image or sliding window (default: the config's "
                             "model.test_cfg, else whole)")
    parser.add_argument('--crop-size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='slide window (default: test_cfg.crop_size, else crop_size)')
    parser.add_argument('--stride', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='slide stride (default: test_cfg.stride, else 2/3 of the window)')
    parser.add_argument('--save-raw', action='store_true',
                        help='also write float32 .npy arrays per task')
    parser.add_argument('--skip-bad', action='store_true',
                        help='report files that are not images and go on (default: stop)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load the checkpoint with a full pickle load (runs any code inside '
                        'it: only for files you wrote or trust); default: weights only')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    return args


def set_test_mode(model, args) -> None:
    """Apply --mode/--crop-size/--stride to ``model.test_cfg`` (defaults from the config)."""
    cfg = dict(model.test_cfg)
    if args.mode is not None:
        cfg['mode'] = args.mode
    if cfg.get('mode') == 'slide':
        crop = args.crop_size or cfg.get('crop_size') or model.cfg.get('crop_size')
        if crop is None:
            raise SystemExit('error: --mode slide needs a window: --crop-size H W (or '
                             'model.test_cfg.crop_size / crop_size in the config)')
        crop = tuple(int(c) for c in crop)
        stride = args.stride or cfg.get('stride') or tuple(max(1, 2 * c // 3) for c in crop)
        cfg.update(crop_size=crop, stride=tuple(int(v) for v in stride))
    model.test_cfg = cfg
    try:
        model.check_test_cfg()
    except ValueError as exc:          # e.g. a stride larger than the window
        raise SystemExit(f'error: {exc} (set by --mode / --crop-size / --stride or the '
                         "config's model.test_cfg)") from exc


def save_outputs(sample, img, model, out_dir: Path, name: str, save_raw: bool) -> dict:
    """Per-task files, the overview picture and (``save_raw``) the float arrays of one image."""
    import numpy as np
    import torch

    from mtl_adapters.visualization import make_side_by_side, save_predictions
    preds = {task: sample.get_pred(task) for task in model.tasks}
    files = save_predictions(preds, model.tasks, out_dir / name)
    overview = out_dir / f'{name}_overview.png'
    write_png(overview, make_side_by_side(img, preds, model.tasks))
    files['overview'] = overview
    if save_raw:
        for task_name, task in model.tasks.items():
            if task.out_channels > 1 and getattr(task, 'likelihood', '') == 'classification':
                value = torch.softmax(sample.get_logits(task_name).float(), dim=0)
            else:
                value = preds[task_name].float()
            path = out_dir / f'{name}_{task_name}.npy'
            buf = io.BytesIO()
            np.save(buf, value.cpu().numpy().astype(np.float32))
            atomic_write_bytes(path, buf.getvalue())
            files[f'{task_name}_raw'] = path
    return files


def main(argv=None):
    """Run inference on every input; returns ``{image path: {task: output path}}``."""
    args = parse_args(argv)
    from mtl_adapters.apis import inference_model, init_model, list_images
    from mtl_adapters.utils import trust_checkpoint
    paths = list_images(args.images)
    if not paths:
        raise SystemExit(f'no images found in {args.images}')
    if args.trust_checkpoint:
        trust_checkpoint(args.checkpoint)
    model = init_model(args.config, args.checkpoint, args.device, args.cfg_options)
    set_test_mode(model, args)
    out_dir = Path(args.out_dir)
    written, bad, used = {}, [], set()
    pending = []                                   # (path, image) waiting for a full batch

    def run_batch():
        try:
            samples = inference_model(model, [img for _, img in pending],
                                      batch_size=args.batch_size, keep_logits=args.save_raw)
        except FloatingPointError as exc:          # the images were given as arrays: name them
            raise FloatingPointError(f'{exc} Images of this batch: '
                                     f'{[str(path) for path, _ in pending]}') from exc
        for (path, img), sample in zip(pending, samples):
            name = path.stem if path.stem not in used else f'{path.parent.name}_{path.stem}'
            name = name if name not in used else f'{name}_{len(used)}'  # same name elsewhere
            used.add(name)
            written[str(path)] = save_outputs(sample, img, model, out_dir, name, args.save_raw)
        bar.update(len(pending))
        pending.clear()

    start = time.perf_counter()
    with tqdm(total=len(paths), desc='inference', unit='img') as bar:
        for path in paths:
            try:
                img = read_image(path, unchanged=False,
                                 hint='give only image files (PNG, JPEG, ...), or use --skip-bad')
            except DataFileError as exc:
                if not args.skip_bad:
                    raise SystemExit(f'error: {exc}')
                tqdm.write(f'skipped: {exc}')
                bad.append(str(path))
                bar.update(1)
                continue
            pending.append((path, img))
            if len(pending) >= args.batch_size:
                run_batch()
        if pending:
            run_batch()
    seconds = time.perf_counter() - start
    print(f'{len(written)} image(s) written to {out_dir} ({len(written) / max(seconds, 1e-9):.2f} '
          f'img/s, mode {model.test_cfg.get("mode", "whole")}, batch {args.batch_size})'
          + (f'; {len(bad)} skipped (not images): {bad}' if bad else ''))
    return written


if __name__ == '__main__':
    main()
