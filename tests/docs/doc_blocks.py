"""Extract and run the Python code blocks of the Markdown docs."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.S | re.M)
_FILE = re.compile(r'title="(?P<path>[\w./-]+\.py)"')


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    info: str
    code: str

    @property
    def file(self) -> str | None:
        """The project path of a block titled with one (``title="shop/api.py"``): a file of the
        reader's project, written out and run as such by ``tests/docs/test_recipes.py``."""
        found = _FILE.search(self.info)
        return found.group("path") if found else None

    @property
    def runnable(self) -> bool:
        return "not runnable" not in self.info and self.file is None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(page.name, text.count("\n", 0, m.start()) + 1, m.group("info"), m.group("code"))
        for m in _FENCE.finditer(text)
    ]


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md")) + sorted((DOCS / "recipes").glob("*.md"))


def project_files(page: Path) -> dict[str, str]:
    """The project files a page shows (blocks titled with a ``.py`` path), by path."""
    return {block.file: block.code for block in blocks(page) if block.file}


async def run_block(block: Block, namespace: dict[str, Any], replacements: dict[str, str]) -> None:
    code = block.code
    for old, new in replacements.items():
        code = code.replace(old, new)
    compiled = compile(code, f"docs/{block.page}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    result = eval(compiled, namespace)  # noqa: S307 - running our own documentation
    if inspect.isawaitable(result):
        await result
