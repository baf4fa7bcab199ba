"""Regenerate the example images of the app from public-domain sources.

    python examples/make_examples.py

Source: skimage.data.astronaut() -- NASA portrait of astronaut Eileen Collins, public
domain (shipped with scikit-image). Every other file here is derived from it by this
script, deterministically, so the examples can be redistributed with the repository.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a plain script from anywhere


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def low_quality(rgb: np.ndarray, factor: int, quality: int, blur: float = 0.0) -> np.ndarray:
    """Downscale by `factor` (area), optional blur, JPEG at low quality, upscale back:
    the classic "old small web photo" look, at the original size so faces stay detectable."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    if blur > 0:
        small = cv2.GaussianBlur(small, (0, 0), blur)
    small = jpeg_roundtrip(small, quality)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def save(name: str, rgb: np.ndarray, **kw) -> None:
    path = HERE / name
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, **kw)
    print(f"{path.name}: {rgb.shape[1]}x{rgb.shape[0]}, {path.stat().st_size / 1024:.0f} KB")


def main() -> None:
    from skimage.data import astronaut

    src = np.ascontiguousarray(astronaut())  # 512x512 RGB
    save("astronaut.jpg", src, quality=90)
    save("astronaut_lowres.jpg", low_quality(src, factor=4, quality=30, blur=0.6), quality=95)

    # two faces in one photo (the portrait and its mirror image), greyscale and degraded:
    # exercises multi-face detection, paste-back and greyscale handling.
    pair = np.concatenate([src, src[:, ::-1]], axis=1)
    pair = cv2.resize(pair, (768, 384), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(low_quality(pair, factor=3, quality=35), cv2.COLOR_RGB2GRAY)
    save("two_faces_grey.jpg", grey, quality=92)

    # an already aligned 128 px face (the models' canonical frame) for aligned-input mode
    from diffbfr.faces.align import find_faces
    from diffbfr.train.degrade import fixed_degrade

    faces, reason = find_faces(src)
    if not faces:
        raise SystemExit(f"no face found in the source: {reason}")
    face = max(faces, key=lambda f: f.face.score if f.face is not None else 0.0)
    save("astronaut_face_aligned.png", fixed_degrade(face.image, "medium", seed=0))


if __name__ == "__main__":
    main()
