"""Panini-Net size and CPU speed: python -m bench.panini_speed [--threads 2] [--repeats 5]

Prints markdown tables for two configs (tiny, default): parameters and fp16 MiB of the
generator, discriminator, encoder, DAFI blocks, DRE and the whole PaniniNet, and CPU
milliseconds per 128 px face (batch 1, median and min of --repeats runs after --warmup runs;
torch.no_grad, eval mode, noise_mode "const") for the full restoration, its parts, G-only
sampling and one D evaluation.  Weights are random: speed does not depend on them.

The DRE is diffbfr.nets.panini_dre.DRE (its TINY config for the tiny column).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import diffbfr  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch loads)
import torch  # noqa: E402
from torch import nn  # noqa: E402

from diffbfr.nets.panini_dafi import TINY_PANINI, PaniniConfig, PaniniNet
from diffbfr.nets.panini_dre import DRE, TINY
from diffbfr.nets.panini_prior import TINY_DISCRIMINATOR, Discriminator, DiscriminatorConfig

def make_dre(tiny: bool) -> tuple[nn.Module, str]:
    if tiny:
        return DRE(TINY), "diffbfr.nets.panini_dre.DRE(TINY)"
    return DRE(), "diffbfr.nets.panini_dre.DRE"


def size(module: nn.Module) -> tuple[int, float]:
    """(parameters, MiB of the state dict with floating tensors stored as fp16)."""
    params = sum(p.numel() for p in module.parameters())
    nbytes = sum(t.numel() * (2 if t.is_floating_point() else t.element_size())
                 for t in module.state_dict().values())
    return params, nbytes / 2 ** 20


def median_ms(fn, repeats: int, warmup: int) -> tuple[float, float]:
    """(median, min) milliseconds; the min is the better estimate on a machine shared with
    other jobs, the median is what a user sees."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), 1000 * min(times)


def measure(name: str, cfg: PaniniConfig, dcfg: DiscriminatorConfig, tiny: bool, repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    dre, dre_kind = make_dre(tiny)
    net = PaniniNet(cfg, dre).eval()
    d = Discriminator(dcfg).eval()
    lq = torch.rand(1, 3, cfg.generator.resolution, cfg.generator.resolution) * 2 - 1
    g = net.generator
    ws = g.w_avg.expand(1, g.num_ws, -1)
    dafi = nn.ModuleList(net.dafi.values())
    rows = {"generator": size(g), "discriminator": size(d), "encoder": size(net.encoder),
            f"DAFI ({len(dafi)} blocks)": size(dafi), "DRE": size(net.dre), "PaniniNet (all)": size(net)}
    ms = {
        "PaniniNet restore": median_ms(lambda: net(lq), repeats, warmup),
        "  DRE": median_ms(lambda: net.dre(lq), repeats, warmup),
        "  encoder": median_ms(lambda: net.encoder(lq, g.w_avg), repeats, warmup),
        "  G synthesis (no DAFI)": median_ms(lambda: g.synthesis(ws, noise_mode="const"), repeats, warmup),
        "G sample (map + synth)": median_ms(lambda: g.sample(1), repeats, warmup),
        "D forward": median_ms(lambda: d(lq), repeats, warmup),
    }
    return {"name": name, "sizes": rows, "ms": ms, "dre": dre_kind}


def table(res: list[dict]) -> str:
    names = [r["name"] for r in res]
    out = ["| module | " + " | ".join(f"{n} params | {n} fp16 MiB" for n in names) + " |",
           "|---|" + "---:|---:|" * len(names)]
    for key in res[0]["sizes"]:
        cells = []
        for r in res:
            p, mib = r["sizes"][key]
            cells += [f"{p:,}", f"{mib:.2f}"]
        out.append(f"| {key} | " + " | ".join(cells) + " |")
    out += ["", "| CPU ms per 128 px face (batch 1) | " + " | ".join(f"{n} median | {n} min" for n in names) + " |",
            "|---|" + "---:|---:|" * len(names)]
    for key in res[0]["ms"]:
        out.append(f"| {key} | " + " | ".join(f"{r['ms'][key][0]:.1f} | {r['ms'][key][1]:.1f}" for r in res) + " |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    res = [measure("tiny", TINY_PANINI, TINY_DISCRIMINATOR, True, a.repeats, a.warmup),
           measure("default", PaniniConfig(), DiscriminatorConfig(), False, a.repeats, a.warmup)]
    load1 = os.getloadavg()
    print(f"torch {torch.__version__}, {a.threads} threads, repeats {a.repeats}, warmup {a.warmup}; "
          f"load average (1/5/15 min) before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, "
          f"after {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}\n")
    print("DRE: " + ", ".join(f"{r['name']}: {r['dre']}" for r in res) + "\n")
    print(table(res))


if __name__ == "__main__":
    main()
