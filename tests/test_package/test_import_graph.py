"""The package's import graph has no cycle.

Every module of ``mtl_adapters`` is parsed with ``ast`` (nothing is imported) and its
module-level imports become edges between the package's modules. Imports inside functions are
lazy and allowed; imports under ``if TYPE_CHECKING:`` never run. What an import statement
makes Python execute before it returns decides its edges:

* ``import a.b.c`` / ``from a.b.c import name``: the module ``a.b.c``, and every package on
  the way (``a``, ``a.b``) that is not already an ancestor of the importing module (those have
  started before the importing module itself, so importing them again runs nothing);
* ``from a.b import c`` where ``a.b.c`` is a module: ``a.b.c`` (a submodule), not the names
  defined in ``a/b/__init__.py``; a name that is not a submodule comes from ``a/b/__init__``;
* relative imports (``from . import x``, ``from ..heads import y``) resolve against the
  importing module's package the way Python resolves them.

The registries' lazy ``locations`` are strings, not imports, and so are not edges.

``mtl_adapters.utils`` is the bottom layer: none of its modules imports another sub-package of
``mtl_adapters``, not even lazily (``register_all_modules``, which imports every sub-package,
lives in ``mtl_adapters.set_env``).
"""
import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

REPO = Path(__file__).resolve().parents[2]
PACKAGE = 'mtl_adapters'

#: (importing module, imported module) -> 'path:line' of the import statement
Edges = Dict[Tuple[str, str], str]


def module_files(root: Path = REPO / PACKAGE) -> Dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package."""
    out = {}
    for path in sorted(root.rglob('*.py')):
        parts = list(path.relative_to(root.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        out['.'.join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or \
        (isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def imported_names(node: ast.stmt, importer: str, is_package: bool) -> List[str]:
    """Absolute names an ``import``/``from ... import`` statement asks for (for ``from a import
    b``: ``a.b``, a submodule or a name of ``a``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    source = node.module or ''
    if node.level:
        source = _resolve_relative(importer, is_package, node.level, node.module)
    return [f'{source}.{alias.name}' for alias in node.names]


def module_level_imports(tree: ast.Module) -> Iterator[ast.stmt]:
    """Import statements that run when the module is imported: the module body, class bodies
    and ``if``/``try``/``with`` blocks at that level; not function bodies, not
    ``if TYPE_CHECKING:``."""
    stack: List[ast.stmt] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If):
            body = [] if _is_type_checking(node.test) else node.body
            stack.extend(reversed(body + node.orelse))
        elif isinstance(node, ast.Try) or type(node).__name__ == 'TryStar':
            blocks = node.body + [s for h in node.handlers for s in h.body] + \
                node.orelse + node.finalbody
            stack.extend(reversed(blocks))
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.ClassDef, ast.For, ast.While)):
            stack.extend(reversed(node.body + getattr(node, 'orelse', [])))


def _ancestors(name: str) -> List[str]:
    """``a.b.c`` -> ``['a', 'a.b']``."""
    parts = name.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts))]


