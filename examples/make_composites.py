"""Make the examples of people of different ages and skin tones: composite faces.

    python examples/make_composites.py        # needs ../shared/data/utkface

We have no redistributable photos of such people offline, and the planned source (faces
sampled from our own unconditional TEM model) needs GPU-trained weights. So each face here
is made here: the pixel average of ~36 UTKFace *training* faces of one age / gender /
skin-tone group, aligned on their 68 dlib landmarks first. An average of that many faces
is a plausible face of no real person (and no single training photo can be read back from
it). It is a derivative of UTKFace, so the dataset's non-commercial research licence
applies to these files, as it does to the shipped weights.

The composites are soft (an average has no pores), which is what a restoration example
wants anyway: the script degrades them further, like a small old web photo.
Deterministic: the same manifest gives the same files.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a plain script from anywhere
import cv2  # noqa: E402
from diffbfr.faces.align import similarity_transform  # noqa: E402
from diffbfr.faces.landmarks import landmarks68_in_box  # noqa: E402
from diffbfr.frame import transform_points  # noqa: E402
from diffbfr.train.data import iter_faces, read_manifest, select_rows  # noqa: E402
from make_examples import low_quality, save  # noqa: E402

UTK = 200                      # UTKFace crops are 200x200
LANDMARK_BOX = (20, 20, 180, 180)  # where the face sits in a UTKFace crop
CANDIDATES = 60                # faces drawn per group ...
KEEP = 36                      # ... of which the best-aligned are averaged

# UTKFace labels: gender 0 male / 1 female; race 0 White, 1 Black, 2 Asian, 3 Indian,
# 4 Others (e.g. Hispanic, Middle Eastern). The name says what the composite shows.
GROUPS = {
    "child": dict(race=2, gender=None, ages=(3, 8)),
    "young_woman": dict(race=3, gender=1, ages=(20, 32)),
    "man": dict(race=1, gender=0, ages=(25, 40)),
    "middle_aged_man": dict(race=4, gender=0, ages=(40, 55)),
    "older_woman": dict(race=1, gender=1, ages=(60, 85)),
    "older_man": dict(race=0, gender=0, ages=(65, 85)),
    "older_asian_man": dict(race=2, gender=0, ages=(60, 85)),
}


def group_files(rows: list[dict], race: int, gender: int | None, ages: tuple[int, int]) -> list[str]:
    """The first CANDIDATES training faces of a group (by file name), sharp and in colour."""
    sel = [r["file"] for r in select_rows(rows, "train", min_sharpness=30)   # sorted by name
           if r["race"] == race and (gender is None or r["gender"] == gender)
           and r["age"] is not None and ages[0] <= r["age"] <= ages[1] and r["saturation"] >= 25]
    return sel[:CANDIDATES]


def composite(faces: list[np.ndarray]) -> np.ndarray:
    """Average of the KEEP faces that fit the group's mean landmark shape best.

    The mean shape is refined three times over the kept faces, so a turned head or a bad
    landmark fit does not pull it; then every kept face is warped onto it and averaged.
    """
    marks = np.stack([landmarks68_in_box(f, LANDMARK_BOX) for f in faces]).astype(np.float64)
    mean = marks.mean(axis=0)
    for _ in range(3):
        fits = [similarity_transform(m, mean) for m in marks]
        moved = np.stack([transform_points(a, m) for m, a in zip(marks, fits)])
        keep = np.argsort(np.abs(moved - mean).mean(axis=(1, 2)))[:KEEP]
        mean = moved[keep].mean(axis=0)
    acc = np.zeros((UTK, UTK, 3))
    for i in keep:
        acc += cv2.warpAffine(faces[i], similarity_transform(marks[i], mean), (UTK, UTK),
                              flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(acc / len(keep) + 0.5, 0, 255).astype(np.uint8)


def portrait_grid(tiles: list[np.ndarray], columns: int = 3, side: int = 176, gap: int = 12) -> np.ndarray:
    """Portraits in a grid on white, like a page of a yearbook."""
    rows = -(-len(tiles) // columns)
    page = np.full((rows * (side + gap) + gap, columns * (side + gap) + gap, 3), 246, np.uint8)
    for i, tile in enumerate(tiles):
        y, x = gap + (i // columns) * (side + gap), gap + (i % columns) * (side + gap)
        page[y:y + side, x:x + side] = cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA)
    return page


def main() -> None:
    rows = read_manifest()
    made = {}
    for name, group in GROUPS.items():
        files = group_files(rows, **group)
        made[name] = composite([face for _, face in iter_faces("train", files=files)])
        print(f"{name}: average of {KEEP} of {len(files)} faces")

    # six people of different ages and skin tones in one picture, lightly degraded
    six = [made[k] for k in ("child", "man", "middle_aged_man", "older_woman", "older_man", "older_asian_man")]
    save("composite_portraits.jpg", low_quality(portrait_grid(six), factor=2, quality=40, blur=0.5),
         quality=92)
    # one face, small and heavily degraded: the strong-restoration case
    face = cv2.resize(made["young_woman"], (320, 320), interpolation=cv2.INTER_CUBIC)
    save("composite_lowres.jpg", low_quality(face, factor=4, quality=30, blur=0.8), quality=95)


if __name__ == "__main__":
    main()
