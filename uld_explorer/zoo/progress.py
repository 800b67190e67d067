"""The zoo's progress bars: one tqdm bar per step of a fetch (download, assemble or extract,
verify, convert), drawn on stderr when asked, and heard by a listener when one is set.

:func:`progress_bar` makes every bar of the zoo; :func:`report_progress` sets, for one context
(thread), a listener that every bar also calls with ``(step, done, total)`` on each update: how
the app draws a fetch's steps as its own progress bars. :func:`say` prints a line without
breaking a bar that is being drawn.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from typing import Any, Callable, Iterator

from tqdm import tqdm

__all__ = ["progress_bar", "report_progress", "say"]

#: Who else hears the zoo's progress bars (:func:`report_progress`), per thread / context.
_LISTENER: contextvars.ContextVar[Callable[[str, float, float | None], None] | None] = contextvars.ContextVar(
    "uld_explorer_progress_listener", default=None)


class _ReportingBar(tqdm):
    """A tqdm bar that also tells a listener ``(desc, done, total)`` on every update (drawn on
    stderr only when ``progress`` is on)."""

    def __init__(self, listener: Callable[[str, float, float | None], None], progress: bool, **kwargs: Any):
        self._listener = listener
        super().__init__(file=sys.stderr if progress else open(os.devnull, "w"), dynamic_ncols=True, **kwargs)
        listener(self.desc, 0, self.total)

    def update(self, n: float | None = 1) -> bool | None:
        out = super().update(n)
        self._listener(self.desc, self.n, self.total)
        return out

    def close(self) -> None:
        file = self.fp
        super().close()
        if file is not sys.stderr and not getattr(file, "closed", True):
            file.close()


@contextlib.contextmanager
def report_progress(listener: Callable[[str, float, float | None], None]) -> Iterator[None]:
    """Inside the block, every zoo progress bar (download, verify, extract, convert) also calls
    ``listener(step, done, total)`` on each update (``total`` None when unknown): how the app
    draws a fetch's steps as progress bars. Per context (thread), so concurrent users do not mix.

    >>> seen = []
    >>> with report_progress(lambda step, done, total: seen.append((step, done, total))):
    ...     with progress_bar(False, total=2, desc="demo") as bar:
    ...         bar.update(2)
    >>> seen
    [('demo', 0, 2), ('demo', 2, 2)]
    """
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def progress_bar(progress: bool, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr (hidden unless ``progress``), reporting to :func:`report_progress`'s
    listener when one is set; ``kwargs`` go to tqdm (``total``, ``unit``, ``desc``, ...)."""
    listener = _LISTENER.get()
    if listener is not None:
        return _ReportingBar(listener, progress, **kwargs)
    return tqdm(disable=not progress, file=sys.stderr, dynamic_ncols=True, **kwargs)


def say(msg: str) -> None:
    """Print ``msg`` on stderr without breaking a progress bar being drawn."""
    tqdm.write(msg, file=sys.stderr)
