"""Config loading shared by the tools: file + ``--cfg-options`` + launcher + work dir.

Top-level variables are re-derived, not patched. A config's ``work_size = (512, 1024)`` is
substituted into everything computed from it (the datasets, the pipelines' resizes, a target's
settings) while the file is parsed, so setting the variable afterwards would change the key
alone. ``--cfg-options work_size=...`` (any top-level key that is not a Runner field)
therefore parses the config again with the variable's assignment replaced by the new value,
in every file of the config that assigns it: every value the config derives from the variable
follows, and nothing else does (a UDA config's target, read from ``target_root``, stays where
it is when ``data_root`` moves). An override that then changes nothing but the key itself, or
names a key no file defines, is a loud warning naming the fields that do exist under that name.
Dotted keys (``train_cfg.max_iters=...``) and Runner fields are set as they are, after parsing.
"""
import ast
import difflib
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, List, Optional

from mmengine.config import Config

#: top-level keys the Runner (``Runner.from_cfg``) or our tools read after the file is parsed
RUNNER_KEYS = frozenset((
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'model_wrapper_cfg', 'runner_type',
    'custom_imports', 'vis_backends', 'cfg', 'load_from_partial', 'resume_lr_from_config'))


def _parse(path: str) -> ast.Module:
    with open(path, encoding='utf-8') as f:
        return ast.parse(f.read(), path)


def config_files(path: str) -> List[str]:
    """``path`` and every file it inherits (``_base_``, recursively), absolute, leaf first."""
    out: List[str] = []
    todo = [osp.abspath(path)]
    while todo:
        current = todo.pop(0)
        if current in out:
            continue
        out.append(current)
        for node in _parse(current).body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
                bases = ast.literal_eval(node.value)
                for base in [bases] if isinstance(bases, str) else bases:
                    if '::' in base:
                        raise ValueError(f'{current}: base {base!r} of another package; '
                                         'top-level --cfg-options need the bases as files')
                    todo.append(osp.normpath(osp.join(osp.dirname(current), base)))
    return out


def _assignments(path: str, text: str, name: str) -> List[ast.AST]:
    """The value nodes of the top-level ``name = ...`` statements of a config file; an
    assignment of ``name`` that cannot be replaced alone (``a, b = ...``) is an error."""
    values = []
    for node in ast.parse(text, path).body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        if name not in names:
            continue
        if not (isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
                and len(targets) == 1 and isinstance(targets[0], ast.Name)):
            raise ValueError(f'{path}, line {node.lineno}: {name!r} is assigned together with '
                             'other names (or augmented), so --cfg-options cannot replace its '
                             f'value; write `{name} = ...` on a line of its own')
        values.append(node.value)
    return values


def defined_variables(files: List[str]) -> Dict[str, List[str]]:
    """``{top-level name: [files assigning it]}`` over the files of one config."""
    out: Dict[str, List[str]] = {}
    for path in files:
        for node in _parse(path).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name) and name.id != '_base_':
                        out.setdefault(name.id, []).append(path)
    return out


def _literal(key: str, value) -> str:
    """``value`` as Python source (it must read back as itself)."""
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise ValueError(f'--cfg-options {key}=...: a {type(value).__name__} cannot be written '
                         'into the config; use numbers, strings, booleans, None, lists, tuples '
                         'or dicts of them')
    return text


def _rewrite(path: str, text: str, overrides: dict) -> str:
    """``text`` with the value of every top-level assignment of an ``overrides`` name replaced."""
    lines = text.splitlines(keepends=True)
    edits = sorted(((node, _literal(key, value)) for key, value in overrides.items()
                    for node in _assignments(path, text, key)),
                   key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True)
    for node, new in edits:       # from the end: earlier positions stay valid
        first, last = node.lineno - 1, node.end_lineno - 1
        head = lines[first].encode()[:node.col_offset].decode()
        tail = lines[last].encode()[node.end_col_offset:].decode()
        lines[first:last + 1] = [head + new + tail]
    return ''.join(lines)


