"""A bound on the work of one request: the app's (PhotoRestorer(work_budget=...)); the
CLI, the Python API and the benches run what they are asked, uncapped.

The app runs one restore at a time, so one request's work is everyone's wait: 30 faces at the
largest step counts held the worker for 80 s (issue #30). Work is counted in seconds on the
2-core CPU, face by face: each stage's network evaluations times its `eval_s` (a stage-1
evaluation costs more with more samples in its batch), plus what every restored face costs
besides (FACE_S: its identity check, pasting it back). Over the budget, every count a stage
declares (`Stage.counts`: steps, stage-1 samples) is scaled down by one factor, the largest that
fits, never below its slider's lower end; if the faces do not fit even then, the largest faces
are restored and the rest left out. Both are said in words, and in the record.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

from .methods.base import Method
from .settings import knob_of

# The app's budget for a request's faces, in seconds of work on the 2-core CPU. A typical photo
# (2 faces at the defaults) is ~0.45 s of it and runs as asked; 6 faces at the defaults (1.34 s)
# run with about two thirds of the steps (the trained TEM's 23 ms an evaluation; with the
# placeholder's 51 ms they were 0.56 s and 1.68 s, about half the steps).
WORK_BUDGET_S = 1.0
# "Look harder" spends most of it on finding the faces: its CNN pass took 2.2 s on the 30-face
# photo, about what the typical photo's whole restoration takes, and it runs before the faces can
# be counted. 0.35 s are left for the faces: 2 at the fewest steps, or 2 with their steps about
# halved from the defaults, so that the worst request measured by bench.odd_shapes (30 faces, every
# count at its end, "look harder") stays within 2x the typical photo's time; with 0.6 s left (4
# faces at the fewest steps) it took 1.8-2.3x (bench/README.md, "The worst request").
LOOK_HARDER_S = 0.65
# What a restored face costs besides its networks: two dlib identity embeddings (~20 ms each: 114
# ms against an IRM 128 evaluation's 92 ms, timed together on the loaded machine), pasting it back.
FACE_S = 0.05
# What an evaluation of a stage that states no cost (Stage.eval_s None) is counted as: about
# twice the largest cost DiffBFR has stated (the placeholder TEM's 0.051 s), so that an unmeasured
# network is not let through.
UNMEASURED_EVAL_S = 0.1
_BISECTIONS = 30


def face_work(method: Method, s) -> float:
    """Seconds of work on the 2-core CPU one restored face costs at settings `s`."""
    return FACE_S + sum(st.nfe(s) * (st.eval_s(s) if st.eval_s is not None else UNMEASURED_EVAL_S)
                        for st in method.stages)


def scaled_counts(method: Method, s, factor: float):
    """`s` with the counts of every stage that runs (nfe > 0) times `factor`, rounded down and
    never below the knob's lower end (factor 1: `s` itself)."""
    changes = {}
    for st in method.stages:
        if st.nfe(s) > 0:
            for name in st.counts:
                lo = int(knob_of(method.settings, name).lo)
                changes[name] = max(lo, int(getattr(s, name) * factor))
    return replace(s, **changes) if changes else s


@dataclass
class WorkFit:
    """What fits a budget: `keep` (positions among the faces given, in order) and their
    settings; what the faces asked for and what runs, in seconds of work; the counts
    that were lowered (name -> (asked, run)) and the positions left out."""
    keep: list[int]
    settings: list
    budget_s: float
    asked_s: float
    run_s: float
    lowered: dict[str, tuple[int, int]] = field(default_factory=dict)
    left_out: list[int] = field(default_factory=list)

    @property
    def capped(self) -> bool:
        return bool(self.lowered or self.left_out)

    def notices(self, method: Method, indices: Sequence[int]) -> list[str]:
        """What was capped, in words; `indices`: each position's face number in the photo (from 0)."""
        out, budget = [], f"about {self.budget_s:g} s of work"
        n = len(indices)
        if self.lowered:
            steps = ", ".join(f"{knob_of(method.settings, name).label} {a} → {b}"
                              for name, (a, b) in self.lowered.items())
            out.append(f"Steps reduced to keep this request under {budget} (the app restores one photo at a "
                       f"time): {steps}. At the settings asked, {'this face' if n == 1 else f'these {n} faces'} "
                       f"would take about {self.asked_s:.3g} s. Fewer faces ticked under **Faces to restore** "
                       "keep more steps.")
        if self.left_out:
            left = ", ".join(str(indices[j] + 1) for j in self.left_out)
            out.append(f"Restoring {len(self.keep)} of the {n} faces (the largest; left out: face"
                       f"{'s' if len(self.left_out) > 1 else ''} {left}): even at the fewest steps all of them "
                       f"would take more than {budget}, which one request may use so that no one holds the "
                       "app for long. Tick fewer faces under **Faces to restore** to choose which.")
        return out

    def record(self, indices: Sequence[int]) -> dict:
        """The bound in the JSON record (PhotoResult.to_record: "work"): seconds of work
        allowed, asked and run; the counts lowered, {name: [asked, run]}; the faces left out
        (numbered from 1; `indices` as for notices)."""
        return {"budget_s": self.budget_s, "asked_s": round(self.asked_s, 3), "run_s": round(self.run_s, 3),
                "lowered": {k: list(v) for k, v in self.lowered.items()},
                "left_out": [indices[j] + 1 for j in self.left_out]}


def fit(method: Method, settings: Sequence, sizes: Sequence[float], budget_s: float) -> WorkFit:
    """The faces (their settings, their sizes in the photo) within `budget_s` seconds of work:
    as asked when they fit; else every count scaled down by the largest factor that fits;
    else, at the fewest counts, the largest faces that fit (at least one)."""
    settings = list(settings)

    def total(per) -> float:
        return sum(face_work(method, s) for s in per)

    asked = total(settings)
    everyone = list(range(len(settings)))
    if asked <= budget_s:
        return WorkFit(everyone, settings, budget_s, asked, asked)
    fewest = [scaled_counts(method, s, 0.0) for s in settings]
    if total(fewest) <= budget_s:
        lo, hi = 0.0, 1.0   # the work only grows with the factor: the largest that fits
        for _ in range(_BISECTIONS):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if total([scaled_counts(method, s, mid) for s in settings]) <= budget_s else (lo, mid)
        run, keep = [scaled_counts(method, s, lo) for s in settings], everyone
    else:
        keep, used = [], 0.0
        for j in sorted(everyone, key=lambda j: -sizes[j]):
            cost = face_work(method, fewest[j])
            if not keep or used + cost <= budget_s:
                keep.append(j)
                used += cost
        keep.sort()
        run = [fewest[j] for j in keep]
    lowered = {}   # per count, the largest asked value that was lowered, and what it became
    for name in (c for st in method.stages for c in st.counts):
        pairs = [(getattr(settings[j], name), getattr(s, name)) for j, s in zip(keep, run)]
        pairs = [(a, b) for a, b in pairs if a != b]
        if pairs:
            lowered[name] = max(pairs)
    return WorkFit(keep, run, budget_s, asked, total(run), lowered, [j for j in everyone if j not in keep])
