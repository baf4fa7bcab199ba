"""What app.py (and the CLI) do, without any UI: load an upload, then restore its faces
with a per-stage cache so that moving one slider reruns only the stages it affects.

Cache keys follow the data flow of DiffBFR (each stage depends on the image, the face and
the settings of itself and of every stage before it):
    IRM 64  : image, aligned mode, face, irm_start, irm64_steps, seed, eta
    IRM 128 : the IRM 64 key + irm2_start, irm128_steps
    TEM     : the IRM 128 key + tem_t, tem_steps
so a TEM-only change finds both IRM results cached and runs only TEM. The networks run
only inside run_stage_jobs(), a pure function of its arguments: on a ZeroGPU Space it
executes in a separate worker process, where updates to a cache would be lost.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .imageio import DEFAULT_MAX_PIXELS, load_image, upscale_nearest
from .pipeline import DiffBFR, RestoreSettings

Progress = Callable[[float, str], None]
STAGES = ("irm64", "irm128", "tem")
STAGE_LABELS = {"lq": "LQ", "irm64": "IRM 64", "irm128": "IRM 128", "tem": "TEM"}
MAX_FACES = 8          # CPU time grows linearly with faces; beyond this keep the largest
DISPLAY_SIZE = 256     # stage images are upscaled (nearest) to this for the gallery
IDENTITY_SAME = 0.6    # dlib's own threshold for "same person"


def _noop(_fraction: float, _message: str) -> None:
    pass


class LRUCache:
    """Small thread-safe LRU map; counts hits and misses (handy in tests and the bench)."""

    def __init__(self, maxsize: int):
        self.maxsize = max(1, int(maxsize))
        self._data: OrderedDict = OrderedDict()
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
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def image_key(rgb: np.ndarray) -> str:
    """Content hash of the decoded image: the same photo uploaded twice hits the cache."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def stage_keys(img_key: str, aligned: bool, face: int, s: RestoreSettings) -> dict[str, tuple]:
    k1 = (img_key, bool(aligned), int(face), float(s.irm_start), int(s.irm64_steps), int(s.seed), float(s.eta))
    k2 = k1 + (float(s.irm2_start), int(s.irm128_steps))
    k3 = k2 + (float(s.tem_t), int(s.tem_steps))
    return {"irm64": ("irm64",) + k1, "irm128": ("irm128",) + k2, "tem": ("tem",) + k3}


def settings_from_ui(irm_start, irm2_start, tem_t, irm64_steps, irm128_steps, tem_steps, seed,
                     eta: float = 0.0) -> RestoreSettings:
    """Slider values (floats, possibly None from an emptied field) -> clamped settings."""
    d = RestoreSettings()

    def num(v, default, lo, hi, cast):
        try:
            v = cast(round(float(v))) if cast is int else float(v)
        except (TypeError, ValueError):
            v = default
        return cast(min(max(v, lo), hi))

    return RestoreSettings(
        irm_start=num(irm_start, d.irm_start, 0, 1000, float),
        irm2_start=num(irm2_start, d.irm2_start, 0, 1000, float),
        tem_t=num(tem_t, d.tem_t, 0, 1000, float),
        irm64_steps=num(irm64_steps, d.irm64_steps, 1, 1000, int),
        irm128_steps=num(irm128_steps, d.irm128_steps, 1, 1000, int),
        tem_steps=num(tem_steps, d.tem_steps, 1, 1000, int),
        seed=num(seed, d.seed, 0, 2**31 - 1, int),
        eta=num(eta, d.eta, 0, 1, float),
    )


@dataclass
class Upload:
    """A decoded upload, kept in the user's session (never on disk)."""
    key: str
    rgb: np.ndarray
    notices: list[str]
    was_grey: bool
    path: str | None = None       # the file it came from, so the app can delete it
    restored: bool = False        # a result exists: sliders may rerun live


@dataclass
class FaceJob:
    """One face for run_stage_jobs: the stages already known (from the cache) are set."""
    index: int
    lq: np.ndarray
    irm64: np.ndarray | None = None
    irm128: np.ndarray | None = None
    tem: np.ndarray | None = None


def run_stage_jobs(model: DiffBFR, jobs: list[FaceJob], s: RestoreSettings,
                   progress: Progress | None = None) -> list[dict]:
    """Compute every missing stage of every job; returns per job the three stage images,
    the seconds spent per computed stage and the list of computed stages."""
    report = progress or _noop
    total = sum(getattr(j, st) is None for j in jobs for st in STAGES) or 1
    done, out = 0, []
    runs = {"irm64": lambda j, r: model.run_irm64(j.lq, s),
            "irm128": lambda j, r: model.run_irm128(j.lq, r["irm64"], s),
            "tem": lambda j, r: model.run_tem(r["irm128"], s)}
    for job in jobs:
        res = {"irm64": job.irm64, "irm128": job.irm128, "tem": job.tem, "timings": {}, "computed": []}
        for st in STAGES:
            if res[st] is not None:
                continue
            report(done / total, f"Face {job.index + 1}/{len(jobs)}: {STAGE_LABELS[st]}")
            t = time.perf_counter()
            res[st] = runs[st](job, res)
            res["timings"][st] = time.perf_counter() - t
            res["computed"].append(st)
            done += 1
        out.append(res)
    report(1.0, "Stages done")
    return out


