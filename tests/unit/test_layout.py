"""The package layout keeps its rules (see docs/architecture.md).

* no import circles between modules of ``ormevents`` (imports under ``if TYPE_CHECKING:`` do not
  count; imports inside functions do, since they run too);
* the pure rooms (``events/``, ``changes/``, ``handlers/``) import no driver, no Redis, no Celery,
  and only pure rooms of the package;
* ``import ormevents`` imports no driver, Redis, Celery or kombu until they are used, and none of
  the dashboard's web libraries;
* every module stays small, and every subpackage's docstring says what lives there and who imports it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ormevents"
HEAVY = ("pymongo", "motor", "redis", "celery", "kombu")
WEB = ("starlette", "jinja2", "uvicorn", "multipart", "httpx", "fastapi")  # the dashboard's (extra ``web``)
PURE_ROOMS = ("ormevents.events", "ormevents.changes", "ormevents.handlers")
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports, at any depth, except under TYPE_CHECKING."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in child.names)  # submodule imports
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def owning_module(name: str, known: dict[str, Path]) -> str | None:
    """The package module ``name`` is (or is a name in), or ``None`` outside the package."""
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        if ".".join(parts[:depth]) in known:
            return ".".join(parts[:depth])
    return None


def internal_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (a module's parents' ``__init__`` too, except the root's)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        edges: set[str] = set()
        for target in imported_names(path):
            parts = target.split(".")
            for depth in range(2, len(parts) + 1):  # ormevents.x, ormevents.x.y, ... (the root's __init__ excluded)
                prefix = ".".join(parts[:depth])
                if prefix in known and prefix != name and not name.startswith(prefix + "."):
                    edges.add(prefix)  # a module's own ancestors are initialised before it: no edge
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_no_import_circles() -> None:
    cycle = find_cycle(internal_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_circles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(n for n in modules() if n.startswith(PURE_ROOMS)))
def test_pure_rooms_import_no_io_and_only_pure_rooms(name: str) -> None:
    imports = imported_names(modules()[name])
    heavy = sorted(i for i in imports if i.split(".")[0] in HEAVY)
    assert not heavy, f"{name} is pure but imports {heavy}"
    known = modules()
    internal = {owner for i in imports if (owner := owning_module(i, known))}
    impure = sorted(m for m in internal if not m.startswith(PURE_ROOMS) and m != "ormevents.errors")
    assert not impure, f"{name} is pure but imports {impure}"


def test_import_ormevents_loads_no_driver_redis_or_celery() -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {HEAVY + WEB!r}:\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ormevents, ormevents.hooks, ormevents.handlers, ormevents.events.codec, ormevents.changes.conditions\n"
        "import ormevents.jobs, ormevents.delivery.eager, ormevents.testing\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_small(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (> {MAX_LINES}): split it by concept"


@pytest.mark.parametrize("name", sorted(n for n, p in modules().items() if p.name == "__init__.py"))
def test_each_subpackage_says_what_lives_there_and_who_imports_it(name: str) -> None:
    doc = ast.get_docstring(ast.parse(modules()[name].read_text())) or ""
    assert doc, f"{name} has no docstring"
    if name != "ormevents":
        assert "import" in doc.lower(), f"{name}'s docstring must say what may import it"
