"""The library's faults that a user can fix: one base class, importable without anything else.

An :class:`ExplorerError` carries a message that names what went wrong (the file, the option,
the setting) and how to fix it. The command line prints it as one ``error:`` line (exit 2), the
app as a message on the page; neither shows a traceback for it. The zoo's
:class:`~uld_explorer.zoo.ZooError`, the runner's :class:`~uld_explorer.distill.errors.DistillError`
and POT's :class:`~uld_explorer.ot.OTNotConvergedError` are its subclasses; bad arguments stay
:class:`ValueError` (their messages have the same shape).
"""

from __future__ import annotations

__all__ = ["ExplorerError"]


class ExplorerError(Exception):
    """A fault a user can fix; the message names the file / option / setting and the fix."""