@dataclass
class FaceView:
    index: int
    lq: np.ndarray
    irm64: np.ndarray
    irm128: np.ndarray
    tem: np.ndarray
    identity: float | None
    computed: list[str]
    timings: dict
    face_size: float = 128.0


@dataclass
class RestoreOutput:
    image: np.ndarray              # the restored photo
    before: np.ndarray             # the input photo, same size
    faces: list[FaceView]
    notices: list[str]
    timings: dict
    settings: RestoreSettings
    aligned: bool = False


class AppState:
    """Model + caches shared by every session of one app process (content-keyed, so sharing
    between users is safe); the per-user part is the Upload kept in the session."""

    def __init__(self, model: DiffBFR, runner: Callable | None = None, cache_size: int = 512,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_faces: int = MAX_FACES,
                 identity: bool = True, label: str = ""):
        self.model = model
        self.runner = runner or (lambda jobs, s, progress=None: run_stage_jobs(model, jobs, s, progress))
        self.stages = LRUCache(cache_size)
        self.detections = LRUCache(32)
        self.identities = LRUCache(cache_size)
        self.max_pixels = max_pixels
        self.max_faces = max_faces
        self.use_identity = identity
        self.label = label          # e.g. "tiny random networks", shown in the status line

    # ------------------------------------------------------------------ load
    def load(self, src, path: str | None = None) -> Upload:
        """Decode an upload; raises imageio.ImageError with a user-facing message."""
        loaded = load_image(src, max_pixels=self.max_pixels)
        return Upload(image_key(loaded.rgb), loaded.rgb, loaded.notices, loaded.was_grey,
                      path if path is not None else (str(src) if isinstance(src, str) else None))

    # ------------------------------------------------------------------ faces
    def faces(self, up: Upload, aligned: bool) -> tuple[list, list[str]]:
        """Aligned 128 px faces of the upload (cached) and notices about them."""
        cached = self.detections.get((up.key, aligned))
        if cached is not None:
            return cached
        from .align import align_crop, find_faces  # dlib is loaded on first use only

        notices: list[str] = []
        try:
            if aligned:
                h, w = up.rgb.shape[:2]
                if abs(h - w) > 0.01 * max(h, w):
                    notices.append(f"Aligned-face mode expects a square crop; this one is {w}x{h} "
                                   "and was stretched to a square.")
                faces = [align_crop(up.rgb, "auto")]
            else:
                faces, reason = find_faces(up.rgb)
                if not faces:
                    notices.append(reason or "No face found in the photo.")
        except Exception as exc:  # a detector failure must read as a message, not a traceback
            faces = []
            notices.append(f"Face detection failed ({type(exc).__name__}: {exc}).")
        if len(faces) > self.max_faces:
            notices.append(f"Found {len(faces)} faces; restoring the {self.max_faces} largest "
                           "to keep the time bounded.")
            keep = sorted(range(len(faces)), key=lambda i: -faces[i].face_size)[: self.max_faces]
            faces = [faces[i] for i in sorted(keep)]
        for i, f in enumerate(faces):
            if getattr(f, "larger_than_model", False) and not aligned:
                notices.append(f"Face {i + 1} spans {f.face_size:.0f} px; the models work at 128 px, "
                               "so its restored version is upsampled when pasted back.")
        self.detections.put((up.key, aligned), (faces, notices))
        return faces, notices

    # ------------------------------------------------------------------ restore
    def restore(self, up: Upload, s: RestoreSettings, aligned: bool = False,
                progress: Progress | None = None) -> RestoreOutput:
        report = progress or _noop
        t0 = time.perf_counter()
        report(0.0, "Taking the aligned face" if aligned else "Detecting faces")
        faces, face_notices = self.faces(up, aligned)
        notices = list(up.notices) + list(face_notices)
        timings = {"detect": time.perf_counter() - t0}
        if not faces:
            report(1.0, "No face to restore")
            return RestoreOutput(up.rgb.copy(), up.rgb, [], notices, timings, s, aligned)

        n = len(faces)
        report(0.1, f"Found {n} face{'s' if n != 1 else ''}")
        keys = [stage_keys(up.key, aligned, i, s) for i in range(n)]
        jobs = [FaceJob(i, f.image, *(self.stages.get(k[st]) for st in STAGES))
                for i, (f, k) in enumerate(zip(faces, keys))]
        t1 = time.perf_counter()
        results = self.runner(jobs, s, lambda f, m: report(0.1 + 0.75 * f, m))
        timings["stages"] = time.perf_counter() - t1
        for k, res in zip(keys, results):
            for st in res["computed"]:
                self.stages.put(k[st], res[st])

        report(0.87, "Pasting faces back")
        t2 = time.perf_counter()
        from .paste import paste_back
        image = paste_back(up.rgb, faces, [r["tem"] for r in results])
        if up.was_grey:  # load_image made its channels equal; paste_back keeps those grey
            notices.append("The input is greyscale, so the restored faces were pasted back in grey.")
        timings["paste"] = time.perf_counter() - t2

        report(0.93, "Comparing identity")
        t3 = time.perf_counter()
        views = [FaceView(i, f.image, r["irm64"], r["irm128"], r["tem"],
                          self._identity(keys[i], f.image, r["tem"]),
                          r["computed"], r["timings"], float(getattr(f, "face_size", 128.0)))
                 for i, (f, r) in enumerate(zip(faces, results))]
        timings["identity"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        report(1.0, f"Done: {n} face{'s' if n != 1 else ''}")
        up.restored = True
        return RestoreOutput(image, up.rgb, views, notices, timings, s, aligned)

    def _identity(self, keys: dict, lq: np.ndarray, tem: np.ndarray) -> float | None:
        """identity_distance(lq, tem), computed as the distance of the two embeddings so that
        the LQ face's embedding is computed once per face, not once per slider move."""
        if not self.use_identity:
            return None
        hit = self.identities.get(keys["tem"], default=False)
        if hit is not False:
            return hit
        try:
            from .identity import face_embedding
            lq_key = ("lq",) + keys["irm64"][1:4]           # image, aligned mode, face index
            e_lq = self.identities.get(lq_key, default=False)
            if e_lq is False:
                e_lq = face_embedding(lq)
                self.identities.put(lq_key, e_lq)
            e_tem = None if e_lq is None else face_embedding(tem)
            d = None if e_tem is None else float(np.linalg.norm(e_lq - e_tem))
        except Exception:  # identity is informative only: never fail a restore over it
            d = None
        self.identities.put(keys["tem"], d)
        return d


# ---------------------------------------------------------------------- presentation
def identity_meaning(d: float | None) -> str:
    if d is None:
        return "n/a: the identity model found no face in the LQ input or the result"
    if d < 0.4:
        return "very likely the same person"
    if d < IDENTITY_SAME:
        return "probably the same person (below dlib's 0.6 threshold)"
    return "identity drifted: try a lower IRM start step"


def identity_markdown(out: RestoreOutput) -> str:
    if not out.faces:
        return ""
    rows = ["| Face | Identity distance LQ → result | Meaning |", "|---|---|---|"]
    for f in out.faces:
        num = "n/a" if f.identity is None else f"{f.identity:.3f}"
        rows.append(f"| {f.index + 1} | {num} | {identity_meaning(f.identity)} |")
    rows.append("\n*Distance between dlib face embeddings: 0 = identical, below 0.6 = same person.*")
    return "\n".join(rows)


def status_markdown(out: RestoreOutput, label: str = "") -> str:
    n = len(out.faces)
    t = out.timings
    if n == 0:
        head = "**No face restored.**"
    else:
        computed = [st for f in out.faces for st in f.computed]
        ran = sorted(set(computed), key=STAGES.index)
        reused = [STAGE_LABELS[st] for st in STAGES if st not in ran]
        stage_s = {st: sum(f.timings.get(st, 0.0) for f in out.faces) for st in ran}
        ran_txt = ", ".join(f"{STAGE_LABELS[st]} {stage_s[st]:.2f} s" for st in ran) or "nothing"
        head = (f"**Restored {n} face{'s' if n != 1 else ''}** in {t.get('total', 0):.2f} s "
                f"(ran: {ran_txt}" + (f"; reused from cache: {', '.join(reused)}" if reused else "") + ").")
    lines = [head] + [f"- {msg}" for msg in out.notices]
    if label:
        lines.append(f"- Model: {label}.")
    return "\n".join(lines)


def gallery_items(out: RestoreOutput, size: int = DISPLAY_SIZE) -> list[tuple[np.ndarray, str]]:
    """Per face: LQ | IRM 64 | IRM 128 | TEM, upscaled with nearest so pixels stay honest."""
    items = []
    for f in out.faces:
        for st in ("lq",) + STAGES:
            items.append((upscale_nearest(getattr(f, st), size), f"Face {f.index + 1} · {STAGE_LABELS[st]}"))
    return items
