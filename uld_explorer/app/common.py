"""What every page shares: the view in the URL, exports, and errors shown as messages.

UI plumbing only (no numbers are computed here): a page declares its view's keys as
:class:`Param` (default, the widget's bounds or choices), :func:`view_state` seeds
``st.session_state`` from the URL through that ONE validator (a value it cannot take falls back to
the default with a note, :func:`url_notes`; nothing is clamped silently), widgets read and write
the same keys with the same bounds, and :func:`sync_url` writes the values that differ from the
defaults to the URL's query parameters, so that a view can be shared and reopened exactly.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from uld_explorer.jsonsafe import dumps, json_safe
from uld_explorer.memory import is_out_of_memory


@dataclass(frozen=True)
class Param:
    """One value of a page's view: its default and what a URL may set it to.

    The bounds are the widget's own (a page passes ``lo`` / ``hi`` to its slider or number
    input), so a value the URL may set is always one the widget can show. ``choices``: the
    allowed values (a sequence, or a callable returning one, read when the URL is read).
    ``lo`` / ``hi`` apply to numbers (inclusive), ``max_chars`` to text.
    """

    default: Any
    lo: float | None = None
    hi: float | None = None
    choices: Any = None
    max_chars: int | None = None

    def parse(self, raw: str) -> tuple[Any, str | None]:
        """``(value, None)`` for a valid query-parameter string, else ``(default, why)``: nothing
        is clamped or guessed.

        >>> Param(1.0, 0.1, 5.0).parse("9"), Param(1.0, 0.1, 5.0).parse("0.5")
        ((1.0, 'must be between 0.1 and 5.0'), (0.5, None))
        >>> Param(3, 1, 10).parse("2.5"), Param(True).parse("no")
        ((3, 'must be a whole number'), (False, None))
        """
        d = self.default
        try:
            if isinstance(d, bool):
                flag = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
                        "off": False}.get(raw.strip().lower())
                if flag is None:
                    return d, "must be 1 or 0"
                return flag, None
            if isinstance(d, int):
                value = int(raw)
            elif isinstance(d, float):
                value = float(raw)
                if not math.isfinite(value):
                    return d, "must be a finite number"
            else:
                value = raw
        except ValueError:
            return d, "must be a whole number" if isinstance(d, int) else "must be a number"
        if isinstance(value, (int, float)) and ((self.lo is not None and value < self.lo)
                                                or (self.hi is not None and value > self.hi)):
            if self.hi is None:
                return d, f"must be at least {self.lo}"
            if self.lo is None:
                return d, f"must be at most {self.hi}"
            return d, f"must be between {self.lo} and {self.hi}"
        choices = self.choices() if callable(self.choices) else self.choices
        if choices is not None and value not in choices:
            shown = ", ".join(map(str, list(choices)[:6])) + (" ..." if len(choices) > 6 else "")
            return d, f"must be one of {shown}"
        if self.max_chars is not None and isinstance(value, str) and len(value) > self.max_chars:
            return d, f"is longer than {self.max_chars:,} characters"
        return value, None


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


#: Session key of the notes on URL values that were not used (shown by :func:`url_notes`).
URL_NOTES = "_url_notes"


def view_state(params: dict[str, Param]) -> None:
    """Seed ``st.session_state`` once per session: each key from the URL (``?key=value``) when its
    value is valid (:meth:`Param.parse`), else its default, with a note saying which value was
    not used and why (:func:`url_notes` shows it). Call before the widgets; then :func:`sync_url`."""
    query = st.query_params
    notes = st.session_state.setdefault(URL_NOTES, [])
    for key, param in params.items():
        if key in st.session_state:
            continue
        value = param.default
        if key in query:
            value, why = param.parse(query[key])
            if why:
                raw = query[key]
                notes.append(f"{key}={raw[:40]!r}{'...' if len(raw) > 40 else ''} in the URL {why}: "
                             f"using {param.default!r}")
        st.session_state[key] = value


def url_notes() -> None:
    """Show (once) what :func:`view_state` did not take from the URL, and why."""
    for note in st.session_state.pop(URL_NOTES, []):
        st.caption(f":material/link_off: {note}")


def sync_url(params: dict[str, Param]) -> None:
    """Write the view's current values to the URL (only those that differ from the defaults)."""
    for key, param in params.items():
        value = st.session_state.get(key, param.default)
        if value == param.default:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != _format(value):
            st.query_params[key] = _format(value)


