"""The layering of docs/architecture.md, checked by reading every module's imports.

Every ``import`` in ``xet_pyodide/`` — at module level, in a function, under
``TYPE_CHECKING`` alike — is an edge from one module to another. The rules:

1. every edge points down the layer order (or stays within a layer);
2. no modules import each other, directly or round a longer circle;
3. only the modules in :data:`KNOW_PYODIDE` import ``js``/``pyodide``/``pyodide_js`` or compare
   anything with ``"emscripten"``.

The checker runs on the real tree, and on small planted trees to show it catches each kind of
violation (a checker that cannot fail proves nothing).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "xet_pyodide"

#: Layers bottom to top, by the first name under ``xet_pyodide`` ("" is the package itself).
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"_version", "errors"}),
    ("kernels", {"kernels"}),
    ("core", {"core"}),
    ("io", {"io"}),
    ("session", {"session"}),
    ("hub", {"hub"}),
    ("front doors", {"", "__main__", "cli", "browser", "browser_hub"}),
]

#: The only modules that may know they run under Pyodide (see docs/architecture.md).
KNOW_PYODIDE = {
    "xet_pyodide.kernels",  # picks the loader
    "xet_pyodide.kernels._load_pyodide",
    "xet_pyodide.kernels.jsbytes",
    "xet_pyodide.io._pyfetch",
    "xet_pyodide.io.blob",
    "xet_pyodide.io.body_worker",  # xorb bodies held and sent by Web Workers
    "xet_pyodide.io.cache",  # the Cache API store exists only in a page
    "xet_pyodide.io.cache_browser",
    "xet_pyodide.io.digest",
    "xet_pyodide.io.jsbridge",
    "xet_pyodide.io.jsinterop",
    "xet_pyodide.io.runtime",
    "xet_pyodide.io.transport",  # default buffer size
    "xet_pyodide.io.workers",
    "xet_pyodide.browser",  # these two only run in a page
    "xet_pyodide.browser_hub",
}
PYODIDE_MODULES = {"js", "pyodide", "pyodide_js", "_pyodide"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


def modules(root: Path) -> dict[str, Path]:
    """Dotted name → file of every module of the package under ``root``."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import statement anywhere in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            named_modules = [f"{module}.{a.name}" for a in node.names]
            submodules = [m for m in named_modules if m in known]
            yield from ((m, node.lineno) for m in submodules)
            if len(submodules) < len(named_modules):  # names defined in ``module`` itself
                yield module, node.lineno


def edges(root: Path) -> tuple[list[Edge], dict[str, list[tuple[str, int]]]]:
    """Edges between the package's modules, and every module's foreign imports."""
    known = modules(root)
    out: list[Edge] = []
    foreign: dict[str, list[tuple[str, int]]] = {}
    for name, path in known.items():
        for target, line in _imports(name, path, known):
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                if target != name:
                    out.append(Edge(name, target, line))
            else:
                foreign.setdefault(name, []).append((target, line))
    return out, foreign


def layer_of(module: str) -> int:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else ""
    for index, (_, heads) in enumerate(LAYERS):
        if head in heads:
            return index
    raise AssertionError(f"{module}: in no layer; add it to LAYERS and docs/architecture.md")


def upward_edges(root: Path) -> list[str]:
    return [
        f"{e.source} (line {e.line}) imports {e.target}: "
        f"{LAYERS[layer_of(e.source)][0]} -> {LAYERS[layer_of(e.target)][0]}"
        for e in edges(root)[0]
        if layer_of(e.target) > layer_of(e.source)
    ]


def cycles(root: Path) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges(root)[0]:
        graph.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def pyodide_knowledge(root: Path) -> list[str]:
    """Modules outside :data:`KNOW_PYODIDE` importing Pyodide's modules or naming
    ``"emscripten"``."""
    _, foreign = edges(root)
    problems = [
        f"{name} (line {line}) imports {target}"
        for name, imports in foreign.items()
        for target, line in imports
        if target.split(".")[0] in PYODIDE_MODULES and name not in KNOW_PYODIDE
    ]
    for name, path in modules(root).items():
        if name in KNOW_PYODIDE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == "emscripten":
                problems.append(f'{name} (line {node.lineno}) checks for "emscripten"')
    return problems


