"""The speed suite: our adapter model against the authors' release's strategy, side by side in
one process, in one command; writes one JSON and one markdown table.

    python tools/benchmark.py --speed --suite gpu     # one GPU, about 5-8 minutes on an H100
    python tools/benchmark.py --speed --suite cpu     # the same rows, small size (128^2), CPU
    python tools/benchmark.py --speed --suite cpu-release   # release size on CPU, 4 tasks only
    python tools/benchmark.py --speed --suite toy     # seconds: the test's size

Sections (``--sections``, default all):

* ``train``: S-D-N-E prefixes (``--tasks``, default 1 2 4) at the release's size (Swin-S
  layout, window 7, 224^2; ``gpu``: batch 32, bf16): ours with light and full decoders, each
  with timm's explicit attention and with fused attention (``sdpa``), against the release's
  strategy (``release_strategy``: whole encoder per task, its adapters and decoders), the
  steps of all five interleaved; training images/s (median step), best step, peak memory
  (what the model holds + the step's peak), trainable parameters;
* ``infer``: inference images/s (whole image, every task, no_grad) of the same models;
* ``paper``: the paper's setting, Swin-V2-B at 256^2, S-D-N-E, light decoders (both attention
  implementations): training and inference;
* ``compile``: regional ``torch.compile`` of our repeated block classes
  (``speed_runners.compile_regions``) at ``--compile-tasks`` tasks, each compiled model beside
  its eager twin; the compile warm-up (the first compiled steps, tracing and code generation)
  is reported separately from the steady step time.

Every row carries its ratio to the release (images/s and memory) or, compiled, to its eager
twin. A row that fails (e.g. out of memory) is kept with its error, the suite goes on, and the
command exits with status 1 after writing. The JSON and table are rewritten after every section
(atomically), so a run stopped early keeps what it measured.
"""
import argparse
import gc
import json
import os
import platform
import subprocess
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

import torch

from mtl_adapters.utils.io import atomic_write_bytes

from . import speed_runners as sr
from .release_strategy import RELEASE_SIZE

