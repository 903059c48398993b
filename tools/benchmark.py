"""Benchmarks; each prints a table and writes JSON under work_dirs/benchmarks/.

    python tools/benchmark.py --render             # synthetic scene rendering, images/s
    python tools/benchmark.py --speed [args...]    # training images/s and memory, 1-4 tasks
    python tools/benchmark.py --speed --suite gpu  # ours vs the release's strategy, one GPU
    python tools/benchmark.py --troa [args...]     # TROA overhead on step time
    python tools/benchmark.py --weighting [args]   # every weighting method, S-D-N-E, and Δm
    python tools/benchmark.py --boundary [args]    # edge ODS/OIS/AP evaluation, images/s
    python tools/benchmark.py --infer [args]       # inference on photos, whole and slide
    python tools/benchmark.py --matrix [args]      # task combinations x methods x seeds table
    python tools/benchmark.py --generalisation     # DG, UDA, zero-shot vs their baselines
    python tools/benchmark.py --study [args]       # every paper claim: paired diffs, 95 % CIs

Arguments after the mode go to that benchmark (``--speed --help`` lists them).
"""
import argparse
import importlib
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

MODES = {'render': 'mtl_adapters.benchmarks.render_speed',
         'infer': 'mtl_adapters.benchmarks.inference_speed',
         'speed': 'mtl_adapters.benchmarks.train_speed',
         'troa': 'mtl_adapters.benchmarks.troa_overhead',
         'weighting': 'mtl_adapters.benchmarks.weighting_comparison',
         'boundary': 'mtl_adapters.benchmarks.boundary_speed',
         'matrix': 'mtl_adapters.benchmarks.matrix',
         'generalisation': 'mtl_adapters.benchmarks.generalisation',
         'study': 'mtl_adapters.benchmarks.study'}
#: ``--speed --suite <name>``: the speed suite instead of the single-model benchmark
SPEED_SUITE = 'mtl_adapters.benchmarks.speed_suite'


def main(argv=None):
    # no -h of its own: after a mode, --help reaches that benchmark's parser
    parser = argparse.ArgumentParser(description=__doc__, add_help=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    for mode, module in MODES.items():
        group.add_argument(f'--{mode}', action='store_const', dest='mode', const=mode,
                           help=f'run {module}')
    args, rest = parser.parse_known_args(argv)
    if args.mode is None:
        parser.print_help()
        parser.exit(0 if {'-h', '--help'} & set(rest) else 2)  # a mode is required
    if not {'-h', '--help'} & set(rest):     # the mode's --help needs no registry
        from mtl_adapters.set_env import register_all_modules
        register_all_modules()
    module = MODES[args.mode]
    if args.mode == 'speed' and any(a == '--suite' or a.startswith('--suite=') for a in rest):
        module = SPEED_SUITE                 # the side-by-side suite (one JSON, one table)
    return importlib.import_module(module).main(rest)


if __name__ == '__main__':
    main()
