"""Prepare SYNTHIA-RAND-CITYSCAPES for S-D-N-E training: derive normals and texture edges.

Examples::

    python data_prep/synthia.py --src data/synthia                # writes data/synthia/derived
    python data_prep/synthia.py --src data/synthia --check        # validate, write nothing
    python data_prep/synthia.py --src data/synthia --size 380 640 --out data/synthia/derived_640

Interrupted runs resume (finished frames are skipped); a corrupt or missing input file fails
its frame only, is named in the summary, and makes the exit code 1.
"""
import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

from mtl_adapters.data_generation.prepare import add_common_args, run_from_args  # noqa: E402
from mtl_adapters.data_generation.synthia import (DEFAULT_SIZE,  # noqa: E402
                                                  SynthiaPreparation, fix_backslash_names)
from mtl_adapters.datasets.synthia import SYNTHIA_INTRINSICS  # noqa: E402

DESCRIPTION = """\
Derive the targets SYNTHIA-RAND-CITYSCAPES lacks (surface normals from its depth with the SYNTHIA
camera, texture edges from its RGB) at the working resolution (default: the native 1280x760,
what the configs use). Labels and depth are read from the archive itself at training time.

Input: the archive SYNTHIA_RAND_CITYSCAPES.rar, "SYNTHIA-RAND-CITYSCAPES (CVPR16)" on
http://synthia-dataset.net/downloads/ (direct link used by many projects:
http://synthia-dataset.cvc.uab.cat/SYNTHIA_RAND_CITYSCAPES.rar), extracted with
`unrar x SYNTHIA_RAND_CITYSCAPES.rar`. It unpacks to RAND_CITYSCAPES/; --src may be that
folder or its parent:

  RAND_CITYSCAPES/RGB/0000000.png .. 0009399.png   8-bit RGB, 1280x760
  RAND_CITYSCAPES/GT/LABELS/<id>.png               16-bit 3-channel, class id in R
  RAND_CITYSCAPES/GT/COLOR/<id>.png                (not used)
  RAND_CITYSCAPES/Depth/Depth/<id>.png             16-bit, depth in centimetres

If your unrar wrote flat files named like 'RGB\\0000000.png', add --fix-backslash-names once.

Output (--out, default <src>/derived; the dataset's derived_dir):

  <out>/normal/<id>.png   16-bit RGB normals, value = round((n + 1) / 2 * 65535), 0 = none
  <out>/edge/<id>.png     16-bit texture edges, value / 65535
  <out>/meta.json         working size, intrinsics, encodings

Then train: python tools/train.py configs/vtagml/vtagml_swinv2-base_1xb8-40k_synthia-256x512_sdne.py
(data_root = data/synthia by default; with another --src or --out add
--cfg-options data_root=<root> derived_dir=<out, absolute or relative to root>)."""


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--src', default='data/synthia',
                        help='the extracted archive (RAND_CITYSCAPES/ or its parent); '
                             'default: %(default)s')
    parser.add_argument('--out', default=None,
                        help='output folder (default: <src>/derived)')
    parser.add_argument('--size', type=int, nargs=2, default=list(DEFAULT_SIZE),
                        metavar=('H', 'W'),
                        help='working resolution of the derived targets, the aspect ratio of '
                             '1280x760; default: %(default)s')
    parser.add_argument('--intrinsics', type=float, nargs=3, default=list(SYNTHIA_INTRINSICS),
                        metavar=('F', 'CX', 'CY'),
                        help='camera focal length and principal point in pixels at 1280x760; '
                             'default: %(default)s (SYNTHIA CameraParams/intrinsics.txt)')
    parser.add_argument('--fix-backslash-names', action='store_true',
                        help="first move flat files named 'a\\b\\c.png' in --src (and in "
                             '--src/RAND_CITYSCAPES) into folders')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Prepare and print the summary; returns the exit code."""
    args = parse_args(argv)
    if args.fix_backslash_names:
        root = Path(args.src)
        moved = sum(fix_backslash_names(folder) for folder in (root, root / 'RAND_CITYSCAPES')
                    if folder.is_dir())
        print(f'moved {moved} file(s) with backslash names into folders')
    prep = SynthiaPreparation(args.src, args.out, size=args.size, intrinsics=args.intrinsics)
    try:
        return run_from_args(prep, args)
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