_NARROW = dict(embed_dim=32, num_heads=(1, 2, 4, 8))
_TOY = dict(embed_dim=16, num_heads=(1, 2, 2, 4), depths=(1, 1, 4, 1))
#: the sizes: ours (timm name, window, overrides), the release's, and the paper setting
SIZES = {
    'release': dict(ours=dict(model_name='swinv2_small_window8_256', window=7), img=224,
                    release=dict(RELEASE_SIZE),
                    paper=dict(model_name='swinv2_base_window8_256', window=8), paper_img=256),
    'narrow': dict(ours=dict(model_name='swinv2_small_window8_256', window=7,
                             model_kwargs=_NARROW, embed_dim=32, head_channels=16), img=224,
                   release=dict(RELEASE_SIZE, **_NARROW),
                   paper=dict(model_name='swinv2_base_window8_256', window=8,
                              model_kwargs=_NARROW, embed_dim=32, head_channels=16),
                   paper_img=256),
    # the CPU suite's: Swin-T layout, embed 32, window 4 at 128^2 (conditioned: the last third
    # of stage 2, as 12-17 of 18 in the release); paper rows: the Swin-B layout at that width
    'small': dict(ours=dict(model_name='swinv2_tiny_window8_256', window=4,
                            model_kwargs=_NARROW, embed_dim=32, head_channels=16), img=128,
                  release=dict(_NARROW, depths=(2, 2, 6, 2), window_size=4, img_size=128,
                               conditioned={2: (4, 5)}),
                  paper=dict(model_name='swinv2_base_window8_256', window=4,
                             model_kwargs=_NARROW, embed_dim=32, head_channels=16),
                  paper_img=128),
    'toy': dict(ours=dict(model_name='swinv2_tiny_window8_256', window=4, model_kwargs=_TOY,
                          embed_dim=16, head_channels=8), img=64,
                release=dict(_TOY, window_size=4, img_size=64, conditioned={2: (2, 3)}),
                paper=dict(model_name='swinv2_tiny_window8_256', window=4, model_kwargs=_TOY,
                           embed_dim=16, head_channels=8), paper_img=64),
}
SECTIONS = ('train', 'infer', 'paper', 'compile')
#: the suites: a size, the device settings, and how many steps
SUITES = {
    'gpu': dict(size='release', device='cuda', amp='bf16', batch=32, tasks=(1, 2, 4),
                warmup=3, iters=10, compile_tasks=4),
    'cpu': dict(size='small', device='cpu', amp='none', batch=2, tasks=(1, 2, 4),
                warmup=0, iters=3, compile_tasks=4),
    'cpu-release': dict(size='release', device='cpu', amp='none', batch=2, tasks=(4,),
                        warmup=0, iters=1, compile_tasks=4, sections=('train',),
                        attn=('explicit',), memory_step=False),
    'toy': dict(size='toy', device='cpu', amp='none', batch=2, tasks=(1, 2, 4),
                warmup=0, iters=2, compile_tasks=2),
}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; unset ones come from the suite."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--suite', choices=list(SUITES), required=True)
    p.add_argument('--size', choices=list(SIZES), default=None,
                   help="model size (default the suite's): 'release' Swin-S 224^2, 'narrow' "
                        "its layout at embed 32, 'small' Swin-T layout embed 32 at 128^2")
    p.add_argument('--sections', nargs='+', choices=SECTIONS, default=None)
    p.add_argument('--tasks', type=int, nargs='+', default=None, help='task counts (1-4)')
    p.add_argument('--attn', nargs='+', choices=['explicit', 'sdpa'], default=None,
                   help='attention implementations of our rows (default both)')
    p.add_argument('--batch-size', type=int, default=None)
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed rounds after the build, which runs one untimed step already')
    p.add_argument('--iters', type=int, default=None, help='timed steps per model')
    p.add_argument('--no-memory-step', dest='memory_step', action='store_false',
                   default=None, help='skip the extra step per model that measures memory')
    p.add_argument('--device', default=None)
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--compile-tasks', type=int, default=None)
    p.add_argument('--compile-attn', nargs='+', choices=['explicit', 'sdpa'], default=['sdpa'])
    p.add_argument('--compile-backend', default='inductor',
                   help="torch.compile backend ('eager': dynamo only, for a quick check)")
    p.add_argument('--compile-mode', default=None, help='torch.compile mode')
    p.add_argument('--out', default=None,
                   help='JSON path (default work_dirs/benchmarks/speed_<suite>.json); the '
                        'table is written next to it as .md')
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    defaults = dict(size=suite['size'], sections=suite.get('sections', SECTIONS),
                    tasks=suite['tasks'], attn=suite.get('attn', ('explicit', 'sdpa')),
                    batch_size=suite['batch'],
                    warmup=suite['warmup'], iters=suite['iters'], device=suite['device'],
                    compile_tasks=suite['compile_tasks'],
                    memory_step=suite.get('memory_step', True))
    for key, default in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    args.tasks, args.sections, args.attn = list(args.tasks), list(args.sections), list(args.attn)
    bad = [t for t in args.tasks + [args.compile_tasks] if not 1 <= t <= 4]
    if bad:
        p.error(f'task counts must be 1-4 (prefixes of S-D-N-E), got {bad}')
    if args.iters < 1:
        p.error('--iters must be at least 1')
    args.out = Path(args.out or f'work_dirs/benchmarks/speed_{args.suite}.json')
    return args


def _label(system: str, light: Optional[bool], attn: str, compiled: bool = False) -> str:
    if system == 'release':
        return 'release'
    return f'ours-{"light" if light else "full"}-{attn}' + ('-compiled' if compiled else '')


def _factories(args, size: dict, num_tasks: int, img: int, ours: dict, device,
               with_release: bool = True, lights=(True, False), attns=None) -> Dict:
    """name -> (row fields, runner factory) for one side-by-side."""
    out = {}
    for light in lights:
        for attn in attns or args.attn:
            fields = dict(system='ours', decoders='light' if light else 'full', attn=attn)
            out[_label('ours', light, attn)] = (fields, lambda light=light, attn=attn: (
                sr.OursRunner(device, args.amp, args.batch_size, num_tasks, (img, img),
                              light=light, attn_impl=attn, ours=ours)))
    if with_release:
        out['release'] = (dict(system='release', decoders='release', attn='explicit'),
                          lambda: sr.ReleaseRunner(device, args.amp, args.batch_size, num_tasks,
                                                   size['release']))
    return out


