"""Command-line flags generated from the library's config dataclasses: one flag per field.

A command's options are its config's fields (:class:`~uld_explorer.compare.ComparisonConfig`,
:class:`~uld_explorer.PlaygroundConfig`, :class:`~uld_explorer.distill.config.DistillConfig`):
:func:`add_config_flags` adds them, :func:`config_from_args` builds the config back and turns
its validation message into one that names the flag. Each field's ``metadata`` says how:

- ``help``: the text (``--help`` appends the default);
- ``choices``: the registry the value comes from (name -> description or object: its keys are
  the choices, e.g. :data:`~uld_explorer.text.ALIGNMENTS`), or a callable returning it (read
  when the parser is built: a registry that grows at run time);
- ``flag``: the flag's name when it is not ``--field-name`` (``--vt`` for ``V_t``);
- ``metavar``;
- ``parse``: a callable reading the flag's one value (``"ce,uld"`` -> ``("ce", "uld")``).

A ``bool`` field that is on by default becomes ``--no-<name>``, one that is off ``--<name>``;
``tuple[str, ...]`` takes several values; ``int | None`` also takes ``none``; a nested config
(``ComparisonConfig.hybrid``) gives ``--hybrid-<field>`` flags. Importable without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Iterable

from .common import UsageError

__all__ = ["add_config_flags", "config_from_args", "field_help", "flag_of"]

#: ``defaults="suppress"``: the flag has no default; an absent flag keeps the config's value.
SUPPRESS = "suppress"


def field_help(cls: type, name: str) -> str:
    """The ``help`` metadata of field ``name`` of dataclass ``cls``."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def flag_of(f: dataclasses.Field, prefix: str = "") -> str:
    """The flag of field ``f`` (``prefix``: the nested config's name and ``_``)."""
    return f.metadata.get("flag") or "--" + (prefix + f.name).replace("_", "-")


def _optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _or_none(kind: type):
    def parse(text: str):
        if text.strip().lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} or 'none', got {text!r}") from None

    parse.__name__ = f"{kind.__name__}_or_none"
    return parse


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "", skip: Iterable[str] = (),
                     defaults: str = "config", default_note: str = "") -> None:
    """Add one flag per field of ``cls`` (see the module docstring) to ``parser``.

    ``defaults="config"``: each flag's default is the field's (shown by ``--help``).
    ``defaults="suppress"``: no default (an absent flag leaves the attribute unset, so
    :func:`config_from_args` keeps whatever the caller starts from, e.g. a preset); the help
    then ends with ``(default: <default_note>, else <the field's default>)``.
    """
    hints = typing.get_type_hints(cls)
    base = cls()
    skip = set(skip)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, optional = _optional(hints[f.name])
        default = getattr(base, f.name)
        if dataclasses.is_dataclass(tp):
            add_config_flags(parser, tp, prefix=f"{prefix}{f.name}_", defaults=defaults, default_note=default_note)
            continue
        help_ = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        kw: dict[str, Any] = {"dest": prefix + f.name}
        flag = flag_of(f, prefix)
        if tp is bool:
            if default and not f.metadata.get("flag"):
                flag = "--no-" + (prefix + f.name).replace("_", "-")
            kw.update(action="store_false" if default else "store_true", default=argparse.SUPPRESS,
                      help=f"{'turn off: ' if default else ''}{help_} (default: {'on' if default else 'off'})")
            parser.add_argument(flag, **kw)
            continue
        if "parse" in f.metadata:  # one value, read by the field's own parser (e.g. "ce,uld" -> a tuple)
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            kw.update(type=f.metadata["parse"], metavar=f.metadata.get("metavar"))
            if defaults == SUPPRESS:
                kw.update(default=argparse.SUPPRESS, help=f"{help_} (default: {default_note}, else {shown})")
            else:
                kw.update(default=default, help=help_)
            parser.add_argument(flag, **kw)
            continue
        if typing.get_origin(tp) is tuple:
            (tp,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
            kw["nargs"] = "*"
            default = list(default)
        if "choices" in f.metadata:
            choices = f.metadata["choices"]
            kw["choices"] = list(choices() if callable(choices) else choices)
            if "nargs" in kw:
                kw["metavar"] = f.name.rstrip("s").upper()
        kw["type"] = _or_none(tp) if optional and "nargs" not in kw else tp
        if optional and tp is int:
            kw["metavar"] = "N|none"
        if "metavar" in f.metadata:
            kw["metavar"] = f.metadata["metavar"]
        if defaults == SUPPRESS:
            kw.update(default=argparse.SUPPRESS, help=f"{help_} (default: {default_note}, else {default!r})")
        else:
            kw.update(default=default, help=help_)
        parser.add_argument(flag, **kw)


def _flag_names(cls: type, prefix: str = "", words: str = "") -> dict[str, str]:
    """The names a config's messages start with (``top_k``, ``hybrid beta``) -> their flags."""
    out: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, _ = _optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            out.update(_flag_names(tp, f"{prefix}{f.name}_", f"{words}{f.name} "))
        else:
            out[words + f.name] = flag_of(f, prefix)
    return out


def config_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "", start: Any = None,
                     **fixed: Any) -> Any:
    """The ``cls`` config the flags of :func:`add_config_flags` ask for.

    Fields whose flag was not given keep ``start``'s value (default ``cls()``); ``fixed``
    overrides fields outright. A bad value raises :class:`~.common.UsageError` whose message
    names the FLAG (``--top-k must be ...``), not the field.
    """
    start = cls() if start is None else start
    try:
        return _build(cls, args, prefix, start, fixed)
    except ValueError as err:
        msg = str(err)
        for name, flag in sorted(_flag_names(cls, prefix).items(), key=lambda kv: -len(kv[0])):
            if msg.startswith(name + " "):
                msg = flag + msg[len(name):]
                break
        raise UsageError(msg) from None


def _build(cls: type, args: argparse.Namespace, prefix: str, start: Any, fixed: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp, _ = _optional(hints[f.name])
        if f.name in fixed:
            kw[f.name] = fixed[f.name]
        elif dataclasses.is_dataclass(tp):
            kw[f.name] = _build(tp, args, f"{prefix}{f.name}_", getattr(start, f.name), {})
        elif hasattr(args, prefix + f.name):
            value = getattr(args, prefix + f.name)
            kw[f.name] = tuple(value) if typing.get_origin(tp) is tuple else value
        else:
            kw[f.name] = getattr(start, f.name)
    return cls(**kw)