# --------------------------------------------------------------------------- the real tree


def test_every_import_points_down() -> None:
    assert upward_edges(ROOT) == []


def test_no_modules_import_each_other() -> None:
    assert cycles(ROOT) == []


def test_only_the_listed_modules_know_pyodide() -> None:
    assert pyodide_knowledge(ROOT) == []
    assert set(modules(ROOT)) >= KNOW_PYODIDE, "a listed module does not exist"


def test_the_package_imports_nothing_of_the_repository_around_it() -> None:
    """The server, tests, benchmarks and scripts sit on the package, never under it."""
    _, foreign = edges(ROOT)
    outside = {"xet_cas_server", "cas_server", "tests", "bench", "scripts"}
    assert [
        f"{name} (line {line}) imports {target}"
        for name, imports in foreign.items()
        for target, line in imports
        if target.split(".")[0] in outside
    ] == []


def test_architecture_doc_names_the_pyodide_modules() -> None:
    """docs/architecture.md lists the same modules as :data:`KNOW_PYODIDE`."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    rule = doc[doc.index("Every import points down") :]
    rule = rule[: rule.index("\n\n", rule.index("know Pyodide"))]
    for name in KNOW_PYODIDE:
        path = modules(ROOT)[name].relative_to(ROOT / PACKAGE).as_posix()
        assert f"`{path}`" in rule, f"{path} is not named in the rule of docs/architecture.md"


def test_the_checker_sees_the_whole_package() -> None:
    """Sanity: late imports are edges too, and relative imports resolve."""
    found = {(e.source, e.target) for e in edges(ROOT)[0]}
    assert ("xet_pyodide.kernels", "xet_pyodide.kernels._load_wasmtime") in found  # in a function
    assert ("xet_pyodide.core.xorb", "xet_pyodide.kernels.records") in found
    assert ("xet_pyodide.cli", "xet_pyodide.cli.hub") in found  # in a function


# --------------------------------------------------------------------------- planted trees


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {
        "__init__.py": "",
        "errors.py": "",
        "kernels/__init__.py": "",
        "core/__init__.py": "",
        "core/xorb.py": "from ..kernels import api\n",
        "kernels/api.py": "",
        "session/__init__.py": "",
        "session/upload.py": "",
        **files,
    }.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_planted_back_edge_is_caught(tmp_path: Path) -> None:
    late = "def f():\n    from ..session.upload import FileUpload\n"
    root = _plant(tmp_path, {"core/xorb.py": late})
    assert upward_edges(root) == [
        "xet_pyodide.core.xorb (line 2) imports xet_pyodide.session.upload: core -> session"
    ]
    root = _plant(tmp_path, {"core/xorb.py": "from xet_pyodide import session\n"})
    assert len(upward_edges(root)) == 1


def test_planted_cycle_is_caught(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "session/upload.py": "from . import pipeline\n",
            "session/pipeline.py": "from .shards import x\n",
            "session/shards.py": "def f():\n    from .upload import FileUpload\n",
        },
    )
    assert upward_edges(root) == []
    assert cycles(root) == [
        ["xet_pyodide.session.pipeline", "xet_pyodide.session.shards", "xet_pyodide.session.upload"]
    ]


def test_planted_pyodide_knowledge_is_caught(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "core/xorb.py": "def f():\n    import js\n",
            "session/upload.py": "import sys\nWEB = sys.platform == 'emscripten'\n",
            "kernels/jsbytes.py": "import js\nfrom pyodide.ffi import to_js\n",  # listed
        },
    )
    assert pyodide_knowledge(root) == [
        "xet_pyodide.core.xorb (line 2) imports js",
        'xet_pyodide.session.upload (line 2) checks for "emscripten"',
    ]


def test_module_outside_every_layer_is_refused(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"utils.py": "from . import errors\n"})
    with pytest.raises(AssertionError, match="in no layer"):
        upward_edges(root)
