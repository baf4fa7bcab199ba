"""The photo path, written once for every method:

    image -> detect + align (faces/) -> the method's stages (methods/) -> paste back -> identity

used alike by the Python API (restore_photo), the CLI, the app and the benches.

The faces of a photo run as one batch per stage. Stage results can be cached: a stage's key
is (method, stage, face, the settings fields of that stage and of every stage it reads from),
all derived from the method's stage table, so moving the TEM slider finds both IRM results
in the cache and runs TEM alone. The networks run only inside run_stages(), a pure function
of its arguments: on a ZeroGPU Space it executes in another process, where cache updates
would be lost, so caching happens around it.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable, Hashable, Sequence

import numpy as np

from . import settings as S
from .auto import Auto, AutoFace, auto_face
from .faces.align import AlignedFace, align_crop, find_faces
from .faces.detect import DlibDetector
from .faces.models import load_once
from .faces.identity import face_embedding
from .faces.paste import SCALES, auto_scale, is_greyscale, paste_back
from .frame import FRAME, frame_face, is_square
from .grey import grey_rgb, is_nearly_grey
from .imageio import NEARLY_GREY_NOTICE, stage_strip
from .methods import get as method_named
from .methods.base import INPUT, Method, Model

# (fraction done 0-1, what runs now); fraction None: a step that cannot say how far it is (face
# detection: ~1-2 s of dlib passes), shown as its name without a number, not as a frozen "0 %"
Progress = Callable[["float | None", str], None]
MAX_FACES = 8   # CPU time grows linearly with faces; beyond this the largest are restored
# The app's cap on one request's work (PhotoRestorer(work_budget=...)): network evaluations summed
# over its faces. MAX_FACES faces at DiffBFR's defaults (2 + 4 + 2 each) fit; the most expensive
# settings (50 + 50 + 20 a face) on a crowd held the one worker for 80 s (issue #30, bench.odd_shapes).
WORK_BUDGET = 64
# Below this detector score a detection is "unsure" and the page says how to leave it out: a
# chimpanzee was found as a face (bench/README.md, known failures). Real faces score 0.4-2.7 on the
# examples and the real photos, but a few soft or grey ones score 0-0.1 (astronaut_lowres,
# two_faces_grey): the hint is a hint, the face is still restored.
UNSURE_SCORE = 0.3


def _silent(_fraction: float, _message: str) -> None:
    pass


# What each of a PhotoRestorer's caches may hold in image bytes, whatever its entry count: 512
# stage entries of 128 px faces are ~25 MB, but a count alone bounds no bytes (larger stage
# images, a crowd's 40 aligned faces in one detection entry).
CACHE_BYTES = 64 * 2**20


def held_bytes(value, _depth: int = 0) -> int:
    """Bytes of the numpy arrays a cached value holds: arrays, and those in tuples, lists, dicts
    and objects' fields (FaceStages, AlignedFace, Face), a few levels deep."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if _depth > 4 or value is None or isinstance(value, (str, bytes, int, float, bool)):
        return 0
    if isinstance(value, dict):
        value = value.values()
    elif hasattr(value, "__dict__"):
        value = vars(value).values()
    elif not isinstance(value, (tuple, list)):
        return 0
    return sum(held_bytes(v, _depth + 1) for v in value)


class LRUCache:
    """Small thread-safe LRU map, bounded by entries (maxsize; 0 keeps nothing) and, when
    max_bytes is given, by the image bytes its values hold (held_bytes; an entry larger than
    that is not kept); counts hits and misses (handy in tests and the bench)."""

    def __init__(self, maxsize: int, max_bytes: int | None = None):
        self.maxsize = max(0, int(maxsize))
        self.max_bytes = None if max_bytes is None else max(0, int(max_bytes))
        self.bytes = 0
        self._data: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key, default=None):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return default

    def put(self, key, value) -> None:
        size = held_bytes(value)
        with self._lock:
            self.bytes += size - self._sizes.get(key, 0)
            self._data[key], self._sizes[key] = value, size
            self._data.move_to_end(key)
            while self._data and (len(self._data) > self.maxsize
                                  or (self.max_bytes is not None and self.bytes > self.max_bytes)):
                old, _ = self._data.popitem(last=False)
                self.bytes -= self._sizes.pop(old)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._sizes.clear()
            self.bytes = 0


