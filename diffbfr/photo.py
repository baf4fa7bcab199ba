"""The photo path, written once for every method:

    image -> detect + align (faces/) -> the method's stages (face_stages.py) -> paste back -> identity

used alike by the Python API (restore_photo; restore_faces and restore_face for faces already
aligned), the CLI, the app and the benches. PhotoRestorer keeps the caches (stage_cache.py), so
a slider move reruns only the stages it reaches, and, for the app, bounds each request's network
work (work_budget.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from . import settings as S
from .auto import Auto, AutoFace, auto_face
from .face_stages import FaceStages, Progress, Runner, restore_face, restore_faces, silent
from .faces.align import AlignedFace, align_crop, find_faces
from .faces.detect import DlibDetector
from .faces.identity import face_embedding
from .faces.models import load_once
from .faces.paste import SCALES, auto_scale, is_greyscale, paste_back, paste_notices, upscale
from .frame import FRAME, is_square
from .grey import grey_rgb, is_nearly_grey
from .image_out import stage_strip
from .imageio import NEARLY_GREY_NOTICE
from .methods import get as method_named
from .methods.base import INPUT, Method, Model
from .stage_cache import CACHE_BYTES, LRUCache, image_key, stage_key
from .work_budget import LOOK_HARDER_S, fit

# The Python API; LRUCache and restore_faces are also read from here by the benches and Auto's
# calibration
__all__ = ["FaceResult", "FaceStages", "LRUCache", "PhotoOptions", "PhotoRestorer", "PhotoResult", "restore_face",
           "restore_faces", "restore_photo"]

MAX_FACES = 8   # CPU time grows linearly with faces; beyond this the largest are restored
# Below this detector score a detection is "unsure" and the page says how to leave it out: a
# chimpanzee was found as a face (bench/README.md, known failures). Real faces score 0.4-2.7 on the
# examples and the real photos, but a few soft or grey ones score 0-0.1 (astronaut_lowres,
# two_faces_grey): the hint is a hint, the face is still restored.
UNSURE_SCORE = 0.3


# ---------------------------------------------------------------- whole photos
@dataclass(frozen=True)
class PhotoOptions:
    """How to treat a photo, besides the method's settings: the one record the CLI, the page and
    the API fill alike, each from its own controls (the page's defaults: PAGE_OPTIONS)."""
    aligned: bool = False                  # the photo is one aligned face crop: no detection
    select: tuple[int, ...] | None = None  # indices of the found faces to restore (None: the default selection)
    # 1, 2, 4 or "auto" (enough that the largest face keeps its 128 px detail, capped at
    # faces/paste.MAX_OUTPUT_PIXELS): the output is that many times larger, the background
    # upscaled with a classical filter and the faces pasted at that scale. "2" (a form's, a
    # flag's) reads as 2.
    scale: int | str = 1
    thorough: bool = False                 # every detector pass on every photo (PhotoRestorer.find)
    auto: bool = True                      # each face at Auto's settings, where the restorer has an Auto

    def __post_init__(self):
        scale = self.scale if self.scale == "auto" or isinstance(self.scale, int) else int(self.scale)
        if scale not in (*SCALES, "auto"):
            raise ValueError(f"scale must be one of {SCALES} or 'auto', got {self.scale!r}")
        object.__setattr__(self, "scale", scale)
        if self.select is not None:
            object.__setattr__(self, "select", tuple(int(i) for i in self.select))


PAGE_OPTIONS = PhotoOptions(scale="auto")   # the page's and the API's: output size auto, Auto on


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
    before: np.ndarray            # the input photo (greyed when it was nearly grey: what was restored)
    faces: list[FaceResult]       # the restored faces (the selected ones)
    found: list[AlignedFace]      # every face found, selected or not
    notices: list[str]
    timings: dict
    settings: object
    method: str
    aligned: bool = False
    scale: int = 1                # the output is this many times the input's size
    work: dict | None = None      # the app's bound on the request's work, when it applied (WorkFit.record)

    def before_at_scale(self) -> np.ndarray:
        """The input photo at the output's size, upscaled as the background under the pasted
        faces was: the 'before' of a before/after view."""
        return upscale(self.before, self.scale)

    def to_record(self, load_notices: Sequence[str] = ()) -> dict:
        """The one JSON record of a restore, for the CLI (NAME.json), the app's API and scripts:
        the method, its settings, aligned, the output scale, how many faces were found and, per
        restored face: its index (from 1, left to right), size in the photo (px), identity
        distance, the settings it ran with, Auto's estimate and words (None without Auto), the
        stage names, network evaluations, seconds per stage and what stages reported; the app's
        bound on the request's work (None where none applies: the CLI, the Python API); then the
        notices (`load_notices`, the loader's, first) and the timings. Callers add what only they
        know (the CLI: the input file and what it wrote; the API: whether Auto was asked for)."""
        method = method_named(self.method)
        return {"method": self.method, "settings": S.to_dict(self.settings), "aligned": self.aligned,
                "scale": self.scale, "faces_found": len(self.found),
                "faces": [f.to_record(method) for f in self.faces], "work": self.work,
                "notices": [*load_notices, *self.notices], "timings_s": dict(self.timings)}


class PhotoRestorer:
    """The photo path for one model, with caches (content-keyed, so sharing them between
    users is safe), each bounded by cache_size entries and cache_bytes image bytes.
    `detections` may be shared between the restorers of several methods (one without a byte
    bound gets cache_bytes)."""

    def __init__(self, model: Model, cache_size: int = 512, max_faces: int = MAX_FACES,
                 identity: bool = True, runner: Runner | None = None, detections: LRUCache | None = None,
                 auto: Auto | None = None, cache_bytes: int = CACHE_BYTES, work_budget: float | None = None):
        self.model = model
        self.work_budget = work_budget   # seconds of work one restore may run (work_budget.py; None: no cap)
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

    def restore(self, image: np.ndarray, settings=None, options: PhotoOptions = PhotoOptions(),
                key: str | None = None, progress: Progress | None = None) -> PhotoResult:
        """Restore the faces of a photo, treated as `options` say. `options.select`: indices of
        the found faces to restore (default: all, at most max_faces); the others are left
        untouched and not run. `options.auto` (with self.auto): each face gets the settings
        calibrated for its estimated degradation (the calibrated fields replace those of
        `settings`; the rest is kept). `key`: the photo's content key when the caller has it."""
        aligned, select, scale, thorough = options.aligned, options.select, options.scale, options.thorough
        report = progress or silent
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
        autos = self._auto_faces(found, chosen, key, aligned, s) if options.auto and self.auto else [None] * n
        per = [a.settings if a is not None else s for a in autos]
        work_record = None
        if self.work_budget is not None:   # the app's: over it, fewer steps, or fewer faces; said in words
            budget = self.work_budget - (LOOK_HARDER_S if thorough and not aligned else 0.0)
            work = fit(self.model.method, per, [found[i].face_size for i in chosen], budget)
            notices += work.notices(self.model.method, chosen)
            if work.capped and budget < self.work_budget:
                notices.append(f'"Look harder" spent {LOOK_HARDER_S:g} s of the request\'s {self.work_budget:g} s of '
                               "work finding the faces; without it the faces get all of it.")
            work_record = work.record(chosen)
            chosen, autos, per = ([chosen[j] for j in work.keep], [autos[j] for j in work.keep], work.settings)
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
        notices += paste_notices({i: found[i] for i in chosen}, out.shape, scale, grey, aligned_crop=aligned)
        timings["paste"] = time.perf_counter() - t2

        report(0.93, "Comparing identity")
        t3 = time.perf_counter()
        faces = [FaceResult(i, found[i], st, self._identity((key, aligned, i), fs, st), fs, a)
                 for i, st, fs, a in zip(chosen, stages, per, autos)]
        timings["identity"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        report(1.0, f"Done: {counted(faces)}")
        return PhotoResult(out, image, faces, found, notices, timings, s, self.model.name, aligned, scale,
                           work_record)

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


def restore_photo(model: Model, image: np.ndarray, settings=None, options: PhotoOptions = PhotoOptions(),
                  progress: Progress | None = None, identity: bool = True, auto: Auto | None = None) -> PhotoResult:
    """One call: every face of a photo restored and pasted back (no cache kept). With `auto`
    (e.g. Auto.load("weights", "diffbfr")) each face gets its own calibrated settings."""
    return PhotoRestorer(model, cache_size=0, identity=identity, auto=auto).restore(image, settings, options,
                                                                                    progress=progress)
