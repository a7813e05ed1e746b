"""A griffe extension for the API reference: reST idioms in our docstrings, as Markdown.

The docstrings use Sphinx roles (``:class:`~ormevents.events.Event```) and ``Example::`` literal
markers, which mkdocstrings would print as they are. Each role becomes a cross-reference (an
optional one: a target the reference does not document renders as code, without a warning), and
``Word::`` at the end of a line becomes ``Word:``. Loaded by ``mkdocs.yml``
(``extensions: [tools/griffe_rst_roles.py:ReSTRoles]``); nothing else imports it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([\w.]+)`")
LITERAL_MARKER = re.compile(r"(\S)::$", re.M)


class ReSTRoles(griffe.Extension):
    """Rewrites the docstrings of a loaded package (see module doc)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg)

    def _walk(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = self._convert(obj, obj.docstring.value)
        for member in list(obj.members.values()):
            if not member.is_alias:
                self._walk(member)  # type: ignore[arg-type]  # not an alias: an Object

    def _convert(self, obj: griffe.Object, text: str) -> str:
        def link(match: re.Match[str]) -> str:
            short, name = match.group(1), match.group(2)
            label = name.rsplit(".", 1)[-1] if short else name
            target = _resolve(obj, name) or (name if name.startswith("ormevents") else None)
            if target is None:
                return f"`{label}`"
            return f'<autoref identifier="{target}" optional><code>{label}</code></autoref>'

        return LITERAL_MARKER.sub(r"\1:", ROLE.sub(link, text))


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path ``name`` means where ``obj`` is documented, or ``None``."""
    for scope in (obj, obj.parent, obj.module):
        if scope is None:
            continue
        try:
            return str(scope.resolve(name))
        except Exception:  # griffe raises NameResolutionError and friends; try the next scope
            continue
    return None