def side_by_side(args, section: str, factories: Dict, num_tasks: int, img: int,
                 modes=('train',), compile_names=()) -> List[dict]:
    """Build every runner, interleave their steps per mode, and return one row per runner and
    mode (a runner that fails to build or run gets a row with its error)."""
    device = torch.device(args.device)
    runners, rows, base = {}, {}, dict(section=section, tasks=num_tasks, img_size=img,
                                       batch_size=args.batch_size, amp=args.amp)
    for name, (fields, factory) in factories.items():
        row = dict(base, name=name, compiled=name in compile_names, **fields)
        rows[name] = row
        try:
            built = time.perf_counter()
            runner = sr.build_runner(factory, device)
            print(f'[speed_suite] {section} T={num_tasks} {name}: built and stepped once in '
                  f'{time.perf_counter() - built:.1f} s', flush=True)
            row['trainable_params'] = runner.trainable()
            if name in compile_names:
                row['compiled_instances'] = sr.compile_regions(
                    runner.model, args.compile_backend, args.compile_mode)
                graphs = sr.unique_graphs()
                row['compile_warmup_s'] = sum(sr.timed(runner.train_step, device)
                                              for _ in range(2))
                row['compiled_graphs'] = sr.unique_graphs() - graphs
            runners[name] = runner
        except Exception as err:          # noqa: BLE001 - kept in the row, reported at the end
            row['error'] = f'build: {type(err).__name__}: {err}'
            traceback.print_exc()
            _release_memory(device)
    out = []
    for mode in modes:
        live = {n: r for n, r in runners.items() if 'error' not in rows[n]}
        for r in live.values():
            r.model.train(mode == 'train')
        try:
            times = sr.interleaved(live, mode, args.warmup, args.iters, device, log=(
                lambda line: print(f'[speed_suite] {section} T={num_tasks} {line}',
                                   flush=True)))
        except Exception as err:          # noqa: BLE001
            traceback.print_exc()
            times = {}
            for n in live:
                rows[n]['error'] = f'{mode}: {type(err).__name__}: {err}'
        for name, row in rows.items():
            mrow = dict(row, mode=mode)
            if name in times and 'error' not in row:
                peak = float('nan')
                try:
                    if args.memory_step:
                        peak = sr.step_peak_bytes(runners[name], mode, device)
                except Exception as err:  # noqa: BLE001
                    mrow['error'] = f'memory: {type(err).__name__}: {err}'
                mrow.update(sr.summarise(runners[name], times[name], peak))
            out.append(mrow)
            print(f'[speed_suite] {section} {mode} T={num_tasks} {name}: '
                  + (f'{mrow["images_per_s"]:.2f} img/s' if 'images_per_s' in mrow
                     else mrow.get('error', '?')), flush=True)
    runners.clear()
    _release_memory(device)
    return out


