"""The zoo's exceptions: :class:`ZooError` for anything that could not be fetched, verified,
converted or loaded (its message says what to do), and three narrower kinds of it: an unknown
model name, a model that needs remote code, and a cache folder that cannot be written. They live
apart so every other zoo module can raise them without importing one another.
"""

from __future__ import annotations

from ..errors import ExplorerError

__all__ = ["CacheNotWritableError", "RemoteCodeRefusedError", "UnknownModelError", "ZooError"]


class ZooError(ExplorerError, RuntimeError):
    """A model could not be fetched, verified, converted or loaded; the message says what to do."""


class UnknownModelError(ZooError, ValueError):
    """A name that is neither a zoo model, a Hugging Face id (``org/name``) nor a local folder."""


class RemoteCodeRefusedError(ZooError):
    """The model's config needs code from its repository (``auto_map`` / unknown model type)."""


class CacheNotWritableError(ZooError):
    """A fetch cannot write into the cache (read-only file system, a file where a folder should be,
    no permission); raised before anything is downloaded."""