def stop_here(params: dict[str, Param]) -> None:
    """End this run early (a message was shown): the view still goes to the URL first."""
    sync_url(params)
    st.stop()


def example_buttons(examples: dict[str, tuple[str, str]], use: Callable[[str], None], prefix: str) -> None:
    """One button per example in a row; ``use(name)`` fills the page's prompt and text."""
    for col, name in zip(st.columns(len(examples)), examples):
        col.button(name, on_click=use, args=(name,), key=f"{prefix}{name}", width="stretch")


def figure_bytes(fig: Any, fmt: str) -> bytes:
    """A matplotlib figure as PNG (170 dpi) or SVG bytes; the figure is cleared afterwards."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=170 if fmt == "png" else None)
    fig.clear()
    return buf.getvalue()


def export_figure(make_figure: Callable[[], Any], name: str, key: str) -> None:
    """An "Export" popover with two download buttons: the figure as PNG and as SVG (drawn by
    matplotlib from the same data as the chart on the page, only when a button is pressed)."""
    box = st.popover("Export figure", icon=":material/download:")
    left, right = box, box
    left.download_button("PNG", data=lambda: figure_bytes(make_figure(), "png"), file_name=f"{name}.png",
                         mime="image/png", key=f"{key}-png", icon=":material/image:", width="stretch", on_click="ignore")
    right.download_button("SVG", data=lambda: figure_bytes(make_figure(), "svg"), file_name=f"{name}.svg",
                          mime="image/svg+xml", key=f"{key}-svg", icon=":material/draw:", width="stretch", on_click="ignore")


def export_table(frame: Any, settings: Any, name: str, key: str, records: list | None = None) -> None:
    """An "Export" popover with two download buttons: the table as CSV (settings in ``#`` comment
    lines on top) and as strict JSON (``{"settings": ..., "rows": ...}``)."""
    meta = json_safe(settings)
    header = "".join(f"# {k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in meta.items())
    rows = records if records is not None else json.loads(frame.to_json(orient="records"))
    box = st.popover("Export table", icon=":material/download:")
    left, right = box, box
    left.download_button("CSV", data=lambda: header + frame.to_csv(index=False), file_name=f"{name}.csv",
                         mime="text/csv", key=f"{key}-csv", icon=":material/table:", width="stretch", on_click="ignore")
    right.download_button(
        "JSON", data=lambda: dumps({"settings": meta, "rows": rows}, indent=2),
        file_name=f"{name}.json", mime="application/json", key=f"{key}-json", icon=":material/data_object:",
        width="stretch", on_click="ignore",
    )


def show_error(err: BaseException, what: str) -> None:
    """One message for a failure: what was being done, the library's message (cause and fix)."""
    if is_out_of_memory(err):
        st.error(f"Out of memory while {what}: shorten the text (max tokens) or lower top-k.", icon=":material/memory:")
    else:
        st.error(f"Could not {what}: {err}", icon=":material/error:")


def run_with_progress(what: str, work: Callable[[], Any]) -> bool:
    """Run a zoo fetch (``work()``) under a status box with one progress bar per step (download,
    verify, extract, convert: the zoo's own bars, :func:`uld_explorer.zoo.report_progress`); a
    failure is shown as a message. Returns True when the work completed."""
    from uld_explorer.zoo import report_progress

    with st.status(f"{what} ...", expanded=True) as box:
        bars: dict[str, Any] = {}
        shown: dict[str, float] = {}

        def listener(step: str, done: float, total: float | None) -> None:
            frac = min(1.0, done / total) if total else 0.0
            if step in bars and frac - shown[step] < 0.01 and frac < 1.0:
                return  # a redraw per percent is plenty
            shown[step] = frac
            amount = f"{done / 2**20:,.1f} / {total / 2**20:,.1f} MiB" if total and total > 2**16 else (
                f"{done:,.0f} / {total:,.0f}" if total else f"{done:,.0f}")
            if step not in bars:
                bars[step] = box.progress(frac, text=f"{step}: {amount}")
            else:
                bars[step].progress(frac, text=f"{step}: {amount}")

        try:
            with report_progress(listener):
                work()
        except Exception as err:  # noqa: BLE001 - shown, never a traceback
            box.update(label=f"Could not finish: {what}", state="error")
            show_error(err, what)
            return False
        box.update(label=f"{what}: done", state="complete", expanded=False)
    return True
