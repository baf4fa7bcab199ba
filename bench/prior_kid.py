"""A Panini-Net GAN prior on its own: python -m bench.prior_kid PRIOR_DIR [--n 500] [--sheet OUT.png]

PRIOR_DIR holds generator.safetensors (+ .json), and for the hybrid prior encoder.safetensors.
Measures, against the first --n clean faces of the UTKFace test split (no training run sees
them), in the 128 px frame:
- KID×1000 of --n generator samples (fixed latents, constant noise, no truncation) against
  those clean faces (bench/realism.py: Lite2 features, mean ± std over draws);
- hybrid prior only: the faces rebuilt through its encoder and G, scored like a restoration
  (PSNR, pdist, KID, hf against the same faces).
Writes a sheet of the first 64 samples (8 x 8) to --sheet.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import diffbfr  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench import common as C
from diffbfr import metrics as M
from bench import realism as R
from diffbfr.checkpoint import load_network
from diffbfr.frame import to_batch, to_images

SEED = 20240601


@torch.no_grad()
def in_batches(fn, x: torch.Tensor, batch: int = 32) -> list[np.ndarray]:
    return [img for s in range(0, len(x), batch) for img in to_images(fn(x[s:s + batch]).clamp(-1, 1))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prior_dir")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sheet", default=None)
    a = p.parse_args(argv)
    folder = Path(a.prior_dir)
    g = load_network(folder / "generator.safetensors")
    clean = [f.image for f in C.utk_test_faces(a.n)[0]]
    z = torch.randn(len(clean), g.z_dim, generator=torch.Generator().manual_seed(SEED))
    samples = in_batches(lambda zb: g.synthesis(g.map(zb), noise_mode="const"), z)
    _, pooled_clean = R.features(clean)
    _, pooled_samples = R.features(samples)
    k, k_std = R.kid(pooled_samples.numpy(), pooled_clean.numpy())
    print(f"generator samples vs {len(clean)} clean test faces: KID×1000 {k:.0f} ± {k_std:.0f}")
    if (folder / "encoder.safetensors").is_file():
        enc = load_network(folder / "encoder.safetensors")
        rebuilt = in_batches(lambda x: g.synthesis(enc(x, w_avg=g.w_avg)[1], noise_mode="const"), to_batch(clean))
        scores = R.score_stages(clean, {"rebuilt": rebuilt}).means("rebuilt")
        psnr = np.mean([M.psnr(c, r) for c, r in zip(clean, rebuilt)])
        print(f"rebuilt through the encoder: PSNR {psnr:.2f} dB, "
              + ", ".join(f"{key} {v:.3f}" for key, v in scores.items()))
    if a.sheet:
        rows = [np.concatenate(samples[r * 8:(r + 1) * 8], 1) for r in range(min(8, len(samples) // 8))]
        Image.fromarray(np.concatenate(rows, 0)).save(a.sheet, optimize=True)
        print(f"sheet: {a.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
