"""A process's identity, so that a recorded pid is trusted only while it names the same process.

A pid alone is not an identity: once a process has exited, the kernel hands its number to a later
process. A run therefore records its trainer (in ``status.json``, and a background launch in
``launch.json``) as ``{"pid", "pid_start", "command"}``: the pid, when that process started
(``/proc/<pid>/stat`` field 22, clock ticks since boot: a reused pid starts later) and its command
line (``/proc/<pid>/cmdline``). :func:`check` compares a record with what the pid names now:

- ``same``: the pid, its start time and its command all match: the recorded process;
- ``gone``: no such process any more (or a zombie: exited, not yet reaped);
- ``other``: the pid belongs to another process now (another start time or command, or another
  user's process);
- ``unknown``: cannot be told (no ``/proc``, e.g. not Linux; or a record without start time and
  command, written by an older version).

Only ``same`` is ever signalled (:func:`signal_if_same`). Importable without torch.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Mapping

__all__ = ["SAME", "GONE", "OTHER", "UNKNOWN", "identity", "check", "pid_alive", "signal_if_same", "describe"]

SAME, GONE, OTHER, UNKNOWN = "same", "gone", "other", "unknown"

_SELF: dict[str, Any] = {}


def _proc(pid: int) -> tuple[int | None, list[str] | None]:
    """``(start time in clock ticks, command line)`` of ``pid`` from ``/proc``; ``(None, None)``
    where ``/proc`` cannot tell. ``FileNotFoundError`` / ``ProcessLookupError``: no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            raise  # /proc is there: the process is not
        return None, None
    except OSError:
        return None, None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; starttime is field 22
    fields = stat.rsplit(b")", 1)[-1].split()
    start = int(fields[19]) if len(fields) > 19 else None
    command = [a.decode("utf-8", "surrogateescape") for a in cmdline.split(b"\0")[:-1]] or None
    return start, command


def identity(pid: int | None = None) -> dict[str, Any]:
    """``{"pid", "pid_start", "command"}`` of process ``pid`` (default: this one); ``pid_start``
    and ``command`` are None where ``/proc`` cannot tell (then :func:`check` says ``unknown``).

    >>> me = identity()
    >>> me["pid"] == os.getpid() and check(me) in (SAME, UNKNOWN)
    True
    """
    if pid is None:
        if _SELF.get("pid") != os.getpid():  # computed once per process (again after a fork)
            _SELF.clear()
            _SELF.update(identity(os.getpid()))
        return dict(_SELF)
    try:
        start, command = _proc(int(pid))
    except OSError:
        start, command = None, None
    return {"pid": int(pid), "pid_start": start, "command": command}


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie (exited, not yet reaped). Says nothing
    about WHICH process it is: :func:`check` does."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[:1] != [b"Z"]
    except OSError:
        return True


def check(record: Mapping[str, Any]) -> str:
    """Whether ``record`` (``{"pid", "pid_start", "command"}``) still names a live process:
    ``same``, ``gone``, ``other`` or ``unknown`` (see the module's docstring)."""
    try:
        pid = int(record.get("pid") or 0)
    except (TypeError, ValueError):
        return GONE
    if pid <= 0:
        return GONE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return GONE
    except PermissionError:
        return OTHER  # another user's process: never this user's run
    except OSError:
        return UNKNOWN
    if not pid_alive(pid):
        return GONE
    want_start, want_command = record.get("pid_start"), record.get("command")
    try:
        start, command = _proc(pid)
    except OSError:
        return GONE
    if start is None or command is None:
        return UNKNOWN
    if want_start is None or not want_command:
        return UNKNOWN
    return SAME if (start == want_start and command == list(want_command)) else OTHER


def signal_if_same(record: Mapping[str, Any], sig: int = signal.SIGINT) -> bool:
    """Send ``sig`` to the process ``record`` names, only if :func:`check` says it is the same one;
    returns whether it was sent. On Linux the pid is pinned first (``pidfd_open``), so the signal
    reaches the process that was checked even if it exits and its pid is reused meanwhile."""
    pid = int(record.get("pid") or 0)
    if pid <= 0:
        return False
    try:
        pidfd = os.pidfd_open(pid)  # type: ignore[attr-defined]  # Linux >= 5.3, Python >= 3.9
    except (AttributeError, OSError):
        pidfd = None
    try:
        if check(record) != SAME:
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)  # type: ignore[attr-defined]
        else:
            os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def describe(record: Mapping[str, Any], width: int = 100) -> str:
    """``pid N (`command`)``, the command shortened to about ``width`` characters.

    >>> describe({"pid": 12, "command": ["python", "-m", "uld_explorer.cli", "distill"]})
    'pid 12 (`python -m uld_explorer.cli distill`)'
    """
    import shlex

    command = record.get("command")
    text = shlex.join(command) if command else ""
    if len(text) > width:
        text = text[: width - 3] + "..."
    return f"pid {record.get('pid')}" + (f" (`{text}`)" if text else "")
