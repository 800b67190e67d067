"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists what it re-exports as ``{module: (name, ...)}``; a name is imported from its
module on first use. ``import uld_explorer`` (and the CLI's ``--help``) therefore does not load
torch, POT or transformers until a function needs them.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(
    package: str, api: dict[str, tuple[str, ...]], namespace: dict[str, Any]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` re-exporting ``api``.

    ``api`` maps a relative module (``".divergences"``) to the names it exports; an entry
    ``"alias=name"`` exports ``name`` as ``alias``. A looked-up value is stored in ``namespace``
    (the package's globals), so each is imported once.
    """
    where: dict[str, tuple[str, str]] = {}
    for module, entries in api.items():
        for entry in entries:
            alias, _, name = entry.partition("=")
            where[alias] = (module, name or alias)

    def __getattr__(name: str) -> Any:
        try:
            module, attr = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return sorted(where), __getattr__, __dir__