def _resolve_relative(importer: str, is_package: bool, level: int,
                      module: Optional[str]) -> str:
    """The absolute name of ``from <level dots><module> import ...`` in ``importer``."""
    base = importer.split('.') if is_package else importer.split('.')[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return '.'.join(base + ([module] if module else []))


def all_imports(tree: ast.Module) -> Iterator[ast.stmt]:
    """Every import statement of a module, function bodies included (not ``if TYPE_CHECKING:``):
    what runs when the module is imported *or* any of its functions is called."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped.update(id(n) for s in node.body for n in ast.walk(s))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
            yield node


def import_graph(root: Path = REPO / PACKAGE, lazy: bool = False) -> Edges:
    """Edges between the modules of the package at ``root`` from their module-level imports
    (see the module docstring for what each statement executes); with ``lazy``, imports inside
    functions count too."""
    files = module_files(root)
    edges: Edges = {}

    def add(importer: str, target: str, where: str) -> None:
        own = set(_ancestors(importer)) | {importer}
        for name in _ancestors(target) + [target]:
            if name in files and name not in own and name != importer:
                edges.setdefault((importer, name), where)

    for name, path in files.items():
        is_package = path.name == '__init__.py'
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in (all_imports(tree) if lazy else module_level_imports(tree)):
            where = f'{path.relative_to(root.parent)}:{node.lineno}'
            for target in imported_names(node, name, is_package):
                if isinstance(node, ast.ImportFrom) and target not in files:
                    target = target.rsplit('.', 1)[0]     # a name of the package's __init__
                if target == PACKAGE or target.startswith(PACKAGE + '.'):
                    add(name, target, where)
    return edges


def find_cycles(edges: Edges) -> List[List[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component with a cycle
    (Tarjan's algorithm, iterative)."""
    graph: Dict[str, List[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    components: List[List[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        components.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    cycles = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # shortest path from start back to start inside the component (breadth-first)
        parents: Dict[str, str] = {}
        frontier = [start]
        while frontier and start not in parents:
            nxt = []
            for node in frontier:
                for child in graph[node]:
                    if child in members and child not in parents:
                        parents[child] = node
                        nxt.append(child)
            frontier = nxt
        path = [start]
        node = parents[start]
        while node != start:
            path.append(node)
            node = parents[node]
        cycles.append([start] + path[1:][::-1] + [start])
    return cycles


def describe(cycle: List[str], edges: Edges) -> str:
    """``a -> b (file:line) -> ... -> a`` with where each import is written."""
    steps = [f'{a} -> {b}  ({edges[(a, b)]})' for a, b in zip(cycle, cycle[1:])]
    return '\n    '.join(steps)


def test_edge_rules_on_a_small_package(tmp_path):
    """Relative imports, ``from package import submodule``, packages on the way, lazy imports,
    ``TYPE_CHECKING`` blocks, ``try`` blocks; and the cycle found with where it is written."""
    root = tmp_path / PACKAGE
    sources = {
        '__init__.py': 'from .util import helper\n',
        'util.py': 'import os\n',
        'reg.py': 'def fill():\n    from mtl_adapters import models\n',
        'models/__init__.py': 'from .heads import Head\nfrom . import dec\n',
        'models/heads/__init__.py': 'from .head import Head\n',
        'models/heads/head.py': 'from mtl_adapters.reg import fill\n',
        'models/dec.py': ('from typing import TYPE_CHECKING\n'
                          'from ..models.heads import head\n'
                          'from mtl_adapters.vis.grid import draw\n'
                          'if TYPE_CHECKING:\n    from mtl_adapters.models import Head\n'),
        'vis/__init__.py': 'from .grid import draw\n',
        'vis/grid.py': ('try:\n    import mtl_adapters.models.dec as d\n'
                        'except ImportError:\n    d = None\n'),
    }
    for rel, text in sources.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    edges = import_graph(root)
    assert set(edges) == {
        ('mtl_adapters', 'mtl_adapters.util'),
        ('mtl_adapters.models', 'mtl_adapters.models.heads'),      # `from .heads import Head`
        ('mtl_adapters.models', 'mtl_adapters.models.dec'),        # `from . import dec`
        ('mtl_adapters.models.heads', 'mtl_adapters.models.heads.head'),
        ('mtl_adapters.models.heads.head', 'mtl_adapters.reg'),    # reg's import is lazy
        ('mtl_adapters.models.dec', 'mtl_adapters.models.heads.head'),  # a submodule
        ('mtl_adapters.models.dec', 'mtl_adapters.models.heads'),  # a package on the way
        ('mtl_adapters.models.dec', 'mtl_adapters.vis'),           # a package on the way
        ('mtl_adapters.models.dec', 'mtl_adapters.vis.grid'),
        ('mtl_adapters.vis', 'mtl_adapters.vis.grid'),
        ('mtl_adapters.vis.grid', 'mtl_adapters.models'),          # `import a.b.c` runs a.b
        ('mtl_adapters.vis.grid', 'mtl_adapters.models.dec'),
    }
    cycles = find_cycles(edges)
    assert cycles == [['mtl_adapters.models', 'mtl_adapters.models.dec',
                       'mtl_adapters.vis.grid', 'mtl_adapters.models']]
    assert 'mtl_adapters/vis/grid.py:2' in describe(cycles[0], edges)


def test_utils_is_the_bottom_layer():
    """``mtl_adapters.utils`` imports nothing of the package outside ``utils``, lazily or not:
    every other layer may use it without an import circle."""
    bad = []
    for name, path in module_files().items():
        if name != 'mtl_adapters.utils' and not name.startswith('mtl_adapters.utils.'):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in imported_names(node, name, path.name == '__init__.py'):
                if target.startswith(PACKAGE + '.') and \
                        not target.startswith('mtl_adapters.utils.'):
                    bad.append(f'{path.relative_to(REPO)}:{node.lineno} imports {target}')
    assert not bad, '\n'.join(bad)


def test_no_import_cycles():
    """No module of the package imports, at module level, a module that imports it back."""
    edges = import_graph()
    assert len({a for a, _ in edges}) > 30          # the walk found the package's imports
    cycles = find_cycles(edges)
    assert not cycles, f'{len(cycles)} import cycle(s):\n' + '\n'.join(
        f'  {" -> ".join(c)}\n    {describe(c, edges)}' for c in cycles)


def test_no_import_cycles_through_function_level_imports():
    """Not even an import inside a function closes a circle: the layers are a real order
    (a module that registers everything lives above every module it imports)."""
    edges = import_graph(lazy=True)
    assert set(import_graph()) < set(edges)        # the lazy walk sees more than the eager one
    cycles = find_cycles(edges)
    assert not cycles, f'{len(cycles)} import cycle(s):\n' + '\n'.join(
        f'  {" -> ".join(c)}\n    {describe(c, edges)}' for c in cycles)


def test_no_module_over_450_lines():
    """One concern per module: none of the package, the tools or the preparers passes 450
    lines (split it by concern when it grows)."""
    files = [p for root in ('mtl_adapters', 'tools', 'data_prep')
             for p in (REPO / root).rglob('*.py')]
    assert len(files) > 50
    long = {str(p.relative_to(REPO)): n for p in files
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long
