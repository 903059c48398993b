"""Prepare Virtual KITTI 2 (S, D, N, E) for VKITTI2Dataset; run with --help for the details."""
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
from mtl_adapters.data_generation.vkitti2 import (  # noqa: E402
    ARCHIVES, DOWNLOAD_BASE, OFFICIAL_PAGE, VKITTI2Preparation)
from mtl_adapters.datasets.vkitti2 import CAMERAS, SCENES, SPLITS, VARIATIONS  # noqa: E402

DESCRIPTION = """\
Prepare Virtual KITTI 2 (version 2.0.3) for training: semantic ids, depth, surface normals
(from depth and intrinsic.txt) and texture edges (from RGB), in the layout VKITTI2Dataset
reads. Resumable (finished frames are skipped), atomic, --check validates only.
"""

EPILOG = f"""\
input (--src): download these archives from the official page
  {OFFICIAL_PAGE}
  (terms of use there; direct links: {DOWNLOAD_BASE}<archive>)
{chr(10).join('    ' + name for name in ARCHIVES.values())}
and extract them all into one folder (tar xf <archive> -C SRC), giving
  SRC/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg                8-bit JPEG
  SRC/Scene01/clone/frames/depth/Camera_0/depth_00000.png            uint16 cm, 65535 = sky
  SRC/Scene01/clone/frames/classSegmentation/Camera_0/classgt_00000.png   RGB colour-coded
  SRC/Scene01/clone/colors.txt  intrinsic.txt                        (from textgt)
(each archive in its own SRC/vkitti_2.0.3_<type>/ folder works too).
  scenes:     {', '.join(SCENES)}
  variations: {', '.join(VARIATIONS[:6])},
              {', '.join(VARIATIONS[6:])}
  cameras:    {', '.join(CAMERAS)}

output (--out, the config's data_root):
  OUT/meta.json
  OUT/SceneXX/<variation>/colors.txt, intrinsic.txt     (K at the working resolution)
  OUT/SceneXX/<variation>/frames/{{rgb,depth,classid,normal,edge}}/Camera_<c>/<kind>_<fffff>.*
rgb: the original JPEG (native size) or a PNG; depth: uint16 cm, 65535 = none; classid: uint8
category index (meta.json), 255 = unknown colour; normal: uint8 RGB, n = rgb/255*2-1 (OpenCV
camera frame), grey = none; edge: uint16 / 65535. The class protocol (8 classes shared with
Cityscapes, or Cityscapes' 19 train ids) is chosen at load time (VKITTI2Dataset class_map).
Splits are by scene: train {', '.join(SPLITS['train'])}; val {', '.join(SPLITS['val'])}; \
test {', '.join(SPLITS['test'])}.

disk: at native size the original JPEG and depth PNG are copied (together about 0.4 MB a
frame in the archives) and three PNGs are added per frame; prepare a subset (--scenes,
--variations) or a smaller working size (--height) to use less.

example:
  python data_prep/vkitti2.py --src /data/vkitti2_archives --out data/vkitti2
  python tools/train.py configs/vtagml/vtagml_swinv2-base_1xb8-40k_vkitti2-256x512_sdne.py
"""


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--src', required=True,
                        help='folder where the official archives were extracted')
    parser.add_argument('--out', default='data/vkitti2',
                        help='prepared folder (data_root of the configs; default: %(default)s)')
    parser.add_argument('--height', type=int, default=None,
                        help='working height in pixels (width keeps the aspect ratio); '
                             'default: native 375. Use a new --out for another height')
    parser.add_argument('--scenes', nargs='+', default=None, metavar='SCENE',
                        help='only these scenes (default: all found)')
    parser.add_argument('--variations', nargs='+', default=None, metavar='VARIATION',
                        help='only these variations (default: all found)')
    parser.add_argument('--cameras', nargs='+', default=['Camera_0'], choices=CAMERAS,
                        help='cameras (default: %(default)s, the left one)')
    parser.add_argument('--allow-unknown-colors', action='store_true',
                        help='mark class colours that colors.txt does not list as unlabelled '
                             '(255) instead of failing the frame')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Prepare, print the summary; the exit code is 1 if any frame failed."""
    args = parse_args(argv)
    try:
        prep = VKITTI2Preparation(args.src, args.out, height=args.height, scenes=args.scenes,
                                  variations=args.variations, cameras=args.cameras,
                                  allow_unknown_colors=args.allow_unknown_colors)
        return run_from_args(prep, args)
    except (FileNotFoundError, ValueError) as err:   # the inputs as a whole, not one frame
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
