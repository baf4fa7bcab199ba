"""Settings as data: one frozen dataclass per method, each field declared with `knob(...)`
(its range, step, label and help text). Every surface is generated from that one
declaration: the CLI flags, the app's sliders, the one validation of values given from
outside (`validate`: the API, the CLI, the page), the bench's `--sweep` names
(guided-diffusion's add_dict_to_argparser is the idea).

A settings object is frozen and hashable, so it can be part of a cache key.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Knob:
    """What a surface needs to know about one settings field."""
    name: str
    kind: type          # float or int
    default: Any
    lo: float           # the valid range; `validate` refuses values outside it
    hi: float
    step: float
    label: str
    help: str
    ui_hi: float        # the slider's end (a narrower range than `hi` where large values are rare)
    advanced: bool      # shown in the app's closed "Advanced" panel


def knob(default, lo, hi, step, label: str, help: str, *, ui_hi=None, advanced: bool = True):
    """A dataclass field carrying its Knob description (completed with name and kind later)."""
    return field(default=default, metadata={"knob": dict(lo=lo, hi=hi, step=step, label=label, help=help,
                                                         ui_hi=hi if ui_hi is None else ui_hi,
                                                         advanced=advanced)})


def knobs(settings_cls) -> list[Knob]:
    """The knobs of a settings class, in declaration order."""
    out = []
    for f in dataclasses.fields(settings_cls):
        meta = f.metadata.get("knob")
        if meta is None:
            raise TypeError(f"{settings_cls.__name__}.{f.name} is not declared with knob(...)")
        out.append(Knob(name=f.name, kind=type(f.default), default=f.default, **meta))
    return out


def knob_of(settings_cls, name: str) -> Knob:
    for k in knobs(settings_cls):
        if k.name == name:
            return k
    names = ", ".join(k.name for k in knobs(settings_cls))
    raise KeyError(f"{settings_cls.__name__} has no setting {name!r} (it has: {names})")


class SettingsError(ValueError):
    """Settings someone gave (API JSON, CLI flags, page) are not valid. The message is for
    people and is shown as is: it names the field, what it got and what is allowed."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# name -> (lo, hi): ranges narrower than a knob's own, e.g. Model.knob_limits() (the timesteps a
# loaded network was trained at). A knob not named keeps its declared range.
Limits = Mapping[str, "tuple[float, float]"]


def _num(x: float) -> str:
    x = float(x)
    if abs(x) >= 1e15:   # 1e308 written out is 309 digits: keep messages short
        return f"{x:.3g}"
    return str(int(x)) if x.is_integer() else f"{x:g}"


def _shown(value: Any) -> str:
    """A value as people (and JSON) write it, kept short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral) and abs(int(value)) >= 10**15:
        digits = len(str(abs(int(value))))
        return f"a {digits}-digit number" if digits > 18 else _num(float(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "infinity" if v > 0 else "minus infinity"
        return _num(v) if isinstance(value, numbers.Integral) or v.is_integer() else repr(v)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, Mapping):
        kind = "an object"
    elif isinstance(value, (list, tuple)):
        kind = "a list"
    else:
        kind = "a " + type(value).__name__
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return kind
    return f"{kind}, {text}" if len(text) <= 60 else f"{kind}, {text[:57]}..."


def value_range(k: Knob, limits: Limits | None = None) -> tuple[float, float]:
    """The values a knob accepts: its declared range, narrowed by `limits` (int knobs: whole ends)."""
    lo, hi = float(k.lo), float(k.hi)
    if limits and k.name in limits:
        llo, lhi = limits[k.name]
        lo, hi = max(lo, float(llo)), min(hi, float(lhi))
    if k.kind is int:
        lo, hi = float(math.ceil(lo)), float(math.floor(hi))
    return lo, max(lo, hi)


def default_value(k: Knob, limits: Limits | None = None):
    """The knob's default, lowered (raised) into `limits` when it lies outside them."""
    lo, hi = value_range(k, limits)
    v = min(max(float(k.default), lo), hi)
    return int(v) if k.kind is int else float(v)


def slider_range(k: Knob, limits: Limits | None = None) -> tuple[float, float, Any]:
    """(minimum, maximum, value) of the knob's slider: it ends at `ui_hi` or where `limits` end."""
    lo, hi = value_range(k, limits)
    end = min(float(k.ui_hi), hi)
    v = min(max(float(k.default), lo), end)
    return lo, end, int(v) if k.kind is int else float(v)


def check_value(k: Knob, value, limits: Limits | None = None, label: Callable[[str], str] | None = None):
    """One value -> the knob's type, or SettingsError. None (JSON null, an emptied field, a flag
    not given) means the default. Numbers only (no text, no true/false); finite; an int knob
    takes whole numbers only (3 and 3.0, not 2.5); inside `value_range(k, limits)`."""
    if value is None:
        return default_value(k, limits)
    lo, hi = value_range(k, limits)
    narrowed = hi < float(k.hi) or lo > float(k.lo)
    rule = (f"{label(k.name) if label else k.name} must be {'a whole number' if k.kind is int else 'a number'} "
            f"from {_num(lo)} to {_num(hi)}"
            + (" (the range the loaded model was trained for)" if narrowed else ""))
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise SettingsError(f"{rule}; got {_shown(value)}", k.name)
    try:
        v = float(value)
    except OverflowError:   # an integer beyond any float (a 309-digit number): out of range
        raise SettingsError(f"{rule}; got {_shown(value)}", k.name) from None
    if not math.isfinite(v) or (k.kind is int and not v.is_integer()) or not lo <= v <= hi:
        raise SettingsError(f"{rule}; got {_shown(value)}", k.name)
    return int(v) if k.kind is int else v


