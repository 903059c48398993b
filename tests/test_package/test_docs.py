"""The user docs stay true to the repository: README.md, CHANGELOG.md and docs/*.md.

* every ``python tools/<x>.py ...`` / ``python data_prep/<x>.py ...`` command in a fenced code
  block names a script that exists and whose argparse accepts the arguments (the script's
  ``main(argv)`` runs until its first full ``parse_args`` and stops there: nothing is built,
  trained or written);
* every config path (``configs/...py``, globs and ``{a,b}`` alternatives expanded) and every
  repository file path in backticks exists;
* every relative link and image resolves: the file, and for ``#anchor`` a heading of it.

A fenced block right after the line ``<!-- docs-test: new files -->`` shows files the user
creates (docs/custom_dataset.md): its commands are still parsed, its paths are not required
to exist. The checker's own helpers are tested on hand-made pages, so a broken link or config
path cannot pass unnoticed.
"""
import argparse
import glob
import importlib.util
import re
import shlex
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / 'README.md', REPO / 'CHANGELOG.md', *(REPO / 'docs').glob('*.md')])
NEW_FILES_MARK = '<!-- docs-test: new files -->'

_FENCE = re.compile(r'^(\s*)```')
_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
_IMG = re.compile(r'<img[^>]+src="([^"]+)"')
_CONFIG = re.compile(r'configs/[\w.\-/*{},]+?\.py')
_REPO_PATH = re.compile(r'`((?:mtl_adapters|tools|data_prep|scripts|tests)/[\w.\-/]+'
                        r'\.(?:py|sh|json))`')
_SCRIPT = re.compile(r'^(?:tools|data_prep)/\w+\.py$')


class Block:
    """One fenced code block: its lines, the page line it starts at, and whether it shows
    files the user creates."""

    def __init__(self, lines: List[str], start: int, new_files: bool):
        self.lines, self.start, self.new_files = lines, start, new_files


def split_page(text: str) -> Tuple[List[Block], str]:
    """(fenced code blocks, the prose with every code block blanked out)."""
    blocks, prose, current, start, new_files = [], [], None, 0, False
    previous = ''
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            if current is None:
                current, start = [], number
                new_files = previous.strip() == NEW_FILES_MARK
            else:
                blocks.append(Block(current, start, new_files))
                current = None
            prose.append('')
        elif current is not None:
            current.append(line)
            prose.append('')
        else:
            prose.append(line)
            if line.strip():
                previous = line
    return blocks, '\n'.join(prose)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'[`*_]|<[^>]+>', '', heading.strip().lower())
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(text: str) -> Set[str]:
    """Every heading anchor of a page (outside code blocks), with GitHub's -1, -2 suffixes."""
    _, prose = split_page(text)
    seen: Dict[str, int] = {}
    out = set()
    for line in prose.splitlines():
        m = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            out.add(base if n == 0 else f'{base}-{n}')
            seen[base] = n + 1
    return out


def broken_links(page: Path, text: str) -> List[str]:
    """Relative links and images of ``page`` whose file or heading does not exist."""
    _, prose = split_page(text)
    errors = []
    for target in _LINK.findall(prose) + _IMG.findall(prose):
        if re.match(r'^[a-z]+:', target) or target.startswith('//'):
            continue                                  # http(s), mailto: not checked offline
        path, _, anchor = target.partition('#')
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            errors.append(f'{page.name}: link {target!r}: no file {dest}')
        elif anchor and dest.suffix == '.md' and anchor not in anchors(dest.read_text()):
            errors.append(f'{page.name}: link {target!r}: no heading #{anchor} in {dest.name}')
    return errors


def expand_braces(path: str) -> List[str]:
    """``a_{x,y}.py`` -> ``['a_x.py', 'a_y.py']`` (nested alternatives too)."""
    m = re.search(r'\{([^{}]*)\}', path)
    if not m:
        return [path]
    return [p for alt in m.group(1).split(',')
            for p in expand_braces(path[:m.start()] + alt + path[m.end():])]


def missing_paths(text: str, name: str) -> List[str]:
    """Config paths and backticked repository paths of a page that match no file (blocks
    marked as the user's new files excepted)."""
    blocks, prose = split_page(text)
    shown = [line for b in blocks if not b.new_files for line in b.lines]
    checked = prose + '\n' + '\n'.join(shown)
    errors = []
    for path in set(_CONFIG.findall(checked)) | set(_REPO_PATH.findall(checked)):
        for one in expand_braces(path):
            if not glob.glob(str(REPO / one)):
                errors.append(f'{name}: {one} does not exist')
    return errors


