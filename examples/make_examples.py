"""Regenerate the example images of the app from public-domain sources.

    python examples/make_examples.py

Sources, both public domain and shipped inside pip packages (nothing is downloaded):
- skimage.data.astronaut(): NASA portrait of astronaut Eileen Collins (scikit-image);
- matplotlib's sample_data/grace_hopper.jpg: U.S. Navy portrait of Rear Admiral Grace
  Hopper (1984), a work of the U.S. federal government.
Every file here is derived from them by this script, deterministically, so the examples
can be redistributed with the repository.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image
from skimage.data import astronaut

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a plain script from anywhere
from diffbfr.faces.align import find_faces  # noqa: E402 (after the path)
from diffbfr.train.degrade import fixed_degrade  # noqa: E402


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
    src = np.ascontiguousarray(astronaut())  # 512x512 RGB
    hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
                        .convert("RGB"))  # 512x600
    save("astronaut.jpg", src, quality=90)
    save("astronaut_lowres.jpg", low_quality(src, factor=4, quality=30, blur=0.6), quality=95)

    # two faces in one photo (the portrait and its mirror image), greyscale and degraded:
    # exercises multi-face detection, paste-back and greyscale handling.
    pair = np.concatenate([src, src[:, ::-1]], axis=1)
    pair = cv2.resize(pair, (768, 384), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(low_quality(pair, factor=3, quality=35), cv2.COLOR_RGB2GRAY)
    save("two_faces_grey.jpg", grey, quality=92)

    # an old greyscale print of an older person: faded, soft, grainy, JPEG
    old = cv2.cvtColor(cv2.resize(hopper, (400, 469), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    old = cv2.GaussianBlur(old, (0, 0), 1.2).astype(np.float32) * 0.7 + 50   # faded contrast
    old = old + np.random.default_rng(0).normal(0, 6, old.shape)            # film grain
    save("hopper_old_grey.jpg", np.clip(old, 0, 255).astype(np.uint8), quality=40)

    # a small, low-resolution photo (a 2000s web thumbnail): the output-size control matters
    save("hopper_small.jpg", jpeg_roundtrip(cv2.resize(hopper, (120, 141), interpolation=cv2.INTER_AREA), 35),
         quality=95)

    # two people in one picture at different sizes (a collage made here, on a plain wall)
    wall = np.full((420, 720, 3), (196, 188, 170), np.uint8)
    wall[40:40 + 340, 30:30 + 340] = cv2.resize(src, (340, 340), interpolation=cv2.INTER_AREA)
    wall[110:110 + 281, 430:430 + 240] = cv2.resize(hopper, (240, 281), interpolation=cv2.INTER_AREA)
    save("two_people.jpg", low_quality(wall, factor=2, quality=45), quality=92)

    # an already aligned 128 px face (the models' canonical frame) for aligned-input mode
    faces, reason = find_faces(src)
    if not faces:
        raise SystemExit(f"no face found in the source: {reason}")
    face = max(faces, key=lambda f: f.face.score if f.face is not None else 0.0)
    save("astronaut_face_aligned.png", fixed_degrade(face.image, "medium", seed=0))


if __name__ == "__main__":
    main()
