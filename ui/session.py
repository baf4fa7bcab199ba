"""A visitor's session: the decoded upload and what the page did with it. Gradio keeps one
Upload per browser tab (gr.State); nothing of it is written to disk."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffbfr.imageio import DEFAULT_MAX_PIXELS, load_image
from diffbfr.photo import image_key


@dataclass
class Upload:
    """A decoded upload, kept in the user's session (never on disk)."""
    key: str
    rgb: np.ndarray
    notices: list[str]
    was_grey: bool
    name: str = "photo"           # the uploaded file's stem, for download names
    path: str | None = None       # the file it came from, so the app can delete it (then None)
    source: str | None = None     # the file it came from (kept: tells a newer upload apart)
    restored: bool = False        # a result exists: sliders may rerun live
    selection: list[int] | None = None   # faces the user ticked (None: the default ones)
    last: list | None = None      # the latest PhotoResults (the uncertainty view reads them)


def load_upload(src, name: str = "photo", path: str | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Upload:
    """Decode an upload; raises imageio.ImageError with a user-facing message."""
    loaded = load_image(src, max_pixels=max_pixels)
    path = path if path is not None else (str(src) if isinstance(src, str) else None)
    return Upload(image_key(loaded.rgb), loaded.rgb, loaded.notices, loaded.was_grey, name, path, path)
