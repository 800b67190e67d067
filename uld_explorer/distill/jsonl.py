r"""JSON-lines files read back incrementally: :class:`JsonlCache` and the process's :data:`JSONL_CACHE`.

What makes polling a run cheap (:class:`~.rundir.RunDir` reads ``metrics.jsonl`` and
``probe.jsonl`` through it): per file it keeps the identity (device, inode), size and mtime seen
last, the offset parsed so far and the parsed lines, so a read parses only the complete lines
appended since the previous one. Importable without torch.

Examples
--------
>>> import os, tempfile
>>> cache = JsonlCache()
>>> with tempfile.TemporaryDirectory() as d:
...     path = os.path.join(d, "m.jsonl")
...     with open(path, "w") as f:
...         _ = f.write('{"step": 0}\n{"step": 1}\n{"st')  # the last line is being written
...     first = cache.read(path)
...     again = cache.read(path)  # unchanged: nothing parsed
...     with open(path, "a") as f:
...         _ = f.write('ep": 2}\n')
...     print(first, cache.read(path), cache.parsed, cache.hits)
[{'step': 0}, {'step': 1}] [{'step': 0}, {'step': 1}, {'step': 2}] 3 1
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, BinaryIO

__all__ = ["JsonlCache", "JSONL_CACHE"]


@dataclass
class _Seen:
    """What :class:`JsonlCache` knows of one file."""

    ident: tuple[int, int]  # (st_dev, st_ino): a replaced file is another file
    offset: int = 0  # bytes parsed: up to the end of the last complete line
    size: int = -1  # size and mtime when last read (equal again: nothing new)
    mtime_ns: int = -1
    head: bytes = b""  # the first bytes and the bytes just before `offset`: a file rewritten in
    tail: bytes = b""  # place (same inode) most likely no longer has them
    lines: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # complete lines that are not a JSON object
    partial: int = 0  # bytes after the last complete line (a line being written, or cut)


class JsonlCache:
    """Complete lines of JSON-lines files, parsed once each.

    A read stats the file: unchanged size and mtime return the cached lines; a file that grew
    is read from the offset parsed so far (only complete lines: one being written is left for
    the next read); a file that shrank, was replaced (another inode) or no longer starts and ends
    its parsed part with the same bytes (rewritten in place) is read again from the start. Lines
    that are not a JSON object are skipped and counted (:meth:`damage`).
    Thread-safe (the app's sessions poll from threads); at most ``max_files`` files are kept.
    ``parsed`` counts the lines parsed, ``hits`` the reads that parsed nothing.
    """

    TAIL = 64

    def __init__(self, max_files: int = 512):
        self.max_files = max_files
        self.parsed = 0
        self.hits = 0
        self._files: OrderedDict[str, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str | os.PathLike) -> list[dict[str, Any]]:
        """The complete lines of ``path`` as dicts (``[]`` when it does not exist). A new list
        each call; the dicts are shared with the cache (do not modify them)."""
        key = os.path.abspath(path)
        with self._lock:
            seen = self._files.get(key)
            try:
                st = os.stat(key)
                if seen is not None and seen.ident == (st.st_dev, st.st_ino) and \
                        (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns):  # nothing new
                    self.hits += 1
                    self._files.move_to_end(key)
                    return list(seen.lines)
                with open(key, "rb") as f:
                    st = os.fstat(f.fileno())
                    if seen is None or not self._continues(f, seen, st):
                        seen = _Seen((st.st_dev, st.st_ino))
                    self._parse_new(f, seen, st)
            except FileNotFoundError:
                self._files.pop(key, None)
                return []
            self._files[key] = seen
            self._files.move_to_end(key)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
            return list(seen.lines)

    def _parse_new(self, f: BinaryIO, seen: _Seen, st: os.stat_result) -> None:
        """Parse the complete lines after ``seen.offset`` (a line being written waits)."""
        f.seek(seen.offset)
        data = f.read()
        end = data.rfind(b"\n") + 1
        for raw in data[:end].splitlines():
            self.parsed += 1
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                seen.lines.append(obj)
            else:
                seen.skipped += 1
        seen.partial = len(data) - end
        seen.offset += end
        seen.head = (seen.head + data[:end])[:self.TAIL]
        seen.tail = (seen.tail + data[:end])[-self.TAIL:]
        grew_meanwhile = seen.offset + len(data) - end != st.st_size
        seen.size, seen.mtime_ns = (-1, -1) if grew_meanwhile else (st.st_size, st.st_mtime_ns)

    def _continues(self, f: BinaryIO, seen: _Seen, st: os.stat_result) -> bool:
        """Whether ``f`` is the file ``seen`` describes, grown (same inode, at least as long, the
        same first bytes and bytes before the parsed offset)."""
        if seen.ident != (st.st_dev, st.st_ino) or st.st_size < seen.offset:
            return False
        if f.read(len(seen.head)) != seen.head:
            return False
        f.seek(seen.offset - len(seen.tail))
        return f.read(len(seen.tail)) == seen.tail

    def damage(self, path: str | os.PathLike) -> tuple[int, int]:
        """``(skipped, partial)`` of ``path`` as last read: complete lines that were not a JSON
        object (left out), and the bytes of a last line without its newline (one being written,
        or one cut when its writer died); ``(0, 0)`` for a file not read."""
        with self._lock:
            seen = self._files.get(os.path.abspath(path))
            return (seen.skipped, seen.partial) if seen is not None else (0, 0)

    def forget(self, path: str | os.PathLike) -> None:
        with self._lock:
            self._files.pop(os.path.abspath(path), None)


#: The process's cache of every run's metrics.jsonl and probe.jsonl.
JSONL_CACHE = JsonlCache()
