"""One config round-trip for every network (diffusers' ConfigMixin is the model).

A network's config is a dataclass that inherits ConfigMixin: `to_dict()` gives exactly what
JSON gives back (tuples become lists, a nested config becomes its own dict) and
`from_dict(d)` rebuilds it (lists become tuples again, a nested config field is rebuilt by its
own class, keys the class does not know are ignored so older JSON files still load). The
dict is what `checkpoint.save_module` writes beside the weights and what a training run's
state.json compares on resume.
"""
from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


def _lists(v):
    return [_lists(x) for x in v] if isinstance(v, (list, tuple)) else v


def _plain(v):
    if isinstance(v, ConfigMixin):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return _lists(v)


class ConfigMixin:
    """to_dict / from_dict for a network's config dataclass (see the module doc)."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        hints = typing.get_type_hints(cls)
        kw = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v, kind = d[f.name], hints.get(f.name)
            if isinstance(kind, type) and issubclass(kind, ConfigMixin) and is_dataclass(kind):
                kw[f.name] = v if isinstance(v, kind) else kind.from_dict(v)
            elif isinstance(v, dict):
                kw[f.name] = dict(v)
            else:
                kw[f.name] = _tuples(v)
        return cls(**kw)
