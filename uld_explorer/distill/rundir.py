"""The run directory contract, owned by :class:`RunDir`: nobody else opens these files.

One job: a run directory's files (config, metrics, probe, status, launch, log, lock, checkpoints),
written and read back here and nowhere else, and the training context that writes the statuses.

::

    <runs>/<name>/
        config.json        {"config": DistillConfig as a dict, "preset": ..., "created": ..., "data": ...}
        metrics.jsonl      one strict-JSON object per line, appended, flushed and fsynced every step:
                           step, loss, its parts (ce, uld, kl, hybrid), uld_bound, hybrid_bound, grad_norm, lr,
                           tokens_per_s, elapsed_s; on eval steps also eval_loss, eval_ce,
                           eval_uld, eval_uld_bound, eval_kl_shared, eval_top1 (held-out
                           answers) and seen_loss, seen_ce, seen_uld, seen_top1 (the first
                           eval_prompts training answers)
        probe.jsonl        per eval step: the probe prompt's top-k next tokens, student and teacher
        status.json        state (running | finished | stopped | failed), the trainer's identity
                           (pid, pid_start, command: :mod:`.process`), step, message
        launch.json        runs started by :mod:`.launch` (the app): the last launch (its process's
                           identity, started, resume, preset, its validated config: the file the
                           process reads with ``--config``), so that a run is listed ("starting")
                           before its process has written config.json
        log.txt            runs started by :mod:`.launch`: the process's output
        heldout.json       a finished run's per-prompt held-out scores (:mod:`.scores`), written by an
                           experiment (:mod:`.experiment`): the checkpoint scored, each score per prompt,
                           the student's greedy answers
        trainer.lock       the trainer's lock (``flock``), held from before it reads anything until it
                           exits (the OS drops it when the process dies); it says who holds it
        checkpoints/step-000040/   model.safetensors + config.json (transformers), tokenizer files,
                                   optimizer.safetensors, trainer.json (step, elapsed time, and the
                                   size and sha256 of every other file: the checkpoint's manifest)
        final/             a finished run's student as a Hugging Face folder (``from_pretrained``)
                           with its model card, README.md (:mod:`.card`)
        tensorboard/, metrics.csv   with ``report_to`` (:mod:`.trackers`)

Line ``step = s`` describes the student after ``s`` optimizer steps (``s = 0``: the start): the
loss of batch ``s`` before its update, and on eval steps the held-out metrics.

Reading back is cheap enough to poll: the JSON-lines files go through
:data:`~.jsonl.JSONL_CACHE` (per file: its identity, size and mtime, the offset read so far),
so a read parses only the lines appended since the last one; a partly written last line waits
until it is complete, and a file that shrank or was replaced (a resumed run rewrites its
metrics) is read again from the start.
``config.json`` is cached the same way. Writes are atomic (a temporary name, then a rename) or
appends of whole lines. :meth:`RunDir.training` wraps the training loop: it writes the statuses
and turns failures into one :class:`~.errors.DistillError` naming the fix.

What a run directory guarantees:

- **One trainer per run** (:meth:`RunDir.lock`): a second trainer, or a resume of a run still
  training, is refused with one line naming the holder (pid, command, since when).
- **A pid is trusted only with its identity**: a status ``running`` whose trainer is gone, or
  whose pid now names another process (:func:`~.process.check`), reads as ``stale`` and is never
  signalled.
- **A checkpoint is verified before it is resumed** (:meth:`RunDir.resume_checkpoint`): a damaged
  or truncated newest one is set aside and the newest complete one is used, and said so.
- **Nothing is overwritten on a guess** (:meth:`RunDir.check_new`): a new run starts only in a
  folder that is empty, missing, or holds nothing but what a launch leaves (``launch.json``,
  ``log.txt``, the lock), unless forced.

Importable without torch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..jsonsafe import dumps
from ..memory import is_out_of_memory
from .config import DistillConfig
from .errors import DistillError
from .jsonl import JSONL_CACHE
from .process import GONE, OTHER, SAME, UNKNOWN, check, describe, identity, pid_alive

__all__ = ["RunDir", "Training", "StopFlag", "STATES", "STALE", "pid_alive", "LAUNCH_GRACE_S"]

#: What status.json's ``state`` can say.
STATES = ("running", "finished", "stopped", "failed")
#: What :meth:`RunDir.status` reads a ``running`` status as when its trainer is gone or its pid
#: names another process now: never signalled; resume it.
STALE = "stale"
#: A launch record written before its process has a pid counts as alive this long (seconds).
LAUNCH_GRACE_S = 30.0


# ---------------------------------------------------------------------------- small JSON files


_JSON_CACHE: dict[str, tuple[tuple[int, int, int, int], dict[str, Any] | None]] = {}
_JSON_LOCK = threading.Lock()


def _read_json(path: Path, cached: bool = False) -> dict[str, Any] | None:
    """A JSON object file, None when missing or not an object; ``cached``: parsed again only when
    its inode, size or mtime changed (``config.json``, written once, rewritten on resume)."""
    key = str(path.absolute())
    try:
        st = path.stat()
    except OSError:
        return None
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if cached:
        with _JSON_LOCK:
            hit = _JSON_CACHE.get(key)
        if hit is not None and hit[0] == ident:
            return hit[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    data = data if isinstance(data, dict) else None
    if cached:
        with _JSON_LOCK:
            _JSON_CACHE[key] = (ident, data)
    return data


def _write_json(path: Path, data: dict[str, Any], indent: int | None = None) -> None:
    """Strict JSON, written under a temporary name, then renamed: readers see all or nothing."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(data, indent=indent), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- the run directory