def _example(ks: dict) -> str:
    k = next(iter(ks.values()))
    return "{" + f'"{k.name}": {_num(k.default)}' + "}"


def validate(settings_cls, values: Mapping[str, Any] | None = None, limits: Limits | None = None, *,
             label: Callable[[str], str] | None = None):
    """THE check of settings given from outside (the API's JSON, the CLI's flags, the page's
    sliders): a mapping name -> value -> the settings object, or SettingsError with a message
    for people. Unknown names are refused (the message lists the known ones); missing names and
    None take their defaults (lowered into `limits`); every value is checked by check_value:
    out-of-range values are refused, never clamped. `limits` narrows ranges (Model.knob_limits());
    `label` names a field in messages (the CLI passes its flag)."""
    ks = {k.name: k for k in knobs(settings_cls)}
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        got = _shown(values)
        if isinstance(values, numbers.Real) and not isinstance(values, bool):
            got = f"the number {got}"
        raise SettingsError(f"settings must be a JSON object of named values, such as {_example(ks)}; got {got}")
    unknown = [n for n in values if n not in ks]
    if unknown:
        many = len(unknown) > 1
        raise SettingsError(("there are no settings " if many else "there is no setting ")
                            + ", ".join(_shown(str(n)) for n in unknown)
                            + f"; the settings are: {', '.join(label(n) if label else n for n in ks)}",
                            str(unknown[0]))
    return settings_cls(**{n: check_value(k, values.get(n), limits, label) for n, k in ks.items()})


def from_json(settings_cls, text, limits: Limits | None = None):
    """Settings from a JSON text (the API): it must parse to an object; then `validate`.
    Empty text means every default. An already parsed object is validated as is."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return validate(settings_cls, {}, limits)
    if isinstance(text, str):
        try:
            text = json.loads(text)
        except (ValueError, RecursionError):
            ks = {k.name: k for k in knobs(settings_cls)}
            raise SettingsError(f"settings must be a JSON object of named values, such as {_example(ks)}; "
                                f"got text that is not JSON: {_shown(text)}") from None
    return validate(settings_cls, text, limits)


def clamp_value(k: Knob, value, limits: Limits | None = None):
    """A number the app computed itself (Auto's calibration, the fidelity slider) -> the knob's
    type, moved into its range narrowed by `limits`. Not for values people give: those go
    through `validate`, which refuses instead. A non-number is still a SettingsError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return check_value(k, value, limits)   # raises
    lo, hi = value_range(k, limits)
    v = min(max(float(value), lo), hi)
    return int(round(v)) if k.kind is int else v


def clamp(settings_cls, values: Mapping[str, Any] | None = None, limits: Limits | None = None, **more):
    """Settings from numbers the app computed itself: each moved into its (narrowed) range by
    clamp_value, then `validate` (unknown names, non-numbers: SettingsError)."""
    values = {**(values or {}), **more}
    ks = {k.name: k for k in knobs(settings_cls)}
    return validate(settings_cls, {n: clamp_value(ks[n], v, limits) if n in ks and v is not None else v
                                   for n, v in values.items()}, limits)


def with_value(settings, name: str, value, limits: Limits | None = None):
    """A copy with one field changed, checked like everything else (`validate`)."""
    k = knob_of(type(settings), name)   # KeyError naming the known fields
    return dataclasses.replace(settings, **{name: check_value(k, value, limits)})


def to_dict(settings) -> dict:
    return dataclasses.asdict(settings)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def cli_value(kind: type):
    """A flag's text -> a number when it reads as one, else the text unchanged, so that
    `validate` says what is wrong in its words (not argparse's 'invalid int value')."""
    def parse(text: str):
        for conv in ((int, float) if kind is int else (float,)):
            try:
                return conv(text)
            except ValueError:
                pass
        return text
    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser, settings_cls, title: str | None = None, *,
                  defaults: bool = True) -> None:
    """One flag per knob: --irm-start 200 ... With defaults=False a flag not given is None
    (`validate` then gives the default, lowered into the model's limits)."""
    group = parser.add_argument_group(title or f"{settings_cls.__name__} (settings)")
    for k in knobs(settings_cls):
        group.add_argument(flag(k.name), dest=k.name, type=cli_value(k.kind),
                           default=k.default if defaults else None,
                           help=f"{k.label}: {k.help} ({_num(k.lo)}-{_num(k.hi)}, default {_num(k.default)})")


def from_arguments(settings_cls, namespace: argparse.Namespace, limits: Limits | None = None):
    """Settings from parsed flags through `validate` (SettingsError names the flag)."""
    return validate(settings_cls, {k.name: getattr(namespace, k.name) for k in knobs(settings_cls)}, limits,
                    label=flag)


def parse_sweep(settings_cls, spec: str) -> tuple[str, list]:
    """'tem_t=0,2.5,10' -> ('tem_t', [0.0, 2.5, 10.0]), typed; a clear error for a bad name."""
    name, _, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    try:
        k = knob_of(settings_cls, name)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(f"bad --sweep {spec!r}: {exc.args[0]}") from None
    vals = [v for v in values.split(",") if v.strip()]
    if not vals:
        raise argparse.ArgumentTypeError(f"bad --sweep {spec!r}: use FIELD=v1,v2,...")
    try:
        return name, [check_value(k, cli_value(k.kind)(v.strip())) for v in vals]
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(f"bad --sweep {spec!r}: {exc}") from None
