"""Memory: what the kernel says is available, and whether an exception means "out of memory".

One classifier for every caller (the CLI's one-line message, the distillation loop's failed
status with its fix, the app's messages): NumPy and Python raise :class:`MemoryError`, torch's
CPU allocator a :class:`RuntimeError` saying it "can't allocate memory", CUDA a
``torch.cuda.OutOfMemoryError`` ("CUDA out of memory"). Importable without torch.
"""

from __future__ import annotations

__all__ = ["available_memory_bytes", "is_out_of_memory"]


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the process ran out of memory (host or GPU).

    >>> is_out_of_memory(MemoryError()), is_out_of_memory(RuntimeError("CUDA out of memory. Tried ..."))
    (True, True)
    >>> is_out_of_memory(RuntimeError("shape mismatch")), is_out_of_memory(ValueError("out of memory"))
    (False, False)
    """
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def available_memory_bytes() -> int | None:
    """Memory the kernel says is available now (``MemAvailable`` in ``/proc/meminfo``), or None
    where that cannot be read (then no pre-flight check is made)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