def parse_with_variables(path: str, overrides: dict) -> Config:
    """Parse the config ``path`` with the top-level variables ``overrides`` set where the files
    assign them (see the module docstring): every value derived from them follows."""
    files = config_files(path)
    root = osp.commonpath([osp.dirname(f) for f in files])
    with tempfile.TemporaryDirectory(prefix='mtl_cfg_') as tmp:
        for src in files:
            dst = osp.join(tmp, osp.relpath(src, root))
            os.makedirs(osp.dirname(dst), exist_ok=True)
            with open(src, encoding='utf-8') as f:
                text = _rewrite(src, f.read(), overrides)
            with open(dst, 'w', encoding='utf-8') as f:
                f.write(text)
        try:
            cfg = Config.fromfile(osp.join(tmp, osp.relpath(osp.abspath(path), root)))
        except Exception as err:
            given = ', '.join(f'{k}={v!r}' for k, v in overrides.items())
            raise ValueError(f'--cfg-options {given}: {path} cannot be parsed with this value '
                             f'({type(err).__name__}: {err})') from err
    object.__setattr__(cfg, '_filename', osp.abspath(path))   # its name, not the copy's
    return cfg


def _fields_named(tree, key: str, prefix: str = '') -> List[str]:
    """Dotted paths of the fields called ``key`` below the top level of ``tree``."""
    out = []
    items = tree.items() if isinstance(tree, dict) else \
        enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for k, value in items:
        here = f'{prefix}{k}'
        if prefix and k == key:
            out.append(here)
        out += _fields_named(value, key, here + '.')
    return out


def did_you_mean(cfg: Config, key: str) -> str:
    """A hint naming the fields called ``key`` and the top-level keys spelt like it."""
    tree = cfg.to_dict()
    fields = _fields_named(tree, key)
    close = difflib.get_close_matches(key, [k for k in tree if k != key], n=3)
    names = [f'{f}=...' for f in fields[:4]] + [f'{k}=...' for k in close]
    if not names:
        return 'No field of this config has that name.'
    return f'Did you mean {" or ".join(names)}?'


def _without(cfg: Config, key: str) -> dict:
    tree = cfg.to_dict()
    tree.pop(key, None)
    return tree


def apply_variables(path: str, cfg: Config, variables: dict) -> Config:
    """``cfg`` (``path`` parsed) with the top-level ``variables`` re-derived; a warning for
    each one that changes nothing else."""
    defined = defined_variables(config_files(path))
    known = {k: v for k, v in variables.items() if k in defined}
    new = parse_with_variables(path, known) if known else cfg
    for key, value in variables.items():
        if key not in defined:
            new.merge_from_dict({key: value})
            warnings.warn(f'--cfg-options {key}=...: no file of {osp.basename(path)} defines a '
                          f'top-level {key!r}, so this override changes nothing. '
                          f'{did_you_mean(cfg, key)}')
            continue
        alone = new if len(known) == 1 else parse_with_variables(path, {key: value})
        if _without(alone, key) == _without(cfg, key) and value != cfg.get(key):
            where = ', '.join(osp.relpath(f, osp.dirname(osp.abspath(path)))
                              for f in defined[key])
            warnings.warn(
                f'--cfg-options {key}=...: nothing in {osp.basename(path)} follows the variable '
                f'{key!r} (set in {where}): every field derived from it is set otherwise by the '
                f'config, so this override changes nothing. {did_you_mean(cfg, key)}')
    return new


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read ``path``, apply command-line overrides (top-level variables re-derived, see the
    module docstring), set the launcher and the work dir (``--work-dir``, else the config's
    ``work_dir``, else ``work_dirs/<config name>``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    options = dict(cfg_options or {})
    variables = {k: v for k, v in options.items() if '.' not in k and k not in RUNNER_KEYS}
    cfg = Config.fromfile(path)
    if variables:
        cfg = apply_variables(path, cfg, variables)
    cfg.merge_from_dict({k: v for k, v in options.items() if k not in variables})
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
