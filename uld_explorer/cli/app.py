"""``uld-explorer app``: serve the Streamlit app (bound to 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

from .common import Formatter, UsageError

__all__ = ["add_parser"]


def run(args: argparse.Namespace) -> int:
    from ..app import MAIN_SCRIPT  # the app ships inside the package: any install serves it

    if not MAIN_SCRIPT.is_file():  # pragma: no cover - a broken install
        raise UsageError(f"the app's script {MAIN_SCRIPT} is missing from this install; reinstall uld-explorer")
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(MAIN_SCRIPT),
        "--server.address", args.address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    ]
    if args.address not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.address}: the app is reachable from other machines", file=sys.stderr)
    if os.name == "posix":  # become the server: a signal to `uld-explorer app` (Ctrl-C, kill) stops it
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, cmd)
    return subprocess.call(cmd)  # pragma: no cover - no exec on Windows: a child the console stops too


def add_parser(sub: Any) -> None:
    app = sub.add_parser("app", help="start the Streamlit app (bound to 127.0.0.1 by default)", formatter_class=Formatter)
    app.add_argument("--address", default="127.0.0.1", help="interface to bind")
    app.add_argument("--port", type=int, default=8501, help="port")
    app.set_defaults(func=run)
