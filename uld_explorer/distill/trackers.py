"""Where a run's numbers go besides its own ``metrics.jsonl``: Accelerate's trackers.

:data:`~.config.REPORT_TO` is the registry (``DistillConfig.report_to``, the CLI's ``--report-to``):

- ``none``: only ``metrics.jsonl`` (what the app, ``runs list`` and the notebooks read);
- ``tensorboard``: Accelerate's TensorBoard tracker, event files in ``<run>/tensorboard/``
  (``tensorboard --logdir <run>``), every number of every metrics line as a scalar at its step,
  the config as hyperparameters (needs the ``tensorboard`` package);
- ``csv``: :class:`CSVTracker`, an Accelerate tracker of this package: ``<run>/metrics.csv``, one
  ``step,name,value`` row per number (long format: eval lines add columns, this never changes).

Only the main process logs (Accelerate's ``main_process_only``).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker

from .config import REPORT_TO
from .errors import DistillError

__all__ = ["REPORT_TO", "CSVTracker", "loggable", "hyperparameters", "trackers_for"]
#: The project (folder) name the trackers log under, inside the run directory.
PROJECT = "tensorboard"


class CSVTracker(GeneralTracker):
    """An Accelerate tracker writing ``<logging_dir>/metrics.csv`` rows ``step,name,value``
    (appended and flushed each log; a header when the file is new)."""

    name = "csv"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, run_name: str, logging_dir: str | os.PathLike):
        super().__init__()
        self.run_name = run_name
        self.path = Path(logging_dir) / "metrics.csv"
        self._file: Any = None

    @property
    def tracker(self) -> Path:
        return self.path

    def start(self) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", newline="")
        if new:
            csv.writer(self._file).writerow(["step", "name", "value"])
            self._file.flush()

    def store_init_configuration(self, values: dict) -> None:  # the config lives in config.json
        return None

    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        """Append one ``step,name,value`` row per number of ``values``."""
        if self._file is None:
            self.start()
        w = csv.writer(self._file)
        for k, v in values.items():
            w.writerow([step, k, repr(float(v))])
        self._file.flush()

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def loggable(line: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics line (``step`` left out: it is the x axis), as floats."""
    return {k: float(v) for k, v in line.items() if k != "step" and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


def hyperparameters(config: Any) -> dict[str, Any]:
    """The config's fields a tracker takes as hyperparameters (str, int, float, bool)."""
    return {k: v for k, v in config.to_dict().items() if isinstance(v, (str, int, float, bool))}


def trackers_for(report_to: str, run_dir: str | os.PathLike) -> list[Any]:
    """What ``Accelerator(log_with=...)`` takes for ``report_to`` (:data:`REPORT_TO`); ``[]`` for none.

    Raises
    ------
    DistillError
        ``tensorboard`` without the ``tensorboard`` package (the message says what to install).
    """
    if report_to not in REPORT_TO:
        raise ValueError(f"report_to must be one of {', '.join(REPORT_TO)} (got {report_to!r})")
    if report_to == "tensorboard":
        try:
            import torch.utils.tensorboard  # noqa: F401 - what Accelerate's tracker writes with
        except ImportError:
            raise DistillError("--report-to tensorboard needs the tensorboard package: pip install tensorboard "
                               "(or pip install 'uld-explorer[track]')") from None
        return ["tensorboard"]
    if report_to == "csv":
        return [CSVTracker(PROJECT, run_dir)]
    return []
