"""The main job on the embedded default, end to end on CPU:

1. generate the synthetic multi-task scenes (Taskonomy format) if they are not there yet;
2. evaluate the untrained model on the test split;
3. train S-D-N-E with mmengine's Runner (resumes if interrupted);
4. evaluate the trained model, print untrained vs trained per task and write JSON;
5. write prediction pictures: the first test images as input | ground truth | untrained |
   trained | legend (``before_after_<i>.png``), test-split grids, and a real photograph.
"""
import argparse
import json
import os.path as osp
import re
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

DEFAULT_CONFIG = 'configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='training config')
    parser.add_argument('--data-root', default='data/synthetic', help='synthetic scenes folder')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='logs, checkpoints, pictures')
    parser.add_argument('--num-scenes', type=int, default=30, help='scenes (buildings) to render')
    parser.add_argument('--views', type=int, default=10, help='views per scene')
    parser.add_argument('--size', type=int, default=128, help='rendered image side')
    parser.add_argument('--max-iters', type=int, default=250,
                        help='training iterations (about 1 s each on 2 CPU cores at batch 8)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads of the training process (default: OMP_NUM_THREADS if '
                        'set, else the available cores less the data workers)')
    return parser.parse_args(argv)


def evaluate(model, cfg) -> tuple:
    """Run the config's test split through ``model`` with its evaluator (no Runner needed);
    returns the metrics and the first test batch with the model's outputs on it."""
    import copy

    import torch
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner
    from tqdm import tqdm
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    model.eval()
    first = None
    with torch.no_grad():
        for batch in tqdm(loader, desc='evaluating untrained model', leave=False):
            kept = copy.deepcopy(batch) if first is None else None
            outputs = model.test_step(batch)
            if first is None:
                first = (kept, outputs)
            evaluator.process(outputs, batch)
    return evaluator.evaluate(len(loader.dataset)), first


def before_after_pictures(model, first, out_dir: str, count: int = 2) -> list:
    """``before_after_<i>.png``: per task, input | ground truth | untrained | trained | legend,
    for the first test images (the untrained model's outputs were kept before training)."""
    import torch

    from mtl_adapters.utils import write_png
    from mtl_adapters.visualization import make_comparison_grid
    batch, untrained = first
    model.eval()
    with torch.no_grad():
        trained = model.test_step(batch)
    paths = []
    for i in range(min(count, len(trained))):
        tasks = model.tasks
        gts = {n: trained[i].get_gt(n) for n in tasks if trained[i].get_gt(n) is not None}
        columns = {'untrained': {n: untrained[i].get_pred(n) for n in tasks},
                   'trained': {n: trained[i].get_pred(n) for n in tasks}}
        path = osp.join(out_dir, f'before_after_{i}.png')
        write_png(path, make_comparison_grid(batch['inputs'][i], gts, columns, tasks))
        paths.append(path)
    return paths


def previous_runs(work_dir: str) -> list:
    """The ``runs`` of an earlier demo summary in ``work_dir`` (a resumed or repeated demo adds
    its own run instead of overwriting the time the first one took)."""
    path = osp.join(work_dir, 'demo_summary.json')
    if not osp.isfile(path):
        return []
    try:
        with open(path) as f:
            runs = json.load(f).get('runs', [])
    except (OSError, ValueError, AttributeError) as err:
        print(f'WARNING: {path} is unreadable ({err}); its run history is not kept')
        return []
    return runs if isinstance(runs, list) else []


