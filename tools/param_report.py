"""Print the parameter report of one or more configs (total, trainable, per component, per
method and per task); with several configs, also a table comparing their methods.

    python tools/param_report.py \
        configs/vtagml/vtagml_swinv2-base_1xb8-40k_taskonomy-256x256_sdne.py
    python tools/param_report.py configs/peft/*.py \
        configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py

The encoder is built with random weights (``pretrained=None``) unless ``--pretrained`` is given:
counting needs no checkpoint. ``--json`` also writes the report (one config) or
``{config: report}`` (several).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402  (no torch: --help stays quick)


def comparison_table(reports: dict) -> str:
    """One row per config: its method, trainable parameters in all, in the encoder, shared
    by the tasks and own to each task (encoder), and the per-task add-on (decoder, head and
    the task's own encoder parameters; the mean over tasks)."""
    head = (f'{"method":<32}{"trainable":>13}{"encoder":>12}{"shared":>12}'
            f'{"own/task":>11}{"add-on/task":>13}  config')
    lines = [head, '-' * len(head)]
    for path, r in reports.items():
        own = list(r['encoder_per_task'].values()) or [0]
        addon = list(r['per_task_addon'].values()) or [0]
        own_txt = f'{own[0]:,}' if len(set(own)) == 1 else f'{min(own):,}-{max(own):,}'
        lines.append(f'{r["method"]:<32}{r["trainable"]:>13,}{r["encoder_trainable"]:>12,}'
                     f'{r["encoder_shared"]:>12,}{own_txt:>11}'
                     f'{round(sum(addon) / len(addon)):>13,}  {osp.basename(path)}')
    return '\n'.join(lines)


def main(argv=None) -> dict:
    """Build each config's model and print its parameter table; returns the report (one
    config) or ``{config: report}`` (several)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='+', help='one or more config files')
    parser.add_argument('--pretrained', action='store_true',
                        help='load the encoder checkpoint named in the config')
    parser.add_argument('--json', default=None, help='also write the report(s) here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        metavar='KEY=VALUE',
                        help='override config entries, e.g. model.encoder.embed_dim=32')
    args = parser.parse_args(argv)
    from mtl_adapters.models.param_report import format_param_report, parameter_report
    from mtl_adapters.registry import MODELS
    from mtl_adapters.set_env import register_all_modules
    from mtl_adapters.utils import load_config, write_json
    register_all_modules()
    reports = {}
    for path in args.config:
        cfg = load_config(path, args.cfg_options)
        if not args.pretrained and 'pretrained' in cfg.model.get('encoder', {}):
            cfg.model.encoder.pretrained = None
        reports[path] = report = parameter_report(MODELS.build(cfg.model))
        print(f'{osp.basename(path)}\n{format_param_report(report)}\n')
    if len(reports) > 1:
        print(comparison_table(reports))
    result = reports[args.config[0]] if len(reports) == 1 else reports
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == '__main__':
    main()