def _release_memory(device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def add_ratios(rows: List[dict]) -> None:
    """``vs_release`` (images/s) and ``mem_vs_release`` of our rows against the release row of
    the same section, mode and task count; ``vs_eager`` of a compiled row against its twin."""
    index = {(r['section'], r['mode'], r['tasks'], r['name']): r for r in rows}
    for r in rows:
        key = (r['section'], r['mode'], r['tasks'])
        ref = index.get(key + ('release',))
        if r['system'] == 'ours' and ref and 'images_per_s' in ref and 'images_per_s' in r:
            r['vs_release'] = r['images_per_s'] / ref['images_per_s']
            if r['peak_mem_mb'] and ref['peak_mem_mb']:
                r['mem_vs_release'] = r['peak_mem_mb'] / ref['peak_mem_mb']
        twin = index.get(key + (r['name'].replace('-compiled', ''),))
        if r.get('compiled') and twin and 'images_per_s' in twin and 'images_per_s' in r:
            r['vs_eager'] = r['images_per_s'] / twin['images_per_s']


def format_table(rows: List[dict]) -> str:
    """Markdown table of every row (failed rows show their error)."""
    head = ('| section | mode | tasks | model | img/s | step ms | best ms | peak MB | '
            'trainable M | vs release | mem vs release | vs eager | compile warm-up s |')
    lines = [head, '|' + '---|' * 13]

    def num(r, k, fmt):
        return format(r[k], fmt) if isinstance(r.get(k), (int, float)) else '–'
    for r in rows:
        if 'images_per_s' not in r:
            lines.append(f'| {r["section"]} | {r.get("mode", "–")} | {r["tasks"]} | '
                         f'{r["name"]} | failed: {r.get("error", "?")[:80]} |' + ' |' * 8)
            continue
        lines.append(
            f'| {r["section"]} | {r["mode"]} | {r["tasks"]} | {r["name"]} | '
            f'{r["images_per_s"]:.2f} | {r["step_ms"]:.1f} | {r["best_step_ms"]:.1f} | '
            f'{num(r, "peak_mem_mb", ".0f")} | {r["trainable_params"] / 1e6:.2f} | '
            f'{num(r, "vs_release", ".2f")} | {num(r, "mem_vs_release", ".2f")} | '
            f'{num(r, "vs_eager", ".2f")} | {num(r, "compile_warmup_s", ".1f")} |')
    return '\n'.join(lines)


def _commit() -> str:
    try:
        repo = Path(__file__).resolve().parents[2]
        rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=repo, text=True,
                             capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=repo, text=True, capture_output=True, timeout=10).stdout
        return (rev or 'unknown') + ('+dirty' if dirty.strip() else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def meta(args) -> dict:
    """Machine, software and settings of the run."""
    import timm
    dev = (torch.cuda.get_device_name(args.device) if args.device.startswith('cuda')
           else platform.processor() or platform.machine())
    return dict(suite=args.suite, size=args.size, device=args.device,
                device_name=dev, amp=args.amp, batch_size=args.batch_size, tasks=args.tasks,
                sections=args.sections, attn=args.attn,
                warmup=args.warmup, iters=args.iters, torch=torch.__version__,
                timm=timm.__version__, threads=torch.get_num_threads(), cpus=os.cpu_count(),
                load_avg_start=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
                commit=_commit(), compile_backend=args.compile_backend,
                compile_mode=args.compile_mode, timing='median of interleaved steps',
                memory=('CUDA: model held + step peak of max allocated' if
                        args.device.startswith('cuda') else
                        'CPU: RSS held by the model + step RSS high-water above its start'))


def write(args, result: dict) -> None:
    """Write the JSON and the markdown table (atomically)."""
    add_ratios(result['rows'])
    atomic_write_bytes(args.out, (json.dumps(result, indent=2) + '\n').encode())
    table = format_table(result['rows'])
    m = result['meta']
    header = (f'Speed suite `{m["suite"]}`: {m["device_name"]} ({m["device"]}), {m["amp"]}, '
              f'batch {m["batch_size"]}, torch {m["torch"]}, commit {m["commit"]}, '
              f'{m["threads"]} threads, load {m["load_avg_start"]}\n\n')
    atomic_write_bytes(args.out.with_suffix('.md'), (header + table + '\n').encode())


def main(argv=None) -> dict:
    """Run the suite's sections; print and write the results. Exits 1 if any row failed."""
    args = parse_args(argv)
    args.amp = SUITES[args.suite]['amp']
    from mtl_adapters.set_env import register_all_modules
    register_all_modules()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = SIZES[args.size]
    # 'complete' stays False in what is written between sections (a run stopped early)
    result = dict(meta=meta(args), complete=False, rows=[], section_s={})
    modes = tuple(m for m, s in (('train', 'train'), ('infer', 'infer')) if s in args.sections)
    start = time.perf_counter()
    if modes:
        for t in args.tasks:
            result['rows'] += side_by_side(args, 'train', _factories(
                args, size, t, size['img'], size['ours'], torch.device(args.device)),
                t, size['img'], modes)
            result['section_s'][f'train T={t}'] = time.perf_counter() - start
            write(args, result)
    if 'paper' in args.sections:
        result['rows'] += side_by_side(args, 'paper', _factories(
            args, size, 4, size['paper_img'], size['paper'], torch.device(args.device),
            with_release=False, lights=(True,)), 4, size['paper_img'], ('train', 'infer'))
        result['section_s']['paper'] = time.perf_counter() - start
        write(args, result)
    if 'compile' in args.sections:
        t = args.compile_tasks
        eager = _factories(args, size, t, size['img'], size['ours'], torch.device(args.device),
                           with_release=False, attns=args.compile_attn)
        both = dict(eager)
        both.update({k + '-compiled': (f, fac)
                     for k, (f, fac) in eager.items()})
        result['rows'] += side_by_side(args, 'compile', both, t, size['img'], ('train',),
                                       compile_names=[k for k in both if k.endswith('compiled')])
        result['section_s']['compile'] = time.perf_counter() - start
    result['meta']['load_avg_end'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    result['meta']['total_s'] = time.perf_counter() - start
    result['complete'] = True
    write(args, result)
    print(format_table(result['rows']))
    print(f'wrote {args.out} and {args.out.with_suffix(".md")}')
    failed = [r['name'] + f' ({r["section"]}, T={r["tasks"]})' for r in result['rows']
              if 'error' in r]
    if failed:
        print(f'[speed_suite] {len(failed)} row(s) failed: {failed}')
        raise SystemExit(1)
    return result


if __name__ == '__main__':
    main()
