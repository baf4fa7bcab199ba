"""Settings as data: one frozen dataclass per method, each field declared with `knob(...)`
(its range, step, label and help text). Every surface is generated from that one
declaration: the CLI flags, the app's sliders and its clamping of their values, the bench's
`--sweep` names (guided-diffusion's add_dict_to_argparser is the idea).

A settings object is frozen and hashable, so it can be part of a cache key.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Knob:
    """What a surface needs to know about one settings field."""
    name: str
    kind: type          # float or int
    default: Any
    lo: float           # the valid range; values outside are clamped
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


def _coerce(k: Knob, value) -> Any:
    """One value -> the knob's type, clamped to its range; None or junk -> the default."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return k.default
    if v != v:  # NaN
        return k.default
    v = min(max(v, k.lo), k.hi)
    return int(round(v)) if k.kind is int else float(v)


def clamp(settings_cls, values: Mapping[str, Any] | None = None, **more):
    """Settings from loose values (slider floats, None from an emptied field, strings):
    unknown names are an error, missing ones take their defaults, every value is clamped."""
    values = {**(values or {}), **more}
    ks = {k.name: k for k in knobs(settings_cls)}
    unknown = set(values) - set(ks)
    if unknown:
        raise KeyError(f"{settings_cls.__name__} has no setting(s) {', '.join(sorted(unknown))}")
    return settings_cls(**{n: _coerce(k, values[n]) if n in values else k.default for n, k in ks.items()})


def with_value(settings, name: str, value):
    """A copy with one field changed (typed and clamped)."""
    return dataclasses.replace(settings, **{name: _coerce(knob_of(type(settings), name), value)})


def to_dict(settings) -> dict:
    return dataclasses.asdict(settings)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, settings_cls, title: str | None = None) -> None:
    """One flag per knob: --irm-start 200 ..."""
    group = parser.add_argument_group(title or f"{settings_cls.__name__} (settings)")
    for k in knobs(settings_cls):
        group.add_argument(flag(k.name), dest=k.name, type=k.kind, default=k.default,
                           help=f"{k.label}: {k.help} ({k.lo:g}-{k.hi:g}, default {k.default:g})")


def from_arguments(settings_cls, namespace: argparse.Namespace):
    return clamp(settings_cls, {k.name: getattr(namespace, k.name) for k in knobs(settings_cls)})


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
    return name, [_coerce(k, v) for v in vals]
