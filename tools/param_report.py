"""Print a config's parameter report (total, trainable, per component, per-task add-on).

    python tools/param_report.py \
        configs/vtagml/vtagml_swinv2-base_1xb8-40k_taskonomy-256x256_sdne.py

The encoder is built with random weights (``pretrained=None``) unless ``--pretrained`` is given:
counting needs no checkpoint. ``--json`` also writes the report.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402


def main(argv=None) -> dict:
    """Build the config's model and print its parameter table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--pretrained', action='store_true',
                        help='load the encoder checkpoint named in the config')
    parser.add_argument('--json', default=None, help='also write the report here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        metavar='KEY=VALUE',
                        help='override config entries, e.g. model.encoder.embed_dim=32')
    args = parser.parse_args(argv)
    from mtl_adapters.models.param_report import format_param_report, parameter_report
    from mtl_adapters.registry import MODELS, register_all_modules
    from mtl_adapters.utils import load_config
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    if not args.pretrained and 'pretrained' in cfg.model.get('encoder', {}):
        cfg.model.encoder.pretrained = None
    report = parameter_report(MODELS.build(cfg.model))
    print(f'{osp.basename(args.config)}\n{format_param_report(report)}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()
