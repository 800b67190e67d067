"""The one error of the distillation runner: :class:`DistillError`."""

from __future__ import annotations

from ..errors import ExplorerError

__all__ = ["DistillError"]


class DistillError(ExplorerError, RuntimeError):
    """A run cannot start or continue; the message says why and what to do (the CLI prints it alone).

    Raised by :func:`~.prepare.prepare` (data, tokenizers), :class:`~.rundir.RunDir` (a run
    directory that is taken or holds nothing to resume, a checkpoint that cannot be written or
    does not fit) and its training context (out of memory, full disk, a non-finite loss).
    """
