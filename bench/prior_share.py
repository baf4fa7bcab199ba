"""Does Panini-Net lean on its GAN prior more as faces get worse (the paper's claim)?
python -m bench.prior_share FOLDER [--limit 100]

FOLDER holds the method's trained parts (generator, encoder, dafi .safetensors), e.g.
weights/panini/restore; the frozen DRE is --dre (default weights/panini/dre.safetensors). The first --limit UTKFace test faces are degraded at each of
degrade.LEVELS exactly as bench.quality degrades them (fixed_degrade, the bench's seed per
face); each face's prior share is the mean over channels and DAFI feature levels of the
prior's share (0 = all from the photo, 1 = all prior); with an image DAFI block, its share is
reported apart. Prints the mean per level and Spearman's rho between severity (light 0, medium 1, heavy 2) and the per-face share (issue 31's target: >= 0.3).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import diffbfr  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from bench import common as C
from diffbfr.checkpoint import load_network
from diffbfr.frame import to_batch
from diffbfr.methods.panini import feature_levels, prior_shares
from diffbfr.nets.panini_dafi import IMAGE, PARTS, assemble
from diffbfr.train.degrade import LEVELS, fixed_degrade


@torch.no_grad()
def face_shares(net, lqs: list[np.ndarray], batch: int = 20, image: bool = False) -> list[float]:
    """Per LQ face: the mean over the DAFI feature levels of the per-level shares the page shows
    (the paper's claim is about these); image=True: the image block's share instead."""
    out = []
    for i in range(0, len(lqs), batch):
        o = net(to_batch(lqs[i:i + batch]), noise_mode="const")
        for levels in prior_shares(o["masks"], o.get("image_share")):
            out.append(float(levels[IMAGE]) if image else float(np.mean(list(feature_levels(levels).values()))))
    return out


def shares_by_level(net, faces, seed: int = 0, image: bool = False) -> dict[str, list[float]]:
    return {lv: face_shares(net, [fixed_degrade(f.image, lv, C.face_seed(seed, f.name)) for f in faces],
                            image=image) for lv in LEVELS}


def severity_rho(shares: dict[str, list[float]]) -> float:
    x = [LEVELS.index(lv) for lv, s in shares.items() for _ in s]
    return float(spearmanr(x, [v for s in shares.values() for v in s]).statistic)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--dre", default="weights/panini/dre.safetensors", help="the method's frozen DRE")
    a = p.parse_args(argv)
    parts = {n: Path(a.folder) / f"{n}.safetensors" for n in PARTS} | {"dre": Path(a.dre)}
    net = assemble({n: load_network(path) for n, path in parts.items()})
    faces, _ = C.utk_test_faces(a.limit)
    shares = shares_by_level(net, faces)
    res = {"mean": {lv: round(float(np.mean(s)), 4) for lv, s in shares.items()},
           "spearman": round(severity_rho(shares), 3), "faces": len(faces)}
    if net.config.image_dafi:  # beyond the paper: the final image's blend, reported on its own
        image = shares_by_level(net, faces, image=True)
        res["image"] = {"mean": {lv: round(float(np.mean(s)), 4) for lv, s in image.items()},
                        "spearman": round(severity_rho(image), 3)}
    print(res)
    return res


if __name__ == "__main__":
    main()
