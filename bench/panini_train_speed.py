"""Panini-Net training-step speed: python -m bench.panini_train_speed [--batch 8] [--steps 3]

Times whole training steps (discriminator step + generator step, optimizers included) of the
default-size networks on random data with the projected discriminator, for each combination of
precision (fp32, bf16 autocast) and CPU threads (1, 2): the plain prior step, the hybrid prior
step (plus the autoencoder step) and the restoration step. Median of --steps after one warm-up
step; images per second = batch / median. Weights are random: speed does not depend on them.
Needs the dev requirements (EfficientNet-Lite0's weights, for the projected discriminator).
"""
from __future__ import annotations

import argparse

import diffbfr  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch loads)
import torch  # noqa: E402

from bench.common import markdown_table, median_time
from diffbfr.nets.panini_dafi import PaniniConfig, PaniniNet
from diffbfr.nets.panini_dre import DRE
from diffbfr.nets.panini_encoder import Encoder, EncoderConfig
from diffbfr.nets.panini_prior import Generator, GeneratorConfig
from diffbfr.train import panini_steps as steps
from diffbfr.train.projected_d import ProjectedDiscriminator, features


def step_fns(batch: int) -> dict:
    """name -> (a zero-argument training step, its batch)."""
    torch.manual_seed(0)
    args = argparse.Namespace(mixing=0.9, ae_weight=1.0, w_gan=1.0, w_l1=1.0, w_perc=0.1, w_adv=0.02)
    d, feats = ProjectedDiscriminator(), features()
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.0, 0.99))
    g = Generator(GeneratorConfig())
    enc = Encoder(EncoderConfig.for_generator(g.config))
    g_opt = torch.optim.Adam(list(g.parameters()) + list(enc.parameters()), lr=2e-3, betas=(0.0, 0.99))
    net = PaniniNet(PaniniConfig(), DRE())
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=2e-4)
    real = torch.rand(batch, 3, 128, 128) * 2 - 1
    plain = argparse.Namespace(**{**vars(args), "ae_weight": 0.0})
    return {
        "prior (plain GAN)": lambda bf16: steps.projected_prior_step(g, None, d, feats, g_opt, d_opt, real, plain, bf16),
        "prior (hybrid: + autoencoder)": lambda bf16: steps.projected_prior_step(g, enc, d, feats, g_opt, d_opt, real,
                                                                                 args, bf16),
        "restore": lambda bf16: steps.projected_restore_step(net, d, feats, opt, d_opt, real, real, args, bf16),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    a = p.parse_args(argv)
    fns = step_fns(a.batch)
    rows = []
    for threads in (int(t) for t in a.threads.split(",")):
        torch.set_num_threads(threads)
        for name, fn in fns.items():
            for bf16 in (False, True):
                s = median_time(lambda: fn(bf16), a.steps, 1)  # the warm-up pays for oneDNN's kernel choice
                rows.append([name, threads, "bf16" if bf16 else "fp32", f"{s:.2f}", f"{a.batch / s:.2f}"])
                print(" | ".join(map(str, rows[-1])), flush=True)
    print(f"\nbatch {a.batch}, median of {a.steps} steps after a warm-up, {torch.__version__}\n")
    print(markdown_table(["step", "threads", "precision", "s / step", "img/s"], rows))


if __name__ == "__main__":
    main()
