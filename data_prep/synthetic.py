"""Generate procedural indoor scenes with S/D/N/E targets in Taskonomy's on-disk format.

Examples::

    python data_prep/synthetic.py                                  # data/synthetic, 35 scenes
    python data_prep/synthetic.py --num-scenes 8 --views-per-scene 4 --size 128
    python data_prep/synthetic.py --style alt --out data/synthetic_alt   # second domain

The run resumes: views whose five files exist are skipped, so an interrupted run can simply be
started again with the same arguments.
"""
import argparse
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

from mtl_adapters.data_generation.synthetic import (  # noqa: E402
    DEFAULT_SIZE, DEFAULT_SPLITS, STYLES, SYNTHETIC_CLASSES, generate)

#: default seed per style: a different seed keeps the 'alt' scenes disjoint from 'default' ones
DEFAULT_SEEDS = {'default': 0, 'alt': 1000, 'shifted': 2000}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except for flags and options whose default is computed (None)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Render synthetic indoor scenes (classes: ' + ', '.join(SYNTHETIC_CLASSES)
        + ') with semantic labels, z-depth, surface normals and texture edges, written in '
        'Taskonomy\'s layout (<out>/<folder>/<scene>/point_<P>_view_0_domain_<domain>.png) '
        'with splits.csv and meta.json. Resumable.',
        formatter_class=_HelpFormatter)
    parser.add_argument('--out', default='data/synthetic', help='output folder (data_root)')
    parser.add_argument('--num-scenes', type=int, default=35,
                        help='number of scenes (Taskonomy "buildings")')
    parser.add_argument('--views-per-scene', type=int, default=20,
                        help='camera poses per scene (Taskonomy "points")')
    parser.add_argument('--size', type=int, nargs='+', default=list(DEFAULT_SIZE),
                        metavar='N', help='image size: one int (square) or H W')
    parser.add_argument('--seed', type=int, default=None,
                        help=f'dataset seed (default: {DEFAULT_SEEDS} by style; the same seed '
                             'in both styles gives the same geometry, i.e. paired images)')
    parser.add_argument('--style', choices=STYLES, default='default',
                        help="appearance domain: 'alt' changes textures, palette and lighting")
    parser.add_argument('--splits', type=float, nargs=3, default=list(DEFAULT_SPLITS),
                        metavar=('TRAIN', 'VAL', 'TEST'),
                        help='fractions of scenes per split (whole numbers summing to '
                             '--num-scenes are taken as counts)')
    parser.add_argument('--workers', type=int, default=None,
                        help='worker processes (default: min(2, cpu count))')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    args = parser.parse_args(argv)
    if len(args.size) not in (1, 2):
        parser.error(f'--size takes one or two ints, got {args.size}')
    return args


def main(argv=None) -> dict:
    """Generate the dataset and print a summary."""
    args = parse_args(argv)
    seed = DEFAULT_SEEDS[args.style] if args.seed is None else args.seed
    splits = args.splits
    if all(float(s).is_integer() for s in splits) and sum(splits) == args.num_scenes:
        splits = [int(s) for s in splits]
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)
    summary = generate(args.out, num_scenes=args.num_scenes, views_per_scene=args.views_per_scene,
                       size=size, seed=seed, style=args.style, splits=splits,
                       workers=args.workers, progress=not args.no_progress)
    print(f"wrote {summary['rendered']} view(s), skipped {summary['skipped']} existing, "
          f"to {summary['out_dir']} ({summary['seconds']:.1f} s, "
          f"{summary['images_per_s']:.1f} views/s, {summary['workers']} worker(s))")
    print('scenes per split: ' + ', '.join(f'{k} {v}' for k, v in summary['splits'].items()))
    print(json.dumps({k: summary[k] for k in ('style', 'seed', 'size', 'num_scenes',
                                              'views_per_scene', 'num_views')}))
    return summary


if __name__ == '__main__':
    main()
