"""Training throughput per network: python -m bench.train_speed [--batch 8] [--steps 5] [--device cpu]

Times whole optimizer steps (forward, backward, AdamW) of the shipped architectures on random
data after a warm-up step, and prints img/s per model. On CUDA it uses bf16 autocast and
channels_last like the trainer does.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffbfr.train.diffusion_trainer import train_step
from diffbfr.nets.unet import MODEL_CONFIGS, SHUFFLE_OVERRIDES, build, param_count


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODEL_CONFIGS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the model first (as the trainer can)")
    p.add_argument("--arch", choices=("shuffle", "unet"), default="shuffle")
    p.add_argument("--crop", type=int, default=0, help="train on crops of this side (as the trainer's --crop)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on the CPU too (always on CUDA)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    bf16 = cuda or args.bf16
    print(f"device {dev}, batch {args.batch}, threads {torch.get_num_threads()}, compile {args.compile}, "
          f"arch {args.arch}, crop {args.crop}, bf16 {bf16}, median of {args.steps} steps")
    print("| model | params (M) | s/step | img/s |\n|---|---|---|---|")
    for name in args.models.split(","):
        model = build(name, **(SHUFFLE_OVERRIDES[name] if args.arch == "shuffle" else {})).to(dev)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        c = model.config
        fwd = torch.compile(model) if args.compile else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        side = args.crop or c.image_size
        x0 = torch.rand(args.batch, 3, side, side, device=dev) * 2 - 1
        cond = torch.rand(args.batch, c.cond_channels, side, side, device=dev) if c.cond_channels else None
        step_args = argparse.Namespace(lq_start=0.5 if cond is not None else 0.0, loss="x0-l1")
        gen = torch.Generator().manual_seed(0)
        times = []
        for i in range(args.steps + 1):
            t = torch.rand(args.batch, device=dev) * 400
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            train_step(fwd, model, opt, (x0, cond, cond[:, :3] if cond is not None else x0), t, torch.randn_like(x0),
                       step_args, gen, bf16=bf16)
            if cuda:
                torch.cuda.synchronize()
            if i:  # the first step warms up allocators and kernels (and compiles)
                times.append(time.perf_counter() - t0)
        s = statistics.median(times)
        print(f"| {name} | {param_count(model) / 1e6:.2f} | {s:.3f} | {args.batch / s:.1f} |")


if __name__ == "__main__":
    main()
