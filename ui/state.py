"""The app's state shared by every visitor: the loaded models, one PhotoRestorer per method
(content-keyed caches, so sharing them between people is safe), the decoded uploads, the
methods that cannot run and why, and the runner every network evaluation goes through (ZeroGPU
on a Space)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from diffbfr import methods, paths
from diffbfr.auto import Auto
from diffbfr.face_stages import worker_runner
from diffbfr.photo import PhotoRestorer
from diffbfr.stage_cache import LRUCache
from diffbfr.work_budget import WORK_BUDGET_S

from .files import is_aligned_example
from .session import UploadStore

try:  # ZeroGPU on Hugging Face Spaces; a no-op everywhere else
    import spaces
    gpu = spaces.GPU
except ImportError:
    def gpu(fn=None, **_kw):
        return fn if fn is not None else (lambda f: f)
ON_ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")

ROOT, EXAMPLES = paths.ROOT, paths.EXAMPLES   # the checkout's (diffbfr/paths.py: also when installed)
BOTH = "both"   # the method choice that runs every available method side by side
log = logging.getLogger("diffbfr.app")
DETECTION_BYTES = 16 * 2**20   # the aligned faces of the latest photos (a crowd: ~50 KB a face)
_MODELS: dict[str, methods.Model] = {}  # module global: a ZeroGPU worker reaches the models through it


class AppState:
    """One PhotoRestorer per available method (sharing face detections) and, for the
    registered methods without weights, the reason they are unavailable."""

    def __init__(self, models: dict[str, methods.Model], unavailable: dict[str, str] | None = None,
                 identity: bool = True, runner=None, cache_size: int = 512, autos: dict | None = None):
        detections = LRUCache(32, DETECTION_BYTES)
        self.models = models
        self.restorers = {n: PhotoRestorer(m, cache_size, identity=identity, runner=runner, detections=detections,
                                           auto=(autos or {}).get(n), work_budget=WORK_BUDGET_S)
                          for n, m in models.items()}
        self.unavailable = unavailable or {}
        self.uploads = UploadStore()   # every tab's decoded photo; the tabs' State holds keys

    def chosen(self, choice: str) -> list[str]:
        return list(self.restorers) if choice == BOTH else [choice]

    def limits(self, name: str) -> dict:
        """The method's setting ranges narrowed by its loaded networks (Model.knob_limits(): no
        start step beyond the timesteps its network was trained at); {} without a model."""
        return self.models[name].knob_limits() if name in self.models else {}


def create_app(weights: str | Path = ROOT / "weights", device: str | None = None, tiny: bool = False,
               identity: bool = True) -> AppState:
    """Every registered method whose weights load (tiny: random tiny networks), with Auto where
    a calibration exists; without any weights, DiffBFR's tiny networks, said on the page."""
    models, unavailable, autos = {}, {}, {}
    for name in methods.METHODS:
        try:  # a method with a calibration gets automatic start steps
            autos[name] = Auto.for_method(weights, name, random_tiny=tiny)
        except (FileNotFoundError, ValueError):
            pass
        try:
            models[name] = methods.model_for(name, weights, random_tiny=tiny, device=device)
        except (FileNotFoundError, ValueError) as exc:
            # the page and the API say it in words; the details (server paths) go to the log
            log.info("%s is not available: %s", name, exc)
            unavailable[name] = ("it is not trained yet" if isinstance(exc, FileNotFoundError)
                                 else "its weights could not be loaded")
    if not models:  # nothing trained at all: keep the app usable, and say so everywhere
        log.warning("no weights found under %s; falling back to random tiny networks", weights)
        first = next(iter(methods.METHODS))
        models[first] = methods.tiny(first, seed=0, device=device or "cpu")
        models[first].label = "random tiny networks, because no weights were found"   # where: in the log
        unavailable.pop(first, None)
    _MODELS.clear()
    _MODELS.update(models)
    # every network evaluation through the runner a ZeroGPU Space needs (no progress callback
    # can cross to its worker there)
    return AppState(models, unavailable, identity=identity, autos=autos,
                    runner=worker_runner(_MODELS, gpu(duration=60), progress_crosses=not ON_ZERO_GPU))


def example_files() -> list[str]:
    return sorted(str(p) for p in EXAMPLES.iterdir()
                  if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"}) if EXAMPLES.is_dir() else []


def example_rows() -> list[tuple[str, bool]]:
    """(path, is an aligned face crop) of every example."""
    return [(p, is_aligned_example(p)) for p in example_files()]