def commands(text: str) -> Iterator[Tuple[int, str, List[str]]]:
    """``(line, script, argv)`` of every ``python <tools|data_prep>/x.py ...`` command in a
    fenced block; continuation lines joined, comments and env assignments dropped."""
    blocks, _ = split_page(text)
    for block in blocks:
        joined, start = '', block.start
        for offset, line in enumerate(block.lines, start=1):
            if not joined:
                start = block.start + offset
            if line.rstrip().endswith('\\'):
                joined += line.rstrip()[:-1] + ' '
                continue
            joined += line
            command, joined = joined, ''
            if not re.search(r'\bpython3? (?:tools|data_prep)/', command):
                continue                              # not a command of ours (code, layout)
            words = shlex.split(command, comments=True)
            while words and re.match(r'^\w+=', words[0]):
                words.pop(0)
            if len(words) >= 2 and words[0] in ('python', 'python3') \
                    and _SCRIPT.match(words[1]):
                yield start, words[1], words[2:]


class _Parsed(Exception):
    """Raised by the patched ``parse_args`` once the arguments were accepted."""


_SCRIPTS: Dict[str, object] = {}


def load_script(script: str):
    """Import ``tools/x.py`` or ``data_prep/x.py`` by path, once (under a private name, so a
    script called ``test`` cannot shadow the standard library's module)."""
    if script not in _SCRIPTS:
        path = REPO / script
        assert path.is_file(), f'{script} does not exist'
        spec = importlib.util.spec_from_file_location(
            'docs_' + script.replace('/', '_')[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SCRIPTS[script] = module
    return _SCRIPTS[script]


def check_arguments(script: str, argv: List[str], monkeypatch) -> None:
    """Run the script's ``main(argv)`` until its first ``parse_args`` accepts ``argv``."""
    module = load_script(script)
    real = argparse.ArgumentParser.parse_args

    def parse_and_stop(parser, args=None, namespace=None):
        real(parser, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_and_stop)
    try:
        module.main(argv)
    except _Parsed:
        return
    except SystemExit as exc:
        raise AssertionError(f'{script} rejects {argv}') from exc
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', real)
    raise AssertionError(f'{script} main({argv}) returned without parsing its arguments')


def _rel(page: Path) -> str:
    return str(page.relative_to(REPO))


# ------------------------------------------------------------------------ the real pages

def test_pages_exist():
    names = {p.name for p in PAGES}
    assert {'README.md', 'CHANGELOG.md'} <= names
    assert len(PAGES) > 3, 'docs/*.md is empty'


def test_links_resolve():
    errors = [e for page in PAGES for e in broken_links(page, page.read_text())]
    assert not errors, '\n'.join(errors)


def test_config_and_file_paths_exist():
    errors = [e for page in PAGES for e in missing_paths(page.read_text(), _rel(page))]
    assert not errors, '\n'.join(errors)


def test_commands_parse(monkeypatch):
    found = [(page, line, script, argv) for page in PAGES
             for line, script, argv in commands(page.read_text())]
    assert len({script for _, _, script, _ in found}) >= 5, 'no commands found: parser broken?'
    errors = []
    for page, line, script, argv in found:
        try:
            check_arguments(script, argv, monkeypatch)
        except AssertionError as exc:
            errors.append(f'{_rel(page)}:{line}: {exc}')
    assert not errors, '\n'.join(errors)


# ------------------------------------------------------------------ the checker itself

PAGE = """# Title

## Section `two`, with: punctuation

See [the section](#section-two-with-punctuation) and [a missing one](#nowhere),
[a file](missing.md) and ![a picture](gone.png).

```bash
python tools/train.py configs/vtagml/no_such_config.py  # comment
python tools/train.py configs/vtagml/vtagml_swinv2-tiny-narrow_1xb8-600_synthetic-128x128_sdne.py \\
    --no-such-flag
```

<!-- docs-test: new files -->
```python
_base_ = ['configs/my_own/config.py']
```
"""


def test_checker_finds_broken_links_and_paths(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text(PAGE)
    errors = broken_links(page, PAGE)
    assert len(errors) == 3, errors
    assert any('#nowhere' in e for e in errors) and any('missing.md' in e for e in errors)
    assert any('gone.png' in e for e in errors)
    missing = missing_paths(PAGE, 'page.md')
    assert missing == ['page.md: configs/vtagml/no_such_config.py does not exist'], missing


def test_checker_reads_commands_and_rejects_bad_arguments(monkeypatch):
    found = list(commands(PAGE))
    assert [(line, script) for line, script, _ in found] == [
        (9, 'tools/train.py'), (10, 'tools/train.py')]
    assert found[0][2] == ['configs/vtagml/no_such_config.py']
    check_arguments('tools/train.py', found[0][2], monkeypatch)
    with pytest.raises(AssertionError, match='rejects'):
        check_arguments('tools/train.py', found[1][2], monkeypatch)


def test_slug_and_braces():
    assert slug('What is checked') == 'what-is-checked'
    assert slug('Many GPUs and nodes (DDP, `FSDP`)') == 'many-gpus-and-nodes-ddp-fsdp'
    assert expand_braces('a_{x,y}_{1,2}.py') == ['a_x_1.py', 'a_x_2.py', 'a_y_1.py', 'a_y_2.py']
