"""Prepare NYUDv2 (the 1,449 labelled frames) for ``NYUDv2Dataset``: one PNG per task and frame.

Example::

    python data_prep/nyudv2.py --src data/downloads/nyudv2 --out data/nyudv2 --workers 8

Interrupted runs resume (finished frames are skipped); ``--check`` validates without writing.
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

from mtl_adapters.data_generation.nyudv2 import (MAPPING_NAME, MAT_NAME,  # noqa: E402
                                                 SOURCES, SPLITS_NAME, NYUDv2Preparation)
from mtl_adapters.data_generation.prepare import add_common_args, run_from_args  # noqa: E402

EPILOG = f"""\
input (--src holds the three files under these names, or give each with its own option):
  {MAT_NAME}   MATLAB 7.3 (HDF5): images, depths (in-painted, metres),
                              labels (894 classes), ...
      from {SOURCES[MAT_NAME]}
  {SPLITS_NAME}                  trainNdxs (795) / testNdxs (654), 1-based frame indices
      from {SOURCES[SPLITS_NAME]}
  {MAPPING_NAME}          mapClass: the 894 classes -> the 40 classes of Gupta et al.
      from {SOURCES[MAPPING_NAME]}
  --normals-dir DIR (optional)  DIR/0001.png .. DIR/1449.png: surface normals as 8-bit RGB,
      n = rgb / 255 * 2 - 1 in the OpenCV camera frame (x right, y down, z forward; facing the
      camera, n_z < 0), 128 grey = no normal, the frame's aspect ratio. Published NYUDv2
      normal sets (e.g. Silberman's normals_gt.tgz, Ladicky's nyu_normals_gt.zip, NYUD-MT's
      normals/*.npy) use other encodings and axis conventions: convert them to this one first.
      Without --normals-dir the normals are derived from the depth with the NYU Kinect RGB
      intrinsics (fx 518.858, fy 519.470, cx 325.582, cy 253.736 at 640x480) and left blank
      outside the Eigen crop (rows 45:471, cols 41:601). Changing the normals' source later:
      delete OUT/normal/ first (finished frames are skipped).

output (OUT, the data_root of configs/_base_/datasets/nyudv2_*.py), frames named by their
1-based index in the .mat:
  rgb/0001.png      8-bit RGB 480x640          label40/0001.png  8-bit NYU40 ids, 0 = unlabelled
  depth/0001.png    16-bit millimetres, 0 = none
  normal/0001.png   8-bit RGB normals (encoding above)
  edge/0001.png     16-bit texture edges / 65535 (Taskonomy's edge_texture recipe)
  splits/train.txt, splits/test.txt   the frame ids of each split
"""


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Extract the labelled NYUDv2 frames (nyu_depth_v2_labeled.mat) into one '
        'PNG per task and frame: RGB, NYU40 semantic labels, depth, surface normals and '
        'texture edges, plus the official train/test split. Resumable; --workers N in '
        'parallel; --check validates inputs and outputs without writing.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--src', default='data/downloads/nyudv2',
                        help='folder holding the three input files (default: %(default)s)')
    parser.add_argument('--mat', help=f'{MAT_NAME} (default: SRC/{MAT_NAME})')
    parser.add_argument('--splits', help=f'{SPLITS_NAME} (default: SRC/{SPLITS_NAME})')
    parser.add_argument('--class-mapping', help=f'{MAPPING_NAME} (default: SRC/{MAPPING_NAME})')
    parser.add_argument('--normals-dir', help='optional folder of normals <id>.png (see below)')
    parser.add_argument('--out', default='data/nyudv2',
                        help='output folder, the data_root (default: %(default)s)')
    add_common_args(parser)
    return parser.parse_args(argv)


def build_preparation(args: argparse.Namespace) -> NYUDv2Preparation:
    """The preparation described by the arguments."""
    src = Path(args.src)
    return NYUDv2Preparation(mat_file=args.mat or src / MAT_NAME,
                             splits_file=args.splits or src / SPLITS_NAME,
                             class_mapping_file=args.class_mapping or src / MAPPING_NAME,
                             out_dir=args.out, normals_dir=args.normals_dir)


def main(argv=None) -> int:
    """Run the preparation; the exit code is 1 if any frame failed."""
    args = parse_args(argv)
    try:
        prep = build_preparation(args)
        return run_from_args(prep, args)
    except (FileNotFoundError, RuntimeError) as err:      # DataFileError is a RuntimeError
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
