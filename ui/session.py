"""A visitor's session: the upload and what the page did with it. Gradio keeps one Upload per
browser tab (gr.State), and keeps it for an hour after the tab is closed; so the State holds
only a key and small facts, and the decoded photos of every tab live in one UploadStore,
bounded in bytes (bench.soak measures the effect). Nothing of it is written to disk but the results on its page (Upload.files)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from diffbfr.imageio import DEFAULT_MAX_PIXELS, ImageError, load_image
from diffbfr.stage_cache import LRUCache, image_key

# ~2 photos at the 8 MP decode limit, ~20 ordinary 1 MP ones: more than the tabs a CPU serves
# at once; the least recently used photo goes first. Part of the app's memory budget (bench.soak
# allows +150 MB once warm, for every cache together).
UPLOAD_BYTES = 64 * 2**20
GONE = ("This photo is no longer in the app's memory (it keeps the most recently used photos "
        "of everyone's tabs). Upload it again to continue.")


@dataclass
class Upload:
    """A decoded upload, as the user's session keeps it: its key into the UploadStore."""
    key: str
    size: tuple[int, int]         # (width, height) after decoding
    notices: list[str]
    was_grey: bool
    name: str = "photo"           # the uploaded file's stem, for download names
    path: str | None = None       # the file it came from, so the app can delete it (then None)
    source: str | None = None     # the file it came from (kept: tells a newer upload apart)
    restored: bool = False        # a result exists: sliders may rerun live
    selection: list[int] | None = None   # faces the user ticked (None: the default ones)
    last: list | None = None      # the latest PhotoResults, without the photo (the uncertainty view)
    files: list[str] = field(default_factory=list)   # the result files on the page now (AppFiles.delete)


class UploadStore:
    """The decoded photos of every tab, by content key, least recently used dropped first
    once they hold more than max_bytes (the same photo in two tabs is held once)."""

    def __init__(self, max_bytes: int = UPLOAD_BYTES):
        self._photos = LRUCache(maxsize=10_000, max_bytes=max_bytes)

    def load(self, src, name: str = "photo", path: str | None = None,
             max_pixels: int = DEFAULT_MAX_PIXELS) -> Upload:
        """Decode an upload and keep it; raises imageio.ImageError with a user-facing message."""
        loaded = load_image(src, max_pixels=max_pixels)
        path = path if path is not None else (str(src) if isinstance(src, str) else None)
        key = image_key(loaded.rgb)
        self._photos.put(key, loaded.rgb)
        h, w = loaded.rgb.shape[:2]
        return Upload(key, (w, h), loaded.notices, loaded.was_grey, name, path, path)

    def rgb(self, up: Upload) -> np.ndarray:
        """The upload's photo; ImageError (in words) when it was dropped to make room."""
        rgb = self._photos.get(up.key)
        if rgb is None:
            raise ImageError(GONE)
        return rgb

    @property
    def bytes(self) -> int:
        return self._photos.bytes

    def __len__(self) -> int:
        return len(self._photos)
