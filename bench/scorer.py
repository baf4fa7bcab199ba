"""How bench.quality scores each face: Scorer, with the per-image work cached.

- psnr, ssim, niqe: diffbfr/metrics.py (the one definition the trainers use too; PSNR is
  capped at metrics.PSNR_CAP, which only an image compared with itself reaches).
- identity: dlib 128-D embedding distance through diffbfr.faces.identity
  (< 0.6 is dlib's "same person"), computed in the canonical frame's known face box;
  None when dlib cannot compute an embedding.
- realism (pdist, KID, hf of whole sets of faces): bench/realism.py.
"""
from __future__ import annotations

import time

import numpy as np

from bench import realism as R
from diffbfr.faces.identity import face_embedding, identity_distance
from diffbfr.metrics import niqe, psnr, ssim
from diffbfr.niqe import NiqeModel


def identity(a: np.ndarray, b: np.ndarray, aligned: bool | None = True) -> float | None:
    """dlib identity distance (faces layer) of two faces in the canonical frame
    (aligned=True: landmarks inside the frame's known face box, no detection); None
    if no embedding can be computed."""
    d = identity_distance(a, b, aligned=aligned)
    return None if d is None else float(d)


class Scorer:
    """Metrics with the per-image work cached (NIQE of a target, its dlib embedding), and the
    realism scores of whole sets of faces."""

    def __init__(self, niqe_model: NiqeModel, identity: bool = True, realism: bool = True):
        self.niqe_model, self.use_id = niqe_model, identity
        # why the realism columns are off, or None when they are scored
        self.realism_off = "--no-realism" if not realism else R.available()
        self.realism_seconds = 0.0   # what the realism scores added to the run
        self._emb: dict[str, object] = {}
        self._embed = None
        if identity:
            # one embedding per image (the target's is cached) instead of two per pair;
            # every image here is in the canonical frame: no detection needed
            self._embed = lambda img: face_embedding(img, aligned=True)

    def niqe(self, img) -> float:
        return niqe(img, self.niqe_model)

    def identity(self, ref, img, ref_key=None) -> float | None:
        """Distance from ref to img; ref's embedding is cached under ref_key."""
        if not self.use_id:
            return None
        if ref_key is not None and ref_key in self._emb:
            e_ref = self._emb[ref_key]
        else:
            e_ref = self._embed(ref)
            if ref_key is not None:
                self._emb[ref_key] = e_ref
        e_img = self._embed(img)
        if e_ref is None or e_img is None:
            return None
        return float(np.linalg.norm(np.asarray(e_ref, np.float64) - np.asarray(e_img, np.float64)))

    def full(self, hq, img, key) -> dict:
        return {"psnr": psnr(hq, img), "ssim": ssim(hq, img),
                "id_dist": self.identity(hq, img, key), "niqe": self.niqe(img)}

    def realism(self, clean: list, stages: dict[str, list]) -> R.SetScores | None:
        """pdist, hf and KID of each stage's faces against the clean ones; None when off."""
        if self.realism_off or not clean:
            return None
        t0 = time.perf_counter()
        scores = R.score_stages(clean, stages)
        self.realism_seconds += time.perf_counter() - t0
        return scores