class RunDir:
    """One run directory (see the module's docstring): what a run writes and reads back.

    Parameters
    ----------
    path : path
        The directory (created by the first write).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     run = RunDir(d)
    ...     run.append_metrics({"step": 0, "loss": float("nan")})
    ...     run.metrics()
    [{'step': 0, 'loss': None}]
    """

    CONFIG, METRICS, PROBE, STATUS = "config.json", "metrics.jsonl", "probe.jsonl", "status.json"
    LAUNCH, LOG, CHECKPOINTS, LOCK = "launch.json", "log.txt", "checkpoints", "trainer.lock"
    FINAL = "final"
    HELDOUT = "heldout.json"
    #: What a run leaves in its folder before its first step (a new run may start beside them).
    BEFORE_START = (LAUNCH, LOG, LOCK)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------ config.json

    def record(self) -> dict[str, Any] | None:
        """``config.json`` as written (cached: parsed again only when it changed); None without one."""
        return _read_json(self.path / self.CONFIG, cached=True)

    def write_record(self, record: dict[str, Any]) -> None:
        """Write ``config.json`` (atomically)."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.path / self.CONFIG, record, indent=1)

    def check_folder(self) -> None:
        """``DistillError`` when the path exists and is not a folder (a file)."""
        if self.path.exists() and not self.path.is_dir():
            raise DistillError(f"--run-dir {self.path} is a file, not a folder: give the run's folder (a new one is "
                               f"created)")

    def is_run(self) -> bool:
        """Whether ``config.json`` is a run's (a JSON object with a ``"config"`` object)."""
        rec = self.record()
        return rec is not None and isinstance(rec.get("config"), dict)

    def foreign_files(self) -> list[str]:
        """The names in the folder that a new run would overwrite on a guess: everything but
        what a run leaves before its first step (:data:`BEFORE_START`, their ``.tmp``); ``[]``
        for an empty or missing folder.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     for name in ("log.txt", "metrics.jsonl", "notes.txt"):
        ...         _ = (Path(d) / name).write_text("mine")
        ...     RunDir(d).foreign_files()
        ['metrics.jsonl', 'notes.txt']
        """
        try:
            names = sorted(os.listdir(self.path))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [n for n in names if n.removesuffix(".tmp") not in self.BEFORE_START]

    def check_new(self, force: bool = False) -> None:
        """A new run may start here: the folder is missing, empty, or holds only what a run leaves
        before its first step; with ``force``, other files too (the run's own names among them
        are replaced).

        Raises
        ------
        DistillError
            The path is a file; the folder holds a run (``--resume`` continues it; ``force`` does
            not replace it); it holds files the runner did not write (named), without ``force``.
        """
        self.check_folder()
        if self.is_run():
            raise DistillError(f"{self.path} already holds a run: pass --resume to continue it, or choose another "
                               f"--run-dir")
        foreign = self.foreign_files()
        if foreign and not force:
            shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
            raise DistillError(f"{self.path} holds files this runner did not write ({shown}): a new run would "
                               f"overwrite them; choose another --run-dir, or pass --force to start the run there "
                               f"anyway")

    def taken(self) -> bool:
        """Whether the directory holds a run or a launch of one."""
        return (self.path / self.CONFIG).exists() or (self.path / self.LAUNCH).exists()

    def resumed(self, max_steps: int | None = None) -> tuple[DistillConfig, str | None]:
        """The run's own config (``max_steps`` replaced when given) and preset: what a resumed run
        trains with. The one reader of a run's config for resuming (the CLI, the loop, launches).

        Raises
        ------
        DistillError
            Nothing to resume: the path is a file, or has no ``config.json``, or its ``config.json``
            is not JSON, not a run's, or holds a config that is not valid (the message names the
            file and what is wrong).
        ValueError
            ``max_steps`` is not a number of steps.
        """
        self.check_folder()
        path = self.path / self.CONFIG
        if not path.exists():
            raise DistillError(f"nothing to resume in {self.path}: it never got to its first step (no config.json); "
                               f"start a new run")
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise DistillError(f"cannot read {path} ({err.strerror or err}): nothing to resume") from None
        except ValueError as err:
            raise DistillError(f"{path} is not JSON ({err}): not a run's config.json, nothing to resume") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict):
            raise DistillError(f"{path} is not a run's config.json (it has no \"config\" object of DistillConfig "
                               f"fields): nothing to resume in {self.path}")
        try:
            DistillConfig.from_dict(rec["config"])
        except (TypeError, ValueError) as err:
            raise DistillError(f"{path} holds a config that is not valid: {err}") from None
        changes = {} if max_steps is None else {"max_steps": max_steps}
        return DistillConfig.from_dict({**rec["config"], **changes}), rec.get("preset")

    # ------------------------------------------------------------ metrics.jsonl, probe.jsonl

    def _append(self, name: str, obj: dict[str, Any]) -> None:
        line = dumps(obj)
        with open(self.path / name, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append_metrics(self, line: dict[str, Any]) -> None:
        """Append one strict-JSON line (NaN/inf -> null) to ``metrics.jsonl``, flushed and fsynced."""
        self._append(self.METRICS, line)

    def append_probe(self, record: dict[str, Any]) -> None:
        """Append one probe record to ``probe.jsonl``, flushed and fsynced."""
        self._append(self.PROBE, record)

    def metrics(self) -> list[dict[str, Any]]:
        """The complete lines of ``metrics.jsonl`` (a partly written last line is left out)."""
        return JSONL_CACHE.read(self.path / self.METRICS)

    def metrics_damage(self, live: bool) -> str:
        """What :meth:`metrics` left out of ``metrics.jsonl``, in words ("" when nothing): lines that
        are not JSON, and, unless the run is ``live`` (its last line may be being written), a last
        line without its newline (cut when the trainer died)."""
        skipped, partial = JSONL_CACHE.damage(self.path / self.METRICS)
        n = skipped + (1 if partial and not live else 0)
        if not n:
            return ""
        return (f"{n} line{'s' if n > 1 else ''} of {self.METRICS} skipped (not JSON"
                f"{'; the last one cut short, its trainer stopped mid-write' if partial and not live else ''})")

    def probe(self) -> list[dict[str, Any]]:
        """The complete records of ``probe.jsonl``."""
        return JSONL_CACHE.read(self.path / self.PROBE)

    def truncate(self, below_step: int) -> None:
        """Keep only the metrics and probe lines with ``step < below_step`` (a resumed run writes
        the rest again); each file is rewritten under a temporary name, then renamed."""
        def step(d: dict[str, Any]) -> float:
            try:
                return int(d["step"])
            except (KeyError, TypeError, ValueError):
                return math.inf  # not a step line of a run: dropped

        for name in (self.METRICS, self.PROBE):
            path = self.path / name
            if not path.exists():
                continue
            kept = [d for d in JSONL_CACHE.read(path) if step(d) < below_step] if below_step > 0 else []
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(dumps(d) + "\n" for d in kept)
            os.replace(tmp, path)

    # ------------------------------------------------------------ status.json, launch.json, log.txt

    def write_status(self, state: str, **fields: Any) -> None:
        """``status.json``: ``state`` (one of :data:`STATES`), this process's identity (pid, its
        start time and command: :func:`~.process.identity`), the time, ``fields``."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)} (got {state!r})")
        _write_json(self.path / self.STATUS, {"state": state, **identity(), "updated": time.time(), **fields})

    def status(self) -> dict[str, Any]:
        """``status.json`` as written, but a ``running`` one is checked against its process
        (:func:`~.process.check`, the verdict under ``"process"``): gone, or its pid now another
        process's, it reads as :data:`STALE` with a message saying so (it is never signalled:
        resume it); ``unknown`` (no ``/proc``) stays running, with a message that it cannot be
        checked. ``{"state": "unknown"}`` without a status."""
        st = _read_json(self.path / self.STATUS)
        if st is None:
            return {"state": "unknown", "message": "no status.json"}
        if st.get("state") != "running":
            return st
        verdict = check(st)
        st = {**st, "process": verdict}
        if verdict == GONE:
            st.update(state=STALE, message=f"its trainer (pid {st.get('pid')}) is gone (killed, out of memory, or the "
                                           f"machine restarted): resume it from its last checkpoint")
        elif verdict == OTHER:
            now = describe(identity(st.get("pid")), width=40)
            st.update(state=STALE, message=f"its trainer is gone: {now} is another process now, never signalled; "
                                           f"resume the run from its last checkpoint")
        elif verdict == UNKNOWN and not st.get("message"):
            st["message"] = (f"whether pid {st.get('pid')} is still its trainer cannot be checked here (no /proc, or a "
                             f"status.json without the process's start time): it is not signalled")
        return st

    def write_launch(self, record: dict[str, Any]) -> None:
        """``launch.json`` (atomically): a launch of this run (:mod:`.launch`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.path / self.LAUNCH, record, indent=1)

    def launch(self) -> dict[str, Any]:
        """``launch.json`` (``{}`` for a run started from the command line), plus ``process``
        (:func:`~.process.check` of the process it names) and ``alive``: whether that process is
        still this launch's (``same``; ``unknown``: the pid exists; a record without a pid yet:
        for :data:`LAUNCH_GRACE_S` seconds after it was written)."""
        launch = _read_json(self.path / self.LAUNCH) or {}
        if not launch:
            return {}
        if launch.get("pid") is None:
            return {**launch, "process": UNKNOWN,
                    "alive": time.time() - float(launch.get("started", 0.0)) < LAUNCH_GRACE_S}
        verdict = check(launch)
        alive = verdict == SAME or (verdict == UNKNOWN and pid_alive(launch["pid"]))
        return {**launch, "process": verdict, "alive": alive}

    def remove_launch(self) -> None:
        (self.path / self.LAUNCH).unlink(missing_ok=True)

    def open_log(self) -> BinaryIO:
        """``log.txt`` opened for appending (binary): a launched process's output."""
        self.path.mkdir(parents=True, exist_ok=True)
        return open(self.path / self.LOG, "ab")

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of ``log.txt`` (progress-bar redraws dropped); ``""`` without one."""
        try:
            with open(self.path / self.LOG, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        kept = [ln.rsplit("\r", 1)[-1].rstrip() for ln in text.split("\n")]
        return "\n".join([ln for ln in kept if ln][-lines:])

    # ------------------------------------------------------------ heldout.json

    def write_heldout(self, record: dict[str, Any]) -> None:
        """Write ``heldout.json`` (strict JSON, atomically): the per-prompt held-out scores of the
        run's final checkpoint (:func:`~.experiment.score_student`)."""
        _write_json(self.path / self.HELDOUT, record)

    def heldout(self) -> dict[str, Any] | None:
        """``heldout.json`` as written; None without one (or not a JSON object)."""
        return _read_json(self.path / self.HELDOUT)

    # ------------------------------------------------------------ trainer.lock

    @contextmanager
    def lock(self, main: bool = True) -> Iterator[None]:
        """Hold the run's trainer lock for the block: one trainer per run directory.

        An OS file lock (``flock``, exclusive, not waiting) on ``trainer.lock``, which then records
        the holder (its identity and since when) for the message a second trainer gets. The OS
        drops the lock when the process dies, whatever kills it. Under DDP only the main process
        (``main``) locks: the others write nothing. A lock file created here in a folder that holds
        no run afterwards (refused, or failed before its first step) is removed again, and so is
        the folder if the lock created it and it is empty.

        Raises
        ------
        DistillError
            The path is a file; another process holds the lock (the message names it and says
            what to do).
        """
        if not main:
            yield
            return
        import fcntl

        self.check_folder()
        path = self.path / self.LOCK
        created = {"folder": not self.path.exists(), "file": not path.exists()}
        for _ in range(5):  # a folder removed between mkdir and open, or a lock file replaced: again
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DistillError(self.held_message()) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise DistillError(f"could not lock {path}: it keeps being replaced")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, dumps({**identity(), "since": time.time()}).encode("utf-8"))
            yield
        finally:
            try:
                os.ftruncate(fd, 0)
                if created["file"] and not self.taken():
                    os.unlink(path)  # still locked: a trainer that opened it meanwhile tries again
                    if created["folder"] and not os.listdir(self.path):
                        os.rmdir(self.path)
            except OSError:
                pass
            os.close(fd)  # releases the lock

    def held_message(self) -> str:
        """Who holds the trainer lock (``trainer.lock``) and what to do: the refusal's message."""
        holder = _read_json(self.path / self.LOCK) or {}
        if holder.get("pid"):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("since", 0.0))))
            who = f"{describe(holder)}, since {since}"
        else:
            who = "a process that has not said which yet"
        return (f"{self.path} is in use: another trainer holds its lock ({who}); wait for it to finish, or stop it "
                f"(Ctrl-C where it runs, or Stop on the app's Distillation page), then resume with --resume")

    # ------------------------------------------------------------ checkpoints

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (those with ``trainer.json``), oldest first."""
        root = self.path / self.CHECKPOINTS
        if not root.is_dir():
            return []
        found = [p for p in root.iterdir()
                 if p.is_dir() and p.name.startswith("step-") and (p / "trainer.json").is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    @staticmethod
    def checkpoint_problem(ckpt: Path) -> str | None:
        """What is wrong with checkpoint ``ckpt`` (None: it is complete): ``trainer.json``
        unreadable, or a file of its manifest missing, of another size, or of another sha256 than
        written. A checkpoint written before manifests needs its model and optimizer files."""
        from ..zoo.cache import sha256_file

        try:
            trainer = json.loads((ckpt / "trainer.json").read_text(encoding="utf-8"))
            int(trainer["step"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"trainer.json is not readable ({type(err).__name__}: {err})"
        files = trainer.get("files")
        if not isinstance(files, dict):  # an older checkpoint: no manifest
            files = {name: None for name in ("model.safetensors", "optimizer.safetensors")}
        for name, want in files.items():
            try:
                size = (ckpt / name).stat().st_size
            except OSError:
                return f"{name} is missing"
            if want is None:
                continue
            if size != want.get("bytes"):
                return f"{name} has {size:,} bytes where {want.get('bytes'):,} were written (truncated?)"
            if sha256_file(ckpt / name) != want.get("sha256"):
                return f"{name} is not what was written (its sha256 differs)"
        return None

    def resume_checkpoint(self) -> tuple[Path | None, list[tuple[Path, str]]]:
        """The checkpoint a resumed run continues from: the newest complete one
        (:meth:`checkpoint_problem`), and the newer ones passed over, each with what is wrong. A
        half-written checkpoint (``.step-N.tmp``, left by a trainer killed while writing it) is
        removed: only the lock holder calls this.
        ``(None, [])`` when the run has no checkpoint (it resumes from step 0).

        Raises
        ------
        DistillError
            Checkpoints exist but none is complete (each named with what is wrong).
        """
        for half in (self.path / self.CHECKPOINTS).glob(".step-*.tmp"):  # a write its trainer died in (kill -9)
            shutil.rmtree(half, ignore_errors=True)
        damaged: list[tuple[Path, str]] = []
        for ckpt in reversed(self.checkpoints()):
            problem = self.checkpoint_problem(ckpt)
            if problem is None:
                return ckpt, damaged
            damaged.append((ckpt, problem))
        if damaged:
            what = "; ".join(f"{c.name}: {why}" for c, why in damaged)
            raise DistillError(f"no complete checkpoint to resume in {self.path / self.CHECKPOINTS} ({what}); start a "
                               f"new run (another --run-dir)")
        return None, []

    def set_aside(self, ckpt: Path) -> Path:
        """Rename a damaged checkpoint to ``checkpoints/damaged-step-NNNNNN[-k]`` (kept for a look,
        never listed, never pruned); returns its new path."""
        for k in range(1, 1000):
            aside = ckpt.with_name(f"damaged-{ckpt.name}" + (f"-{k}" if k > 1 else ""))
            if not aside.exists():
                os.replace(ckpt, aside)
                return aside
        raise DistillError(f"too many damaged copies of {ckpt.name} in {ckpt.parent}: delete some")

    def write_final(self, checkpoint: Path, card: str) -> Path:
        """``final/``: the trained student as a Hugging Face folder (``from_pretrained`` loads it:
        the safetensors weights, config and tokenizer of ``checkpoint``, the last one, hard-linked,
        not copied, where the file system allows) with ``README.md``, its model card. Written under
        a temporary name, then renamed (a resumed run that finishes again replaces it)."""
        final, tmp = self.path / self.FINAL, self.path / f".{self.FINAL}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in checkpoint.iterdir():
            if f.is_file() and f.name not in ("optimizer.safetensors", "trainer.json"):
                try:
                    os.link(f, tmp / f.name)
                except OSError:  # another file system, or no hard links: a copy
                    shutil.copy2(f, tmp / f.name)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final

    def save_checkpoint(self, step: int, model: Any, opt: Any, tokenizer: Any, trainer: dict[str, Any],
                        keep: int, model_state: dict[str, Any] | None = None) -> Path:
        """Write ``checkpoints/step-NNNNNN`` (the model and tokenizer as a transformers folder, the
        optimizer with :meth:`write_optimizer`; ``model_state`` and ``opt`` given as state dicts
        when the live ones are sharded, :mod:`.sharding`), ``trainer`` as ``trainer.json`` with the manifest
        of the other files: their sizes and sha256) under a temporary name, then rename it: a
        checkpoint exists complete or not at all, and a later damage is found by
        :meth:`checkpoint_problem`. Older ones beyond ``keep`` are deleted afterwards.

        Raises
        ------
        DistillError
            The write failed (e.g. a full disk); the message names the last good checkpoint.
        """
        from ..zoo.cache import file_record
        from ..zoo.hf import transformers_progress

        root = self.path / self.CHECKPOINTS
        final, tmp = root / f"step-{step:06d}", root / f".step-{step:06d}.tmp"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            with transformers_progress(False):  # no "Writing model shards" bar at every checkpoint
                model.save_pretrained(tmp, safe_serialization=True,
                                      **({"state_dict": model_state} if model_state is not None else {}))
            tokenizer.save_pretrained(tmp)
            self.write_optimizer(opt, tmp / "optimizer.safetensors")
            (tmp / "trainer.json").write_text(dumps({**trainer, "files": file_record(tmp)}), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            last = self.latest_checkpoint()
            raise DistillError(f"could not write the checkpoint of step {step} in {root} ({err.strerror or err}); "
                               f"the last good checkpoint is {last.name if last else 'none'}. Free disk space, then "
                               f"resume with --resume") from None
        for old in self.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def write_optimizer(self, opt: Any, path: Path) -> None:
        """The optimizer's state (``opt``: an optimizer or its ``state_dict()``) in safetensors: its
        tensors, with the param groups and the scalar state in the metadata."""
        import torch
        from safetensors.torch import save_file

        sd = opt if isinstance(opt, dict) else opt.state_dict()
        tensors, scalars = {}, {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
                else:
                    scalars[f"{pid}.{k}"] = v
        save_file(tensors, str(path), metadata={"param_groups": json.dumps(sd["param_groups"]),
                                                "scalars": json.dumps(scalars)})

    def load_optimizer(self, ckpt: Path, opt: Any) -> None:
        """Load a checkpoint's optimizer state (:meth:`write_optimizer`) into ``opt``."""
        opt.load_state_dict(self.read_optimizer(ckpt))

    def read_optimizer(self, ckpt: Path) -> dict[str, Any]:
        """A checkpoint's optimizer state (:meth:`write_optimizer`) as ``opt.state_dict()`` gives it."""
        from safetensors import safe_open

        state: dict[int, dict[str, Any]] = {}
        with safe_open(str(ckpt / "optimizer.safetensors"), "pt") as f:
            meta = f.metadata()
            for key in f.keys():
                pid, name = key.split(".", 1)
                state.setdefault(int(pid), {})[name] = f.get_tensor(key)
        for key, v in json.loads(meta["scalars"]).items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = v
        return {"state": state, "param_groups": json.loads(meta["param_groups"])}

    def load_model(self, ckpt: Path, model: Any) -> tuple[int, float]:
        """Load a checkpoint's ``model.safetensors`` into ``model`` (tied weights may be absent);
        returns its ``(step, elapsed_s)`` (``trainer.json``).

        Raises
        ------
        DistillError
            The checkpoint does not fit the model (the run's config changed?).
        """
        from safetensors.torch import load_file

        sd = load_file(str(ckpt / "model.safetensors"))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
        if unexpected or set(missing) - tied:
            raise DistillError(f"checkpoint {ckpt} does not fit the student (missing {sorted(missing)[:3]}, "
                               f"unexpected {sorted(unexpected)[:3]}): the run's config changed?")
        if tied:
            model.tie_weights()
        trainer = json.loads((ckpt / "trainer.json").read_text(encoding="utf-8"))
        return int(trainer["step"]), float(trainer.get("elapsed_s", 0.0))

    # ------------------------------------------------------------ a training session

    @contextmanager
    def training(self, config: DistillConfig, *, preset: str | None = None, data: dict[str, Any] | None = None,
                 resume: bool = False, start: int = 0, checkpoint: Path | None = None,
                 damaged: list[tuple[Path, str]] | None = None, main: bool = True, world: int = 1,
                 device: Any = "cpu") -> Iterator[Training]:
        """Around the training loop: writes the run's start (``config.json``: a new run's config,
        ``preset`` and ``data``, or with ``resume`` the run's own with the new ``max_steps``;
        metrics and probe lines from ``start`` on dropped; status running), then its end
        (finished, or stopped: "continue with --resume"), and on a failure status failed with
        one message naming the fix, raised as a ``DistillError``:

        - a ``DistillError`` (e.g. a checkpoint that could not be written, a non-finite loss): as is;
        - out of memory (:func:`~uld_explorer.memory.is_out_of_memory`): lower ``--batch-size``;
        - an ``OSError`` (a full disk): free space; the last good checkpoint is kept;
        - anything else: status failed with its type and message, re-raised.

        SIGINT / SIGTERM ask the loop to stop after the current step (:attr:`Training.stop_requested`).
        Only the main process (``main``) writes; ``start`` / ``checkpoint``: where a resumed run
        continues from; ``damaged``: the newer checkpoints :meth:`resume_checkpoint` passed over,
        set aside here (:meth:`set_aside`) and said in :attr:`Training.note` and the status.
        """
        session = Training(self, config, start=start, checkpoint=checkpoint, main=main, world=world, device=device)
        try:
            with session.stop_flag:
                if main:
                    rec = self.record() if resume else None
                    self.write_record({**rec, "config": {**rec["config"], "max_steps": config.max_steps}} if rec else
                                      {"config": config.to_dict(), "preset": preset, "created": time.time(),
                                       "data": data or {}})
                    self.truncate(start)
                    if damaged:
                        why = "; ".join(f"{c.name} is damaged ({problem}), set aside as "
                                        f"{self.set_aside(c).relative_to(self.path)}" for c, problem in damaged)
                        session.note = f"resuming from {session.checkpoint_name} (step {start}): {why}"
                    session.write_status("running", step=start, message=session.note)
                yield session
        except (RuntimeError, MemoryError) as err:  # a DistillError too
            if isinstance(err, DistillError) or not is_out_of_memory(err):
                session.write_status("failed", message=str(err) if isinstance(err, DistillError) else
                                     f"{type(err).__name__}: {err}")
                raise
            msg = (f"out of memory at step {session.step} ({type(err).__name__}); the last good checkpoint is "
                   f"{session.checkpoint_name}. Lower --batch-size (now {config.batch_size}) or the student's size, "
                   f"then resume with --resume")
            session.write_status("failed", message=msg)
            raise DistillError(msg) from None
        except OSError as err:
            msg = (f"could not write to {self.path} ({err.strerror or err}); the last good checkpoint is "
                   f"{session.checkpoint_name}. Free disk space, then resume with --resume")
            try:
                session.write_status("failed", message=msg)
            except OSError:
                pass
            raise DistillError(msg) from None
        except Exception as err:
            session.write_status("failed", message=f"{type(err).__name__}: {err}")
            raise
        session.end()


