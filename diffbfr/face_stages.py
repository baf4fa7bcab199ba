"""Aligned faces -> every stage image, for any method: the faces of a photo run as one batch per
stage (model.max_batch at a time), and each stage's result can be cached under its stage key
(diffbfr/stage_cache.py), so a rerun after a slider move runs only the stages that slider reaches.

The networks run only inside run_stages(), a pure function of its arguments: on a ZeroGPU Space
it executes in another process (worker_runner), where cache updates would be lost, so caching
happens around it (restore_faces). The photo path (diffbfr/photo.py), the uncertainty map, Auto's calibration and
the benches call these.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

import numpy as np

from .frame import frame_face
from .methods.base import INPUT, Model
from .stage_cache import LRUCache, stage_key

# (fraction done 0-1, what runs now); fraction None: a step that cannot say how far it is (face
# detection: ~1-2 s of dlib passes), shown as its name without a number, not as a frozen "0 %"
Progress = Callable[["float | None", str], None]


def silent(_fraction: "float | None", _message: str) -> None:
    """A Progress that reports nowhere."""


@dataclass
class FaceStages:
    """Every stage image of one face: `images` holds INPUT ("lq") and one image per stage."""
    images: dict[str, np.ndarray]
    final: str                                              # name of the final stage
    nfe: dict[str, int] = field(default_factory=dict)       # network evaluations per stage
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage run in this call
    computed: list[str] = field(default_factory=list)       # stages run in this call (not cached)
    info: dict[str, dict] = field(default_factory=dict)     # per stage: what its function reported

    def __getitem__(self, name: str) -> np.ndarray:
        return self.images[name]

    @property
    def result(self) -> np.ndarray:
        return self.images[self.final]


def per_face(s, n: int) -> list:
    """One settings object per face from one shared or a list of them."""
    if isinstance(s, (list, tuple)):
        if len(s) != n:
            raise ValueError(f"{len(s)} settings for {n} faces")
        return list(s)
    return [s] * n


def run_stages(model: Model, jobs: list[dict[str, np.ndarray]], s, seeds: Sequence[int] | None = None,
               progress: Progress | None = None, upto: str | None = None) -> list[dict]:
    """Compute every missing stage of every job (a dict holding INPUT and any stages already
    known), stage by stage; the faces needing a stage with the same settings for it run as
    one batch (model.max_batch at a time). `s`: one settings object, or one per job.
    `upto`: only that stage and the stages it reads (None: all).
    Returns per job {"images", "info", "timings", "computed"}."""
    report = progress or silent
    per = per_face(s, len(jobs))
    seeds = [model.method.seed_of(x) for x in per] if seeds is None else list(seeds)
    images = [dict(j) for j in jobs]
    out = [{"images": im, "info": {}, "timings": {}, "computed": []} for im in images]
    stages = model.method.upstream(upto) if upto else model.method.stages
    todo = {st.name: [i for i, im in enumerate(images) if st.name not in im] for st in stages}
    # progress counts network evaluations (a skipped stage still counts one unit of work)
    total = sum(max(st.nfe(per[i]), 1) for st in stages for i in todo[st.name]) or 1
    done = [0]
    for st in stages:
        groups: dict[tuple, list[int]] = {}
        for i in todo[st.name]:  # faces whose settings agree on this stage's fields share a batch
            groups.setdefault(tuple(getattr(per[i], f) for f in st.fields), []).append(i)
        for members in groups.values():
            for lo in range(0, len(members), model.max_batch):
                chunk = members[lo:lo + model.max_batch]
                _run_chunk(model, st, chunk, images, out, per[chunk[0]], seeds, report, done, total)
    report(1.0, "Stages done")
    return out


def _run_chunk(model, st, chunk, images, out, s, seeds, report, done, total) -> None:
    faces = "" if len(images) == 1 else f" ({len(chunk)} face{'s' if len(chunk) > 1 else ''})"
    label, n_steps = f"{st.label}{faces}", st.nfe(s)

    def step(info):
        done[0] += 1
        report(min(done[0] / total, 1.0), f"{label}: step {info['i'] + 1}/{n_steps}")

    report(done[0] / total, label)
    before = done[0]
    t0 = time.perf_counter()
    results = model.run_stage(st.name, {r: [images[i][r] for i in chunk] for r in st.reads}, s,
                              [seeds[i] for i in chunk], step)
    seconds = (time.perf_counter() - t0) / len(chunk)
    done[0] = before + max(n_steps, 1) * len(chunk)
    imgs, infos = results if isinstance(results, tuple) else (results, [{}] * len(chunk))
    for i, img, info in zip(chunk, imgs, infos):
        images[i][st.name] = img
        out[i]["info"][st.name] = info
        out[i]["timings"][st.name] = seconds
        out[i]["computed"].append(st.name)


Runner = Callable[..., list]   # run_stages' signature: (model, jobs, s, seeds, progress, upto)


def worker_runner(models: dict[str, Model], wrap: Callable[[Callable], Callable],
                  progress_crosses: bool = True) -> Runner:
    """A Runner whose calls run wrapped by `wrap`, e.g. `spaces.GPU(duration=60)`, which on a
    ZeroGPU Space runs them in a worker process that receives its arguments pickled: the model
    travels by name (the worker finds it in `models`), and a progress callback goes along only
    where it can cross (progress_crosses)."""
    @wrap
    def run_by_name(method: str, jobs, settings, seeds, progress=None, upto=None):
        return run_stages(models[method], jobs, settings, seeds, progress, upto)

    def runner(model: Model, jobs, settings, seeds=None, progress=None, upto=None):
        return run_by_name(model.name, jobs, settings, seeds, progress if progress_crosses else None, upto)
    return runner


def restore_faces(model: Model, lqs: Sequence[np.ndarray], s=None, cache: LRUCache | None = None,
                  keys: Sequence[Hashable] | None = None, progress: Progress | None = None,
                  runner: Runner | None = None, seeds: Sequence[int] | None = None) -> list[FaceStages]:
    """Aligned faces -> all their stages. `s`: one settings object for all faces, or one per
    face. With a cache, `keys[i]` names face i (e.g. image hash + face index) and only the
    stages not cached under their stage_key are run."""
    method = model.method
    per = per_face(s if s is not None else method.settings(), len(lqs))
    lqs = [frame_face(f) for f in lqs]
    use_cache = cache is not None and keys is not None
    jobs, infos = [], []
    for i, lq in enumerate(lqs):
        job, info = {INPUT: lq}, {}
        if use_cache:
            for st in method.stages:
                hit = cache.get(stage_key(method, st.name, keys[i], per[i]))
                if hit is not None:
                    job[st.name], info[st.name] = hit
        jobs.append(job)
        infos.append(info)
    results = (runner or run_stages)(model, jobs, per, seeds, progress)
    out = []
    for i, res in enumerate(results):
        for name in res["computed"]:
            infos[i][name] = res["info"].get(name, {})
            if use_cache:
                cache.put(stage_key(method, name, keys[i], per[i]), (res["images"][name], infos[i][name]))
        out.append(FaceStages(res["images"], method.final, method.nfe(per[i]), res["timings"],
                              res["computed"], infos[i]))
    return out


def restore_face(model: Model, face: np.ndarray, s=None) -> FaceStages:
    """One aligned face (square; resized to the 128 px frame) -> all its stages."""
    return restore_faces(model, [face], s)[0]
