"""Prepare Cityscapes for S-D-N-E training: working-resolution images, surface normals, edges.

Example::

    python data_prep/cityscapes.py --src data/cityscapes                # 512x1024, train+val
    python data_prep/cityscapes.py --src data/cityscapes --check        # validate, write nothing

Interrupted runs resume: run the same command again.
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

from mtl_adapters.data_generation.cityscapes import CityscapesPreparation  # noqa: E402
from mtl_adapters.data_generation.prepare import add_common_args, run_from_args  # noqa: E402
from mtl_adapters.datasets.cityscapes import DEFAULT_WORK_SIZE, SPLITS  # noqa: E402

DESCRIPTION = """\
Prepare Cityscapes for multi-task training (S, D, N, E).

Input: the official archives, downloaded (free registration) from
https://www.cityscapes-dataset.com/downloads/ (or with `pip install cityscapesscripts` and
`csDownload <package>`), all unpacked into one folder, --src:

  leftImg8bit_trainvaltest.zip -> leftImg8bit/{split}/<city>/<stem>_leftImg8bit.png (8-bit RGB)
  gtFine_trainvaltest.zip      -> gtFine/{split}/<city>/<stem>_gtFine_labelIds.png (and others)
  disparity_trainvaltest.zip   -> disparity/{split}/<city>/<stem>_disparity.png (16-bit)
  camera_trainvaltest.zip      -> camera/{split}/<city>/<stem>_camera.json

where {split} is train, val or test and <stem> is <city>_<seq>_<frame>, e.g.
leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png.

Output, at the working resolution H x W (--size), under --out (default: --src):

  leftImg8bit_<H>x<W>/{split}/<city>/<stem>_leftImg8bit.png  the image, resized (INTER_AREA)
  normal_<H>x<W>/{split}/<city>/<stem>_normal.png            16-bit RGB surface normals from
                                                             the stereo depth
  edgeTexture_<H>x<W>/{split}/<city>/<stem>_edgeTexture.png  16-bit texture edges

Semantic labels (19 classes from gtFine labelIds) and depth (metres, from disparity and the
camera file) are decoded from the official files when the dataset is loaded, so they are not
written here. The encodings are documented in mtl_adapters/datasets/cityscapes.py. Train with
configs/vtagml/vtagml_swinv2-base_1xb8-40k_cityscapes-256x512_sdne.py (data_root =
data/cityscapes, work_size = (512, 1024)).

The run is resumable (finished samples are skipped, files are written atomically); a missing
or corrupt input fails that sample only, is named in the summary, and the exit code is 1.
"""


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--src', default='data/cityscapes',
                        help='folder holding leftImg8bit/, gtFine/, disparity/, camera/ '
                             '(default: %(default)s)')
    parser.add_argument('--out', default=None,
                        help='folder for the prepared files (default: --src); give the same '
                             'folder to the dataset as prepared_root')
    parser.add_argument('--size', type=int, nargs=2, default=list(DEFAULT_WORK_SIZE),
                        metavar=('H', 'W'),
                        help='working resolution, 2:1 like the images (default: %(default)s)')
    parser.add_argument('--splits', nargs='+', choices=SPLITS, default=['train', 'val'],
                        help='splits to prepare (default: %(default)s; test has no public '
                             'semantic labels)')
    parser.add_argument('--cities', nargs='+', default=None,
                        help='only these cities (default: all)')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Prepare, print the summary, return the exit code."""
    args = parse_args(argv)
    prep = CityscapesPreparation(args.src, out=args.out, size=args.size, splits=args.splits,
                                 cities=args.cities)
    print(prep.describe())
    return run_from_args(prep, args)


if __name__ == '__main__':
    sys.exit(main())
