"""Grey stays grey: python -m bench.grey_outputs [--weights DIR | --tiny]

A black-and-white photo must give grey outputs everywhere (issue #30, items 5 and 6): the
restored photo, every stage image and the per-face downloads, at every setting. Photos: the
grey examples (hopper_old_grey.jpg, two_faces_grey.jpg) and a nearly grey scan made from
hopper_old_grey.jpg (a warm tint growing to 20 levels red-blue, saved as JPEG: its channels
differ by up to ~20, like the issue's 276x182 scan). Settings: the fidelity slider at 0, 25,
50, 75, 100, Auto, and the CLI's fixed defaults. Per run: the input's largest channel
difference, the output's, the pixels whose red-blue difference exceeds the input's largest
(the issue: 564 with the CLI's defaults), and the largest channel difference over every stage
image. Target: 0 everywhere but the input column.
"""
from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image

from diffbfr import methods
from diffbfr import settings as S
from diffbfr.auto import Auto
from diffbfr.grey import chroma
from diffbfr.imageio import load_image
from diffbfr.paths import EXAMPLES, WEIGHTS
from diffbfr.photo import PhotoOptions, PhotoRestorer


def tinted_scan(levels: int = 20) -> np.ndarray:
    g = np.asarray(Image.open(EXAMPLES / "hopper_old_grey.jpg").convert("L")).astype(np.float32)
    tint = np.linspace(0.0, 1.0, g.shape[1])[None, :] * levels / 2
    rgb = np.stack([g + tint, g + tint / 5, g - tint], axis=2).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=85)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(WEIGHTS))
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args(argv)
    model = methods.model_for("diffbfr", a.weights, random_tiny=a.tiny, device="cpu")
    auto = Auto.for_method(a.weights, "diffbfr", random_tiny=a.tiny)
    restorer = PhotoRestorer(model, cache_size=64, identity=False, auto=auto)
    limits, simple = model.knob_limits(), model.method.simple
    runs = [(f"fidelity {p}", S.clamp(model.method.settings, simple.apply(p, limits), limits), False)
            for p in (0, 25, 50, 75, 100)]
    runs += [("Auto (the app's default)", S.validate(model.method.settings, {}, limits), True),
             ("fixed defaults (Auto off)", S.validate(model.method.settings, {}, limits), False)]
    photos = {"hopper_old_grey.jpg": load_image(EXAMPLES / "hopper_old_grey.jpg").rgb,
              "two_faces_grey.jpg": load_image(EXAMPLES / "two_faces_grey.jpg").rgb,
              "nearly grey scan (tint to 20 levels, JPEG)": tinted_scan()}
    lines = ["| photo | settings | faces | input max R-B | output max channel diff | pixels R-B > input max "
             "| stage images max channel diff |", "|---|---|---|---|---|---|---|"]
    recs = []
    for name, rgb in photos.items():   # the Python API's path (no loader): the photo path decides
        in_rb = int(np.abs(rgb[..., 0].astype(int) - rgb[..., 2].astype(int)).max())
        for label, s, use_auto in runs:
            res = restorer.restore(rgb, s, PhotoOptions(auto=use_auto))
            rb = np.abs(res.image[..., 0].astype(int) - res.image[..., 2].astype(int))
            stage_max = max((int(chroma(im).max()) for f in res.faces for im in f.stages.images.values()), default=0)
            rec = {"photo": name, "settings": label, "faces": len(res.faces), "input_rb": in_rb,
                   "output_chroma": int(chroma(res.image).max()), "pixels_over": int((rb > in_rb).sum()),
                   "stage_chroma": stage_max}
            recs.append(rec)
            lines.append(f"| {name} | {label} | {rec['faces']} | {in_rb} | {rec['output_chroma']} | "
                         f"{rec['pixels_over']} | {stage_max} |")
    print("\n".join(lines))
    return recs


if __name__ == "__main__":
    main()