class StopFlag:
    """SIGINT / SIGTERM ask the loop to stop after the current step (checkpoint, then exit); a
    second Ctrl-C interrupts at once. Outside the main thread (a notebook thread, Streamlit) no
    handler is installed."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
            pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


class Training:
    """What :meth:`RunDir.training` yields: the loop walks :meth:`steps`, reports checkpoints
    through :meth:`save_checkpoint` and losses through :meth:`check_finite`; after the block,
    :attr:`state` is ``finished`` or ``stopped`` and :attr:`checkpoint` the last one saved."""

    def __init__(self, run: RunDir, config: DistillConfig, *, start: int, checkpoint: Path | None, main: bool,
                 world: int, device: Any):
        self.run, self.config, self.start = run, config, start
        self.step = start
        self.checkpoint = checkpoint
        self.main, self.world, self.device = main, world, str(device)
        self.state = "running"
        self.stopped = False
        self.stop_flag = StopFlag()
        self.note = ""  # what the start had to say (a damaged checkpoint passed over)

    @property
    def stop_requested(self) -> bool:
        """Whether SIGINT or SIGTERM asked to stop (finish the step, checkpoint, exit)."""
        return self.stop_flag.requested

    @property
    def checkpoint_name(self) -> str:
        return self.checkpoint.name if self.checkpoint is not None else "none"

    def steps(self) -> Iterator[int]:
        """``start .. max_steps``; ends early, before a step, when a stop was asked for."""
        for step in range(self.start, self.config.max_steps + 1):
            if self.stop_requested:  # (before the first step: nothing new to save)
                self.stopped = True
                return
            self.step = step
            yield step

    def check_finite(self, loss: float) -> None:
        """``DistillError`` (lower --lr, resume) when the loss is NaN or infinite."""
        if not math.isfinite(loss):
            raise DistillError(f"the loss is {loss} at step {self.step}: training diverged; lower --lr (now "
                               f"{self.config.lr:g}) and resume from the last checkpoint with --resume, or start again")

    def save_checkpoint(self, step: int, model: Any, opt: Any, tokenizer: Any, elapsed: float,
                        model_state: dict[str, Any] | None = None) -> None:
        """The main process saves the checkpoint of the student after ``step`` updates
        (:meth:`RunDir.save_checkpoint`) and reports it in status.json."""
        if not self.main:
            return
        self.checkpoint = self.run.save_checkpoint(step, model, opt, tokenizer, {"step": step, "elapsed_s": elapsed},
                                                   self.config.keep_checkpoints, model_state)
        self.write_status("running", step=step)

    def write_status(self, state: str, *, step: int | None = None, message: str = "") -> None:
        if self.main:
            self.run.write_status(state, step=self.step if step is None else step, max_steps=self.config.max_steps,
                                  world=self.world, device=self.device, message=message)

    def end(self) -> None:
        """The loop ended without an error: finished, or stopped (its step is the checkpoint's:
        the updates done; the last line logged is one before)."""
        self.state = "stopped" if self.stopped else "finished"
        if self.stopped:
            done = int(self.checkpoint.name.split("-")[1]) if self.checkpoint is not None else self.step
            self.write_status("stopped", step=done, message=f"stopped at step {done}: continue with --resume")
        else:
            self.write_status("finished")
