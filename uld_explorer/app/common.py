"""What every page shares: the view in the URL, exports, and errors shown as messages.

UI plumbing only (no numbers are computed here): a page declares its view's keys with their
defaults (:func:`view_state`), widgets read and write ``st.session_state`` under those keys, and
:func:`sync_url` writes the values that differ from the defaults to the URL's query parameters, so
that a view can be shared and reopened exactly.
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable

import streamlit as st

from uld_explorer.jsonsafe import dumps, json_safe
from uld_explorer.memory import is_out_of_memory


def _parse(raw: str, default: Any) -> Any:
    """A query-parameter string read back as the type of ``default`` (a bad value: the default)."""
    try:
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        return default
    return raw


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def view_state(defaults: dict[str, Any], valid: Callable[[str, Any], bool] | None = None) -> None:
    """Seed ``st.session_state`` once per session: each key from the URL (``?key=value``) when
    present and valid, else its default. Call before the widgets; then :func:`sync_url`."""
    params = st.query_params
    for key, default in defaults.items():
        if key in st.session_state:
            continue
        value = default
        if key in params:
            parsed = _parse(params[key], default)
            if valid is None or valid(key, parsed):
                value = parsed
        st.session_state[key] = value


def sync_url(defaults: dict[str, Any]) -> None:
    """Write the view's current values to the URL (only those that differ from the defaults)."""
    for key, default in defaults.items():
        value = st.session_state.get(key, default)
        if value == default:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != _format(value):
            st.query_params[key] = _format(value)


def stop_here(defaults: dict[str, Any]) -> None:
    """End this run early (a message was shown): the view still goes to the URL first."""
    sync_url(defaults)
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
