"""Check a Taskonomy copy and write the index files its configs train from.

Examples::

    python data_prep/taskonomy.py --src data/taskonomy            # tiny split, all checks
    python data_prep/taskonomy.py --src data/taskonomy --check    # validate, write nothing
    python data_prep/taskonomy.py --src /data/omnidata --quick \\
        --split-file splits/train_val_test_medium.csv --workers 16

The run resumes: buildings already checked (``<out>/buildings/<building>.json``) are skipped,
so an interrupted run can simply be started again with the same arguments.
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
from mtl_adapters.data_generation.taskonomy import (  # noqa: E402
    DEFAULT_FOLDERS, KNOWN_BAD_BUILDINGS, TaskonomyIndex)

EPILOG = f"""\
Where to get the data (Taskonomy: Zamir et al., CVPR 2018; terms of use on the site):
  https://github.com/StanfordVL/taskonomy/tree/master/data (dataset page) says to download it
  with the Omnidata tool (https://docs.omnidata.vision/starter_dataset_download.html):
    pip install omnidata-tools   # and aria2 (apt-get install aria2)
    omnitools.download rgb segment_semantic depth_zbuffer normal edge_texture \\
        --components taskonomy --subset tiny --dest data/taskonomy \\
        --name YOUR_NAME --email YOUR_EMAIL --agree_all
  It fetches one archive per building and domain, https://datasets.epfl.ch/taskonomy/
  <building>_<domain>.tar (e.g. allensville_depth_zbuffer.tar), and unpacks it to
  <dest>/<domain>/taskonomy/<building>/ ('omnidata' layout). Archives unpacked by hand as
  <src>/<domain>/<building>/ are the 'taskonomy' layout; both are detected.
  Split files (train_val_test_tiny.csv, _medium, _full, _fullplus; CR line endings):
  https://github.com/StanfordVL/taskonomy/raw/master/data/assets/splits_taskonomy.zip
  Unzip them to <src>/splits/ (the default --split-file) or pass their path.

Expected input (per view: point <P>, view <V>):
  <src>/rgb[/taskonomy]/<building>/point_<P>_view_<V>_domain_rgb.png    8-bit RGB, 512 px
  <src>/segment_semantic[/taskonomy]/<building>/..._domain_segmentsemantic.png
        uint8, 0 uncertain, 1 background, 2..17 the 16 COCO classes (note the domain tag)
  <src>/depth_zbuffer[/taskonomy]/<building>/..._domain_depth_zbuffer.png
        uint16, 1/512 m, 65535 = no depth
  <src>/normal[/taskonomy]/<building>/..._domain_normal.png      8-bit RGB
  <src>/edge_texture[/taskonomy]/<building>/..._domain_edge_texture.png   uint16

Output (--out, default <src>/index):
  buildings/<building>.json        the building's checked views (and dropped ones, with why)
  index_<subset>_<split>.json      per split file and split, e.g. index_tiny_train.json: the
                                   views TaskonomyDataset(index_file=...) loads, no scan.
                                   Written only when no building failed.
Known-bad buildings left out by default: {' '.join(KNOWN_BAD_BUILDINGS)}
(the Omnidata loader's list; see mtl_adapters/data_generation/taskonomy.py).
Train: python tools/train.py configs/vtagml/vtagml_swinv2-base_1xb8-40k_taskonomy-256x256_sdne.py \\
    --cfg-options data_root=<src> model.encoder.pretrained=<weights>
Exit code 1 if any building failed (each failure is listed with its file).
"""


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Validate a Taskonomy copy (every RGB view of the split\'s buildings has '
        'its semantic, depth, normal and edge files, readable, of the right dtype and channel '
        'count and aspect ratio) and write per-split index files for TaskonomyDataset. '
        'Resumable; --check validates only.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--src', default='data/taskonomy',
                        help='folder holding rgb/ and the task folders (default: %(default)s)')
    parser.add_argument('--split-file', nargs='+', default=['splits/train_val_test_tiny.csv'],
                        help='official split CSV(s); relative paths: from the current folder, '
                             'else under --src (default: %(default)s)')
    parser.add_argument('--out', default=None,
                        help='index folder (default: <src>/index)')
    parser.add_argument('--layout', choices=('auto', 'taskonomy', 'omnidata'), default='auto',
                        help="'omnidata': <folder>/taskonomy/<building>/; 'taskonomy': "
                             "<folder>/<building>/ (default: detected)")
    parser.add_argument('--folders', nargs='+', default=list(DEFAULT_FOLDERS),
                        choices=DEFAULT_FOLDERS, metavar='FOLDER',
                        help='task folders to check and index (default: all of '
                             f'{" ".join(DEFAULT_FOLDERS)})')
    parser.add_argument('--exclude-buildings', nargs='*', default=list(KNOWN_BAD_BUILDINGS),
                        metavar='BUILDING',
                        help='buildings left out of the index; give the option with no name '
                             'to exclude none (default: the known-bad list below)')
    parser.add_argument('--quick', action='store_true',
                        help='check PNG headers only (size, bit depth, channels), not pixels')
    parser.add_argument('--drop-bad-views', action='store_true',
                        help='leave views with a bad or missing file out of the index (listed '
                             'in buildings/<building>.json) instead of failing the building')
    add_common_args(parser)
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> TaskonomyIndex:
    """The preparation the arguments describe."""
    return TaskonomyIndex(args.src, split_files=args.split_file, out_dir=args.out,
                          layout=args.layout, folders=args.folders,
                          exclude_buildings=args.exclude_buildings,
                          checks='quick' if args.quick else 'decode',
                          drop_bad_views=args.drop_bad_views)


def main(argv=None) -> int:
    """Run; the exit code is 1 if any building failed."""
    args = parse_args(argv)
    return run_from_args(build(args), args)


if __name__ == '__main__':
    sys.exit(main())