def image_key(rgb: np.ndarray) -> str:
    """Content hash of a decoded image: the same photo uploaded twice hits the cache."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def stage_key(method: Method, stage: str, face_key: Hashable, s) -> tuple:
    """Everything a stage's output depends on, read off the method's stage table."""
    return (method.name, stage, face_key) + tuple((f, getattr(s, f)) for f in method.key_fields(stage))


# ---------------------------------------------------------------- faces -> stages
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
    report = progress or _silent
    per = per_face(s, len(jobs))
    seeds = [x.seed for x in per] if seeds is None else list(seeds)
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


# ---------------------------------------------------------------- whole photos
def is_unsure(found: AlignedFace) -> bool:
    """A detection whose score is low (UNSURE_SCORE): perhaps not a face at all."""
    return found.face is not None and float(found.face.score) < UNSURE_SCORE


def left_as_is(nfe: dict[str, int]) -> bool:
    """True when settings run no network at all (every stage's nfe 0): the face stays as it was."""
    return not any(nfe.values())


def counted(faces: Sequence["FaceResult"]) -> str:
    """'restored 2 faces, left 1 as it was': restored and untouched faces counted apart."""
    left = sum(f.left_as_is for f in faces)
    n = len(faces) - left
    parts = [f"restored {n} face{'s' if n != 1 else ''}"] if n or not left else []
    if left:
        parts.append(f"left {left} face{'s' if left != 1 else ''} as it was" if not parts
                     else f"left {left} as it was")
    return ", ".join(parts)


@dataclass
class FaceResult:
    index: int                    # position among the faces found in the photo (left to right)
    aligned: AlignedFace
    stages: FaceStages
    identity: float | None        # dlib distance input face -> result (< 0.6: same person)
    settings: object = None       # the settings this face was restored with
    auto: AutoFace | None = None  # with Auto: the estimated degradation, in numbers and words

    @property
    def left_as_is(self) -> bool:
        """No stage ran a network (every start step 0, e.g. Auto on a sharp face): the face is
        the input as it was, and must not be reported as restored."""
        return left_as_is(self.stages.nfe)

    def stage_strip(self, method: Method, size: int = FRAME) -> np.ndarray:
        """The input face and every stage side by side (the CLI's and the app's
        <photo>_face<k>_stages.png)."""
        return stage_strip([self.stages[n] for n in method.labels], size)

    def to_record(self, method: Method) -> dict:
        """This face in PhotoResult.to_record()."""
        return {"index": self.index + 1, "face_size_px": round(float(self.aligned.face_size), 1),
                "identity_distance": self.identity, "left_as_it_was": self.left_as_is,
                "settings": None if self.settings is None else S.to_dict(self.settings),
                "auto": None if self.auto is None else {"estimate": self.auto.estimate.as_dict(),
                                                        "words": self.auto.words},
                "stages": list(method.labels.values()), "nfe": self.stages.nfe,
                "timings_s": self.stages.timings, "info": self.stages.info}


@dataclass
class PhotoResult:
    image: np.ndarray             # the restored photo
    before: np.ndarray            # the input photo
    faces: list[FaceResult]       # the restored faces (the selected ones)
    found: list[AlignedFace]      # every face found, selected or not
    notices: list[str]
    timings: dict
    settings: object
    method: str
    aligned: bool = False
    scale: int = 1                # the output is this many times the input's size

    def to_record(self, load_notices: Sequence[str] = ()) -> dict:
        """The one JSON record of a restore, for the CLI (NAME.json), the app's API and scripts:
        the method, its settings, aligned, the output scale, how many faces were found and, per
        restored face: its index (from 1, left to right), size in the photo (px), identity
        distance, the settings it ran with, Auto's estimate and words (None without Auto), the
        stage names, network evaluations, seconds per stage and what stages reported; then the
        notices (`load_notices`, the loader's, first) and the timings. Callers add what only they
        know (the CLI: the input file and what it wrote; the API: whether Auto was asked for)."""
        method = method_named(self.method)
        return {"method": self.method, "settings": S.to_dict(self.settings), "aligned": self.aligned,
                "scale": self.scale, "faces_found": len(self.found),
                "faces": [f.to_record(method) for f in self.faces],
                "notices": [*load_notices, *self.notices], "timings_s": dict(self.timings)}


class PhotoRestorer:
    """The photo path for one model, with caches (content-keyed, so sharing them between
    users is safe), each bounded by cache_size entries and cache_bytes image bytes.
    `detections` may be shared between the restorers of several methods (one without a byte
    bound gets cache_bytes)."""

    def __init__(self, model: Model, cache_size: int = 512, max_faces: int = MAX_FACES,
                 identity: bool = True, runner: Runner | None = None, detections: LRUCache | None = None,
                 auto: Auto | None = None, cache_bytes: int = CACHE_BYTES, work_budget: int | None = None):
        self.model = model
        self.work_budget = work_budget   # network evaluations one restore may run (None: no cap)
        self.auto = auto              # None: the method has no calibrated automatic settings
        self.estimates = LRUCache(cache_size, cache_bytes)
        self.runner = runner
        self.stages = LRUCache(cache_size, cache_bytes)
        self.identities = LRUCache(cache_size, cache_bytes)
        self.detections = detections if detections is not None else LRUCache(32, cache_bytes)
        if self.detections.max_bytes is None:
            self.detections.max_bytes = cache_bytes
        self.max_faces = max_faces
        self.use_identity = identity

    def find(self, image: np.ndarray, aligned: bool = False, key: str | None = None,
             thorough: bool = False) -> tuple[list, list[str]]:
        """Aligned 128 px faces of a photo (cached by content) and notices about them.
        thorough: every detector pass on every photo (finds more small and turned faces in
        group photos; about 1.5 s more per photo on a 2-core CPU: bench.detection)."""
        key = key or image_key(image)
        cached = self.detections.get((key, aligned, thorough))
        if cached is not None:
            return cached
        notices: list[str] = []
        try:
            if aligned:
                if not is_square(image):
                    h, w = image.shape[:2]
                    notices.append(f"Aligned-face mode expects a square crop; this one is {w}x{h} "
                                   "and was stretched to a square.")
                faces = [align_crop(image, "auto")]
            else:
                detector = load_once("thorough_detector", lambda: DlibDetector(thorough=True)) if thorough else None
                faces, reason = find_faces(image, detector)
                if not faces:
                    notices.append(reason or "No face found in the photo.")
        except Exception as exc:  # a detector failure must read as a message, not a traceback
            faces = []
            notices.append(f"Face detection failed ({type(exc).__name__}: {exc}).")
        self.detections.put((key, aligned, thorough), (faces, notices))
        return faces, notices

    def default_selection(self, faces: list) -> list[int]:
        """All faces, or the `max_faces` largest when there are more."""
        keep = sorted(range(len(faces)), key=lambda i: -faces[i].face_size)[: self.max_faces]
        return sorted(keep)

    def restore(self, image: np.ndarray, settings=None, aligned: bool = False, key: str | None = None,
                select: Sequence[int] | None = None, progress: Progress | None = None,
                scale: int | str = 1, thorough: bool = False, auto: bool = False) -> PhotoResult:
        """Restore the faces of a photo. `select`: indices of the found faces to restore
        (default: all, at most max_faces); the others are left untouched and not run.
        `scale`: 1, 2, 4 or "auto" (enough that the largest face keeps its 128 px detail,
        capped at faces/paste.MAX_OUTPUT_PIXELS): the output is that many times larger,
        the background upscaled with a classical filter and the faces pasted at that scale.
        `auto` (needs self.auto): each face gets the settings calibrated for its estimated
        degradation (the calibrated fields replace those of `settings`; the rest is kept)."""
        report = progress or _silent
        limits = self.model.knob_limits()
        s = settings if settings is not None else S.validate(self.model.method.settings, {}, limits)
        if limits:   # no start step beyond the timesteps its network was trained at: SettingsError
            S.validate(type(s), {n: getattr(s, n) for n in limits}, limits)
        key = key or image_key(image)
        grey = is_greyscale(image)
        grey_notices = []
        if not grey and is_nearly_grey(image):   # a scan of a grey print: restored as grey (diffbfr/grey.py)
            image, grey, grey_notices = grey_rgb(image), True, [NEARLY_GREY_NOTICE]
        t0 = time.perf_counter()
        report(None, "Taking the aligned face" if aligned else "Detecting faces (about 1-2 s)")
        found, face_notices = self.find(image, aligned, key, thorough)
        notices = grey_notices + list(face_notices)
        timings = {"detect": time.perf_counter() - t0}
        chosen = self.default_selection(found) if select is None else \
            sorted({int(i) for i in select if 0 <= int(i) < len(found)})
        if select is None and len(chosen) < len(found):
            notices.append(f"Found {len(found)} faces; restoring the {len(chosen)} largest to keep the "
                           "time bounded.")
        if scale == "auto":
            scale = auto_scale([found[i] for i in chosen], image.shape[:2])
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES} or 'auto', got {scale!r}")
        if not chosen:
            if found:
                notices.append("No face selected: the photo is unchanged.")
            report(1.0, "No face to restore")
            return PhotoResult(image.copy(), image, [], found, notices, timings, s, self.model.name, aligned)

        n = len(chosen)
        for i in chosen:
            if is_unsure(found[i]):
                notices.append(f"Face {i + 1}: the detector is unsure it is a face (score {found[i].face.score:.2f}); "
                               "if it is not one, leave it out: untick it under **Faces to restore**.")
        report(0.1, f"Found {len(found)} face{'s' if len(found) != 1 else ''}"
               + (f", restoring {n}" if n != len(found) else ""))
        autos = self._auto_faces(found, chosen, key, aligned, s) if auto and self.auto else [None] * n
        per = [a.settings if a is not None else s for a in autos]
        if self.work_budget is not None:
            chosen, autos, per = self._within_budget(found, chosen, autos, per, notices)
        for i, a, fs in zip(chosen, autos, per):
            if left_as_is(self.model.method.nfe(fs)):   # said in words: "restored" would be untrue
                notices.append(f"Face {i + 1}: left as it was: "
                               + ("already sharp (Auto chose no restoration steps for it)." if a is not None
                                  else "the settings run no restoration step (every start step is 0)."))
            elif a is not None:
                picked = ", ".join(f"{k} {getattr(a.settings, k):g}" for k in self.auto.calibration.fields)
                notices.append(f"Face {i + 1}: {a.words} → Auto: {picked}.")
        t1 = time.perf_counter()
        stages = restore_faces(self.model, [found[i].image for i in chosen], per, self.stages,
                               [(key, aligned, i) for i in chosen], lambda f, m: report(0.1 + 0.75 * f, m),
                               self.runner)
        timings["stages"] = time.perf_counter() - t1
        if grey:   # grey in, grey out everywhere: every stage image and download, not only the paste
            stages = [replace(st, images={n: grey_rgb(im) for n, im in st.images.items()}) for st in stages]

        report(0.87, "Pasting faces back")
        t2 = time.perf_counter()
        out = paste_back(image, [found[i] for i in chosen], [st.result for st in stages], scale)
        if grey:
            notices.append("The input is greyscale, so the restored faces and every stage are shown in grey.")
        if scale > 1:
            notices.append(f"Output {scale}x the input's size ({out.shape[1]}x{out.shape[0]}): the "
                           "background is upscaled (Lanczos), the faces carry their 128 px restoration.")
        large = [i + 1 for i in chosen if found[i].larger_than_model and not aligned]
        if large:
            notices.append(f"Face{'s' if len(large) > 1 else ''} {', '.join(map(str, large))} "
                           f"span{'' if len(large) > 1 else 's'} more than the models' {FRAME} px: only what "
                           f"the restoration changed at {FRAME} px was pasted; the photo's finer detail is kept.")
        timings["paste"] = time.perf_counter() - t2

        report(0.93, "Comparing identity")
        t3 = time.perf_counter()
        faces = [FaceResult(i, found[i], st, self._identity((key, aligned, i), fs, st), fs, a)
                 for i, st, fs, a in zip(chosen, stages, per, autos)]
        timings["identity"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        report(1.0, f"Done: {counted(faces)}")
        return PhotoResult(out, image, faces, found, notices, timings, s, self.model.name, aligned, scale)

    def _within_budget(self, found, chosen, autos, per, notices):
        """At most work_budget network evaluations per request (each face's nfe, summed): the
        largest faces first, at least one; the notice says what was left out and why."""
        cost = [max(sum(self.model.method.nfe(fs).values()), 1) for fs in per]
        if sum(cost) <= self.work_budget:
            return chosen, autos, per
        keep, total = [], 0
        for j in sorted(range(len(chosen)), key=lambda j: -found[chosen[j]].face_size):
            if not keep or total + cost[j] <= self.work_budget:
                keep.append(j)
                total += cost[j]
        keep.sort()
        notices.append(f"Restoring {len(keep)} of the {len(chosen)} faces (the largest): at these settings they "
                       f"would take {sum(cost)} network evaluations, and one request may use {self.work_budget} "
                       "so that no one holds the app for long. Fewer sampling steps, or fewer faces ticked, "
                       "restore more at once.")
        return [chosen[j] for j in keep], [autos[j] for j in keep], [per[j] for j in keep]

    def _auto_faces(self, found, chosen, key, aligned, s) -> list[AutoFace]:
        """Auto settings per chosen face; the estimate is cached per face, so a slider move
        does not run the estimator again."""
        out = []
        for i in chosen:
            estimate = self.estimates.get((key, aligned, i))
            if estimate is None:
                estimate = self.auto.estimator.estimate([found[i].image])[0]
                self.estimates.put((key, aligned, i), estimate)
            out.append(auto_face(s, estimate, self.auto.calibration, self.model.knob_limits()))
        return out

    def _identity(self, face_key: tuple, s, st: FaceStages) -> float | None:
        """Distance between the input face's and the result's dlib embeddings; the input's
        embedding is computed once per face, not once per slider move."""
        if not self.use_identity:
            return None
        result_key = ("id",) + stage_key(self.model.method, st.final, face_key, s)
        hit = self.identities.get(result_key, default=False)
        if hit is not False:
            return hit
        try:
            e_lq = self.identities.get(("lq",) + face_key, default=False)
            if e_lq is False:
                e_lq = face_embedding(st[INPUT], aligned=True)
                self.identities.put(("lq",) + face_key, e_lq)
            e_out = None if e_lq is None else face_embedding(st.result, aligned=True)
            d = None if e_out is None else float(np.linalg.norm(e_lq - e_out))
        except Exception:  # identity is informative only: never fail a restore over it
            d = None
        self.identities.put(result_key, d)
        return d


def restore_photo(model: Model, image: np.ndarray, settings=None, aligned: bool = False,
                  progress: Progress | None = None, identity: bool = True, scale: int | str = 1,
                  auto: Auto | None = None) -> PhotoResult:
    """One call: every face of a photo restored and pasted back (no cache kept). With `auto`
    (e.g. Auto.load("weights", "diffbfr")) each face gets its own calibrated settings."""
    return PhotoRestorer(model, cache_size=0, identity=identity, auto=auto).restore(
        image, settings, aligned, progress=progress, scale=scale, auto=auto is not None)
