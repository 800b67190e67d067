"""The zoo's exceptions: :class:`ZooError` for anything that could not be fetched, verified,
converted or loaded (its message says what to do), and two narrower kinds of it, an unknown model
name and a model that needs remote code. They live apart so every other zoo module can raise them
without importing one another.
"""

from __future__ import annotations

from ..errors import ExplorerError

__all__ = ["RemoteCodeRefusedError", "UnknownModelError", "ZooError"]


class ZooError(ExplorerError, RuntimeError):
    """A model could not be fetched, verified, converted or loaded; the message says what to do."""


class UnknownModelError(ZooError, ValueError):
    """A name that is neither a zoo model, a Hugging Face id (``org/name``) nor a local folder."""


class RemoteCodeRefusedError(ZooError):
    """The model's config needs code from its repository (``auto_map`` / unknown model type)."""