def comparison_table(before: dict, after: dict, directions: dict) -> tuple:
    """Rows ``task/metric | untrained | trained | better?`` and whether every task improved."""
    lines = [f'{"metric":<18} {"untrained":>10} {"trained":>10}  better', '-' * 50]
    per_task = {}
    for key, value in after.items():
        if key not in before or key not in directions:
            continue
        higher = directions[key]
        better = value > before[key] if higher else value < before[key]
        per_task.setdefault(key.split('/')[0], []).append(better)
        lines.append(f'{key:<18} {before[key]:>10.4f} {value:>10.4f}  '
                     f'{"yes" if better else "NO"} ({"higher" if higher else "lower"} is better)')
    return '\n'.join(lines), per_task


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mtl_adapters.data_generation.synthetic import generate
    from mtl_adapters.evaluation import metrics_for_json
    from mtl_adapters.set_env import register_all_modules
    from mtl_adapters.utils import newest_loadable_checkpoint, set_cpu_threads, write_json
    register_all_modules()
    t0 = time.time()

    print(f'[1/5] synthetic scenes -> {args.data_root}')
    if args.num_scenes < 3:
        raise SystemExit('--num-scenes must be at least 3 (train, val and test scenes)')
    n_test = max(1, args.num_scenes // 10)
    generate(args.data_root, num_scenes=args.num_scenes, views_per_scene=args.views,
             size=(args.size, args.size), seed=args.seed, style='default',
             splits=(args.num_scenes - 2 * n_test, n_test, n_test))

    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.resume = True        # continue an interrupted demo from its last checkpoint that loads
    start_iter = 0
    if osp.isdir(args.work_dir):
        cfg.load_from = newest_loadable_checkpoint(args.work_dir)
        found = re.search(r'iter_(\d+)\.pth$', cfg.load_from or '')
        start_iter = int(found.group(1)) if found else 0
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = args.data_root
    set_cpu_threads(args.threads)
    cfg.train_cfg.max_iters = args.max_iters
    cfg.train_cfg.val_interval = args.max_iters
    cfg.default_hooks.checkpoint.interval = max(args.max_iters // 2, 1)
    warmup = max(1, min(50, args.max_iters // 5))      # linear warm-up, then poly decay
    cfg.param_scheduler[0].end = cfg.param_scheduler[1].begin = warmup
    cfg.param_scheduler[1].end = args.max_iters
    for hook in cfg.custom_hooks:        # a few more pictures of the small test split
        if hook.type == 'MultiTaskVisualizationHook':
            hook.interval = 10
    runner = Runner.from_cfg(cfg)

    print('[2/5] evaluating the untrained model')
    before, first_batch = evaluate(runner.model, cfg)
    print(f'[3/5] training {args.config} for {cfg.train_cfg.max_iters} iterations')
    runner.train()
    print('[4/5] evaluating the trained model')
    after = runner.test()

    directions = {}
    for name, task in runner.model.tasks.items():
        directions.update({f'{name}/{k}': v for k, v in task.metric_directions.items()})
    table, per_task = comparison_table(before, after, directions)
    improved = {t: all(v) for t, v in per_task.items()}
    print(table)
    summary = dict(config=args.config, untrained=metrics_for_json(before),
                   trained=metrics_for_json(after),
                   every_metric_improved=improved,
                   runs=previous_runs(args.work_dir) + [dict(
                       finished=time.strftime('%Y-%m-%d %H:%M:%S'),
                       minutes=round((time.time() - t0) / 60, 2),
                       iterations_trained=cfg.train_cfg.max_iters - start_iter)])
    summary['minutes'] = round(sum(r['minutes'] for r in summary['runs']), 2)
    write_json(osp.join(args.work_dir, 'demo_summary.json'), summary)

    print('[5/5] prediction pictures')
    pictures = before_after_pictures(runner.model, first_batch, args.work_dir)
    pictures += write_pictures(cfg, args, osp.join(runner.log_dir, 'vis_data', 'vis_image'))
    for p in pictures:
        print(f'  {p}')
    print(f'done in {summary["runs"][-1]["minutes"]:.1f} min; summary: '
          f'{osp.join(args.work_dir, "demo_summary.json")}')
    if not all(improved.values()):
        print(f'WARNING: not every metric improved: {improved}')
    return summary


def write_pictures(cfg, args, vis_dir: str) -> list:
    """Prediction grids of the test split (written during testing by the visualiser's
    ``LocalVisBackend`` into ``vis_dir``) and the predictions for a real photograph of a
    non-square, non-window-multiple size."""
    import glob

    import numpy as np
    import skimage.data

    from mtl_adapters.apis import inference_model, init_model
    from mtl_adapters.utils import write_png
    from mtl_adapters.visualization import make_side_by_side, save_predictions
    grids = sorted(glob.glob(osp.join(vis_dir, 'test_*.png')))[:4]
    photo = np.ascontiguousarray(skimage.data.astronaut()[:301, :457])   # a real photograph
    write_png(osp.join(args.work_dir, 'astronaut.png'), photo)
    model = init_model(cfg, osp.join(args.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth'),
                       device='cpu')
    sample = inference_model(model, photo)
    preds = {name: sample.get_pred(name) for name in model.tasks}
    save_predictions(preds, model.tasks, osp.join(args.work_dir, 'astronaut', 'astronaut'))
    overview = osp.join(args.work_dir, 'astronaut_predictions.png')
    write_png(overview, make_side_by_side(photo, preds, model.tasks))
    return grids + [overview]


if __name__ == '__main__':
    main()
